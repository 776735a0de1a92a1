//! Comparison pages: the newest commits against their parents, and the
//! pairs asked for. Each is computed from the data in memory; one page
//! per commit of a long history would double the site for pages rarely
//! opened.

use super::data::Data;
use super::{Options, SiteError, Writer, chart, machine_id, profile_file, series_file, short};
use minijinja::{Environment, Value, context};
use serde::Serialize;
use std::path::PathBuf;
use syncbench_analysis::history::{Compared, Row as CompareRow};
use syncbench_model::{SeriesKey, Verdict};

/// Commits of recent history drawn on each row of a comparison page.
const SPARK: usize = 20;

/// A series on a comparison page.
#[derive(Serialize)]
struct Line {
    href: Option<String>,
    scenario: String,
    point: String,
    metric: String,
    machine_short: String,
    base: String,
    new: String,
    change: String,
    /// The change against the series' threshold.
    significance: String,
    threshold: String,
    verdict: Verdict,
    class: &'static str,
    /// What the verdict rests on: the test of the two runs' repetitions,
    /// or the interleaved A/B run.
    evidence: String,
    sparkline: String,
    profile_href: Option<String>,
    #[serde(skip)]
    rank: (bool, f64),
}

/// Commits, newest first, that get a page comparing them with their parent.
pub(super) const COMPARE_RECENT: usize = 30;

/// The commit pairs that get a comparison page: those asked for first,
/// then each of the newest commits against its parent, the commits
/// either side of every change point, and those of stored A/B runs and
/// profiles.
pub(super) struct Pairs {
    pub all: Vec<(String, String)>,
    asked: Vec<(String, String)>,
}

