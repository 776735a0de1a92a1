//! `syncbench check`: the CI gate. A commit's stored results against the
//! newest results on the baseline's first-parent history (or, with
//! `--run`, both measured now A B A B …); exit 1 on a regression.

use super::{Context, print_compared};
use anyhow::{Context as _, bail};
use std::path::PathBuf;
use syncbench::analysis::History;
use syncbench::model::{RunStatus, Verdict};
use syncbench::scenario::{DEFAULT_THRESHOLD, ThresholdBook};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "main")]
    baseline: String,
    /// The commit to check [default: HEAD].
    #[arg(long)]
    commit: Option<String>,
    /// Write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY).
    #[arg(long)]
    summary: Option<PathBuf>,
    #[command(flatten)]
    pub target: super::ab::AbTarget,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let new_rev = args.commit.as_deref().unwrap_or("HEAD");
    if args.target.ab.run {
        return args.target.ab.run_ab(
            cx,
            &args.baseline,
            new_rev,
            &args.target.scenarios,
            args.target.json,
            "check",
        );
    }
    if !args.target.scenarios.is_empty() {
        bail!("scenarios are chosen only with --run (check covers every stored result)");
    }
    let store = cx.store()?;
    let new = cx.full_sha(new_rev)?;
    // A CI gate whose baseline is a typo must fail, not pass quietly.
    cx.full_sha(&args.baseline)
        .with_context(|| format!("--baseline {}: no such branch or commit", args.baseline))?;
    let line = syncbench::env::first_parent_history(&cx.root, &args.baseline, 1000)?;
    let history = History::load_where(&*store, &|sha| sha == new || line.iter().any(|l| l == sha))?;
    // The newest commit on the baseline's first-parent line with results.
    let measured: std::collections::HashSet<&str> = history
        .runs
        .iter()
        .filter(|r| r.status == RunStatus::Ok)
        .map(|r| r.sha.as_str())
        .collect();
    let Some(base) = line
        .iter()
        .find(|sha| **sha != new && measured.contains(sha.as_str()))
    else {
        let msg = format!(
            "no results on {}'s history to compare with; nothing to check",
            args.baseline
        );
        if let Some(path) = &args.summary {
            std::fs::write(path, format!("## syncbench\n\n{msg}\n"))?;
        }
        eprintln!("syncbench: {msg}");
        return Ok(0);
    };
    let book = ThresholdBook::load(&cx.scenarios_dir, DEFAULT_THRESHOLD);
    let compared = history.compare(base, &new, &book);
    if let Some(path) = &args.summary {
        std::fs::write(path, syncbench::text::markdown(base, &new, &compared))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print_compared(&compared, args.target.json)?;
    let regressions = compared
        .iter()
        .flat_map(|c| &c.rows)
        .filter(|r| r.verdict == Verdict::Regression)
        .count();
    eprintln!(
        "syncbench: {regressions} regression(s) against {} @ {}",
        args.baseline,
        &base[..12]
    );
    Ok(u8::from(regressions > 0))
}
