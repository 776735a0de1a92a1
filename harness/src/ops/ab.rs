//! Interleaved A/B runs (`compare --run`, `check --run`): both commits
//! built in worktrees and target dirs of their own (two builds of the
//! same binaries must not overwrite each other), then each point measured
//! A B A B … in this job. The loop is over a measure-one-side closure, so
//! its decisions are tested without processes; the statistics are in
//! `abtest`.

use crate::abtest::{self, Estimate, Settings, Side, Stop};
use crate::history::Checkout;
use crate::model::{Direction, Verdict};
use crate::ops::session::Session;
use crate::runner::{Runner, is_instruction_metric};
use crate::scenario::{Kind, Scenario};
use crate::stats;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// How the two sides are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A B A B …, judged from the per-pair ratios.
    Interleaved,
    /// N of A, then N of B, judged by Mann-Whitney (for comparison).
    Unpaired,
}

/// What to measure and when to stop.
#[derive(Debug, Clone)]
pub struct Plan {
    pub metric: String,
    pub settings: Settings,
    /// `Some(n)`: the unpaired way, n repetitions of each side.
    pub unpaired: Option<usize>,
    /// One pair, not counted, before the measured ones.
    pub warmup: bool,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Interleaved => "interleaved",
            Mode::Unpaired => "unpaired",
        }
    }
}

impl Plan {
    pub fn mode(&self) -> Mode {
        if self.unpaired.is_some() {
            Mode::Unpaired
        } else {
            Mode::Interleaved
        }
    }
}

/// One point measured A/B.
#[derive(Debug, Clone, Serialize)]
pub struct AbResult {
    pub scenario: String,
    pub point: String,
    pub metric: String,
    pub mode: Mode,
    /// regression, improvement, unchanged, inconclusive, or failed.
    pub verdict: Verdict,
    pub estimate: Option<Estimate>,
    pub pairs: usize,
    pub stop: Option<Stop>,
    pub seconds: f64,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub error: Option<String>,
}

impl AbResult {
    fn failed(scenario: &str, point: &str, plan: &Plan, error: String) -> AbResult {
        AbResult {
            scenario: scenario.to_owned(),
            point: point.to_owned(),
            metric: plan.metric.clone(),
            mode: plan.mode(),
            verdict: Verdict::Failed,
            estimate: None,
            pairs: 0,
            stop: None,
            seconds: 0.0,
            a: Vec::new(),
            b: Vec::new(),
            error: Some(error),
        }
    }
}

/// What the measuring loop saw of one point.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub verdict: Verdict,
    pub estimate: Option<Estimate>,
    pub stop: Option<Stop>,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
}

/// Measures one point by `plan`: `measure(side)` gives one value of the
/// metric and its direction; `elapsed()` the time spent on the point;
/// `on_value(i, side, value)` sees every value as it comes.
pub fn measure_point(
    plan: &Plan,
    measure: &mut dyn FnMut(Side) -> Result<(f64, Direction), String>,
    elapsed: &dyn Fn() -> Duration,
    interrupted: &dyn Fn() -> bool,
    on_value: &mut dyn FnMut(usize, Side, f64),
) -> Result<Measured, String> {
    let mut direction = Direction::LowerIsBetter;
    // Warm-up: one of each, not counted (caches, page cache, CPU
    // frequency), in the same alternation.
    if plan.warmup {
        measure(Side::A)?;
        measure(Side::B)?;
    }
    let sequence: Vec<Side> = match plan.unpaired {
        Some(n) => std::iter::repeat_n(Side::A, n)
            .chain(std::iter::repeat_n(Side::B, n))
            .collect(),
        None => abtest::order(plan.settings.max_pairs).collect(),
    };
    let mut values: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let (mut stop, mut estimate) = (None, None);
    for (i, &side) in sequence.iter().enumerate() {
        if interrupted() {
            stop = Some(Stop::Interrupted);
            break;
        }
        let (v, d) = measure(side)?;
        direction = d;
        values[side as usize].push(v);
        on_value(i, side, v);
        if plan.unpaired.is_none() && side == Side::B {
            let e = match plan.settings.resolution {
                Some(r) => {
                    abtest::estimate_counts(&values[0], &values[1], plan.settings.confidence, r)
                }
                None => abtest::estimate(&values[0], &values[1], plan.settings.confidence),
            };
            estimate = Some(e);
            if let Some(why) = abtest::decide(&e, values[1].len(), elapsed(), &plan.settings) {
                stop = Some(why);
                break;
            }
        }
    }
    let [a, b] = values;
    let lower_is_better = direction == Direction::LowerIsBetter;
    let verdict = match (plan.unpaired, stop) {
        (_, Some(Stop::Interrupted)) => Verdict::Inconclusive,
        (Some(_), _) => {
            let c = stats::compare(&a, &b, plan.settings.threshold);
            estimate = Some(Estimate {
                change: c.change,
                low: f64::NAN,
                high: f64::NAN,
            });
            if c.changed {
                Verdict::of_change(direction, c.change)
            } else {
                Verdict::Unchanged
            }
        }
        (None, Some(why)) => {
            abtest::verdict(why, estimate.as_ref().expect("estimated"), lower_is_better)
        }
        (None, None) => Verdict::Inconclusive,
    };
    Ok(Measured {
        verdict,
        estimate,
        stop,
        a,
        b,
    })
}

