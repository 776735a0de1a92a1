//! `syncbench bisect GOOD..BAD SCENARIO METRIC`: the commit that moved a
//! metric, measuring only what the binary search needs.

use super::{Bars, Context, MeasureArgs, outln};
use anyhow::{Context as _, bail};
use syncbench::git::Commit;
use syncbench::model::{PointKey, Unit};
use syncbench::ops::bisect::{Outcome, bisect};
use syncbench::ops::session::Baseline;
use syncbench::scenario::{self, DEFAULT_THRESHOLD, Point, Scenario, ThresholdBook};
use syncbench::stats::median;

#[derive(clap::Args)]
pub struct Args {
    /// GOOD..BAD: a commit where the metric was as before and a later
    /// one where it moved (on BAD's first-parent line).
    #[arg(value_name = "GOOD..BAD")]
    range: String,
    /// A scenario name (from scenarios/) or TOML path.
    scenario: String,
    /// The metric that moved, as `regressions` and `show` name it (e.g.
    /// wall, command.peak_rss, upload.server.cpu_user).
    metric: String,
    /// The scenario point (needed when it has several).
    #[arg(long)]
    point: Option<String>,
    #[command(flatten)]
    pub measure: MeasureArgs,
}

pub fn run(cx: &Context, args: Args) -> anyhow::Result<u8> {
    let s = scenario::find(&cx.scenarios_dir, &args.scenario)?;
    let s = args
        .measure
        .variants(vec![s])?
        .pop()
        .expect("a chosen variant keeps its scenario");
    let point = one_point(&s, args.point.as_deref())?;
    let one = Scenario {
        points: vec![point.clone()],
        ..s.clone()
    };
    let commits = range_commits(cx, &args.range)?;
    let mut session = args.measure.session(cx)?;
    let (checkout, mut runner) = session.checkout(&cx.root)?;
    let key = PointKey {
        machine: session.machine().fingerprint(),
        scenario: one.name.clone(),
        point: point.key(),
    };
    let mut bars = Bars::new(true);
    let metric = args.metric.clone();
    let mut unit = syncbench::model::Unit::Count;
    let threshold = ThresholdBook::of(&one, DEFAULT_THRESHOLD).min_effect(&one.name, &args.metric);
    let interrupted = cx.interrupted()?;
    let is_interrupted = || interrupted.load(std::sync::atomic::Ordering::SeqCst);
    // Values a side needed to decide: none at first (what is stored
    // serves); once GOOD and BAD differ by more than the threshold in too
    // few values to tell, every commit the search looks at is measured
    // until it has this many.
    let mut need = 0;
    let outcome = loop {
        // The metric's values at a commit, measured unless this machine
        // has (enough of) them.
        let mut probe = |i: usize| -> anyhow::Result<Option<Vec<f64>>> {
            let c: &Commit = &commits[i];
            let mut stored =
                |session: &syncbench::ops::session::Session| -> anyhow::Result<Option<Vec<f64>>> {
                    let Some((id, _)) =
                        session
                            .store
                            .run_of(&key, std::slice::from_ref(&c.sha), None)?
                    else {
                        return Ok(None);
                    };
                    Ok(session
                        .store
                        .series(id)?
                        .into_iter()
                        .find(|x| x.name == metric)
                        .map(|x| {
                            unit = x.unit;
                            x.values
                        }))
                };
            let have = stored(&session)?;
            let enough = have.as_ref().is_some_and(|v| v.len() >= need);
            if !enough || !session.is_measured(&one, &point, &c.sha)? {
                checkout.switch(&c.sha)?;
                if need > 0 {
                    runner.opts.repetitions = Some(need as u32);
                }
                let one = std::slice::from_ref(&one);
                session.measure(
                    &runner,
                    c,
                    one,
                    &Baseline::default(),
                    &|_, _| false,
                    &mut bars,
                )?;
                return stored(&session);
            }
            Ok(have)
        };
        let outcome = bisect(commits.len(), threshold, &mut probe, &is_interrupted);
        match &outcome {
            Ok(Outcome::NoChange(gap)) if gap.too_few && need == 0 && !is_interrupted() => {
                need = syncbench::stats::repetitions_for(syncbench::stats::ALPHA) + 1;
                too_few_values(&args.metric, gap, need);
            }
            _ => break outcome,
        }
    };
    if is_interrupted() {
        eprintln!(
            "syncbench: interrupted; what was measured is recorded, and the next bisect reuses it"
        );
        return Ok(130);
    }
    let outcome =
        outcome.with_context(|| format!("bisecting {} over {}", args.metric, args.range))?;
    let found = Found {
        commits: &commits,
        metric: &args.metric,
        unit,
        json: args.measure.json,
    };
    found.report(outcome)
}

