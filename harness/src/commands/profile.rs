//! `syncbench profile A B SCENARIO [--point KEY]`: where one point's
//! instructions went at two commits, function by function.

use super::{Context, outln};
use anyhow::{Context as _, bail};
use std::path::PathBuf;
use syncbench::model::Unit;
use syncbench::ops::profile::{self, FunctionChange, ProfileDiff};
use syncbench::ops::session::MeasureSettings;

#[derive(clap::Args)]
pub struct Args {
    /// The commit compared against (e.g. the last good one).
    a: String,
    /// The commit to explain.
    b: String,
    /// A scenario name (from scenarios/) or TOML path.
    scenario: String,
    /// The point's key (see `syncbench list`); needed when the scenario
    /// has several points.
    #[arg(long)]
    point: Option<String>,
    /// How many functions to show in each table.
    #[arg(long, default_value_t = 15)]
    top: usize,
    /// The cargo profile `sync` scenarios build the reference system with.
    #[arg(long, default_value = "release", help_heading = super::CARGO_HEADING)]
    cargo_profile: String,
    /// Cache for the two worktrees and their builds.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Print the comparison as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Print build commands and process ids on stderr.
    #[arg(long, short)]
    pub verbose: bool,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let (a, b) = (cx.full_sha(&args.a)?, cx.full_sha(&args.b)?);
    let scenario = cx
        .choose(std::slice::from_ref(&args.scenario))?
        .pop()
        .context("no scenario")?;
    let point = match (&args.point, scenario.points.as_slice()) {
        (None, [only]) => only.clone(),
        (None, points) => bail!(
            "{} has {} points: choose one with --point ({})",
            scenario.name,
            points.len(),
            points
                .iter()
                .map(|p| p.key())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (Some(k), points) => points
            .iter()
            .find(|p| p.key() == *k)
            .cloned()
            .with_context(|| {
                format!(
                    "{} has no point {k:?} (`syncbench list` shows them)",
                    scenario.name
                )
            })?,
    };
    let settings = MeasureSettings::side_by_side(&args.cargo_profile, args.cache_dir.clone());
    let mut session = cx.session(settings)?;
    eprintln!(
        "syncbench: {} {} under callgrind at {} and {} (about 50x slower than native)",
        scenario.name,
        point.key(),
        &a[..12],
        &b[..12]
    );
    // Twice the tables' length is stored, for the dashboard's page.
    let diff = profile::run(
        &mut session,
        &cx.root,
        (&a, &b),
        &scenario,
        &point,
        2 * args.top,
    )?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&diff)?)?;
    } else {
        print(&diff, args.top)?;
    }
    eprintln!("syncbench: stored; `syncbench report` links it from the compare page");
    Ok(0)
}

fn print(d: &ProfileDiff, top: usize) -> anyhow::Result<()> {
    outln!(
        "{} {}: instructions at {} → {}",
        d.scenario,
        d.point,
        &d.base_sha[..12],
        &d.new_sha[..12]
    )?;
    for t in &d.totals {
        outln!(
            "  {:<10} {:>14} → {:>14}  {}",
            t.process,
            Unit::Count.human(t.base as f64),
            Unit::Count.human(t.new as f64),
            signed_pct(t.new as i64 - t.base as i64, t.base)
        )?;
    }
    for (title, key, base_of) in [
        (
            "inclusive (with what they call)",
            FunctionChange::inclusive_change as fn(&FunctionChange) -> i64,
            (|f: &FunctionChange| f.base.inclusive) as fn(&FunctionChange) -> u64,
        ),
        (
            "exclusive (their own code)",
            FunctionChange::exclusive_change,
            |f: &FunctionChange| f.base.exclusive,
        ),
    ] {
        outln!("\nlargest changes, {title}:")?;
        let rows = d.top(key, top);
        if rows.is_empty() {
            outln!("  none")?;
        }
        for f in rows {
            outln!(
                "  {:>+14} {:>8}  {:<8} {}",
                key(f),
                signed_pct(key(f), base_of(f)),
                f.process,
                f.function
            )?;
        }
    }
    Ok(())
}

/// `+3.2%`, or `new` where there was nothing before.
pub fn signed_pct(change: i64, base: u64) -> String {
    if base == 0 {
        if change == 0 {
            "0%".into()
        } else {
            "new".into()
        }
    } else {
        format!("{:+.1}%", 100.0 * change as f64 / base as f64)
    }
}
