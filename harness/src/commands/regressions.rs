//! `syncbench regressions`: change points over the stored history.

use super::{Context, outln};
use syncbench::analysis::History;
use syncbench::scenario::{DEFAULT_THRESHOLD, ThresholdBook};

#[derive(clap::Args)]
pub struct Args {
    /// Smallest relative change of level to report (0.05 = 5%), where the
    /// scenario file sets no threshold for the metric.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    min_change: f64,
    /// Only changes of exact counts (instruction counts, requests, the
    /// server's counters): steps of the code, whatever the machine did.
    #[arg(long)]
    exact: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let store = cx.store()?;
    let book = ThresholdBook::load(&cx.scenarios_dir, args.min_change);
    let mut changes = History::load(&*store)?.changes(&book);
    if args.exact {
        changes.retain(|c| c.exact);
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&changes)?)?;
    } else if changes.is_empty() {
        outln!("no change points in {}", cx.db.display())?;
    } else {
        for c in &changes {
            outln!(
                "{} {:<11} {:+6.1}%  {} {} {}: {} -> {}  ({})",
                &c.commit[..12],
                c.verdict.as_str(),
                c.change_pct,
                c.scenario,
                c.point,
                c.metric,
                c.unit.human(c.before),
                c.unit.human(c.after),
                if c.exact {
                    "exact count".to_owned()
                } else {
                    format!("confidence {:.0}%", c.confidence * 100.0)
                }
            )?;
        }
    }
    Ok(0)
}
