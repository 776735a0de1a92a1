//! The landing page: what changed first (alarms, ranked by size against
//! each series' noise, then change points not confirmed, then how many
//! series did not change), and below it one compact table per scenario
//! point, a row per metric. Filters by machine, scenario and metric live
//! in the URL's fragment, so a filtered view can be bookmarked and shared.

use super::data::Data;
use super::series::{Alarm, Row};
use super::{SiteError, Writer, machine_id, short};
use minijinja::{Environment, context};
use serde::Serialize;
use std::path::PathBuf;

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
    rows: Vec<Row>,
    alarms: Vec<Alarm>,
    env: &Environment,
    w: &mut Writer,
) -> Result<PathBuf, SiteError> {
    let (alarms, unconfirmed): (Vec<Alarm>, Vec<Alarm>) = alarms.into_iter().partition(|a| a.alarm);
    let precision = crate::alarms::precision(&data.triages).map(|p| {
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
    let html = env.get_template("index.html")?.render(context! {
        root => "",
        shown => SHOWN,
        alarms => alarms,
        unconfirmed => unconfirmed,
        unchanged => unchanged,
        series => series,
        precision => precision,
        commits => data.len(),
        latest => data.history.order.last().map(|s| short(s)),
        latest_subject => data.history.order.last().map(|s| data.subject(s)),
        latest_href => data.history.order.last().map(|s| format!("runs/{s}.html")),
        machines => machines,
        scenarios => scenarios,
        groups => groups,
    })?;
    w.page("index.html", &html)
}
