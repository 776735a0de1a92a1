//! A page per commit: every run at it, with its metrics and the CPU and
//! memory curves of its first repetition.

use super::chart;
use super::compare::COMPARE_RECENT;
use super::data::Data;
use super::{SiteError, Writer, anchor, date, machine_id, series_file, short};
use crate::store::{CommitRun, Store};
use minijinja::{Environment, Value, context};
use std::collections::BTreeMap;

const COLORS: [&str; 4] = ["#2f6fb3", "#d9822b", "#2a8a4a", "#8e44ad"];

pub(super) fn render_all(
    store: &Store,
    data: &Data,
    env: &Environment,
    w: &mut Writer,
) -> Result<(), SiteError> {
    let mut by_commit: BTreeMap<&str, Vec<&CommitRun>> = BTreeMap::new();
    for r in &data.history.runs {
        by_commit.entry(&r.sha).or_default().push(r);
    }
    for (sha, runs) in &by_commit {
        let c = data.commit(sha);
        let sections = runs
            .iter()
            .map(|r| section(store, data, r))
            .collect::<Result<Vec<_>, SiteError>>()?;
        let parent = c
            .and_then(|c| c.parents.first())
            .filter(|p| by_commit.contains_key(p.as_str()));
        let recent = data
            .history
            .order
            .iter()
            .rev()
            .take(COMPARE_RECENT)
            .any(|s| s == sha);
        let html = env.get_template("run.html")?.render(context! {
            root => "../",
            sha => sha,
            short => short(sha),
            subject => c.map_or("", |c| c.subject.as_str()),
            author => c.map_or("", |c| c.author.as_str()),
            date => c.map_or(String::new(), |c| date(c.time_unix)),
            parent => parent,
            parent_href => parent.map(|p| format!("{p}.html")),
            compare_href => parent
                .filter(|_| recent)
                .map(|p| format!("../compare/{p}..{sha}.html")),
            runs => sections,
        })?;
        w.page(&format!("runs/{sha}.html"), &html)?;
    }
    Ok(())
}

/// One run's section: status, error, resources chart, metrics.
fn section(store: &Store, data: &Data, r: &CommitRun) -> Result<Value, SiteError> {
    let mut processes: Vec<(String, chart::Samples)> = Vec::new();
    for s in store.first_samples(r.id)? {
        if processes.last().is_none_or(|p| p.0 != s.process) {
            processes.push((s.process.clone(), Vec::new()));
        }
        processes
            .last_mut()
            .expect("pushed")
            .1
            .push((s.t_ms, s.cpu_pct, s.rss_bytes as f64));
    }
    let phases = store.first_phases(r.id)?;
    let metrics: Vec<_> = data
        .history
        .metrics
        .get(&r.id)
        .into_iter()
        .flatten()
        .map(|m| {
            let key = r.key.metric(&m.name);
            context! {
                name => &m.name,
                href => data.history.series.contains_key(&key).then(|| format!("../{}", series_file(&key))),
                median => m.unit.human(crate::stats::median(&m.values)),
                values => m.values.iter().map(|v| m.unit.human(*v)).collect::<Vec<_>>().join(", "),
            }
        })
        .collect();
    let status = if r.dirty {
        format!("{} (uncommitted changes)", r.status)
    } else {
        r.status.to_string()
    };
    Ok(context! {
        anchor => anchor(r.id),
        scenario => &r.key.scenario,
        point => &r.key.point,
        status => status,
        machine_short => machine_id(&r.key.machine),
        error => &r.error,
        repetition => 1,
        chart => (!processes.is_empty()).then(|| chart::resources(&processes, &phases)),
        processes => processes.iter().enumerate().map(|(k, p)| context! { name => &p.0, color => COLORS[k % 4] }).collect::<Vec<_>>(),
        metrics => metrics,
    })
}