/// One side: its checkout (kept for the runner's tree) and runner.
#[allow(missing_debug_implementations)] // the checkout holds a git repository
pub struct AbSide {
    pub label: &'static str,
    pub sha: String,
    _checkout: Checkout,
    pub runner: Runner,
}

/// Both commits checked out in worktrees of their own, each with its own
/// target dir (two builds of the same binaries must not overwrite each
/// other); `A` first.
pub fn sides(
    session: &Session,
    root: &Path,
    (a_sha, b_sha): (&str, &str),
) -> anyhow::Result<[AbSide; 2]> {
    let cache = session.cache(root);
    let side = |label: &'static str, name: &str, sha: &str| -> anyhow::Result<AbSide> {
        let checkout = Checkout::open_named(
            root,
            &cache.join(format!("ab-{name}")),
            &format!("syncbench-ab-{name}"),
        )?;
        checkout.switch(sha)?;
        let runner = session.runner(checkout.dir.clone(), cache.join(format!("target-{name}")));
        Ok(AbSide {
            label,
            sha: sha.to_owned(),
            _checkout: checkout,
            runner,
        })
    };
    Ok([side("A", "a", a_sha)?, side("B", "b", b_sha)?])
}

/// Builds both commits and measures every point of `scenarios` A/B.
/// `on_value(scenario, point, i, side, value)` sees every value.
pub fn run(
    session: &Session,
    root: &Path,
    shas: (&str, &str),
    scenarios: &[Scenario],
    plan: &Plan,
    on_value: &mut dyn FnMut(&str, &str, usize, Side, f64),
) -> anyhow::Result<Vec<AbResult>> {
    let sides = sides(session, root, shas)?;
    let mut out = Vec::new();
    for s in scenarios {
        if matches!(s.kind, Kind::Criterion { .. }) {
            tracing::warn!("{}: criterion scenarios are not run A/B; skipped", s.name);
            continue;
        }
        if let Some(e) = sides.iter().find_map(|side| {
            side.runner.build(s).err().map(|f| {
                format!(
                    "{} ({}) failed to build: {}",
                    side.label,
                    &side.sha[..12],
                    f.message
                )
            })
        }) {
            tracing::warn!("{}: {e}", s.name);
            out.push(AbResult::failed(&s.name, "", plan, e));
            continue;
        }
        let filter = session.settings.filter.as_deref();
        for point in s
            .points
            .iter()
            .filter(|p| filter.is_none_or(|f| p.key().contains(f)))
        {
            let key = point.key();
            let t0 = std::time::Instant::now();
            let mut measure = |side: Side| -> Result<(f64, Direction), String> {
                let metrics = sides[side as usize]
                    .runner
                    .measure_once(s, point, is_instruction_metric(&plan.metric))
                    .map_err(|f| format!("{side:?}: {}", f.message))?;
                let found = metrics
                    .iter()
                    .find(|m| m.name == plan.metric)
                    .ok_or_else(|| {
                        let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
                        format!("no metric {:?}; this scenario has {names:?}", plan.metric)
                    })?;
                Ok((found.value, found.direction))
            };
            let plan = Plan {
                warmup: plan.warmup && s.warmup > 0,
                ..plan.clone()
            };
            let measured = measure_point(
                &plan,
                &mut measure,
                &|| t0.elapsed(),
                &|| session.interrupted(),
                &mut |i, side, v| on_value(&s.name, &key, i, side, v),
            );
            out.push(match measured {
                Ok(m) => AbResult {
                    scenario: s.name.clone(),
                    point: key,
                    metric: plan.metric.clone(),
                    mode: plan.mode(),
                    verdict: m.verdict,
                    estimate: m.estimate,
                    pairs: m.a.len().min(m.b.len()),
                    stop: m.stop,
                    seconds: t0.elapsed().as_secs_f64(),
                    a: m.a,
                    b: m.b,
                    error: None,
                },
                Err(e) => AbResult::failed(&s.name, &key, &plan, e),
            });
        }
    }
    Ok(out)
}

