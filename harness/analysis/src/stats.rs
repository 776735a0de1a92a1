//! Robust summaries of repetitions and the two-sample comparison.

pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    median_sorted(&v)
}

/// [`median`] of values already sorted.
pub fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Median absolute deviation from the median.
pub fn mad(xs: &[f64]) -> f64 {
    let m = median(xs);
    median(&xs.iter().map(|x| (x - m).abs()).collect::<Vec<_>>())
}

/// Coefficient of variation: sample standard deviation / mean.
pub fn cv(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    if mean == 0.0 {
        0.0
    } else {
        var.sqrt() / mean.abs()
    }
}

/// Two-sided p-value of the Mann-Whitney U test (no distribution assumed).
/// Exact (by counting rank arrangements) for small samples without ties,
/// the normal approximation with tie correction otherwise. Written here
/// because the crates that have it pull in a whole statistics stack.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let sorted = |xs: &[f64]| {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    mann_whitney_p_sorted(&sorted(a), &sorted(b))
}

/// [`mann_whitney_p`] of samples each sorted by `total_cmp`: the ranks
/// come from merging them, with no pooled sort (the change point search
/// tests hundreds of thousands of pairs of sides at 10,000 commits).
pub fn mann_whitney_p_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let n = n1 + n2;
    let (r1, tie_term) = rank_sum(a, b);
    let u1 = r1 - (n1 * (n1 + 1)) as f64 / 2.0;
    let u = u1.min((n1 * n2) as f64 - u1);
    if tie_term == 0.0 && n1 * n2 <= 400 {
        return exact_p(n1, n2, u);
    }
    let (f1, f2) = (n1 as f64, n2 as f64);
    let mean = f1 * f2 / 2.0;
    let var = f1 * f2 / 12.0 * ((n as f64 + 1.0) - tie_term / (n as f64 * (n as f64 - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / var.sqrt();
    (2.0 * normal_sf(z)).min(1.0)
}

/// The rank sum of `a` in the pooled sample, ties (equal values) at their
/// average rank, and the tie correction's Σ(t³ - t): from merging the
/// sorted samples.
fn rank_sum(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (n1, n2) = (a.len(), b.len());
    let (mut i, mut j, mut rank) = (0, 0, 0);
    let mut r1 = 0.0;
    let mut tie_term = 0.0;
    while i < n1 || j < n2 {
        let first_a = j == n2 || (i < n1 && a[i].total_cmp(&b[j]).is_le());
        let v = if first_a { a[i] } else { b[j] };
        let (mut in_a, mut in_b) = if first_a { (1, 0) } else { (0, 1) };
        while i + in_a < n1 && a[i + in_a] == v {
            in_a += 1;
        }
        while j + in_b < n2 && b[j + in_b] == v {
            in_b += 1;
        }
        let t = in_a + in_b;
        // Half-integers: these sums are exact, in any order.
        r1 += ((2 * rank + t - 1) as f64 / 2.0 + 1.0) * in_a as f64;
        let t = t as f64;
        tie_term += t * t * t - t;
        (i, j, rank) = (i + in_a, j + in_b, rank + in_a + in_b);
    }
    (r1, tie_term)
}

/// P(U <= u) * 2 under the null, by counting (dynamic programming over the
/// number of arrangements of n1 and n2 items with a given U).
fn exact_p(n1: usize, n2: usize, u: f64) -> f64 {
    let max_u = n1 * n2;
    // counts[i][j][k]: arrangements of i and j items with U = k.
    let mut prev: Vec<Vec<f64>> = vec![vec![0.0; max_u + 1]; n2 + 1];
    for row in prev.iter_mut() {
        row[0] = 1.0;
    }
    for _i in 1..=n1 {
        let mut cur: Vec<Vec<f64>> = vec![vec![0.0; max_u + 1]; n2 + 1];
        cur[0][0] = 1.0;
        for j in 1..=n2 {
            for k in 0..=max_u {
                // Last item from sample 1: it beats all j items of sample 2.
                let from1 = if k >= j { prev[j][k - j] } else { 0.0 };
                cur[j][k] = from1 + cur[j - 1][k];
            }
        }
        prev = cur;
    }
    let dist = &prev[n2];
    let total: f64 = dist.iter().sum();
    let below: f64 = dist.iter().take(u.floor() as usize + 1).sum();
    (2.0 * below / total).min(1.0)
}

/// Survival function of the standard normal (Abramowitz-Stegun 7.1.26).
fn normal_sf(z: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.3275911 * z / std::f64::consts::SQRT_2);
    let poly = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    0.5 * poly * (-(z * z) / 2.0).exp()
}

/// Verdict of comparing a new set of repetitions with a baseline's.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Relative change of the median, new vs baseline (0.05 = +5%).
    pub change: f64,
    pub p_value: f64,
    /// Both the test and the minimum effect size agree.
    pub changed: bool,
    /// The change is as large as counts, but these many values cannot
    /// show it: Mann-Whitney with `n_baseline` against `n_new` values
    /// never goes below [`min_p`] (0.1 for 3 against 3), not below
    /// [`ALPHA`]. More repetitions, or an interleaved A/B, would decide.
    pub too_few: bool,
}