/// Says why every commit the search needs is measured `need` times.
fn too_few_values(metric: &str, gap: &syncbench::stats::Comparison, need: usize) {
    eprintln!(
        "syncbench: {} moved {} between GOOD and BAD, but their values are too \
         few to tell (p={:.3} is the least they can give); measuring each commit the \
         search needs {need} times",
        metric,
        super::output::pct(gap.change * 100.0),
        gap.p_value,
    );
}

/// The point to bisect: the one `--point` names, or the scenario's only.
fn one_point(s: &Scenario, key: Option<&str>) -> anyhow::Result<Point> {
    Ok(match (key, s.points.as_slice()) {
        (Some(k), _) => s
            .points
            .iter()
            .find(|p| p.key() == k)
            .with_context(|| format!("{} has no point {k:?} (`syncbench list`)", s.name))?,
        (None, [only]) => only,
        (None, _) => bail!("{} has several points: choose one with --point", s.name),
    }
    .clone())
}

/// GOOD and the commits of GOOD..BAD, oldest first (at least two).
fn range_commits(cx: &Context, range: &str) -> anyhow::Result<Vec<Commit>> {
    let (good, _) = range
        .split_once("..")
        .context("give the range as GOOD..BAD")?;
    let mut commits = syncbench::checkout::resolve(&cx.root, &[good.to_owned()], None)?;
    commits.extend(syncbench::checkout::resolve(
        &cx.root,
        &[range.to_owned()],
        None,
    )?);
    if commits.len() < 2 {
        match super::history::empty_range(cx, range)? {
            Some(why) => bail!("{why}"),
            None => bail!("{range} holds no commit after GOOD"),
        }
    }
    Ok(commits)
}

/// What `bisect` found, for people or (--json) for scripts.
struct Found<'a> {
    commits: &'a [Commit],
    metric: &'a str,
    unit: Unit,
    json: bool,
}

impl Found<'_> {
    fn report(&self, outcome: Outcome) -> anyhow::Result<u8> {
        let (commits, metric, unit) = (self.commits, self.metric, self.unit);
        let (first, last) = (&commits[0].sha[..12], &commits[commits.len() - 1].sha[..12]);
        match outcome {
            Outcome::Interrupted => Ok(130),
            Outcome::NoChange(gap) if self.json => {
                let v = serde_json::json!({
                    "culprit": null, "metric": metric, "good": commits[0].sha,
                    "bad": commits[commits.len() - 1].sha,
                    "change_pct": gap.change * 100.0, "p_value": gap.p_value,
                    "too_few_values": gap.too_few,
                });
                outln!("{}", serde_json::to_string_pretty(&v)?)?;
                Ok(1)
            }
            Outcome::NoChange(gap) if gap.too_few => {
                outln!(
                    "{metric} moved {} between {first} and {last}, but their values are too few to tell (p={:.3}): run bisect again with more repetitions (--repetitions N)",
                    super::output::pct(gap.change * 100.0),
                    gap.p_value
                )?;
                Ok(1)
            }
            Outcome::NoChange(gap) => {
                outln!(
                    "{metric} does not change between {first} and {last} ({}, p={:.3}): nothing to bisect",
                    super::output::pct(gap.change * 100.0),
                    gap.p_value
                )?;
                Ok(1)
            }
            Outcome::Culprit {
                culprit,
                parent,
                before,
                after,
                comparison: c,
            } => {
                let (culprit, parent) = (&commits[culprit], &commits[parent]);
                let (before, after) = (median(&before), median(&after));
                if self.json {
                    let v = serde_json::json!({
                        "culprit": culprit.sha, "subject": culprit.subject, "parent": parent.sha,
                        "metric": metric, "unit": unit.as_str(), "before": before, "after": after,
                        "change_pct": c.change * 100.0, "p_value": c.p_value,
                    });
                    outln!("{}", serde_json::to_string_pretty(&v)?)?;
                } else {
                    outln!(
                        "culprit: {} {}\n{metric}: {} -> {} (median, {}, Mann-Whitney p={:.4}) against its parent {}",
                        culprit.sha,
                        culprit.subject,
                        unit.human(before),
                        unit.human(after),
                        super::output::pct(c.change * 100.0),
                        c.p_value,
                        &parent.sha[..12]
                    )?;
                }
                Ok(0)
            }
        }
    }
}
