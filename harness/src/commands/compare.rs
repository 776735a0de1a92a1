//! `syncbench compare A B`: stored results of two commits, or with
//! `--run` both measured now, A B A B ….

use super::{Context, outln, print_compared};
use anyhow::bail;
use syncbench::ops::load_history;
use syncbench::scenario::{DEFAULT_THRESHOLD, ThresholdBook};

#[derive(clap::Args)]
pub struct Args {
    /// The commit compared against (the baseline): a revision (main,
    /// HEAD~6, a tag) or a prefix of a stored commit's sha.
    a: String,
    /// The commit compared: its change against A is shown.
    b: String,
    /// With --run: measure A on this variant (a build configuration a
    /// scenario declares; `default` is the build as it is), against B on
    /// --variant-b: two configurations at one commit (`compare HEAD HEAD
    /// --variant-a default --variant-b mimalloc --run`), or at two.
    #[arg(long, requires_all = ["variant_b", "run"], value_name = "NAME")]
    variant_a: Option<String>,
    /// With --run: the variant B is measured on (see --variant-a).
    #[arg(long, requires_all = ["variant_a", "run"], value_name = "NAME")]
    variant_b: Option<String>,
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
            args.variant_a
                .as_deref()
                .zip(args.variant_b.as_deref())
                .map(|(a, b)| [a, b]),
        );
    }
    if !args.target.scenarios.is_empty() {
        bail!("scenarios are chosen only with --run (stored results cover them all)");
    }
    let store = cx.store()?;
    let (a, b) = (cx.full_sha(&args.a)?, cx.full_sha(&args.b)?);
    let book = ThresholdBook::load(&cx.scenarios_dir, DEFAULT_THRESHOLD);
    let history = load_history(&*store, &|r| r.sha == a || r.sha == b)?;
    let compared = history.compare(&a, &b, &book);
    if compared.is_empty() {
        bail!(
            "no series measured at both {} and {}: measure them with `syncbench history`",
            &a[..12],
            &b[..12]
        );
    }
    if !args.target.json {
        outln!("{}", header(&args.a, &a, &args.b, &b))?;
    }
    print_compared(&compared, args.target.json)?;
    Ok(0)
}

/// Which commit is which: the changes shown are B's against A.
pub fn header(a_rev: &str, a: &str, b_rev: &str, b: &str) -> String {
    let name = |rev: &str, sha: &str| {
        if sha.starts_with(rev) {
            sha[..12].to_owned()
        } else {
            format!("{rev} ({})", &sha[..12])
        }
    };
    format!(
        "B = {} against A = {}: changes are B's, relative to A",
        name(b_rev, b),
        name(a_rev, a)
    )
}
