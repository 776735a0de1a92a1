//! `syncbench run`: measure the working tree, then render the dashboard.

use super::{Bars, Context, MeasureArgs, finish, outln};
use anyhow::bail;
use std::path::PathBuf;
use syncbench::git;
use syncbench::ops::session::Baseline;
use syncbench::scenario::Kind;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario names (from scenarios/) or TOML paths; none = the default suite.
    scenarios: Vec<String>,
    /// Compare with the last results on this branch or commit.
    #[arg(long, default_value = "main")]
    baseline: String,
    /// Where to render the dashboard afterwards, relative to the
    /// repository [default:
    /// target/syncbench-report for the repository's database, else
    /// DB-STEM-report next to the --db file].
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    pub measure: MeasureArgs,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let chosen = args.measure.variants(cx.choose(&args.scenarios)?)?;
    if let Some(f) = &args.measure.filter()
        && !chosen.iter().any(|s| {
            matches!(s.kind, Kind::Criterion { .. })
                || s.points.iter().any(|p| p.key().contains(f.as_str()))
        })
    {
        bail!("no point matches --filter {f:?} (`syncbench list` shows them)");
    }
    let mut session = args.measure.session(cx)?;
    let commit = git::head_commit(&cx.root)?;
    if cx.full_sha(&args.baseline).is_err() {
        eprintln!(
            "note: --baseline {}: no such branch or commit here; nothing to compare with",
            args.baseline
        );
    }
    let baseline = Baseline {
        commits: git::first_parent_history(&cx.root, &args.baseline, 1000)?,
        name: args.baseline,
    };
    let runner = session.runner(cx.root.clone(), cx.root.join("target"));
    let mut bars = Bars::new(args.measure.json);
    let tally = session.measure(
        &runner,
        &commit,
        &chosen,
        &baseline,
        &|_, _| false,
        &mut bars,
    )?;
    let code = finish(&session, tally, args.measure.json)?;
    // The dashboard of everything recorded so far, for the browser.
    let out = match &args.out {
        Some(o) => cx.root.join(o),
        None => cx.default_site(),
    };
    let index = super::report::render(cx, &out, &super::report::Settings::default())?.index;
    if args.measure.json {
        eprintln!("syncbench: dashboard at {}", index.display());
    } else {
        outln!("dashboard: {}", index.display())?;
    }
    Ok(code)
}
