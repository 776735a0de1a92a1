//! Comparison pages: the newest commits against their parents, and the
//! pairs asked for. Each is computed from the data in memory; one page
//! per commit of a long history would double the site for pages rarely
//! opened.

use super::data::Data;
use super::{Options, SiteError, Writer, chart, machine_id, profile_file, short};
use minijinja::{Environment, context};
use std::path::PathBuf;

/// Commits, newest first, that get a page comparing them with their parent.
pub(super) const COMPARE_RECENT: usize = 30;

/// Renders the comparison pages; returns the paths of those asked for.
pub(super) fn render_all(
    data: &Data,
    opts: &Options,
    env: &Environment,
    w: &mut Writer,
) -> Result<Vec<PathBuf>, SiteError> {
    let order = &data.history.order;
    let resolve = |prefix: &str| -> Result<String, SiteError> {
        let found: Vec<&String> = order.iter().filter(|s| s.starts_with(prefix)).collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
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
    // The commits of each stored A/B run, where both were measured.
    for r in &data.ab_runs {
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
    let mut pages = Vec::new();
    for (base, new) in &pairs {
        let groups: Vec<_> = data
            .history
            .compare(base, new, &opts.thresholds)
            .iter()
            .map(|c| {
                context! {
                    scenario => &c.scenario,
                    point => &c.point,
                    profile_href => data
                        .profile(&c.scenario, &c.point, base, new)
                        .map(|_| format!("../{}", profile_file(&c.scenario, &c.point, base, new))),
                    machine_short => machine_id(&c.machine),
                    rows => c.rows.iter().map(|r| context! {
                        metric => &r.metric,
                        base => r.baseline_median.map_or("–".into(), |v| r.unit.human(v)),
                        new => r.unit.human(r.median),
                        change => r.change_pct.map_or(String::new(), |c| format!("{c:+.1}%")),
                        verdict => r.verdict,
                        class => r.verdict.css_class(),
                    }).collect::<Vec<_>>(),
                }
            })
            .collect();
        let ab: Vec<_> = data
            .ab_runs
            .iter()
            .rev()
            .filter(|r| &r.a_sha == base && &r.b_sha == new)
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
                    stop => r.stop.as_deref().and_then(crate::abtest::Stop::parse).map_or(r.error.clone().unwrap_or_default(), |s| s.describe().to_owned()),
                    chart => chart::pairs(&r.a, &r.b),
                }
            })
            .collect();
        let html = env.get_template("compare.html")?.render(context! {
            root => "../",
            ab => ab,
            base_short => short(base),
            new_short => short(new),
            base_href => format!("../runs/{base}.html"),
            base_subject => data.subject(base),
            new_subject => data.subject(new),
            groups => groups,
        })?;
        let path = w.page(&format!("compare/{base}..{new}.html"), &html)?;
        if asked.contains(&(base.clone(), new.clone())) {
            pages.push(path);
        }
    }
    Ok(pages)
}
