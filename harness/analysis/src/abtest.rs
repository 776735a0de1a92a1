//! Interleaved A/B measurement: both commits measured in the same job,
//! alternately A B A B …, so drift of a shared machine hits both sides
//! alike; the verdict comes from the per-pair ratios, and pairs are added
//! only while the answer is uncertain.
//!
//! The interval is a confidence sequence for the median of the per-pair
//! log ratios (Howard & Ramdas, "Sequential estimation of quantiles with
//! applications to A/B-testing and best-arm identification", Bernoulli
//! 2022): valid at every look at once, so the loop may look after every
//! pair, for as long as the budget allows, at a fixed error rate. The
//! sign-test interval it replaces was valid at one look only; dividing its
//! error rate over a pair cap (Bonferroni) made a larger cap cost width at
//! every look, so the cap stayed at 40 and a 4% slowdown of a 35 ms
//! workload ended `inconclusive` after 3 s of a 60 s budget.
//!
//! Assumptions: the pairs are independent given the past, and each pair's
//! log ratio has the same median (the change); nothing about the shape of
//! the noise, and its spread may change over time (a busier neighbour).
//! Drift that is slow compared with one pair hits A and B alike.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use syncbench_model::Verdict;
use syncbench_model::records::AbRecord;

/// Which commit a repetition measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Side {
    A,
    B,
}

/// The order repetitions run in: A B A B … (never two of one side in a
/// row, so slow drift cannot favour either side).
pub fn order() -> impl Iterator<Item = Side> {
    std::iter::repeat([Side::A, Side::B]).flatten()
}

/// When to stop adding pairs (for every metric of a point).
#[derive(Debug, Clone)]
pub struct Settings {
    pub min_pairs: usize,
    /// An optional cap; the budget is the bound that matters.
    pub max_pairs: Option<usize>,
    pub budget: Duration,
    /// The chance that any interval of the run (over every look and every
    /// metric) misses the true change: 0.05.
    pub alpha: f64,
}

/// The default error rate of an A/B run.
pub const ALPHA: f64 = 0.05;

/// One metric an A/B run decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub metric: String,
    /// Changes smaller than this (relative) do not matter: the interval
    /// inside ±threshold means "unchanged", and a "changed" verdict needs
    /// the whole interval beyond ±threshold/2.
    pub threshold: f64,
    /// For counts whose run-to-run spread is known to be tiny (instruction
    /// counts): the relative resolution of one measurement. See
    /// [`estimate_counts`].
    pub resolution: Option<f64>,
}

/// The relative change B vs A (0.03 = B 3% higher) and its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub change: f64,
    pub low: f64,
    pub high: f64,
}

/// Why the pairs stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The whole interval lies beyond ±threshold/2.
    Changed,
    /// The whole interval lies within ±threshold.
    WithinThreshold,
    MaxPairs,
    Budget,
    Interrupted,
}

