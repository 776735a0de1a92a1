//! Interleaved A/B measurement: both commits measured in the same job,
//! alternately A B A B …, so drift of a shared machine hits both sides
//! alike; the verdict comes from the per-pair ratios, and pairs are added
//! only while the answer is uncertain.

use crate::model::Verdict;
use serde::Serialize;
use std::time::Duration;

/// Which commit a repetition measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Side {
    A,
    B,
}

/// The order repetitions run in: A B A B … (never two of one side in a
/// row, so slow drift cannot favour either side).
pub fn order(pairs: usize) -> impl Iterator<Item = Side> {
    (0..pairs).flat_map(|_| [Side::A, Side::B])
}

/// When to stop adding pairs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub min_pairs: usize,
    pub max_pairs: usize,
    pub budget: Duration,
    /// Changes smaller than this (relative) do not matter: the interval
    /// inside ±threshold means "unchanged", and a "changed" verdict needs
    /// the whole interval beyond ±threshold/2.
    pub threshold: f64,
    /// Of the interval at each look (0.95 = 95%). Looking after every
    /// pair is many tests: callers divide their error rate by the number
    /// of looks (Bonferroni), e.g. 1 − 0.05/40.
    pub confidence: f64,
    /// For counts whose run-to-run spread is known to be tiny (instruction
    /// counts): the relative resolution of one measurement. See
    /// [`estimate_counts`].
    pub resolution: Option<f64>,
}

/// The relative change B vs A (0.03 = B 3% higher) and its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub change: f64,
    pub low: f64,
    pub high: f64,
}

/// Why the pairs stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

/// The median of the per-pair log ratios, exponentiated, with the
/// distribution-free interval of a median from order statistics (the
/// sign test's): the k-th smallest to the k-th largest ratio, k the
/// largest with P(Binomial(n, ½) < k) ≤ (1 − confidence)/2. Exact for any
/// distribution of the noise, and unbounded while there are too few pairs
/// for the confidence asked (e.g. fewer than 11 at 99.9%), so no decision
/// can come early. A bootstrap, tried first, gave [min, max] of 5 pairs as
/// a "99%" interval and so a false alarm on identical commits. The median,
/// not the mean: a pair that lands on a slow moment for one side only must
/// not move the verdict.
pub fn estimate(a: &[f64], b: &[f64], confidence: f64) -> Estimate {
    let mut logs: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **x > 0.0 && **y > 0.0)
        .map(|(x, y)| (y / x).ln())
        .collect();
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
    // P(Binomial(n, 1/2) <= j) for j = 0.. until it passes the tail.
    let tail = (1.0 - confidence) / 2.0;
    let mut k = 0;
    let mut cdf = 0.0;
    let mut pmf = 0.5f64.powi(n as i32);
    for j in 0..n {
        cdf += pmf;
        if cdf > tail {
            break;
        }
        k = j + 1;
        pmf *= (n - j) as f64 / (j + 1) as f64;
    }
    let (low, high) = if k == 0 {
        (f64::NEG_INFINITY, f64::INFINITY)
    } else {
        (logs[k - 1].exp() - 1.0, logs[n - k].exp() - 1.0)
    };
    Estimate {
        change: point.exp() - 1.0,
        low,
        high,
    }
}

/// The estimate for a near-exact count measured with relative
/// `resolution`: once at least three pairs agree, every log ratio within
/// ±`resolution` of their median, the error is the measurement's, not
/// sampling noise, and the interval is the median ± `resolution`, narrowed
/// as agreeing pairs accumulate (±`resolution`·√(3/n)), so a small true
/// change ends in a verdict rather than at the pair limit. Pairs that
/// disagree (a run that did extra background work) fall back to the sign
/// test's interval: an outlier costs pairs, never a wrong verdict.
pub fn estimate_counts(a: &[f64], b: &[f64], confidence: f64, resolution: f64) -> Estimate {
    let logs: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **x > 0.0 && **y > 0.0)
        .map(|(x, y)| (y / x).ln())
        .collect();
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
    estimate(a, b, confidence)
}

/// Agreeing pairs a count's verdict needs (two can agree by chance).
pub const COUNT_PAIRS: usize = 3;

