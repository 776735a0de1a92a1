//! `syncbench bisect GOOD..BAD SCENARIO METRIC`: the commit that moved a
//! metric, measuring only what the binary search needs.

use super::{Bars, Context, MeasureArgs, outln};
use anyhow::{Context as _, bail};
use syncbench::env::Commit;
use syncbench::model::{PointKey, Unit};
use syncbench::ops::bisect::{Outcome, bisect};
use syncbench::ops::session::Baseline;
use syncbench::scenario::{self, DEFAULT_THRESHOLD, Scenario, ThresholdBook};

#[derive(clap::Args)]
pub struct Args {
    /// GOOD..BAD
    range: String,
    scenario: String,
    metric: String,
    /// The scenario point (needed when it has several).
    #[arg(long)]
    point: Option<String>,
    #[command(flatten)]
    pub measure: MeasureArgs,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let s = scenario::find(&cx.scenarios_dir, &args.scenario)?;
    let point = match (&args.point, s.points.as_slice()) {
        (Some(k), _) => s
            .points
            .iter()
            .find(|p| p.key() == *k)
            .with_context(|| format!("{} has no point {k:?} (`syncbench list`)", s.name))?,
        (None, [only]) => only,
        (None, _) => bail!("{} has several points: choose one with --point", s.name),
    }
    .clone();
    let one = Scenario {
        points: vec![point.clone()],
        ..s.clone()
    };
    let (good, _) = args
        .range
        .split_once("..")
        .context("give the range as GOOD..BAD")?;
    let mut commits = syncbench::history::resolve(&cx.root, &[good.to_owned()], None)?;
    commits.extend(syncbench::history::resolve(
        &cx.root,
        std::slice::from_ref(&args.range),
        None,
    )?);
    if commits.len() < 2 {
        bail!("{} holds no commit after GOOD", args.range);
    }
    let mut session = args.measure.session(cx)?;
    let (checkout, runner) = session.checkout(&cx.root)?;
    let key = PointKey {
        machine: session.machine().fingerprint(),
        scenario: one.name.clone(),
        point: point.key(),
    };
    let mut bars = Bars::new(true);
    let metric = args.metric.clone();
    let mut unit = syncbench::model::Unit::Count;
    // The metric's values at a commit, measured unless this machine has them.
    let mut probe = |i: usize| -> anyhow::Result<Option<Vec<f64>>> {
        let c: &Commit = &commits[i];
        if !session.is_measured(&one, &point, &c.sha)? {
            checkout.switch(&c.sha)?;
            let one = std::slice::from_ref(&one);
            session.measure(
                &runner,
                c,
                one,
                &Baseline::default(),
                &|_, _| false,
                &mut bars,
            )?;
        }
        let Some((id, _)) = session
            .store
            .run_of(&key, std::slice::from_ref(&c.sha), None)?
        else {
            return Ok(None);
        };
        let found = session
            .store
            .series(id)?
            .into_iter()
            .find(|x| x.name == metric);
        Ok(found.map(|x| {
            unit = x.unit;
            x.values
        }))
    };
    let threshold = ThresholdBook::of(&one, DEFAULT_THRESHOLD).min_effect(&one.name, &args.metric);
    let interrupted = cx.interrupted()?;
    let is_interrupted = || interrupted.load(std::sync::atomic::Ordering::SeqCst);
    let outcome = bisect(commits.len(), threshold, &mut probe, &is_interrupted);
    if is_interrupted() {
        eprintln!(
            "syncbench: interrupted; what was measured is recorded, and the next bisect reuses it"
        );
        return Ok(130);
    }
    let outcome =
        outcome.with_context(|| format!("bisecting {} over {}", args.metric, args.range))?;
    report(&commits, &args.metric, unit, outcome)
}

fn report(commits: &[Commit], metric: &str, unit: Unit, outcome: Outcome) -> anyhow::Result<u8> {
    let (first, last) = (&commits[0].sha[..12], &commits[commits.len() - 1].sha[..12]);
    match outcome {
        Outcome::NoChange(gap) => {
            outln!(
                "{metric} does not change between {first} and {last} ({:+.1}%, p={:.3}): nothing to bisect",
                gap.change * 100.0,
                gap.p_value
            )?;
            Ok(1)
        }
        Outcome::Interrupted => Ok(130),
        Outcome::Culprit {
            culprit,
            parent,
            before,
            after,
            comparison: c,
        } => {
            let culprit = &commits[culprit];
            outln!(
                "culprit: {} {}\n{metric}: {} -> {} (median, {:+.1}%, Mann-Whitney p={:.4}) against its parent {}",
                culprit.sha,
                culprit.subject,
                unit.human(syncbench::stats::median(&before)),
                unit.human(syncbench::stats::median(&after)),
                c.change * 100.0,
                c.p_value,
                &commits[parent].sha[..12]
            )?;
            Ok(0)
        }
    }
}
