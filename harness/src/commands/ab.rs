//! The A/B flags of `compare --run` and `check --run`, and how their
//! results are printed.

use super::{Context, outln};
use std::path::PathBuf;
use std::time::Duration;
use syncbench::abtest::{ALPHA, Settings, Target};
use syncbench::model::{INSTRUCTION_RESOLUTION, is_instruction_metric};
use syncbench::ops::ab::{self, AbResult, Plan};
use syncbench::ops::session::MeasureSettings;
use syncbench::scenario::parse_duration;

/// What `compare` and `check` share after their commits: the scenarios
/// of `--run`, the A/B flags, `--json`.
#[derive(clap::Args)]
pub struct AbTarget {
    /// With --run: the scenarios to measure [default: the default suite].
    pub scenarios: Vec<String>,
    #[command(flatten)]
    pub ab: AbArgs,
    /// Print the comparison (each series' rows; with --run, each
    /// point's estimate and verdict) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The heading of the flags of `--run`: the rest of `compare` and
/// `check` reads stored results.
const AB_HEADING: &str = "A/B options (both commits measured now, alternately)";

/// Interleaved A/B measurement, for `compare --run` and `check --run`.
#[derive(clap::Args, Clone)]
pub struct AbArgs {
    /// Build both commits (a worktree each) and measure them now,
    /// alternately A B A B …, deciding from the per-pair ratios; pairs are
    /// added while the answer is uncertain. Exit 1 on a regression.
    #[arg(long, help_heading = AB_HEADING)]
    pub run: bool,
    /// The metric that decides (e.g. wall, command.cpu_user, upload.wall;
    /// command.instructions runs each repetition under valgrind).
    #[arg(long, default_value = "wall", requires = "run", help_heading = AB_HEADING)]
    metric: String,
    /// Smallest relative change that matters: "unchanged" once the
    /// interval is inside ±threshold, "changed" once it is beyond half
    /// [default: 0.02; 0.005 for instruction counts].
    #[arg(long, requires = "run", help_heading = AB_HEADING)]
    threshold: Option<f64>,
    /// Pairs measured per point before any verdict: the interval is
    /// first looked at after these many.
    #[arg(long, default_value_t = 5, requires = "run", help_heading = AB_HEADING)]
    min_pairs: usize,
    /// An optional cap on pairs per point; the budget is the bound that
    /// matters (the interval is valid at every look, however many).
    #[arg(long, requires = "run", help_heading = AB_HEADING)]
    max_pairs: Option<usize>,
    /// Time per point (e.g. 5m, 90s): pairs are added until the answer is
    /// clear, or for this long.
    #[arg(
        long,
        default_value = "10m",
        value_parser = parse_duration,
        requires = "run",
        help_heading = AB_HEADING,
        value_name = "DURATION"
    )]
    budget: Duration,
    /// Instead of interleaving: N repetitions of A, then N of B, judged
    /// by Mann-Whitney (the usual way, for comparison).
    #[arg(long, requires = "run", help_heading = AB_HEADING, value_name = "N")]
    unpaired: Option<usize>,
    /// Only points whose key contains this.
    #[arg(long, requires = "run", help_heading = AB_HEADING)]
    filter: Option<String>,
    /// The cargo profile `sync` scenarios build the reference system with
    /// (with --run, and for check's confirmation).
    #[arg(long, default_value = "release", help_heading = super::CARGO_HEADING)]
    cargo_profile: String,
    /// Cache for the two worktrees and their builds (with --run, and for
    /// check's confirmation of a noisy regression).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Print each pair as it is measured.
    #[arg(long, short, requires = "run", help_heading = AB_HEADING)]
    pub verbose: bool,
}

impl AbArgs {
    pub fn cargo_profile(&self) -> &str {
        &self.cargo_profile
    }

    pub fn cache_dir(&self) -> Option<&PathBuf> {
        self.cache_dir.as_ref()
    }

    fn plan(&self) -> Plan {
        let counts = is_instruction_metric(&self.metric);
        // Whole processes only: a phase's count moves with fixed costs
        // that shift between phases (README: metrics and their spread).
        let whole = counts && self.metric.split('.').count() == 2;
        Plan {
            targets: vec![Target {
                metric: self.metric.clone(),
                threshold: self.threshold.unwrap_or(if counts { 0.005 } else { 0.02 }),
                // Instruction counts repeat within a few tenths of a
                // percent (README: metrics and their spread).
                resolution: whole.then_some(INSTRUCTION_RESOLUTION),
            }],
            settings: Settings {
                min_pairs: self.min_pairs,
                max_pairs: self.max_pairs,
                budget: self.budget,
                alpha: ALPHA,
            },
            unpaired: self.unpaired,
            warmup: true,
        }
    }

