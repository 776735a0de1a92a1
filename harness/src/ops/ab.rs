//! Interleaved A/B runs (`compare --run`, `check --run`): both commits
//! built in worktrees and target dirs of their own (two builds of the
//! same binaries must not overwrite each other), then each point measured
//! A B A B … in this job. The loop is over a measure-one-side closure, so
//! its decisions are tested without processes; the statistics are in
//! `abtest`.

use crate::abtest::{self, Estimate, Settings, Side, Stop, Target};
pub use crate::abtest::{AbResult, Mode, status};
use crate::checkout::Checkout;
use crate::model::is_instruction_metric;
use crate::model::{Direction, MetricValue, Verdict};
use crate::ops::session::Session;
use crate::runner::Runner;
use crate::scenario::{Kind, Point, Scenario, Variant};
use crate::stats;
use crate::store::StoreError;
use std::path::Path;
use std::time::Duration;

/// What to measure and when to stop.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The metrics that decide (one for `compare --run`; every metric
    /// with a change point at the commit for `confirm`). The error rate is
    /// shared among them.
    pub targets: Vec<Target>,
    pub settings: Settings,
    /// `Some(n)`: the unpaired way, n repetitions of each side.
    pub unpaired: Option<usize>,
    /// One pair, not counted, before the measured ones.
    pub warmup: bool,
}

impl Plan {
    pub fn mode(&self) -> Mode {
        if self.unpaired.is_some() {
            Mode::Unpaired
        } else {
            Mode::Interleaved
        }
    }

    /// Whether any target is an instruction count (the runs go under
    /// valgrind where the kernel has no counters).
    fn counts_instructions(&self) -> bool {
        self.targets
            .iter()
            .any(|t| is_instruction_metric(&t.metric))
    }
}

/// Every target of `plan` failed at one point, with `error`.
fn failed(scenario: &str, point: &str, plan: &Plan, error: String) -> Vec<AbResult> {
    plan.targets
        .iter()
        .map(|t| AbResult {
            scenario: scenario.to_owned(),
            point: point.to_owned(),
            a_point: None,
            metric: t.metric.clone(),
            mode: plan.mode(),
            verdict: Verdict::Failed,
            estimate: None,
            threshold: t.threshold,
            pairs: 0,
            stop: None,
            seconds: 0.0,
            a: Vec::new(),
            b: Vec::new(),
            error: Some(error.clone()),
        })
        .collect()
}

/// What the measuring loop saw of one metric of a point.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub metric: String,
    pub verdict: Verdict,
    pub estimate: Option<Estimate>,
    pub stop: Option<Stop>,
    /// Seconds into the point when this metric was decided.
    pub seconds: f64,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
}

