//! `syncbench enqueue`: jobs for the workers (`syncbench worker`) in the
//! PostgreSQL database's queue, one per commit.

use super::{Context, outln};
use syncbench::store::queue::Queue;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    commits: super::history::CommitsArgs,
    /// Only workers started with this --machine-tag take the jobs
    /// [default: any worker].
    #[arg(long = "machine-tag", alias = "machine", value_name = "TAG")]
    machine: Option<String>,
    /// Measure again points that have results.
    #[arg(long)]
    force: bool,
    /// Only these variants of the scenarios (comma-separated; `default`
    /// is each scenario's build as it is) [default: every variant].
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    variant: Vec<String>,
    /// Print the new jobs' ids as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let (scenarios, commits) = args.commits.resolve(cx, false)?;
    if !args.variant.iter().any(|v| v == "all") {
        // A name no scenario here declares is a typo, found now; each
        // worker checks the job against its own scenarios again.
        let known = if scenarios.is_empty() {
            cx.choose(&[])?
        } else {
            scenarios.clone()
        };
        syncbench::scenario::select_variants(known, &args.variant).map_err(anyhow::Error::msg)?;
    }
    let mut queue = Queue::open(&cx.db)?;
    let shas: Vec<String> = commits.iter().map(|c| c.sha.clone()).collect();
    let names: Vec<String> = scenarios.iter().map(|s| s.name.clone()).collect();
    let ids = queue.enqueue(
        &shas,
        (&names, &args.variant),
        args.machine.as_deref(),
        args.force,
    )?;
    if args.json {
        outln!("{}", serde_json::to_string(&ids)?)?;
    } else {
        let whom = args
            .machine
            .as_deref()
            .map_or("any worker".to_owned(), |t| format!("workers tagged {t}"));
        outln!(
            "enqueued {} job(s) (#{}–#{}) for {whom} in {}",
            ids.len(),
            ids.first().copied().unwrap_or_default(),
            ids.last().copied().unwrap_or_default(),
            cx.db
        )?;
    }
    Ok(0)
}