    /// Builds both commits, measures them A B A B …, prints the results
    /// (and the Markdown `summary`); exit 1 on a regression or a failure.
    #[allow(clippy::too_many_arguments)] // the command's own settings, each used once
    pub fn run_ab(
        &self,
        cx: &Context,
        a_rev: &str,
        b_rev: &str,
        names: &[String],
        json: bool,
        purpose: &str,
        summary: Option<&std::path::Path>,
        variants: Option<[&str; 2]>,
    ) -> anyhow::Result<u8> {
        let (a, b) = (cx.full_sha(a_rev)?, cx.full_sha(b_rev)?);
        let chosen = cx.choose(names)?;
        if let Some([va, vb]) = variants
            && !chosen
                .iter()
                .any(|s| s.variant_named(va).is_some() && s.variant_named(vb).is_some())
        {
            anyhow::bail!(
                "no scenario chosen declares both variant {va:?} and {vb:?} (`syncbench list` \
                 shows each scenario's variants; `default` is the build as it is)"
            );
        }
        let settings = MeasureSettings {
            filter: self.filter.clone(),
            ..MeasureSettings::side_by_side(&self.cargo_profile, self.cache_dir.clone())
        };
        let mut session = cx.session(settings)?;
        let verbose = self.verbose;
        let results = ab::run(
            &session,
            &cx.root,
            (&a, &b),
            &chosen,
            (&self.plan(), variants),
            &mut |s, p, i, side, v| {
                if verbose {
                    eprintln!("syncbench: {s} {p} #{i}: {side:?} {v}");
                }
            },
        )?;
        // Printed first: a store that fails must not lose what was measured.
        if !json {
            outln!(
                "{}, measured alternately",
                super::compare::header(a_rev, &a, b_rev, &b)
            )?;
        }
        print(&a, &b, &results, json)?;
        if let Some(path) = summary {
            std::fs::write(path, markdown(a_rev, b_rev, &a, &b, &results))
                .map_err(|e| anyhow::anyhow!("writing the summary {}: {e}", path.display()))?;
        }
        ab::record(&mut session, &a, &b, &results, purpose)?;
        if session.interrupted() {
            eprintln!("syncbench: interrupted; the verdicts above are of what was measured");
            return Ok(130);
        }
        Ok(ab::status(&results))
    }
}

/// The A/B results as Markdown, for `--summary` (a CI job's summary, a
/// pull request's comment): one row per metric judged.
fn markdown(a_rev: &str, b_rev: &str, a: &str, b: &str, results: &[AbResult]) -> String {
    let mut out = format!(
        "## syncbench: {b_rev} ({}) against {a_rev} ({}), measured alternately\n\n\
         | scenario | point | metric | change [95% interval] | verdict | pairs |\n\
         |---|---|---|---|---|---|\n",
        &b[..12],
        &a[..12]
    );
    for r in results {
        let (change, verdict) = match (&r.error, &r.estimate) {
            (Some(e), _) => (
                format!("failed: {}", e.lines().next().unwrap_or("")),
                "failed".to_owned(),
            ),
            (None, Some(e)) => (
                format!(
                    "{:+.2}% [{:+.2}%, {:+.2}%]",
                    e.change * 100.0,
                    e.low * 100.0,
                    e.high * 100.0
                ),
                r.verdict.to_string(),
            ),
            (None, None) => ("no data".to_owned(), r.verdict.to_string()),
        };
        let cell = |s: &str| s.replace('|', "\\|");
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            cell(&r.scenario),
            cell(&shown_point(r)),
            cell(&r.metric),
            cell(&change),
            verdict,
            r.pairs
        ));
    }
    out
}

/// B's point, and A's where two variants were compared.
fn shown_point(r: &AbResult) -> String {
    match &r.a_point {
        Some(a) => format!("{} against {a}", r.point),
        None => r.point.clone(),
    }
}

fn print(a: &str, b: &str, results: &[AbResult], json: bool) -> anyhow::Result<()> {
    if json {
        let all = serde_json::json!({ "a": a, "b": b, "results": results });
        return outln!("{}", serde_json::to_string_pretty(&all)?);
    }
    for r in results {
        let point = shown_point(r);
        match (&r.error, &r.estimate) {
            (Some(e), _) => outln!("{} {point}: FAILED: {e}", r.scenario)?,
            (None, Some(e)) => outln!(
                "{} {} {}: {:+.2}% [{:+.2}%, {:+.2}%] → {} after {} pairs in {:.1} s ({})",
                r.scenario,
                point,
                r.metric,
                e.change * 100.0,
                e.low * 100.0,
                e.high * 100.0,
                r.verdict,
                r.pairs,
                r.seconds,
                r.stop.map_or(r.mode.as_str(), |s| s.describe())
            )?,
            (None, None) => outln!("{} {point}: no data", r.scenario)?,
        }
    }
    Ok(())
}