/// Measures one point by `plan`: `measure(side)` gives one repetition's
/// metrics; `elapsed()` the time spent on the point; `on_value(i, side,
/// value)` sees the first target's values as they come. Each target
/// stops on its own (its values end at its verdict); the point ends once
/// all have, or at a limit.
pub fn measure_point(
    plan: &Plan,
    measure: &mut dyn FnMut(Side) -> Result<Vec<MetricValue>, String>,
    elapsed: &dyn Fn() -> Duration,
    interrupted: &dyn Fn() -> bool,
    on_value: &mut dyn FnMut(usize, Side, f64),
) -> Result<Vec<Measured>, String> {
    let k = plan.targets.len();
    // The error rate is shared among the targets (Bonferroni over a few
    // metrics; over the looks there is nothing to share, see `abtest`).
    let alpha = plan.settings.alpha / k.max(1) as f64;
    let mut direction = vec![Direction::LowerIsBetter; k];
    let mut values = vec![[Vec::new(), Vec::new()]; k];
    let mut stops: Vec<Option<(Stop, f64)>> = vec![None; k];
    let mut estimates: Vec<Option<Estimate>> = vec![None; k];
    // Warm-up: one of each, not counted (caches, page cache, CPU
    // frequency), in the same alternation.
    if plan.warmup {
        measure(Side::A)?;
        measure(Side::B)?;
    }
    let sequence: Box<dyn Iterator<Item = Side>> = match plan.unpaired {
        Some(n) => Box::new(std::iter::repeat_n(Side::A, n).chain(std::iter::repeat_n(Side::B, n))),
        None => Box::new(abtest::order()),
    };
    let mut pairs = 0;
    for (i, side) in sequence.enumerate() {
        if interrupted() {
            let now = elapsed().as_secs_f64();
            stops
                .iter_mut()
                .filter(|s| s.is_none())
                .for_each(|s| *s = Some((Stop::Interrupted, now)));
            break;
        }
        let got = measure(side)?;
        for (t, target) in plan.targets.iter().enumerate() {
            if stops[t].is_some() {
                continue;
            }
            let m = got
                .iter()
                .find(|m| m.name == target.metric)
                .ok_or_else(|| {
                    let names: Vec<&str> = got.iter().map(|m| m.name.as_str()).collect();
                    format!("no metric {:?}; this scenario has {names:?}", target.metric)
                })?;
            direction[t] = m.direction;
            values[t][side as usize].push(m.value);
            if t == 0 {
                on_value(i, side, m.value);
            }
        }
        if plan.unpaired.is_some() || side == Side::A {
            continue;
        }
        pairs += 1;
        let now = elapsed();
        for (t, target) in plan.targets.iter().enumerate() {
            if stops[t].is_some() {
                continue;
            }
            let e = abtest::estimate_target(&values[t][0], &values[t][1], alpha, target);
            estimates[t] = Some(e);
            if let Some(why) = abtest::decide(&e, pairs, &plan.settings, target) {
                stops[t] = Some((why, now.as_secs_f64()));
            }
        }
        if stops.iter().all(Option::is_some) {
            break;
        }
        if let Some(why) = abtest::limit(pairs, now, &plan.settings) {
            stops
                .iter_mut()
                .filter(|s| s.is_none())
                .for_each(|s| *s = Some((why, now.as_secs_f64())));
            break;
        }
    }
    let end = elapsed().as_secs_f64();
    let out = plan
        .targets
        .iter()
        .enumerate()
        .map(|(t, target)| {
            let values = std::mem::take(&mut values[t]);
            conclude(
                plan,
                target,
                direction[t],
                values,
                stops[t],
                estimates[t],
                end,
            )
        })
        .collect();
    Ok(out)
}

