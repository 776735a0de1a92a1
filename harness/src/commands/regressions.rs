//! `syncbench regressions`: change points over the stored history,
//! ranked, with their confirmation and triage.

use super::{Context, outln};
use syncbench::alarms;
use syncbench::history::Change;
use syncbench::ops::load_history;
use syncbench::scenario::{DEFAULT_THRESHOLD, ThresholdBook};

#[derive(clap::Args)]
pub struct Args {
    /// Smallest relative change of level to report (0.05 = 5%) for a
    /// series with too little history to learn its own threshold, where
    /// the scenario file sets none.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    min_change: f64,
    /// Only changes of exact counts (instruction counts, requests, the
    /// server's counters): steps of the code, whatever the machine did.
    #[arg(long)]
    exact: bool,
    /// Every change point, confirmed or not (by default: changes of exact
    /// counts, and changes of noisy metrics that `syncbench confirm`
    /// confirmed).
    #[arg(long)]
    all: bool,
    /// Print the change points as a JSON array on stdout instead of lines.
    #[arg(long)]
    json: bool,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let store = cx.store()?;
    let book = ThresholdBook::load(&cx.scenarios_dir, args.min_change);
    // The history of HEAD's line: commits amended or rebased away, and
    // other branches, stay out of the series.
    let on_line = cx.on_line("HEAD")?;
    let mut changes = load_history(&*store, &|r| on_line(&r.sha))?.changes(&book);
    let triages = store.triages()?;
    alarms::annotate(
        &mut changes,
        &store.confirmations()?,
        &store.ab_runs()?,
        &triages,
    );
    let hidden = if args.all {
        0
    } else {
        let before = changes.len();
        changes.retain(alarms::is_alarm);
        before - changes.len()
    };
    if args.exact {
        changes.retain(|c| c.exact);
    }
    if args.json {
        return outln!("{}", serde_json::to_string_pretty(&changes)?).map(|()| 0);
    }
    if changes.is_empty() && hidden == 0 {
        outln!("no change points in {}", cx.db)?;
    }
    for c in &changes {
        outln!("{}", line(c))?;
    }
    if hidden > 0 {
        outln!(
            "{hidden} change point(s) of noisy metrics hidden (unconfirmed, refuted or inconclusive): `syncbench confirm` measures the unconfirmed again, --all lists them all"
        )?;
    }
    outln!(
        "{}",
        super::triage::precision_line(alarms::precision(&triages))
    )?;
    Ok(0)
}

/// One change, as the terminal shows it: once confirmed, its size is the
/// interleaved run's estimate and interval, and the history's levels
/// follow with the change between them.
pub fn line(c: &Change) -> String {
    let state = if c.exact {
        "exact count".to_owned()
    } else {
        c.confirmation.as_str().to_owned()
    };
    let mut triage = c.triage.as_ref().map_or(String::new(), |t| {
        format!(", {} by {}", t.state.as_str(), t.who)
    });
    if !c.environment_changed.is_empty() {
        triage += &format!(
            "; the environment changed here ({}): `syncbench confirm` tells it from the code",
            c.environment_changed.join(", ")
        );
    }
    let levels = format!("{} -> {}", c.unit.human(c.before), c.unit.human(c.after));
    let (size, levels) = match &c.measured {
        Some(m) => (
            m.label(),
            format!(
                "{levels} in the history ({}), measured again in {} pairs",
                super::output::pct(c.change_pct),
                m.pairs
            ),
        ),
        None => (super::output::pct(c.change_pct), levels),
    };
    format!(
        "{} {:<11} {:>7} {:>5.1}x  {} {} {}: {levels}  ({state}, threshold {:.1}% {}{triage})",
        &c.commit[..12],
        c.verdict.as_str(),
        size,
        c.significance,
        c.scenario,
        c.point,
        c.metric,
        c.threshold.value * 100.0,
        c.threshold.source.as_str(),
    )
}
