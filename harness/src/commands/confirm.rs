//! `syncbench confirm`: change points of noisy metrics measured again,
//! the two commits interleaved, before they alarm.

use super::{Context, outln};
use anyhow::Context as _;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;
use syncbench::model::{Confirmation, Verdict};
use syncbench::ops::confirm::{self, Options, Outcome};
use syncbench::ops::session::{MeasureSettings, Session};
use syncbench::scenario::{DEFAULT_THRESHOLD, ThresholdBook, parse_duration};

#[derive(clap::Args)]
pub struct Args {
    /// Only change points of these scenarios [default: every scenario].
    scenarios: Vec<String>,
    /// Only change points at commits after REF (on HEAD's first-parent line).
    #[arg(long, value_name = "REF")]
    since: Option<String>,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    /// The cargo profile `sync` scenarios build the reference system with.
    #[arg(long, default_value = "release", help_heading = super::CARGO_HEADING)]
    cargo_profile: String,
    /// Cache for the two worktrees and their builds.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Print the answers as a JSON array on stdout, once all are in,
    /// instead of a line each as it comes.
    #[arg(long)]
    json: bool,
}

/// How confirmation runs (also `history --confirm`).
#[derive(clap::Args, Clone)]
pub struct ConfirmArgs {
    /// Time per change point (e.g. 5m, 90s): its commit and the one
    /// before are measured alternately until the answer is clear, or for
    /// this long. The metrics of a point that stepped at the same commit
    /// share it.
    #[arg(
        long = "confirm-budget",
        alias = "budget",
        value_name = "DURATION",
        default_value = "5m",
        value_parser = parse_duration
    )]
    pub budget: Duration,
    /// Measure again change points that already have an answer (and do
    /// not take stored A/B runs of their commits as the answer).
    #[arg(long)]
    pub again: bool,
}

impl ConfirmArgs {
    fn options(&self) -> Options {
        Options {
            budget: self.budget,
            again: self.again,
        }
    }
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let chosen = if args.scenarios.is_empty() {
        syncbench::scenario::load_dir(&cx.scenarios_dir)?
    } else {
        cx.choose(&args.scenarios)?
    };
    let since: Option<HashSet<String>> = match &args.since {
        None => None,
        Some(r) => Some(
            syncbench::checkout::resolve(&cx.root, &[format!("{r}..HEAD")], None)
                .with_context(|| format!("--since {r}: no such commit"))?
                .into_iter()
                .map(|c| c.sha)
                .collect(),
        ),
    };
    let settings = MeasureSettings::side_by_side(&args.cargo_profile, args.cache_dir.clone());
    let mut session = cx.session(settings)?;
    let wanted = |sha: &str| since.as_ref().is_none_or(|s| s.contains(sha));
    let output = if args.json {
        Output::Json
    } else {
        Output::Text
    };
    confirm_and_print(cx, &mut session, &chosen, &wanted, &args.confirm, output)
}

/// How answers are shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A line each, as they come.
    Text,
    /// All at the end, as a JSON array.
    Json,
    /// Not at all (`history --json` has printed its document; the answers
    /// are in `regressions --json`).
    Quiet,
}

/// Confirms, prints each answer as it comes (or all as JSON); exit 1 when
/// a regression was confirmed, 130 when interrupted.
pub fn confirm_and_print(
    cx: &Context,
    session: &mut Session,
    scenarios: &[syncbench::scenario::Scenario],
    wanted: &dyn Fn(&str) -> bool,
    args: &ConfirmArgs,
    output: Output,
) -> anyhow::Result<u8> {
    let book = ThresholdBook::load(&cx.scenarios_dir, DEFAULT_THRESHOLD);
    let mut printed = Ok(());
    let outcomes = confirm::confirm(
        session,
        &cx.root,
        &book,
        scenarios,
        wanted,
        &args.options(),
        &mut |o| {
            if output == Output::Text && printed.is_ok() {
                printed = print_one(o);
            }
        },
    )?;
    printed?;
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&outcomes)?)?;
    } else if outcomes.is_empty() {
        eprintln!("syncbench: no change point of a noisy metric to confirm");
    }
    if session.interrupted() {
        return Ok(130);
    }
    let confirmed = outcomes
        .iter()
        .any(|o| o.row.state == Confirmation::Confirmed && o.verdict == Verdict::Regression);
    Ok(u8::from(confirmed))
}

fn print_one(o: &Outcome) -> anyhow::Result<()> {
    let k = &o.row.key;
    // The measured size (in the reason) first: the history's levels only
    // found the change.
    outln!(
        "{} {:<12} {} {} {} (against {}): {} (the history said {})",
        &k.sha[..12],
        o.row.state.as_str(),
        k.scenario,
        k.point,
        k.metric,
        &k.before_sha[..12],
        o.row.reason,
        super::output::pct(o.change_pct),
    )
}
