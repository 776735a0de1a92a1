//! A trend page per series, and the index's tile of each.

use super::chart::{self, Marker, TrendPoint};
use super::compare::Pairs;
use super::data::{Data, point_of};
use super::{SiteError, Writer, date, machine_id, pct, profile_file, series_file, short};
use minijinja::{Environment, Value, context};
use serde::Serialize;
use std::collections::BTreeMap;
use syncbench_analysis::history::{ChangePoint, SeriesHistory};
use syncbench_analysis::text::csv_text;
use syncbench_model::{Confirmation, PointKey, RunStatus, SeriesKey, Verdict, is_informational};

/// A series' row in its point's table on the index: latest value, change
/// from the commit before, the last change point, recent history.
#[derive(Serialize)]
pub(super) struct Row {
    /// Its point's table's anchor on the index.
    #[serde(skip)]
    pub anchor: String,
    href: String,
    pub machine: String,
    pub scenario: String,
    pub point: String,
    pub metric: String,
    better: &'static str,
    latest: String,
    change: String,
    change_class: &'static str,
    /// The verdict of the series' newest change point, if any.
    pub flag: &'static str,
    flag_label: String,
    sparkline: String,
    #[serde(skip)]
    pub informational: bool,
}

/// A change point on the index's list: ranked by its size against its
/// series' threshold, with where its confirmation and triage stand.
#[derive(Serialize)]
pub(super) struct Alarm {
    href: String,
    run_href: String,
    scenario: String,
    point: String,
    metric: String,
    machine_short: String,
    short: String,
    before_short: String,
    /// The comparison of the commits either side of the change.
    range_href: String,
    subject: String,
    label: String,
    class: &'static str,
    significance: String,
    threshold: String,
    state: &'static str,
    triage: Option<String>,
    /// Exact, or confirmed: an alarm. Otherwise listed apart.
    pub alarm: bool,
    #[serde(skip)]
    rank: (bool, f64),
}

/// What one thread rendered: rows, change points, and its writer's counts.
type Part = (Vec<Row>, Vec<Alarm>, Writer);