/// Exit status of an A/B run: 1 on a regression or a failure.
pub fn status(results: &[AbResult]) -> u8 {
    u8::from(
        results
            .iter()
            .any(|r| matches!(r.verdict, Verdict::Regression | Verdict::Failed)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(unpaired: Option<usize>) -> Plan {
        Plan {
            metric: "wall".into(),
            settings: Settings {
                min_pairs: 5,
                max_pairs: 200,
                budget: Duration::from_secs(600),
                threshold: 0.02,
                confidence: 1.0 - 0.05 / 200.0,
                resolution: None,
            },
            unpaired,
            warmup: true,
        }
    }

    /// A deterministic "machine": B is `ratio` × A, times wobble by a
    /// seeded ±`noise`, and every side's n-th value is recorded.
    fn machine(ratio: f64, noise: f64) -> impl FnMut(Side) -> Result<(f64, Direction), String> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        move |side| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            let base = 1.0 + noise * (2.0 * u - 1.0);
            Ok((
                if side == Side::B { base * ratio } else { base },
                Direction::LowerIsBetter,
            ))
        }
    }

    fn go(
        plan: &Plan,
        m: &mut dyn FnMut(Side) -> Result<(f64, Direction), String>,
    ) -> (Measured, Vec<Side>) {
        let mut order = vec![];
        let r = measure_point(plan, m, &|| Duration::ZERO, &|| false, &mut |_, s, _| {
            order.push(s)
        })
        .unwrap();
        (r, order)
    }

    #[test]
    fn a_slowdown_is_a_regression_and_sides_alternate() {
        let (m, order) = go(&plan(None), &mut machine(1.10, 0.01));
        assert_eq!(m.verdict, Verdict::Regression, "{m:?}");
        assert_eq!(m.stop, Some(Stop::Changed));
        assert!(order.windows(2).all(|w| w[0] != w[1]), "{order:?}");
        assert_eq!(m.a.len(), m.b.len());
    }

    #[test]
    fn identical_sides_are_unchanged_and_a_speedup_an_improvement() {
        let (m, _) = go(&plan(None), &mut machine(1.0, 0.005));
        assert_eq!(m.verdict, Verdict::Unchanged, "{m:?}");
        let (m, _) = go(&plan(None), &mut machine(0.85, 0.01));
        assert_eq!(m.verdict, Verdict::Improvement, "{m:?}");
    }

    #[test]
    fn noise_beyond_the_threshold_runs_to_the_cap_and_is_inconclusive() {
        let mut p = plan(None);
        p.settings.max_pairs = 12;
        let (m, _) = go(&p, &mut machine(1.0, 0.5));
        assert_eq!(m.verdict, Verdict::Inconclusive, "{m:?}");
        assert_eq!(m.stop, Some(Stop::MaxPairs));
        assert_eq!(m.a.len(), 12);
    }

    #[test]
    fn the_budget_stops_the_loop() {
        let p = plan(None);
        let r = measure_point(
            &p,
            &mut machine(1.0, 0.5),
            &|| Duration::from_secs(601),
            &|| false,
            &mut |_, _, _| {},
        )
        .unwrap();
        assert_eq!(r.stop, Some(Stop::Budget));
        assert_eq!(r.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn unpaired_runs_all_of_a_then_all_of_b() {
        let (m, order) = go(&plan(Some(6)), &mut machine(1.3, 0.01));
        assert_eq!(order, [[Side::A; 6], [Side::B; 6]].concat());
        assert_eq!(m.verdict, Verdict::Regression);
        assert!(m.estimate.unwrap().low.is_nan());
    }

    #[test]
    fn a_failing_side_fails_the_point_and_an_interruption_is_inconclusive() {
        let mut n = 0;
        let r = measure_point(
            &plan(None),
            &mut |side| {
                n += 1;
                if n > 5 && side == Side::B {
                    Err("B: boom".into())
                } else {
                    Ok((1.0, Direction::LowerIsBetter))
                }
            },
            &|| Duration::ZERO,
            &|| false,
            &mut |_, _, _| {},
        );
        assert_eq!(r, Err("B: boom".to_owned()));
        let r = measure_point(
            &plan(None),
            &mut machine(2.0, 0.0),
            &|| Duration::ZERO,
            &|| true,
            &mut |_, _, _| {},
        )
        .unwrap();
        assert_eq!(
            (r.verdict, r.stop),
            (Verdict::Inconclusive, Some(Stop::Interrupted))
        );
    }
}