/// The smallest two-sided p-value Mann-Whitney can give for `n1` values
/// against `n2` (every value of one side beyond every value of the
/// other): 2 / C(n1 + n2, n1).
pub fn min_p(n1: usize, n2: usize) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    // C(n1 + n2, n1) as a float product: exact enough far past 1/ALPHA.
    let (k, n) = (n1.min(n2), n1 + n2);
    let ways = (1..=k).fold(1.0, |acc, i| acc * (n - k + i) as f64 / i as f64);
    (2.0 / ways).min(1.0)
}

/// The fewest repetitions per side (the same on both) with which
/// Mann-Whitney can reach `alpha`: 4 for 0.05.
pub fn repetitions_for(alpha: f64) -> usize {
    (2..).find(|&n| min_p(n, n) < alpha).unwrap_or(2)
}

pub const ALPHA: f64 = 0.05;

/// "Changed" only when Mann-Whitney says the samples differ (p < 0.05) and
/// the medians differ by at least `min_effect` (relative).
pub fn compare(baseline: &[f64], new: &[f64], min_effect: f64) -> Comparison {
    let (b, n) = (median(baseline), median(new));
    let change = if b == 0.0 {
        if n == 0.0 { 0.0 } else { f64::INFINITY }
    } else {
        (n - b) / b.abs()
    };
    // Counts that do not vary (instructions under valgrind) need no test:
    // with no noise on either side, any difference is real.
    let constant = |xs: &[f64]| xs.iter().all(|x| *x == xs[0]);
    let p_value = if !baseline.is_empty() && !new.is_empty() && constant(baseline) && constant(new)
    {
        if b == n { 1.0 } else { 0.0 }
    } else {
        mann_whitney_p(baseline, new)
    };
    Comparison {
        change,
        p_value,
        changed: p_value < ALPHA && change.abs() >= min_effect,
        too_few: p_value >= ALPHA
            && change.abs() >= min_effect
            && min_p(baseline.len(), new.len()) >= ALPHA,
    }
}

/// The `q` quantile of sorted values, interpolated between neighbours.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod few_values_tests {
    use super::*;

    #[test]
    fn the_smallest_p_few_values_can_give() {
        assert!((min_p(2, 2) - 1.0 / 3.0).abs() < 1e-12);
        assert!((min_p(3, 3) - 0.1).abs() < 1e-12);
        assert!((min_p(4, 4) - 2.0 / 70.0).abs() < 1e-12);
        assert_eq!(min_p(0, 3), 1.0);
        // It is what the test gives when the sides do not overlap.
        let p = mann_whitney_p(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert!((p - min_p(3, 3)).abs() < 1e-12, "{p}");
        assert_eq!(repetitions_for(ALPHA), 4);
    }

    #[test]
    fn a_large_change_in_too_few_values_is_said_to_be_undecidable() {
        let c = compare(&[100.0, 101.0], &[200.0, 201.0], 0.05);
        assert!(!c.changed && c.too_few, "{c:?}");
        let c = compare(
            &[100.0, 101.0, 99.0, 100.5],
            &[200.0, 201.0, 199.0, 202.0],
            0.05,
        );
        assert!(c.changed && !c.too_few, "{c:?}");
        // A small change is no change, however few the values.
        let c = compare(&[100.0, 101.0], &[101.0, 102.0], 0.05);
        assert!(!c.changed && !c.too_few, "{c:?}");
    }
}

