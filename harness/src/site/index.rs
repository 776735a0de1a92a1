//! The index: a tile per series, regressions first, with filters.

use super::data::Data;
use super::series::{Alarm, Tile};
use super::{SiteError, Writer, machine_id, short};
use minijinja::{Environment, context};
use std::path::PathBuf;

pub(super) fn render(
    data: &Data,
    tiles: Vec<Tile>,
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
    let mut scenarios: Vec<&String> = data.history.series.keys().map(|k| &k.scenario).collect();
    scenarios.dedup();
    let html = env.get_template("index.html")?.render(context! {
        root => "",
        series => tiles,
        alarms => alarms,
        unconfirmed => unconfirmed,
        precision => precision,
        commits => data.len(),
        rendered => data.history.order.last().map_or(String::new(), |s| format!("latest commit {}", short(s))),
        machines => data.machines.iter().map(|(id, label)| context! { id => machine_id(id), label => label }).collect::<Vec<_>>(),
        scenarios => scenarios,
    })?;
    w.page("index.html", &html)
}