/// Renders every series page, the work split over the cores; returns the
/// index's rows, by series, and every change point, ranked.
pub(super) fn render_all(
    data: &Data,
    pairs: &Pairs,
    env: &Environment,
    w: &mut Writer,
) -> Result<(Vec<Row>, Vec<Alarm>), SiteError> {
    let series: Vec<(&SeriesKey, &SeriesHistory)> = data.history.series.iter().collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = series.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Part, SiteError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = series
            .chunks(chunk)
            .map(|part| {
                let mut w = w.fork();
                scope.spawn(move || {
                    let (rows, alarms) = render_part(data, pairs, env, &mut w, part)?;
                    Ok((rows, alarms, w))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("rendering series pages panicked"))
            .collect()
    });
    let mut rows = Vec::new();
    let mut alarms = Vec::new();
    for part in parts {
        let (r, a, part_writer) = part?;
        rows.extend(r);
        alarms.extend(a);
        w.join(part_writer);
    }
    alarms.sort_by(|a, b| {
        (!a.alarm, a.rank.0)
            .cmp(&(!b.alarm, b.rank.0))
            .then(b.rank.1.total_cmp(&a.rank.1))
    });
    if chart::aggregated(data.len()) {
        w.page(COMMITS_FILE, &commits_csv(data))?;
    }
    Ok((rows, alarms))
}

/// The pages, rows and change points of some of the series.
fn render_part(
    data: &Data,
    pairs: &Pairs,
    env: &Environment,
    w: &mut Writer,
    series: &[(&SeriesKey, &SeriesHistory)],
) -> Result<(Vec<Row>, Vec<Alarm>), SiteError> {
    let none = Vec::new();
    let mut rows = Vec::new();
    let mut alarms = Vec::new();
    for &(k, s) in series {
        let steps = data.steps.get(k).unwrap_or(&none);
        let file = series_file(k);
        let html = env
            .get_template("series.html")?
            .render(page(data, pairs, k, s, steps))?;
        alarms.extend(steps.iter().map(|st| alarm(data, k, s, st, &file)));
        w.page(&file, &html)?;
        if chart::aggregated(data.len()) {
            w.page(&values_file(&file), &values(s))?;
        }
        if let Some(r) = row(data, k, s, steps, file) {
            rows.push(r);
        }
    }
    Ok((rows, alarms))
}

/// How a change point stands, in words: exact, or its confirmation; and
/// the newest triage decision about it.
fn state(data: &Data, k: &SeriesKey, st: &ChangePoint) -> (&'static str, bool, Option<String>) {
    let exact = data.thresholds.get(k).is_some_and(|t| t.1);
    let (label, alarm) = match data.confirmation(k, st, exact) {
        None => ("exact count", true),
        Some(c) => (c.as_str(), c == Confirmation::Confirmed),
    };
    let sha = &data.history.order[st.index];
    let triage = syncbench_analysis::alarms::triage_of(&data.triages, sha, &k.scenario, &k.metric)
        .map(|t| format!("{} by {}", t.state.as_str(), t.who));
    (label, alarm, triage)
}

/// A change point's size as shown: once confirmed, the interleaved run's
/// estimate and interval; before, the change between the history's
/// levels. With it, the relative change it stands for.
fn size(data: &Data, k: &SeriesKey, st: &ChangePoint) -> (String, f64) {
    match data.measured_size(k, st) {
        Some(m) => (m.label(), m.change_pct / 100.0),
        None => (pct(st.change), st.change),
    }
}

fn alarm(data: &Data, k: &SeriesKey, s: &SeriesHistory, st: &ChangePoint, file: &str) -> Alarm {
    let verdict = Verdict::of_change(s.direction, st.change);
    let threshold = data.thresholds.get(k).map_or(f64::NAN, |t| t.0.value);
    let (label, change) = size(data, k, st);
    let significance = change.abs() / threshold;
    let (state, alarm, triage) = state(data, k, st);
    let sha = &data.history.order[st.index];
    let before = &data.history.order[st.before_index];
    Alarm {
        href: file.to_owned(),
        run_href: data.run_href("", sha, &point_of(k)),
        scenario: k.scenario.clone(),
        point: k.point.clone(),
        metric: k.metric.clone(),
        machine_short: machine_id(&k.machine),
        short: short(sha).to_owned(),
        before_short: short(before).to_owned(),
        range_href: format!("compare/{before}..{sha}.html"),
        subject: data.subject(sha),
        label,
        class: verdict.css_class(),
        significance: format!("{significance:.1}×"),
        threshold: format!("±{:.1}%", threshold * 100.0),
        state,
        triage,
        alarm,
        rank: (verdict != Verdict::Regression, significance),
    }
}

/// The series page's context: the trend chart, the changes found, the
/// recent values.
fn page(
    data: &Data,
    pairs: &Pairs,
    k: &SeriesKey,
    s: &SeriesHistory,
    steps: &[ChangePoint],
) -> Value {
    let n = data.len();
    let point = point_of(k);
    let (markers, changes) = changes(data, k, s, steps, &point);
    let points = trend_points(s, n);
    let info = Dots {
        data,
        series: s,
        point: &point,
    };
    let recent = recent(data, s, &point);
    let (choices, pages) = compare_choices(data, pairs, s);
    // The point's other variants, drawn over this one.
    let (overlays, own) = super::variants::overlays(data, k);
    context! {
        root => "../",
        choices => choices,
        pages => pages.join(" "),
        scenario => &k.scenario,
        point => &k.point,
        metric => &k.metric,
        machine_short => machine_id(&k.machine),
        machine_label => data.machines.get(&k.machine),
        better => s.direction.describe(),
        unit => s.unit.name(),
        threshold => data.thresholds.get(k).map(|(t, _)| context! {
            value => format!("{:.1}%", t.value * 100.0),
            source => t.source.as_str(),
        }),
        chart => chart::trend_with(&points, &markers, s.unit, &info, (&overlays, &own)),
        values_href => chart::aggregated(n).then(|| format!("../{}", values_file(&series_file(k)))),
        environment => environment_changes(data, s, &point)
            .into_iter()
            .map(|(i, what)| context! {
                short => short(&data.history.order[i]),
                href => data.run_href("../", &data.history.order[i], &point),
                what => what.join(", "),
            })
            .collect::<Vec<_>>(),
        changes => changes,
        recent => recent,
    }
}

/// The series' change points: as markers on the trend, and as the
/// page's list of changes.
fn changes(
    data: &Data,
    k: &SeriesKey,
    s: &SeriesHistory,
    steps: &[ChangePoint],
    point: &PointKey,
) -> (Vec<Marker>, Vec<Value>) {
    let order = &data.history.order;
    let mut markers = Vec::new();
    let mut changes = Vec::new();
    let environment = environment_changes(data, s, point);
    for st in steps {
        let verdict = Verdict::of_change(s.direction, st.change);
        let (label, change) = size(data, k, st);
        markers.push(Marker {
            index: st.index,
            label: label.clone(),
            regression: verdict == Verdict::Regression,
        });
        let sha = &order[st.index];
        let before = &order[st.before_index];
        let (profile_href, profile_hint) = profile_link(data, k, before, sha);
        changes.push(context! {
            profile_href => profile_href,
            profile_hint => profile_hint,
            href => data.run_href("../", sha, point),
            short => short(sha),
            subject => data.subject(sha),
            label => label,
            class => verdict.css_class(),
            // The history's levels; the change between them when it is
            // not the measured size shown.
            before => s.unit.human(st.before),
            after => s.unit.human(st.after),
            history_change => (change != st.change).then(|| pct(st.change)),
            confidence => format!("{:.1}%", (1.0 - st.p_value) * 100.0),
            significance => data.thresholds.get(k).map_or(String::new(), |t| format!("{:.1}×", change.abs() / t.0.value)),
            state => state(data, k, st).0,
            triage => state(data, k, st).2,
            environment => environment.get(&st.index).map(|what| what.join(", ")),
        });
    }
    (markers, changes)
}

/// The commits (by index) whose run's environment differs from the run
/// before it in the series, with what changed (`cargo_lock`, `governor`…):
/// a change point there may be the environment's, which `confirm`, by
/// measuring both commits in one environment, tells from the code's.
pub(super) fn environment_changes(
    data: &Data,
    s: &SeriesHistory,
    point: &PointKey,
) -> BTreeMap<usize, Vec<String>> {
    let order = &data.history.order;
    let mut out = BTreeMap::new();
    let mut before: Option<&str> = None;
    for &i in s.present().iter() {
        let env = data
            .run_at(point, &order[i])
            .map_or("", |r| r.environment.as_str());
        if let Some(b) = before {
            let changed = syncbench_analysis::history::environment_change(b, env);
            if !changed.is_empty() {
                out.insert(i, changed);
            }
        }
        if !env.is_empty() {
            before = Some(env);
        }
    }
    out
}

/// For instruction counts, a change's function-level profile: the link
/// to the stored one, or else the command that makes it. Neither for
/// other metrics.
fn profile_link(
    data: &Data,
    k: &SeriesKey,
    before: &str,
    sha: &str,
) -> (Option<String>, Option<String>) {
    if !syncbench_model::is_instruction_metric(&k.metric) {
        return (None, None);
    }
    match data.profile(&k.scenario, &k.point, before, sha) {
        Some(_) => (
            Some(format!(
                "../{}",
                profile_file(&k.scenario, &k.point, before, sha)
            )),
            None,
        ),
        None => (
            None,
            Some(format!(
                "syncbench profile {} {} {} --point '{}'",
                short(before),
                short(sha),
                k.scenario,
                k.point
            )),
        ),
    }
}

/// A series' trend without its change points, other series drawn over it
/// (a page one directory below the root, as series pages are).
pub(super) fn overlaid_trend(
    data: &Data,
    k: &SeriesKey,
    s: &SeriesHistory,
    overlays: (&[chart::Overlay], &str),
) -> String {
    let point = point_of(k);
    let info = Dots {
        data,
        series: s,
        point: &point,
    };
    chart::trend_with(&trend_points(s, data.len()), &[], s.unit, &info, overlays)
}

/// The trend's points: every commit of the history, in order.
fn trend_points(s: &SeriesHistory, n: usize) -> Vec<TrendPoint> {
    (0..n)
        .map(|i| {
            let level = s.levels[i];
            TrendPoint {
                level: level.map(|l| l.level),
                min: level.map_or(0.0, |l| l.min),
                max: level.map_or(0.0, |l| l.max),
                failed: s.failed.contains(&i),
            }
        })
        .collect()
}

/// The newest values, newest first, with their commits and ranges.
fn recent(data: &Data, s: &SeriesHistory, point: &PointKey) -> Vec<Value> {
    let order = &data.history.order;
    s.present()
        .iter()
        .rev()
        .take(15)
        .map(|&i| {
            let sha = &order[i];
            let l = s.levels[i].expect("present");
            context! {
                href => data.run_href("../", sha, point),
                short => short(sha),
                date => data.commit(sha).map_or(String::new(), |c| date(c.time_unix)),
                subject => data.subject(sha),
                value => s.unit.human(l.level),
                range => format!("{} – {}", s.unit.human(l.min), s.unit.human(l.max)),
            }
        })
        .collect()
}

/// Two commits to compare: the newest with a value (as choices), and the
/// pages rendered for pairs of them (as `base..new`).
fn compare_choices(data: &Data, pairs: &Pairs, s: &SeriesHistory) -> (Vec<Value>, Vec<String>) {
    let order = &data.history.order;
    let choices: Vec<usize> = s
        .present()
        .into_iter()
        .rev()
        .take(COMPARE_CHOICES)
        .collect();
    let listed: std::collections::HashSet<&str> =
        choices.iter().map(|&i| order[i].as_str()).collect();
    let pages: Vec<String> = pairs
        .all
        .iter()
        .filter(|(a, b)| listed.contains(a.as_str()) && listed.contains(b.as_str()))
        .map(|(a, b)| format!("{a}..{b}"))
        .collect();
    let choices: Vec<Value> = choices
        .iter()
        .map(|&i| {
            let sha = &order[i];
            context! {
                sha => sha,
                label => format!("{} {}", short(sha), s.unit.human(s.value(i).unwrap_or(f64::NAN))),
                value => s.value(i),
            }
        })
        .collect();
    (choices, pages)
}

/// Every commit of the history, in order: the rows the values files of
/// long series count in.
const COMMITS_FILE: &str = "data/commits.csv";

/// A long series' values file, beside its page's name.
fn values_file(page: &str) -> String {
    format!(
        "data/{}.csv",
        page.trim_start_matches("series/").trim_end_matches(".html")
    )
}

/// A long series' every value, one line per commit of `commits.csv`
/// (empty where it has none), five significant digits in the series'
/// unit: the full values one click from a chart drawn per pixel column.
/// No sha per line: at 10,000 commits × 500 series that alone would be
/// 80 MB.
fn values(s: &SeriesHistory) -> String {
    let mut out = format!("value ({})\n", s.unit.as_str());
    for l in &s.levels {
        if let Some(l) = l.filter(|l| l.level.is_finite()) {
            push_sig5(&mut out, l.level);
        }
        out.push('\n');
    }
    out
}

/// A value with five significant digits (and none after the point from
/// 10,000 on), as `{:.N}` prints it. In integers where they hold it:
/// Rust's exact float formatting made these files, five million values
/// at 10,000 commits × 500 series, most of a re-render's time.
fn push_sig5(out: &mut String, v: f64) {
    use std::fmt::Write as _;
    let digits = if v == 0.0 {
        0
    } else {
        (4 - v.abs().log10().floor() as i32).max(0) as usize
    };
    let raw = v.abs() * 10f64.powi(digits as i32);
    let scaled = raw.round_ties_even();
    // Halfway, the product's rounding may decide: the formatter's exact
    // digits do.
    let near_half = digits > 0 && (raw - raw.floor() - 0.5).abs() < 1e-6;
    if digits > 15 || scaled >= 1e15 || near_half {
        let _ = write!(out, "{v:.digits$}");
        return;
    }
    let (n, unit) = (scaled as u64, 10u64.pow(digits as u32));
    if v.is_sign_negative() {
        out.push('-');
    }
    let _ = write!(out, "{}", n / unit);
    if digits > 0 {
        let _ = write!(out, ".{:0digits$}", n % unit);
    }
}

/// The history's commits as CSV: sha, date, subject (quoted).
fn commits_csv(data: &Data) -> String {
    let mut out = String::from("sha,date,subject\n");
    for sha in &data.history.order {
        let c = data.commit(sha);
        out.push_str(&format!(
            "{},{},{}\n",
            csv_text(sha),
            csv_text(&c.map_or(String::new(), |c| date(c.time_unix))),
            csv_text(&data.subject(sha))
        ));
    }
    out
}

/// Commits offered for comparing on a series page: its newest with a
/// value.
const COMPARE_CHOICES: usize = 50;

/// Links, titles and axis labels of a series page's dots.
struct Dots<'a> {
    data: &'a Data,
    series: &'a SeriesHistory,
    point: &'a syncbench_model::PointKey,
}

