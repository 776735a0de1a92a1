//! `syncbench show [COMMIT]`: the stored runs of a commit.

use super::{Context, emit, outln};
use anyhow::bail;
use syncbench::{history, text};

#[derive(clap::Args)]
pub struct Args {
    /// A revision (HEAD~2, main, a tag) or a prefix of a stored commit's
    /// sha, which the repository need not have [default: HEAD].
    commit: Option<String>,
    /// Print the runs with their raw values as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let store = cx.store()?;
    let sha = cx.commit_arg(args.commit)?;
    let runs = store.runs(&sha)?;
    if runs.is_empty() {
        bail!("no results for commit {sha} in {}", cx.db);
    }
    if args.json {
        let v: Vec<_> = runs
            .iter()
            .map(|r| Ok(serde_json::json!({"run": r, "metrics": store.series(r.id)?})))
            .collect::<anyhow::Result<_>>()?;
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
    for r in runs {
        let dirty = if r.dirty { " (dirty tree)" } else { "" };
        outln!(
            "== {} {} @ {}{dirty} [{}]  {}",
            r.scenario,
            r.point,
            &r.commit[..12.min(r.commit.len())],
            r.status,
            r.machine
        )?;
        if let Some(e) = &r.error {
            outln!("{e}")?;
        }
        let series = store.series(r.id)?;
        // A failed run may have measured nothing: no table of no rows.
        if series.is_empty() {
            outln!("(no metrics recorded)")?;
            continue;
        }
        let rows = history::rows(&series, &[], &|_| 0.0);
        emit(format_args!("{}", text::table(&rows)))?;
    }
    Ok(0)
}