/// Whether to stop after `pairs` pairs, and why.
pub fn decide(est: &Estimate, pairs: usize, elapsed: Duration, s: &Settings) -> Option<Stop> {
    // A count's interval is only finite once its pairs agree (at least
    // three): it may decide before the usual minimum.
    let enough = pairs >= s.min_pairs || (s.resolution.is_some() && pairs >= COUNT_PAIRS);
    if enough {
        if est.low > s.threshold / 2.0 || est.high < -s.threshold / 2.0 {
            return Some(Stop::Changed);
        }
        if est.low > -s.threshold && est.high < s.threshold {
            return Some(Stop::WithinThreshold);
        }
    }
    if pairs >= s.max_pairs {
        return Some(Stop::MaxPairs);
    }
    (elapsed >= s.budget).then_some(Stop::Budget)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            min_pairs: 5,
            max_pairs: 30,
            budget: Duration::from_secs(60),
            threshold: 0.02,
            confidence: 0.95,
            resolution: None,
        }
    }

    #[test]
    fn agreeing_counts_decide_in_three_pairs_and_an_outlier_costs_pairs() {
        let s = Settings {
            threshold: 0.005,
            resolution: Some(0.003),
            ..settings()
        };
        let a = [548.1e6, 548.3e6, 549.0e6];
        let plus1: Vec<f64> = a.iter().map(|x| x * 1.01).collect();
        let e = estimate_counts(&a, &plus1, 0.95, 0.003);
        assert!((e.change - 0.01).abs() < 1e-9, "{e:?}");
        let stop = decide(&e, 3, Duration::ZERO, &s).unwrap();
        assert_eq!(verdict(stop, &e, true), Verdict::Regression);
        // The same commit twice: unchanged in three pairs.
        let same = [548.2e6, 548.9e6, 548.6e6];
        let e = estimate_counts(&a, &same, 0.95, 0.003);
        assert_eq!(
            decide(&e, 3, Duration::ZERO, &s),
            Some(Stop::WithinThreshold)
        );
        // A run with 2% of background work: no agreement, no verdict yet.
        let outlier = [548.1e6 * 1.023, 548.3e6, 549.0e6];
        let e = estimate_counts(&a, &outlier, 0.95, 0.003);
        assert!(e.low.is_infinite(), "{e:?}");
        assert_eq!(decide(&e, 3, Duration::ZERO, &s), None);
        // Two pairs never decide.
        let e = estimate_counts(&a[..2], &plus1[..2], 0.95, 0.003);
        assert_eq!(decide(&e, 2, Duration::ZERO, &s), None);
        // A small change is decided once enough agreeing pairs narrow it.
        let a12 = [548.0e6; 12];
        let small: Vec<f64> = a12.iter().map(|x| x * 1.0045).collect();
        let e = estimate_counts(&a12[..3], &small[..3], 0.95, 0.003);
        assert_eq!(decide(&e, 3, Duration::ZERO, &s), None, "{e:?}");
        let e = estimate_counts(&a12, &small, 0.95, 0.003);
        assert_eq!(
            decide(&e, 12, Duration::ZERO, &s),
            Some(Stop::Changed),
            "{e:?}"
        );
    }

    #[test]
    fn the_order_alternates_and_never_repeats_a_side() {
        let o: Vec<Side> = order(4).collect();
        assert_eq!(
            o,
            [
                Side::A,
                Side::B,
                Side::A,
                Side::B,
                Side::A,
                Side::B,
                Side::A,
                Side::B
            ]
        );
        assert!(o.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn a_clear_slowdown_is_found_and_sameness_is_found_unchanged() {
        let a: Vec<f64> = (0..10).map(|i| 1.0 + 0.002 * (i % 3) as f64).collect();
        let slower: Vec<f64> = a.iter().map(|x| x * 1.05).collect();
        let e = estimate(&a, &slower, 0.95);
        assert!((e.change - 0.05).abs() < 1e-9 && e.low > 0.04, "{e:?}");
        // Too few pairs for the confidence asked: no interval, no verdict.
        let e5 = estimate(&a[..5], &slower[..5], 0.95);
        assert!(e5.low.is_infinite() && e5.high.is_infinite(), "{e5:?}");
        assert_eq!(decide(&e5, 5, Duration::ZERO, &settings()), None);
        let stop = decide(&e, 10, Duration::ZERO, &settings()).unwrap();
        assert_eq!(verdict(stop, &e, true), Verdict::Regression);
        let e = estimate(&a, &a, 0.95);
        let stop = decide(&e, 10, Duration::ZERO, &settings()).unwrap();
        assert_eq!(verdict(stop, &e, true), Verdict::Unchanged);
        // Higher is better: the same move is an improvement.
        let e = estimate(&a, &slower, 0.95);
        assert_eq!(verdict(Stop::Changed, &e, false), Verdict::Improvement);
    }

    #[test]
    fn the_interval_is_the_sign_tests() {
        // n = 10 at 95%: P(Bin(10, ½) <= 1) = 1.1% <= 2.5% < P(<= 2) = 5.5%,
        // so the 2nd smallest to the 2nd largest ratio.
        let a = vec![1.0; 10];
        let b: Vec<f64> = (1..=10).map(|i| 1.0 + i as f64 / 100.0).collect();
        let e = estimate(&a, &b, 0.95);
        assert!(
            (e.low - 0.02).abs() < 1e-9 && (e.high - 0.09).abs() < 1e-9,
            "{e:?}"
        );
    }

    #[test]
    fn one_wild_pair_does_not_decide() {
        let a = vec![1.0; 9];
        let mut b = vec![1.0; 9];
        b[4] = 2.0;
        let e = estimate(&a, &b, 0.95);
        assert_eq!(e.change, 0.0);
    }

    #[test]
    fn noise_keeps_going_until_a_limit_and_says_inconclusive() {
        let a: Vec<f64> = (0..6).map(|i| if i % 2 == 0 { 1.0 } else { 1.3 }).collect();
        let b: Vec<f64> = (0..6).map(|i| if i % 3 == 0 { 1.3 } else { 1.0 }).collect();
        let e = estimate(&a, &b, 0.95);
        let s = settings();
        assert_eq!(decide(&e, 3, Duration::ZERO, &s), None, "below the minimum");
        assert_eq!(decide(&e, 6, Duration::ZERO, &s), None, "{e:?}");
        assert_eq!(decide(&e, 30, Duration::ZERO, &s), Some(Stop::MaxPairs));
        assert_eq!(
            decide(&e, 6, Duration::from_secs(61), &s),
            Some(Stop::Budget)
        );
        assert_eq!(verdict(Stop::Budget, &e, true), Verdict::Inconclusive);
    }
}