impl chart::DotInfo for Dots<'_> {
    fn href(&self, i: usize) -> String {
        self.data
            .run_href("../", &self.data.history.order[i], self.point)
    }

    fn title(&self, i: usize) -> String {
        let sha = &self.data.history.order[i];
        let c = self.data.commit(sha);
        let value = match self.series.levels[i] {
            Some(l) => self.series.unit.human(l.level),
            None if self.series.failed.contains(&i) => RunStatus::Failed.as_str().into(),
            None => "no value".into(),
        };
        format!(
            "{} {}\n{}\n{}",
            short(sha),
            c.map_or("", |c| c.subject.as_str()),
            c.map_or(String::new(), |c| date(c.time_unix)),
            value
        )
    }

    fn short_title(&self, i: usize) -> String {
        let value = self
            .series
            .value(i)
            .map_or(String::new(), |v| self.series.unit.human(v));
        format!("{} {value}", short(&self.data.history.order[i]))
    }

    fn axis_label(&self, i: usize) -> (String, String) {
        let sha = &self.data.history.order[i];
        let day = self
            .data
            .commit(sha)
            .map_or(String::new(), |c| date(c.time_unix)[..10].to_owned());
        (sha[..7.min(sha.len())].to_owned(), day)
    }
}

fn row(
    data: &Data,
    k: &SeriesKey,
    s: &SeriesHistory,
    steps: &[ChangePoint],
    href: String,
) -> Option<Row> {
    let n = data.len();
    let present = s.present();
    let &last = present.last()?;
    let latest = s.value(last).expect("present");
    let prev = present.iter().rev().nth(1).and_then(|&i| s.value(i));
    let change = prev.filter(|p| *p != 0.0).map(|p| (latest - p) / p.abs());
    let (flag, flag_label) = match steps.last() {
        Some(st) => (
            Verdict::of_change(s.direction, st.change).as_str(),
            format!(
                "{} at {}",
                pct(st.change),
                short(&data.history.order[st.index])
            ),
        ),
        None => ("", String::new()),
    };
    let spark: Vec<Option<f64>> = s.levels[n.saturating_sub(40)..]
        .iter()
        .map(|p| p.map(|p| p.level))
        .collect();
    Some(Row {
        anchor: super::group_anchor(&point_of(k)),
        href,
        machine: machine_id(&k.machine),
        scenario: k.scenario.clone(),
        point: k.point.clone(),
        metric: k.metric.clone(),
        better: match s.direction {
            syncbench_model::Direction::LowerIsBetter => "↓",
            syncbench_model::Direction::HigherIsBetter => "↑",
        },
        latest: s.unit.human(latest),
        change: change.map_or(String::new(), pct),
        change_class: match change {
            Some(c) if c.abs() < 0.005 => "flat",
            Some(c) if s.direction.is_worse(c) => "up",
            Some(_) => "down",
            None => "flat",
        },
        flag,
        flag_label,
        sparkline: chart::sparkline(&spark),
        informational: is_informational(&k.metric),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_the_formatter_prints_them() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut values = vec![
            0.0, -0.0, 1.0, -1.0, 99_999.5, 12_345.5, 1e-300, 1e300, 0.049610, 3.2e-9,
        ];
        for _ in 0..100_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mantissa = (rng >> 11) as f64 / (1u64 << 53) as f64;
            let exponent = (rng % 40) as i32 - 20;
            let sign = if rng & 1 == 0 { 1.0 } else { -1.0 };
            values.push(sign * mantissa * 10f64.powi(exponent));
        }
        // Halfway in decimal, as measured values often are: 0.0496105.
        for m in 10_000..30_000u64 {
            for e in [-9, -4, -1, 0, 2, 4] {
                values.push((m * 10 + 5) as f64 * 10f64.powi(e - 5));
            }
        }
        for v in values {
            let digits = if v == 0.0 {
                0
            } else {
                (4 - v.abs().log10().floor() as i32).max(0) as usize
            };
            let mut got = String::new();
            push_sig5(&mut got, v);
            assert_eq!(got, format!("{v:.digits$}"), "{v:e}");
        }
    }
}
