//! `syncbench compare A B`: stored results of two commits, or with
//! `--run` both measured now, A B A B ….

use super::{Context, print_compared};
use anyhow::bail;
use syncbench::analysis::History;
use syncbench::scenario::{DEFAULT_THRESHOLD, ThresholdBook};

#[derive(clap::Args)]
pub struct Args {
    a: String,
    b: String,
    #[command(flatten)]
    pub target: super::ab::AbTarget,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    if args.target.ab.run {
        return args.target.ab.run_ab(
            cx,
            &args.a,
            &args.b,
            &args.target.scenarios,
            args.target.json,
            "compare",
            None,
        );
    }
    if !args.target.scenarios.is_empty() {
        bail!("scenarios are chosen only with --run (stored results cover them all)");
    }
    let store = cx.store()?;
    let (a, b) = (cx.full_sha(&args.a)?, cx.full_sha(&args.b)?);
    let book = ThresholdBook::load(&cx.scenarios_dir, DEFAULT_THRESHOLD);
    let history = History::load_where(&*store, &|sha| sha == a || sha == b)?;
    let compared = history.compare(&a, &b, &book);
    if compared.is_empty() {
        bail!(
            "no series measured at both {} and {}: measure them with `syncbench history`",
            &a[..12],
            &b[..12]
        );
    }
    print_compared(&compared, args.target.json)?;
    Ok(0)
}