/// One target's result: its verdict from the sequence's last estimate
/// where it stopped (`end` if it never did), or, measured unpaired, from
/// the two samples compared; an interrupted one is inconclusive.
fn conclude(
    plan: &Plan,
    target: &Target,
    direction: Direction,
    [a, b]: [Vec<f64>; 2],
    stop: Option<(Stop, f64)>,
    mut estimate: Option<Estimate>,
    end: f64,
) -> Measured {
    let lower_is_better = direction == Direction::LowerIsBetter;
    let (stop, seconds) = match stop {
        Some((s, at)) => (Some(s), at),
        None => (None, end),
    };
    let verdict = match (plan.unpaired, stop) {
        (_, Some(Stop::Interrupted)) => Verdict::Inconclusive,
        (Some(_), _) => {
            let c = stats::compare(&a, &b, target.threshold);
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
    Measured {
        metric: target.metric.clone(),
        verdict,
        estimate,
        stop,
        seconds,
        a,
        b,
    }
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
        let runner = session.runner_at(checkout.dir.clone(), cache.join(format!("target-{name}")));
        Ok(AbSide {
            label,
            sha: sha.to_owned(),
            _checkout: checkout,
            runner,
        })
    };
    Ok([side("A", "a", a_sha)?, side("B", "b", b_sha)?])
}

/// Builds `variant` of `scenario` on both sides; the first failure, described.
pub fn build(sides: &[AbSide; 2], scenario: &Scenario, variant: &Variant) -> Result<(), String> {
    build_each(sides, scenario, [variant, variant])
}

/// Builds A's variant on side A and B's on side B; the first failure,
/// described.
fn build_each(
    sides: &[AbSide; 2],
    scenario: &Scenario,
    variants: [&Variant; 2],
) -> Result<(), String> {
    match sides.iter().zip(variants).find_map(|(side, variant)| {
        side.runner
            .build(scenario, variant)
            .err()
            .map(|f| (side, format!("variant {}: {}", variant.name, f.message)))
    }) {
        None => Ok(()),
        Some((side, message)) => Err(format!(
            "{} ({}) failed to build: {message}",
            side.label,
            &side.sha[..12]
        )),
    }
}

/// Measures one point of a built scenario A/B by `plan`.
pub fn measure(
    session: &Session,
    sides: &[AbSide; 2],
    s: &Scenario,
    point: &Point,
    plan: &Plan,
    on_value: &mut dyn FnMut(usize, Side, f64),
) -> Vec<AbResult> {
    measure_pair(session, sides, s, [point, point], plan, on_value)
}

/// Measures A's point against B's (one point, or one point on two
/// variants) by `plan`; the results are B's point's, with A's where it
/// differs.
pub fn measure_pair(
    session: &Session,
    sides: &[AbSide; 2],
    s: &Scenario,
    points: [&Point; 2],
    plan: &Plan,
    on_value: &mut dyn FnMut(usize, Side, f64),
) -> Vec<AbResult> {
    let key = points[1].key();
    let a_point = (points[0] != points[1]).then(|| points[0].key());
    let t0 = std::time::Instant::now();
    let instructions = plan.counts_instructions();
    let mut measure = |side: Side| -> Result<Vec<MetricValue>, String> {
        sides[side as usize]
            .runner
            .measure_once(s, points[side as usize], instructions)
            .map_err(|f| format!("{side:?}: {}", f.message))
    };
    let plan = Plan {
        warmup: plan.warmup && s.warmup > 0,
        ..plan.clone()
    };
    match measure_point(
        &plan,
        &mut measure,
        &|| t0.elapsed(),
        &|| session.interrupted(),
        on_value,
    ) {
        Ok(all) => all
            .into_iter()
            .zip(&plan.targets)
            .map(|(m, target)| AbResult {
                scenario: s.name.clone(),
                point: key.clone(),
                a_point: a_point.clone(),
                metric: m.metric,
                mode: plan.mode(),
                verdict: m.verdict,
                estimate: m.estimate,
                threshold: target.threshold,
                pairs: m.a.len().min(m.b.len()),
                stop: m.stop,
                seconds: m.seconds,
                a: m.a,
                b: m.b,
                error: None,
            })
            .collect(),
        Err(e) => failed(&s.name, &key, &plan, e)
            .into_iter()
            .map(|r| AbResult {
                a_point: a_point.clone(),
                ..r
            })
            .collect(),
    }
}

/// Builds both commits and measures every point of `scenarios` A/B; with
/// `variants` (A's and B's), each point of the scenarios that declare
/// both on A's variant against B's (at one commit: two configurations
/// compared). `on_value(scenario, point, i, side, value)` sees every value.
pub fn run(
    session: &Session,
    root: &Path,
    shas: (&str, &str),
    scenarios: &[Scenario],
    (plan, variants): (&Plan, Option<[&str; 2]>),
    on_value: &mut dyn FnMut(&str, &str, usize, Side, f64),
) -> anyhow::Result<Vec<AbResult>> {
    let sides = sides(session, root, shas)?;
    let mut out = Vec::new();
    for s in scenarios {
        if matches!(s.kind, Kind::Criterion { .. }) {
            tracing::warn!("{}: criterion scenarios are not run A/B; skipped", s.name);
            continue;
        }
        if let Some(names) = variants {
            run_variants(session, &sides, s, (plan, names), on_value, &mut out);
            continue;
        }
        let filter = session.settings.filter.as_deref();
        let points: Vec<&Point> = s
            .points
            .iter()
            .filter(|p| filter.is_none_or(|f| p.key().contains(f)))
            .collect();
        for variant in &s.variants {
            let mine: Vec<&Point> = points
                .iter()
                .copied()
                .filter(|p| s.variant_of(p).name == variant.name)
                .collect();
            if mine.is_empty() {
                continue;
            }
            if let Err(e) = build(&sides, s, variant) {
                tracing::warn!("{} ({}): {e}", s.name, variant.name);
                for p in mine {
                    out.extend(failed(&s.name, &p.key(), plan, e.clone()));
                }
                continue;
            }
            for point in mine {
                let key = point.key();
                out.extend(measure(
                    session,
                    &sides,
                    s,
                    point,
                    plan,
                    &mut |i, side, v| on_value(&s.name, &key, i, side, v),
                ));
            }
        }
    }
    Ok(out)
}

/// Every point of `s` on variant `names[0]` (side A) against the same
/// point on `names[1]` (side B); a scenario without both is skipped.
fn run_variants(
    session: &Session,
    sides: &[AbSide; 2],
    s: &Scenario,
    (plan, names): (&Plan, [&str; 2]),
    on_value: &mut dyn FnMut(&str, &str, usize, Side, f64),
    out: &mut Vec<AbResult>,
) {
    let (Some(va), Some(vb)) = (s.variant_named(names[0]), s.variant_named(names[1])) else {
        tracing::warn!(
            "{}: has no variant {} or {}; skipped",
            s.name,
            names[0],
            names[1]
        );
        return;
    };
    let filter = session.settings.filter.as_deref();
    let pairs: Vec<[Point; 2]> = s
        .points
        .iter()
        .filter(|p| p.variant().is_none())
        .map(|p| [p.with_variant(va), p.with_variant(vb)])
        .filter(|[a, b]| filter.is_none_or(|f| a.key().contains(f) || b.key().contains(f)))
        .collect();
    if pairs.is_empty() {
        return;
    }
    if let Err(e) = build_each(sides, s, [va, vb]) {
        tracing::warn!("{}: {e}", s.name);
        for [a, b] in &pairs {
            out.extend(
                failed(&s.name, &b.key(), plan, e.clone())
                    .into_iter()
                    .map(|r| AbResult {
                        a_point: Some(a.key()),
                        ..r
                    }),
            );
        }
        return;
    }
    for [a, b] in &pairs {
        let key = b.key();
        out.extend(measure_pair(
            session,
            sides,
            s,
            [a, b],
            plan,
            &mut |i, side, v| on_value(&s.name, &key, i, side, v),
        ));
    }
}

/// Stores A/B results, failures too (a build that failed is evidence).
pub fn record(
    session: &mut Session,
    a_sha: &str,
    b_sha: &str,
    results: &[AbResult],
    purpose: &str,
) -> Result<Vec<i64>, StoreError> {
    let machine = session.machine().fingerprint();
    let mut ids = Vec::new();
    for r in results {
        ids.push(session.store.record_ab(&r.record(
            &machine,
            a_sha,
            b_sha,
            purpose,
            crate::model::unix_now(),
        ))?);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Unit;

    fn target(metric: &str) -> Target {
        Target {
            metric: metric.into(),
            threshold: 0.02,
            resolution: None,
        }
    }

    fn plan(unpaired: Option<usize>) -> Plan {
        Plan {
            targets: vec![target("wall")],
            settings: Settings {
                min_pairs: 5,
                max_pairs: None,
                budget: Duration::from_secs(600),
                alpha: 0.05,
            },
            unpaired,
            warmup: true,
        }
    }

    fn value(name: &str, value: f64) -> MetricValue {
        MetricValue {
            name: name.into(),
            unit: Unit::Seconds,
            direction: Direction::LowerIsBetter,
            value,
        }
    }

    /// A deterministic "machine": B's wall is `ratio` × A's, its cpu
    /// `cpu_ratio` × A's, both wobble by a seeded ±`noise`.
    fn machine(
        ratio: f64,
        cpu_ratio: f64,
        noise: f64,
    ) -> impl FnMut(Side) -> Result<Vec<MetricValue>, String> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut u = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        move |side| {
            let b = side == Side::B;
            let wall = (1.0 + noise * (2.0 * u() - 1.0)) * if b { ratio } else { 1.0 };
            let cpu = (1.0 + noise * (2.0 * u() - 1.0)) * if b { cpu_ratio } else { 1.0 };
            Ok(vec![value("wall", wall), value("cpu_user", cpu)])
        }
    }

    fn go(
        plan: &Plan,
        m: &mut dyn FnMut(Side) -> Result<Vec<MetricValue>, String>,
    ) -> (Vec<Measured>, Vec<Side>) {
        let mut order = vec![];
        let r = measure_point(plan, m, &|| Duration::ZERO, &|| false, &mut |_, s, _| {
            order.push(s)
        })
        .unwrap();
        (r, order)
    }

    #[test]
    fn a_slowdown_is_a_regression_and_sides_alternate() {
        let (m, order) = go(&plan(None), &mut machine(1.10, 1.0, 0.01));
        assert_eq!(m[0].verdict, Verdict::Regression, "{m:?}");
        assert_eq!(m[0].stop, Some(Stop::Changed));
        assert!(order.windows(2).all(|w| w[0] != w[1]), "{order:?}");
        assert_eq!(m[0].a.len(), m[0].b.len());
    }

    #[test]
    fn identical_sides_are_unchanged_and_a_speedup_an_improvement() {
        let (m, _) = go(&plan(None), &mut machine(1.0, 1.0, 0.005));
        assert_eq!(m[0].verdict, Verdict::Unchanged, "{m:?}");
        let (m, _) = go(&plan(None), &mut machine(0.85, 1.0, 0.01));
        assert_eq!(m[0].verdict, Verdict::Improvement, "{m:?}");
    }

    #[test]
    fn a_small_step_in_wide_noise_is_found_beyond_the_old_cap() {
        // 3% in ±10% noise: more pairs than the old cap of 40 allowed.
        let mut p = plan(None);
        p.targets[0].threshold = 0.02;
        let (m, _) = go(&p, &mut machine(1.03, 1.0, 0.10));
        assert_eq!(m[0].verdict, Verdict::Regression, "{m:?}");
        assert!(m[0].a.len() > 40, "{} pairs", m[0].a.len());
    }

    #[test]
    fn each_metric_stops_on_its_own_and_the_point_when_all_have() {
        let mut p = plan(None);
        p.targets.push(target("cpu_user"));
        // The wall time moves 20% (decided early), the CPU time 3% in
        // wider noise (decided later).
        let (m, _) = go(&p, &mut machine(1.20, 1.03, 0.04));
        assert_eq!(m[0].verdict, Verdict::Regression, "{m:?}");
        assert_eq!(m[1].verdict, Verdict::Regression, "{m:?}");
        assert!(m[0].a.len() < m[1].a.len(), "{m:?}");
        // A metric the scenario does not have fails the point, naming
        // those it has.
        p.targets.push(target("nope"));
        let e = measure_point(
            &p,
            &mut machine(1.0, 1.0, 0.0),
            &|| Duration::ZERO,
            &|| false,
            &mut |_, _, _| {},
        )
        .unwrap_err();
        assert!(e.contains("\"nope\"") && e.contains("cpu_user"), "{e}");
    }

    #[test]
    fn noise_beyond_the_threshold_runs_to_the_cap_and_is_inconclusive() {
        let mut p = plan(None);
        p.settings.max_pairs = Some(12);
        let (m, _) = go(&p, &mut machine(1.0, 1.0, 0.5));
        assert_eq!(m[0].verdict, Verdict::Inconclusive, "{m:?}");
        assert_eq!(m[0].stop, Some(Stop::MaxPairs));
        assert_eq!(m[0].a.len(), 12);
    }

    #[test]
    fn the_budget_stops_the_loop() {
        let p = plan(None);
        let r = measure_point(
            &p,
            &mut machine(1.0, 1.0, 0.5),
            &|| Duration::from_secs(601),
            &|| false,
            &mut |_, _, _| {},
        )
        .unwrap();
        assert_eq!(r[0].stop, Some(Stop::Budget));
        assert_eq!(r[0].verdict, Verdict::Inconclusive);
    }

    #[test]
    fn unpaired_runs_all_of_a_then_all_of_b() {
        let (m, order) = go(&plan(Some(6)), &mut machine(1.3, 1.0, 0.01));
        assert_eq!(order, [[Side::A; 6], [Side::B; 6]].concat());
        assert_eq!(m[0].verdict, Verdict::Regression);
        assert!(m[0].estimate.unwrap().low.is_nan());
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
                    Ok(vec![value("wall", 1.0)])
                }
            },
            &|| Duration::ZERO,
            &|| false,
            &mut |_, _, _| {},
        );
        assert_eq!(r, Err("B: boom".to_owned()));
        let r = measure_point(
            &plan(None),
            &mut machine(2.0, 1.0, 0.0),
            &|| Duration::ZERO,
            &|| true,
            &mut |_, _, _| {},
        )
        .unwrap();
        assert_eq!(
            (r[0].verdict, r[0].stop),
            (Verdict::Inconclusive, Some(Stop::Interrupted))
        );
    }
}