pub(super) fn pairs(data: &Data, opts: &Options) -> Result<Pairs, SiteError> {
    let order = &data.history.order;
    let resolve = |prefix: &str| -> Result<String, SiteError> {
        let found: Vec<&String> = order.iter().filter(|s| s.starts_with(prefix)).collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => match data.off_line.iter().find(|r| r.sha.starts_with(prefix)) {
                // Said as such: "no commit" would send one looking for it.
                Some(r) => Err(SiteError::NotOnBranch(r.sha.clone())),
                None => Err(SiteError::UnknownCommit(prefix.to_owned())),
            },
            _ => Err(SiteError::UnknownCommit(prefix.to_owned())),
        }
    };
    let mut asked = Vec::new();
    for (a, b) in &opts.compare {
        asked.push((resolve(a)?, resolve(b)?));
    }
    let mut pairs: Vec<(String, String)> = asked.clone();
    for sha in order.iter().rev().take(COMPARE_RECENT) {
        if let Some(p) = data
            .commit(sha)
            .and_then(|c| c.parents.first())
            .filter(|p| data.history.runs.iter().any(|r| &r.sha == *p))
        {
            let pair = (p.clone(), sha.clone());
            if !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
    }
    // The commits either side of each change point: the landing page
    // links every change to its comparison.
    for st in data.steps.values().flatten() {
        let order = &data.history.order;
        let pair = (order[st.before_index].clone(), order[st.index].clone());
        if !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    // The commits of each stored A/B run, where both were measured.
    // (Two variants compared are shown beside each other on the point's
    // page, not as a comparison of commits.)
    for r in data.ab_runs.iter().filter(|r| r.a_point.is_none()) {
        let pair = (r.a_sha.clone(), r.b_sha.clone());
        if data.measured(&r.a_sha) && data.measured(&r.b_sha) && !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    // The commits of each stored profile, where both were measured: the
    // profile's page links their comparison.
    for (_, _, base, new) in data.profiles.keys() {
        let pair = (base.clone(), new.clone());
        if data.measured(base) && data.measured(new) && !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    Ok(Pairs { all: pairs, asked })
}

/// Renders the comparison pages; returns the paths of those asked for.
pub(super) fn render_all(
    data: &Data,
    opts: &Options,
    pairs: &Pairs,
    env: &Environment,
    w: &mut Writer,
) -> Result<Vec<PathBuf>, SiteError> {
    let (asked, pairs) = (&pairs.asked, &pairs.all);
    let order = &data.history.order;
    let mut pages = Vec::new();
    let position: std::collections::HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    for (base, new) in pairs {
        let pair = Pair {
            data,
            base,
            new,
            end: position.get(new.as_str()).map_or(0, |&i| i + 1),
        };
        let html = pair.html(env, pair.rows(opts))?;
        let path = w.page(&format!("compare/{base}..{new}.html"), &html)?;
        if asked.contains(&(base.clone(), new.clone())) {
            pages.push(path);
        }
    }
    Ok(pages)
}

/// One comparison page being rendered: its two commits, and where the
/// newer one ends the recent history drawn on each row.
struct Pair<'a> {
    data: &'a Data,
    base: &'a String,
    new: &'a String,
    /// Just past the new commit in the history (0 if it is not in it).
    end: usize,
}

impl Pair<'_> {
    /// A row per metric compared: changes first, the largest against
    /// their noise first.
    fn rows(&self, opts: &Options) -> Vec<Line> {
        let data = self.data;
        let threshold = |k: &SeriesKey| {
            let noise = data.noise.get(k).copied();
            syncbench_analysis::history::threshold(&opts.thresholds, &k.scenario, &k.metric, noise)
                .value
        };
        let mut rows: Vec<Line> = Vec::new();
        for c in data.history.compare_by(self.base, self.new, &threshold) {
            for r in &c.rows {
                let key = SeriesKey {
                    machine: c.machine.clone(),
                    scenario: c.scenario.clone(),
                    point: c.point.clone(),
                    metric: r.metric.clone(),
                };
                let t = threshold(&key);
                rows.push(self.line(&c, r, key, t));
            }
        }
        // Changes first, the largest against their noise first.
        rows.sort_by(|a, b| a.rank.0.cmp(&b.rank.0).then(b.rank.1.total_cmp(&a.rank.1)));
        rows
    }

    /// The row of one metric `r` of the point `c`, series `key`, whose
    /// threshold is `t`.
    fn line(&self, c: &Compared, r: &CompareRow, key: SeriesKey, t: f64) -> Line {
        let (data, base, new) = (self.data, self.base, self.new);
        let change = r.change_pct.map(|c| c / 100.0);
        let significance = change.map_or(0.0, |c| c.abs() / t);
        // The interleaved A/B run of this metric, if one was made:
        // stronger evidence than the repetitions of two runs.
        let ab = data.ab_runs.iter().rev().find(|a| {
            &a.a_sha == base
                && &a.b_sha == new
                && a.a_point.is_none()
                && a.machine == c.machine
                && a.scenario == c.scenario
                && a.point == c.point
                && a.metric == r.metric
        });
        let evidence = match (ab, r.p_value) {
            (Some(a), _) => format!(
                "A/B: {} in {} pairs",
                a.change
                    .map_or("unbounded".into(), |c| format!("{:+.2}%", c * 100.0)),
                a.pairs
            ),
            (None, Some(p)) => format!("Mann-Whitney p = {p:.3}, {} runs", r.values.len()),
            (None, None) => String::new(),
        };
        let verdict = ab.map_or(r.verdict, |a| a.verdict);
        Line {
            href: data
                .history
                .series
                .contains_key(&key)
                .then(|| format!("../{}", series_file(&key))),
            scenario: c.scenario.clone(),
            point: c.point.clone(),
            metric: r.metric.clone(),
            machine_short: machine_id(&c.machine),
            base: r.baseline_median.map_or("–".into(), |v| r.unit.human(v)),
            new: r.unit.human(r.median),
            change: change.map_or(String::new(), |c| format!("{:+.1}%", c * 100.0)),
            significance: format!("{significance:.1}×"),
            threshold: format!("±{:.1}%", t * 100.0),
            verdict,
            class: verdict.css_class(),
            evidence,
            sparkline: self.sparkline(&key).unwrap_or_default(),
            profile_href: data
                .profile(&c.scenario, &c.point, base, new)
                .map(|_| format!("../{}", profile_file(&c.scenario, &c.point, base, new))),
            rank: (
                !matches!(verdict, Verdict::Regression | Verdict::Improvement),
                significance,
            ),
        }
    }

    /// The series' recent history up to the new commit, if it is a series.
    fn sparkline(&self, key: &SeriesKey) -> Option<String> {
        let end = self.end;
        self.data.history.series.get(key).map(|s| {
            let from = end.saturating_sub(SPARK);
            chart::sparkline(
                &s.levels[from..end.min(s.levels.len())]
                    .iter()
                    .map(|l| l.map(|l| l.level))
                    .collect::<Vec<_>>(),
            )
        })
    }

    /// The stored A/B runs of the two commits, newest first.
    fn ab_runs(&self) -> Vec<Value> {
        self.data
            .ab_runs
            .iter()
            .rev()
            .filter(|r| &r.a_sha == self.base && &r.b_sha == self.new && r.a_point.is_none())
            .map(|r| {
                let pct = |x: Option<f64>| x.map_or("unbounded".to_owned(), |x| format!("{:+.2}%", x * 100.0));
                context! {
                    scenario => &r.scenario,
                    point => &r.point,
                    metric => &r.metric,
                    machine_short => machine_id(&r.machine),
                    purpose => &r.purpose,
                    mode => &r.mode,
                    verdict => r.verdict.as_str(),
                    class => r.verdict.css_class(),
                    change => r.change.map_or(String::new(), |c| format!("{:+.2}%", c * 100.0)),
                    interval => if r.mode == "unpaired" { "Mann-Whitney".to_owned() } else { format!("[{}, {}]", pct(r.low), pct(r.high)) },
                    threshold => format!("±{:.1}%", r.threshold * 100.0),
                    pairs => r.pairs,
                    seconds => format!("{:.1} s", r.seconds),
                    stop => r.stop.as_deref().and_then(syncbench_analysis::abtest::Stop::parse).map_or(r.error.clone().unwrap_or_default(), |s| s.describe().to_owned()),
                    chart => chart::pairs(&r.a, &r.b),
                }
            })
            .collect()
    }

    /// The page: the rows, counted by verdict, and the A/B runs.
    fn html(&self, env: &Environment, rows: Vec<Line>) -> Result<String, SiteError> {
        let (data, base, new) = (self.data, self.base, self.new);
        let count = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
        let (regressions, improvements) = (count(Verdict::Regression), count(Verdict::Improvement));
        let ab = self.ab_runs();
        Ok(env.get_template("compare.html")?.render(context! {
            root => "../",
            ab => ab,
            base_short => short(base),
            new_short => short(new),
            base_href => format!("../runs/{base}.html"),
            base_subject => data.subject(base),
            new_subject => data.subject(new),
            rows => rows,
            regressions => regressions,
            improvements => improvements,
            new_href => format!("../runs/{new}.html"),
        })?)
    }
}