#[cfg(test)]
mod tests {
    /// The test as defined: ranks from one pooled sort.
    fn pooled_ranks(a: &[f64], b: &[f64]) -> (f64, f64) {
        let mut pooled: Vec<(f64, usize)> = a
            .iter()
            .map(|&x| (x, 0))
            .chain(b.iter().map(|&x| (x, 1)))
            .collect();
        pooled.sort_by(|x, y| x.0.total_cmp(&y.0));
        let (mut r1, mut tie_term, mut i) = (0.0, 0.0, 0);
        while i < pooled.len() {
            let mut j = i;
            while j + 1 < pooled.len() && pooled[j + 1].0 == pooled[i].0 {
                j += 1;
            }
            let avg = (i + j) as f64 / 2.0 + 1.0;
            r1 += avg * pooled[i..=j].iter().filter(|p| p.1 == 0).count() as f64;
            let t = (j - i + 1) as f64;
            tie_term += t * t * t - t;
            i = j + 1;
        }
        (r1, tie_term)
    }

    #[test]
    fn merged_ranks_are_the_pooled_ones() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |k: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % k
        };
        for _ in 0..2000 {
            // Few distinct values, so ties (and -0 against 0) are common.
            let mut sample = |n: u64| -> Vec<f64> {
                (0..1 + next(n))
                    .map(|_| match next(12) {
                        0 => -0.0,
                        1 => 0.0,
                        v => v as f64 * 0.25 - 1.0,
                    })
                    .collect()
            };
            let (a, b) = (sample(30), sample(30));
            let sorted = |v: &[f64]| {
                let mut v = v.to_vec();
                v.sort_by(f64::total_cmp);
                v
            };
            assert_eq!(
                rank_sum(&sorted(&a), &sorted(&b)),
                pooled_ranks(&a, &b),
                "{a:?} {b:?}"
            );
        }
    }

    use super::*;

    #[test]
    fn summaries() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0, 100.0]), 1.0);
        assert!((cv(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) - 0.4276).abs() < 1e-3);
    }

    // Reference values from scipy.stats.mannwhitneyu(..., alternative="two-sided").
    #[test]
    fn mann_whitney_matches_scipy() {
        // Complete separation, 5 vs 5, exact: 2/252.
        let p = mann_whitney_p(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]);
        assert!((p - 0.007936507936507936).abs() < 1e-12, "{p}");
        // Interleaved, exact: U = 10 -> p = 0.6904761904761905.
        let p = mann_whitney_p(&[1.0, 3.0, 5.0, 7.0, 9.0], &[2.0, 4.0, 6.0, 8.0, 10.0]);
        assert!((p - 0.6904761904761905).abs() < 1e-12, "{p}");
        // With ties: normal approximation with continuity correction.
        let p = mann_whitney_p(
            &[1.0, 2.0, 2.0, 3.0, 4.0, 5.0],
            &[3.0, 4.0, 5.0, 5.0, 6.0, 7.0],
        );
        assert!((p - 0.04270783292418039).abs() < 1e-6, "{p}");
    }

    #[test]
    fn verdict_needs_both_significance_and_effect() {
        let base = [100.0, 101.0, 99.0, 100.5, 99.5];
        let slower = [110.0, 111.0, 109.0, 110.5, 109.5];
        let c = compare(&base, &slower, 0.05);
        assert!(c.changed && (c.change - 0.10).abs() < 1e-9, "{c:?}");
        // Significant but below the minimum effect: not a change.
        let tiny = [101.0, 102.0, 100.6, 101.5, 100.7];
        assert!(!compare(&base, &tiny, 0.05).changed);
        // Large median shift but overlapping noise: not a change.
        let noisy = [80.0, 130.0, 95.0, 140.0, 101.0];
        assert!(!compare(&base, &noisy, 0.05).changed);
    }
}