impl Stop {
    pub fn describe(self) -> &'static str {
        match self {
            Stop::Changed => "the interval excludes no change",
            Stop::WithinThreshold => "the interval is within the threshold",
            Stop::MaxPairs => "maximum pairs reached",
            Stop::Budget => "time budget used up",
            Stop::Interrupted => "interrupted",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stop::Changed => "changed",
            Stop::WithinThreshold => "within_threshold",
            Stop::MaxPairs => "max_pairs",
            Stop::Budget => "budget",
            Stop::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Stop> {
        [
            Stop::Changed,
            Stop::WithinThreshold,
            Stop::MaxPairs,
            Stop::Budget,
            Stop::Interrupted,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// The tuning of the mixture boundary, in units of intrinsic time (pairs
/// / 4): with 3, the interval is as narrow as the sign test's at a 40-look
/// Bonferroni correction from 20 to 1000 pairs, and first finite at 13
/// pairs (at α = 0.05).
const RHO: f64 = 3.0;

/// How far the count of log ratios below the true median may stray from
/// n/2 at any look, with probability 1 − alpha over all looks: the
/// two-sided normal-mixture boundary for a sub-Gaussian sum of variance
/// n/4 (each indicator is Bernoulli(½), centred in [−½, ½]). It is Ville's
/// inequality applied to the mixture martingale
/// √(ρ/(V+ρ))·exp(S²/(2(V+ρ))), V = n/4.
pub fn boundary(n: usize, alpha: f64) -> f64 {
    let v = n as f64 / 4.0;
    ((v + RHO) * ((v + RHO) / (RHO * alpha * alpha)).ln()).sqrt()
}

/// The median of the per-pair log ratios, exponentiated, with the
/// confidence sequence's interval: the k-th smallest to the k-th largest
/// ratio, k = ⌈n/2 − boundary(n)⌉; unbounded while k < 1 (fewer than 13
/// pairs at α = 0.05), so no decision can come early. Distribution-free:
/// a bootstrap, tried first, gave [min, max] of 5 pairs as a "99%"
/// interval and so a false alarm on identical commits. The median, not the
/// mean: a pair that lands on a slow moment for one side only must not
/// move the verdict.
pub fn estimate(a: &[f64], b: &[f64], alpha: f64) -> Estimate {
    let mut logs = log_ratios(a, b);
    logs.sort_by(f64::total_cmp);
    let n = logs.len();
    if n == 0 {
        return Estimate {
            change: 0.0,
            low: f64::NEG_INFINITY,
            high: f64::INFINITY,
        };
    }
    let point = crate::stats::median(&logs);
    let k = (n as f64 / 2.0 - boundary(n, alpha)).ceil();
    let (low, high) = if k < 1.0 {
        (f64::NEG_INFINITY, f64::INFINITY)
    } else {
        let k = k as usize;
        (logs[k - 1].exp() - 1.0, logs[n - k].exp() - 1.0)
    };
    Estimate {
        change: point.exp() - 1.0,
        low,
        high,
    }
}

/// Each pair's log ratio. A zero on one side is an unbounded ratio (its
/// sign is all the order statistics need), both zero no change: dropping
/// such pairs left a metric at zero without an interval until the budget
/// ran out, and biased the rest.
fn log_ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter(|(x, y)| **x >= 0.0 && **y >= 0.0)
        .map(|(x, y)| match (*x == 0.0, *y == 0.0) {
            (true, true) => 0.0,
            _ => (y / x).ln(),
        })
        .collect()
}

/// The estimate for a near-exact count measured with relative
/// `resolution`: once at least three pairs agree, every log ratio within
/// ±`resolution` of their median, the error is the measurement's, not
/// sampling noise, and the interval is the median ± `resolution`, narrowed
/// as agreeing pairs accumulate (±`resolution`·√(3/n)), so a small true
/// change ends in a verdict rather than at the budget. Pairs that
/// disagree (a run that did extra background work) fall back to the
/// confidence sequence: an outlier costs pairs, never a wrong verdict.
pub fn estimate_counts(a: &[f64], b: &[f64], alpha: f64, resolution: f64) -> Estimate {
    let logs = log_ratios(a, b);
    let median = crate::stats::median(&logs);
    let n = logs.len();
    if n >= COUNT_PAIRS && logs.iter().all(|l| (l - median).abs() <= resolution) {
        let change = median.exp() - 1.0;
        let half = resolution * (COUNT_PAIRS as f64 / n as f64).sqrt();
        return Estimate {
            change,
            low: change - half,
            high: change + half,
        };
    }
    estimate(a, b, alpha)
}

/// Agreeing pairs a count's verdict needs (two can agree by chance).
pub const COUNT_PAIRS: usize = 3;

/// The estimate of `target` from the pairs so far, at error rate `alpha`.
pub fn estimate_target(a: &[f64], b: &[f64], alpha: f64, target: &Target) -> Estimate {
    match target.resolution {
        Some(r) => estimate_counts(a, b, alpha, r),
        None => estimate(a, b, alpha),
    }
}

/// Whether the interval after `pairs` pairs decides `target`.
pub fn decide(est: &Estimate, pairs: usize, s: &Settings, target: &Target) -> Option<Stop> {
    // A count's interval is only finite once its pairs agree (at least
    // three): it may decide before the usual minimum.
    let enough = pairs >= s.min_pairs || (target.resolution.is_some() && pairs >= COUNT_PAIRS);
    let t = target.threshold;
    if !enough {
        None
    } else if est.low > t / 2.0 || est.high < -t / 2.0 {
        Some(Stop::Changed)
    } else if est.low > -t && est.high < t {
        Some(Stop::WithinThreshold)
    } else {
        None
    }
}

/// Whether a limit (cap or budget) ends the run after `pairs` pairs.
pub fn limit(pairs: usize, elapsed: Duration, s: &Settings) -> Option<Stop> {
    if s.max_pairs.is_some_and(|m| pairs >= m) {
        Some(Stop::MaxPairs)
    } else {
        (elapsed >= s.budget).then_some(Stop::Budget)
    }
}

/// The verdict of a stop for a metric where `lower_is_better`.
pub fn verdict(stop: Stop, est: &Estimate, lower_is_better: bool) -> Verdict {
    match stop {
        Stop::Changed if (est.change > 0.0) == lower_is_better => Verdict::Regression,
        Stop::Changed => Verdict::Improvement,
        Stop::WithinThreshold => Verdict::Unchanged,
        _ => Verdict::Inconclusive,
    }
}

/// How the two sides are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A B A B …, judged from the per-pair ratios.
    Interleaved,
    /// N of A, then N of B, judged by Mann-Whitney (for comparison).
    Unpaired,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Interleaved => "interleaved",
            Mode::Unpaired => "unpaired",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::Interleaved, Mode::Unpaired]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// One metric of one point measured A/B.
#[derive(Debug, Clone, Serialize)]
pub struct AbResult {
    pub scenario: String,
    /// B's point (and A's, but where two variants are compared).
    pub point: String,
    /// A's point where it is not B's (another variant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a_point: Option<String>,
    pub metric: String,
    pub mode: Mode,
    /// regression, improvement, unchanged, inconclusive, or failed.
    pub verdict: Verdict,
    pub estimate: Option<Estimate>,
    /// The threshold the verdict was decided at (relative).
    pub threshold: f64,
    pub pairs: usize,
    pub stop: Option<Stop>,
    pub seconds: f64,
    /// Values in measuring order: `a[i]` and `b[i]` are pair i.
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub error: Option<String>,
}

impl AbResult {
    /// As stored, made at `created_unix` (the caller's clock: this crate
    /// reads none).
    pub fn record(
        &self,
        machine: &str,
        a_sha: &str,
        b_sha: &str,
        purpose: &str,
        created_unix: f64,
    ) -> AbRecord {
        let finite = |x: f64| x.is_finite().then_some(x);
        AbRecord {
            id: 0,
            machine: machine.to_owned(),
            scenario: self.scenario.clone(),
            point: self.point.clone(),
            a_point: self.a_point.clone(),
            metric: self.metric.clone(),
            a_sha: a_sha.to_owned(),
            b_sha: b_sha.to_owned(),
            mode: self.mode.as_str().to_owned(),
            verdict: self.verdict,
            change: self.estimate.map(|e| e.change),
            low: self.estimate.and_then(|e| finite(e.low)),
            high: self.estimate.and_then(|e| finite(e.high)),
            threshold: self.threshold,
            pairs: self.pairs as i64,
            stop: self.stop.map(|s| s.as_str().to_owned()),
            seconds: self.seconds,
            a: self.a.clone(),
            b: self.b.clone(),
            error: self.error.clone(),
            purpose: purpose.to_owned(),
            created_unix,
        }
    }
}

impl AbResult {
    /// A stored A/B run read back (its interval unbounded where none was
    /// stored).
    pub fn from_record(r: &AbRecord) -> AbResult {
        AbResult {
            scenario: r.scenario.clone(),
            point: r.point.clone(),
            a_point: r.a_point.clone(),
            metric: r.metric.clone(),
            mode: Mode::parse(&r.mode).unwrap_or(Mode::Interleaved),
            verdict: r.verdict,
            estimate: r.change.map(|change| Estimate {
                change,
                low: r.low.unwrap_or(f64::NEG_INFINITY),
                high: r.high.unwrap_or(f64::INFINITY),
            }),
            threshold: r.threshold,
            pairs: r.pairs as usize,
            stop: r.stop.as_deref().and_then(Stop::parse),
            seconds: r.seconds,
            a: r.a.clone(),
            b: r.b.clone(),
            error: r.error.clone(),
        }
    }
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

    fn settings() -> Settings {
        Settings {
            min_pairs: 5,
            max_pairs: Some(30),
            budget: Duration::from_secs(60),
            alpha: 0.05,
        }
    }

    fn target(threshold: f64, resolution: Option<f64>) -> Target {
        Target {
            metric: "wall".into(),
            threshold,
            resolution,
        }
    }

    /// Seeded uniform numbers in [0, 1).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed | 1;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn agreeing_counts_decide_in_three_pairs_and_an_outlier_costs_pairs() {
        let t = target(0.005, Some(0.003));
        let s = settings();
        let a = [548.1e6, 548.3e6, 549.0e6];
        let plus1: Vec<f64> = a.iter().map(|x| x * 1.01).collect();
        let e = estimate_counts(&a, &plus1, 0.05, 0.003);
        assert!((e.change - 0.01).abs() < 1e-9, "{e:?}");
        let stop = decide(&e, 3, &s, &t).unwrap();
        assert_eq!(verdict(stop, &e, true), Verdict::Regression);
        // The same commit twice: unchanged in three pairs.
        let same = [548.2e6, 548.9e6, 548.6e6];
        let e = estimate_counts(&a, &same, 0.05, 0.003);
        assert_eq!(decide(&e, 3, &s, &t), Some(Stop::WithinThreshold));
        // A run with 2% of background work: no agreement, no verdict yet.
        let outlier = [548.1e6 * 1.023, 548.3e6, 549.0e6];
        let e = estimate_counts(&a, &outlier, 0.05, 0.003);
        assert!(e.low.is_infinite(), "{e:?}");
        assert_eq!(decide(&e, 3, &s, &t), None);
        // Two pairs never decide.
        let e = estimate_counts(&a[..2], &plus1[..2], 0.05, 0.003);
        assert_eq!(decide(&e, 2, &s, &t), None);
        // A small change is decided once enough agreeing pairs narrow it.
        let a12 = [548.0e6; 12];
        let small: Vec<f64> = a12.iter().map(|x| x * 1.0045).collect();
        let e = estimate_counts(&a12[..3], &small[..3], 0.05, 0.003);
        assert_eq!(decide(&e, 3, &s, &t), None, "{e:?}");
        let e = estimate_counts(&a12, &small, 0.05, 0.003);
        assert_eq!(decide(&e, 12, &s, &t), Some(Stop::Changed), "{e:?}");
    }

    #[test]
    fn the_order_alternates_and_never_repeats_a_side() {
        let o: Vec<Side> = order().take(8).collect();
        assert_eq!(o.iter().filter(|s| **s == Side::A).count(), 4);
        assert_eq!(o[0], Side::A);
        assert!(o.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn a_clear_slowdown_is_found_and_sameness_is_found_unchanged() {
        let a: Vec<f64> = (0..20).map(|i| 1.0 + 0.002 * (i % 3) as f64).collect();
        let slower: Vec<f64> = a.iter().map(|x| x * 1.05).collect();
        let e = estimate(&a, &slower, 0.05);
        assert!((e.change - 0.05).abs() < 1e-9 && e.low > 0.04, "{e:?}");
        // Too few pairs for the error rate asked: no interval, no verdict.
        let e10 = estimate(&a[..10], &slower[..10], 0.05);
        assert!(e10.low.is_infinite() && e10.high.is_infinite(), "{e10:?}");
        assert_eq!(decide(&e10, 10, &settings(), &target(0.02, None)), None);
        let stop = decide(&e, 20, &settings(), &target(0.02, None)).unwrap();
        assert_eq!(verdict(stop, &e, true), Verdict::Regression);
        let e = estimate(&a, &a, 0.05);
        let stop = decide(&e, 20, &settings(), &target(0.02, None)).unwrap();
        assert_eq!(verdict(stop, &e, true), Verdict::Unchanged);
        // Higher is better: the same move is an improvement.
        let e = estimate(&a, &slower, 0.05);
        assert_eq!(verdict(Stop::Changed, &e, false), Verdict::Improvement);
    }

    #[test]
    fn the_interval_is_the_order_statistics_the_boundary_allows() {
        // n = 40: boundary ≈ 9.85, so k = ⌈20 − 9.85⌉ = 11: the 11th
        // smallest to the 11th largest ratio.
        assert_eq!((20.0 - boundary(40, 0.05)).ceil(), 11.0);
        let a = vec![1.0; 40];
        let b: Vec<f64> = (1..=40).map(|i| 1.0 + i as f64 / 1000.0).collect();
        let e = estimate(&a, &b, 0.05);
        assert!(
            (e.low - 0.011).abs() < 1e-9 && (e.high - 0.030).abs() < 1e-9,
            "{e:?}"
        );
        // First finite at 13 pairs.
        assert!(estimate(&a[..12], &b[..12], 0.05).low.is_infinite());
        assert!(estimate(&a[..13], &b[..13], 0.05).low.is_finite());
    }

    /// The point of the method: looking after every pair of 300, an
    /// interval excludes the true change in at most α of runs; the
    /// sign test's fixed 95% interval, looked at every 5 pairs from 10,
    /// fails in far more. Heavy-tailed noise (a slow pair now and then), seeded.
    #[test]
    fn looking_after_every_pair_keeps_the_error_rate() {
        let runs = 400;
        let (mut sequence_misses, mut fixed_misses) = (0, 0);
        for run in 0..runs {
            let mut u = uniform(0x9e37_79b9 + run);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let (mut missed, mut fixed_missed) = (false, false);
            for n in 1..=300 {
                let mut noise = || {
                    let x = u();
                    let tail = if u() < 0.05 { 1.5 } else { 0.0 };
                    1.0 + 0.03 * x + tail
                };
                a.push(noise());
                b.push(noise());
                let e = estimate(&a, &b, 0.05);
                missed |= e.low > 0.0 || e.high < 0.0;
                if n >= 10 && n % 5 == 0 {
                    fixed_missed |= fixed_95(&a, &b);
                }
            }
            sequence_misses += usize::from(missed);
            fixed_misses += usize::from(fixed_missed);
        }
        let rate = sequence_misses as f64 / runs as f64;
        assert!(rate <= 0.05, "confidence sequence missed in {rate}");
        assert!(
            fixed_misses as f64 / runs as f64 > 0.15,
            "the fixed interval missed in only {fixed_misses}/{runs}"
        );
    }

    /// Whether the one-look 95% sign-test interval excludes 0.
    fn fixed_95(a: &[f64], b: &[f64]) -> bool {
        let mut logs = log_ratios(a, b);
        logs.sort_by(f64::total_cmp);
        let n = logs.len();
        let k = ((n as f64 - 1.96 * (n as f64).sqrt()) / 2.0).floor() as usize;
        k >= 1 && (logs[k - 1] > 0.0 || logs[n - k] < 0.0)
    }

    #[test]
    fn zeros_are_unbounded_ratios_not_dropped_pairs() {
        // A side at zero (a short process's system time): still decides.
        let a = vec![0.0; 20];
        let b = vec![0.0003; 20];
        let e = estimate(&a, &b, 0.05);
        assert!(e.low.is_infinite() && e.low > 0.0, "{e:?}");
        let both = estimate(&a, &a, 0.05);
        assert_eq!((both.low, both.high), (0.0, 0.0), "{both:?}");
    }

    #[test]
    fn one_wild_pair_does_not_decide() {
        let a = vec![1.0; 19];
        let mut b = vec![1.0; 19];
        b[4] = 2.0;
        let e = estimate(&a, &b, 0.05);
        assert_eq!(e.change, 0.0);
    }

    #[test]
    fn noise_keeps_going_until_a_limit_and_says_inconclusive() {
        let a: Vec<f64> = (0..20)
            .map(|i| if i % 2 == 0 { 1.0 } else { 1.3 })
            .collect();
        let b: Vec<f64> = (0..20)
            .map(|i| if i % 3 == 0 { 1.3 } else { 1.0 })
            .collect();
        let e = estimate(&a, &b, 0.05);
        let (s, t) = (settings(), target(0.02, None));
        assert_eq!(decide(&e, 3, &s, &t), None, "below the minimum");
        assert_eq!(decide(&e, 20, &s, &t), None, "{e:?}");
        assert_eq!(limit(20, Duration::ZERO, &s), None);
        assert_eq!(limit(30, Duration::ZERO, &s), Some(Stop::MaxPairs));
        assert_eq!(limit(6, Duration::from_secs(61), &s), Some(Stop::Budget));
        let uncapped = Settings {
            max_pairs: None,
            ..settings()
        };
        assert_eq!(limit(100_000, Duration::ZERO, &uncapped), None);
        assert_eq!(verdict(Stop::Budget, &e, true), Verdict::Inconclusive);
    }

    #[test]
    fn stops_read_back_as_written() {
        for s in [
            Stop::Changed,
            Stop::WithinThreshold,
            Stop::MaxPairs,
            Stop::Budget,
            Stop::Interrupted,
        ] {
            assert_eq!(Stop::parse(s.as_str()), Some(s));
        }
    }
}
