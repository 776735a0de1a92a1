//! The landing page: what changed first (alarms, ranked by size against
//! each series' noise, then change points not confirmed, then how many
//! series did not change), and below it one compact table per scenario
//! point, a row per metric. Filters by machine, scenario and metric live
//! in the URL's fragment, so a filtered view can be bookmarked and shared.

use super::data::Data;
use super::series::{Alarm, Row};
use super::{SiteError, Writer, anchor, machine_id, short};
use minijinja::{Environment, context};
use serde::Serialize;
use std::path::PathBuf;
use syncbench_model::RunStatus;

/// Rows of each alarm list shown before "more".
const SHOWN: usize = 6;

/// A scenario point's table.
#[derive(Serialize)]
struct Group {
    anchor: String,
    machine: String,
    scenario: String,
    point: String,
    /// The first group of its scenario (it carries the heading).
    first_of_scenario: bool,
    flagged: usize,
    rows: Vec<Row>,
}

pub(super) fn render(
    data: &Data,
    (rows, alarms): (Vec<Row>, Vec<Alarm>),
    variant_pages: &[(String, String)],
    env: &Environment,
    w: &mut Writer,
) -> Result<PathBuf, SiteError> {
    let (alarms, unconfirmed): (Vec<Alarm>, Vec<Alarm>) = alarms.into_iter().partition(|a| a.alarm);
    let precision = syncbench_analysis::alarms::precision(&data.triages).map(|p| {
        format!(
            "{:.0}% ({} of {} triaged alarms marked invalid)",
            p.precision * 100.0,
            p.invalid,
            p.triaged
        )
    });
    let series = rows.len();
    let unchanged = rows.iter().filter(|r| r.flag.is_empty()).count();
    let mut groups: Vec<Group> = Vec::new();
    // Rows come by series key: machine, scenario, point, metric. Within
    // a point, flagged rows first, the harness's own last.
    for r in rows {
        if groups.last().is_none_or(|g| g.anchor != r.anchor) {
            groups.push(Group {
                anchor: r.anchor.clone(),
                machine: r.machine.clone(),
                first_of_scenario: groups.last().is_none_or(|g| g.scenario != r.scenario),
                scenario: r.scenario.clone(),
                point: r.point.clone(),
                flagged: 0,
                rows: Vec::new(),
            });
        }
        let g = groups.last_mut().expect("pushed");
        g.flagged += usize::from(!r.flag.is_empty());
        g.rows.push(r);
    }
    for g in &mut groups {
        g.rows.sort_by_key(|r| (r.flag.is_empty(), r.informational));
    }
    let machines: Vec<_> = data
        .machines
        .iter()
        .map(|(id, label)| context! { id => machine_id(id), label => label })
        .collect();
    let scenarios: std::collections::BTreeSet<&String> =
        groups.iter().map(|g| &g.scenario).collect();
    let latest = data.history.order.last();
    let (off_branch, off_more) = off_branch(data);
    let html = env.get_template("index.html")?.render(context! {
        root => "",
        shown => SHOWN,
        alarms => alarms,
        unconfirmed => unconfirmed,
        unchanged => unchanged,
        series => series,
        precision => precision,
        commits => data.len(),
        latest => latest.map(|s| short(s)),
        latest_subject => latest.map(|s| data.subject(s)),
        latest_href => latest.map(|s| format!("runs/{s}.html")),
        failed => latest.map(|s| failed_at(data, s)).unwrap_or_default(),
        off_branch => off_branch,
        off_more => off_more,
        machines => machines,
        scenarios => scenarios,
        groups => groups,
        variant_pages => variant_pages
            .iter()
            .map(|(scenario, href)| context! { scenario => scenario, href => href })
            .collect::<Vec<_>>(),
    })?;
    w.page("index.html", &html)
}

/// A run of the newest commit that did not measure anything.
#[derive(Serialize)]
struct FailedRun {
    href: String,
    machine: String,
    scenario: String,
    point: String,
    status: &'static str,
    /// The error's first line; all of it is the title.
    error: String,
    detail: String,
}

/// The newest commit's runs that failed (any way but a workload its
/// driver does not have): on the index, not only on the commit's page,
/// since its series just show the commit before.
fn failed_at(data: &Data, sha: &str) -> Vec<FailedRun> {
    data.history
        .runs
        .iter()
        .filter(|r| r.sha == sha && !matches!(r.status, RunStatus::Ok | RunStatus::Unsupported))
        .map(|r| {
            let detail = r.error.clone().unwrap_or_default();
            FailedRun {
                href: format!("runs/{sha}.html#{}", anchor(r.id)),
                machine: machine_id(&r.key.machine),
                scenario: r.key.scenario.clone(),
                point: r.key.point.clone(),
                status: r.status.as_str(),
                error: detail
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect(),
                detail,
            }
        })
        .collect()
}

/// Commits listed as off the branch at most; the rest are counted.
const OFF_BRANCH_SHOWN: usize = 20;

/// The commits measured off the line (amended or rebased away), newest
/// first: named at the foot of the index, so their pages can be found,
/// and nowhere else.
fn off_branch(data: &Data) -> (Vec<minijinja::Value>, usize) {
    let mut shas: Vec<&str> = data.off_line.iter().map(|r| r.sha.as_str()).collect();
    shas.sort_unstable();
    shas.dedup();
    let time = |s: &str| data.commit(s).map_or(0, |c| c.time_unix);
    shas.sort_by_key(|&s| std::cmp::Reverse(time(s)));
    let more = shas.len().saturating_sub(OFF_BRANCH_SHOWN);
    let shown = shas
        .into_iter()
        .take(OFF_BRANCH_SHOWN)
        .map(|s| {
            context! {
                href => format!("runs/{s}.html"),
                short => short(s),
                subject => data.subject(s),
            }
        })
        .collect();
    (shown, more)
}
