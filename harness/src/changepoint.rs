//! Change-point detection over a series' history: E-Divisive means
//! (Matteson & James 2014) with a permutation test, the method of
//! MongoDB's and Apache Otava's performance tooling. It follows MongoDB's
//! reference implementation (PyPI `signal-processing-algorithms`), and the
//! tests check it against that implementation's results on committed
//! fixture series (`tests/fixtures/edivisive.{py,json}`).

/// A change point: the index of the first value of a new level.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePoint {
    pub index: usize,
    /// Share of permutations that explained the split at least as well.
    pub p_value: f64,
}

/// Splitmix64: a small seeded generator, so the same history always gives
/// the same change points (the permutation test is random).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle(&mut self, v: &mut [usize]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// The divergence statistic for every split point of the values at `idx`
/// (`stats[tau]` splits before position tau), in O(n²).
fn t_stats(idx: &[usize], d: &[Vec<f64>]) -> Vec<f64> {
    let n = idx.len();
    let mut stats = vec![0.0; n];
    let (mut xy, mut x, mut y) = (0.0, 0.0, 0.0);
    for r in 0..n {
        for c in r..n {
            y += d[idx[r]][idx[c]];
        }
    }
    for tau in 0..n {
        let (nx, ny) = (tau as f64, (n - tau) as f64);
        let xy_avg = if tau > 0 && tau < n {
            xy / (nx * ny)
        } else {
            0.0
        };
        let x_avg = if tau > 0 { 2.0 * x / (nx * nx) } else { 0.0 };
        let y_avg = if tau < n { 2.0 * y / (ny * ny) } else { 0.0 };
        let e = 2.0 * xy_avg - x_avg - y_avg;
        stats[tau] = if n > 0 { nx * ny / n as f64 * e } else { 0.0 };
        let column: f64 = (0..tau).map(|i| d[idx[i]][idx[tau]]).sum();
        let row: f64 = (tau..n).map(|j| d[idx[tau]][idx[j]]).sum();
        xy = xy - column + row;
        x += column;
        y -= row;
    }
    stats
}

fn argmax(v: &[f64]) -> (usize, f64) {
    v.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 { (i, x) } else { best }
        })
}

/// Change points of `series`, in the order found (most significant first).
/// A split is kept when at most `alpha` of `permutations` shuffles of the
/// values (within the current segments) split as well.
pub fn e_divisive(series: &[f64], alpha: f64, permutations: usize, seed: u64) -> Vec<ChangePoint> {
    let n = series.len();
    let d: Vec<Vec<f64>> = series
        .iter()
        .map(|a| series.iter().map(|b| (a - b).abs()).collect())
        .collect();
    let mut rng = Rng(seed);
    let mut found: Vec<ChangePoint> = Vec::new();
    loop {
        let mut bounds: Vec<usize> = found.iter().map(|c| c.index).collect();
        bounds.push(0);
        bounds.push(n);
        bounds.sort_unstable();
        bounds.dedup();
        let windows: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        let (best_index, best_stat) = windows
            .iter()
            .map(|&(a, b)| {
                let idx: Vec<usize> = (a..b).collect();
                let (i, s) = argmax(&t_stats(&idx, &d));
                (i + a, s)
            })
            .fold(
                (0, f64::NEG_INFINITY),
                |best, c| if c.1 > best.1 { c } else { best },
            );
        if n < 2 || best_stat <= 0.0 {
            return found;
        }
        let mut at_least_as_good = 0;
        for _ in 0..permutations {
            let best_shuffled = windows
                .iter()
                .map(|&(a, b)| {
                    let mut idx: Vec<usize> = (a..b).collect();
                    rng.shuffle(&mut idx);
                    argmax(&t_stats(&idx, &d)).1
                })
                .fold(f64::NEG_INFINITY, f64::max);
            if best_shuffled >= best_stat {
                at_least_as_good += 1;
            }
        }
        let p_value = at_least_as_good as f64 / (permutations as f64 + 1.0);
        if p_value > alpha || best_index == 0 || found.iter().any(|c| c.index == best_index) {
            return found;
        }
        found.push(ChangePoint {
            index: best_index,
            p_value,
        });
    }
}

/// A change point with its size: the relative change between the medians
/// of the levels before and after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub index: usize,
    pub change: f64,
    pub p_value: f64,
}

/// Change points of `series`, oldest first: E-Divisive's split (the energy
/// statistic's best split of each segment, as in [`e_divisive`]), each
/// split kept only if the two parts it makes differ by Mann-Whitney at
/// `alpha`, then pruned: a change point whose neighbouring segments do not
/// differ is merged away, weakest first. This is Hunter's answer (DataStax,
/// ICPE 2023, in Apache Otava) to the permutation test's weakness on
/// series with several levels: shuffling a series of levels 260, 280, 233
/// and 278 ms (a slowdown, a speed-up, more memory held) made splits as
/// strong as its best one in 9% of shuffles, so the permutation test
/// found no change point at all. Rank-based, so one outlying commit does
/// not make a segment differ.
pub fn split_and_test(series: &[f64], alpha: f64) -> Vec<ChangePoint> {
    let n = series.len();
    let d: Vec<Vec<f64>> = series
        .iter()
        .map(|a| series.iter().map(|b| (a - b).abs()).collect())
        .collect();
    let p_between = |a: usize, at: usize, b: usize| {
        crate::stats::mann_whitney_p(&series[a..at], &series[at..b])
    };
    let mut cps: Vec<usize> = Vec::new();
    loop {
        let bounds: Vec<usize> = std::iter::once(0)
            .chain(cps.iter().copied())
            .chain(std::iter::once(n))
            .collect();
        let best = bounds
            .windows(2)
            .filter(|w| w[1] - w[0] >= 2)
            .filter_map(|w| {
                let (a, b) = (w[0], w[1]);
                let idx: Vec<usize> = (a..b).collect();
                let stats = t_stats(&idx, &d);
                let (tau, stat) = argmax(&stats[1..]);
                let at = a + tau + 1;
                (stat > 0.0 && p_between(a, at, b) <= alpha).then_some((at, stat))
            })
            .max_by(|x, y| x.1.total_cmp(&y.1));
        match best {
            Some((at, _)) => {
                cps.push(at);
                cps.sort_unstable();
            }
            None => break,
        }
    }
    // Prune: each change point against its neighbours as they now are.
    // Neighbours that do not overlap at all are the strongest evidence a
    // rank test has, however short: three commits after a five-fold step
    // cannot reach p ≤ 0.05 against three before it (p = 0.057), and
    // pruning it left a 1% shift nearby to carry the step's size.
    let apart = |a: usize, at: usize, b: usize| {
        let (l, r) = (&series[a..at], &series[at..b]);
        let (lmin, lmax) = l.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |m, &v| {
            (m.0.min(v), m.1.max(v))
        });
        let (rmin, rmax) = r.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |m, &v| {
            (m.0.min(v), m.1.max(v))
        });
        lmax < rmin || rmax < lmin
    };
    loop {
        let bounds: Vec<usize> = std::iter::once(0)
            .chain(cps.iter().copied())
            .chain(std::iter::once(n))
            .collect();
        let weakest = (0..cps.len())
            .filter(|&k| !apart(bounds[k], bounds[k + 1], bounds[k + 2]))
            .map(|k| (k, p_between(bounds[k], bounds[k + 1], bounds[k + 2])))
            .max_by(|x, y| x.1.total_cmp(&y.1));
        match weakest {
            Some((k, p)) if p > alpha => {
                cps.remove(k);
            }
            _ => break,
        }
    }
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(cps.iter().copied())
        .chain(std::iter::once(n))
        .collect();
    (0..cps.len())
        .map(|k| ChangePoint {
            index: cps[k],
            p_value: p_between(bounds[k], bounds[k + 1], bounds[k + 2]),
        })
        .collect()
}

/// Change points of a per-commit series ([`split_and_test`] at 5%) that
/// change the level by at least `min_effect` (relative) and `floor`
/// (absolute), oldest first.
pub fn steps(series: &[f64], min_effect: f64, floor: f64) -> Vec<Step> {
    let cps = split_and_test(series, 0.05);
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(cps.iter().map(|c| c.index))
        .chain(std::iter::once(series.len()))
        .collect();
    cps.iter()
        .enumerate()
        .filter_map(|(k, cp)| {
            let before = crate::stats::median(&series[bounds[k]..bounds[k + 1]]);
            let after = crate::stats::median(&series[bounds[k + 1]..bounds[k + 2]]);
            let change = if before == 0.0 {
                0.0
            } else {
                (after - before) / before.abs()
            };
            (change.abs() >= min_effect && (after - before).abs() >= floor).then_some(Step {
                index: cp.index,
                change,
                p_value: cp.p_value,
            })
        })
        .collect()
}

/// Steps of a series of near-exact counts (instruction counts, request
/// counters: the same work gives the same figure within a few tenths of
/// a percent). E-Divisive's permutation test needs several commits on
/// each side of a step to call it significant (with two before it, a
/// clean step of any size had p ≈ 0.07), while here one commit at a new
/// level is already evidence. A step at `i`: the median of up to three
/// values from `i` on differs from the median of up to three before it
/// (not reaching back past the previous step) by at least `min_effect`
/// and `floor`, and so does the value at `i` itself. One outlying commit
/// moves neither median and is not a step.
pub fn count_steps(series: &[f64], min_effect: f64, floor: f64) -> Vec<Step> {
    let median = crate::stats::median;
    let differs = |before: f64, after: f64| {
        // From nothing: relative to one unit, so the change stays a number.
        let change = (after - before) / before.abs().max(1.0);
        (change.abs() >= min_effect && (after - before).abs() >= floor).then_some(change)
    };
    let mut out = Vec::new();
    let mut last = 0;
    for i in 1..series.len() {
        let before = median(&series[last.max(i.saturating_sub(3))..i]);
        let after = median(&series[i..(i + 3).min(series.len())]);
        if let (Some(change), Some(_)) = (differs(before, after), differs(before, series[i])) {
            out.push(Step {
                index: i,
                change,
                p_value: 0.0,
            });
            last = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_steps_find_each_step_at_its_commit_and_ignore_an_outlier() {
        // Two commits, a 2.7% step, one more, a 6% step, five more; an
        // outlier of +2% at index 7 (a run with background work).
        let s = [
            549.0, 549.3, 564.0, 562.7, 596.6, 596.7, 597.6, 609.0, 595.3, 596.0,
        ];
        let found: Vec<usize> = count_steps(&s, 0.01, 1.0).iter().map(|c| c.index).collect();
        assert_eq!(found, [2, 4]);
        // A step on the newest commit is reported at once.
        let found = count_steps(&[100.0, 100.1, 99.9, 104.0], 0.01, 0.0);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].index, 3);
        // Below the threshold or the floor: nothing.
        assert!(count_steps(&[100.0, 100.0, 100.5, 100.5], 0.01, 0.0).is_empty());
        assert!(count_steps(&[100.0, 100.0, 110.0, 110.0], 0.05, 20.0).is_empty());
        assert!(count_steps(&[], 0.01, 0.0).is_empty());
    }

    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        series: Vec<f64>,
        change_points: Vec<usize>,
    }

    #[test]
    fn agrees_with_the_reference_implementation() {
        let cases: Vec<Case> =
            serde_json::from_str(include_str!("../tests/fixtures/edivisive.json")).unwrap();
        assert!(cases.len() >= 8);
        for c in cases {
            let mut got: Vec<usize> = e_divisive(&c.series, 0.05, 999, 7)
                .iter()
                .map(|c| c.index)
                .collect();
            got.sort_unstable();
            assert_eq!(got, c.change_points, "{}", c.name);
        }
    }

    #[test]
    fn steps_report_size_and_drop_small_ones() {
        let mut s = vec![100.0; 10];
        s.extend([120.0; 10]);
        for (i, v) in s.iter_mut().enumerate() {
            *v *= 1.0 + 0.003 * ((i * 7 % 5) as f64 - 2.0);
        }
        let found = steps(&s, 0.05, 0.0);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].index, 10);
        assert!((found[0].change - 0.20).abs() < 0.01, "{found:?}");
        assert!(
            steps(&s, 0.25, 0.0).is_empty(),
            "a 20% step is below a 25% threshold"
        );
        assert!(
            steps(&s, 0.05, 25.0).is_empty(),
            "a step of 20 is below a floor of 25"
        );
    }

    #[test]
    fn short_and_constant_series_have_no_change_points() {
        assert!(e_divisive(&[], 0.05, 99, 1).is_empty());
        assert!(e_divisive(&[1.0], 0.05, 99, 1).is_empty());
        assert!(e_divisive(&[5.0; 20], 0.05, 99, 1).is_empty());
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    #[test]
    fn several_levels_are_found_where_the_permutation_test_found_none() {
        // Measured wall times (ms) of a throwaway history: 10% more work
        // at 7, the machine a little slower from 16, 20% less work at 20,
        // 96 MiB more memory touched at 26.
        let v = [
            260., 269., 255., 260., 256., 263., 257., 278., 281., 284., 282., 278., 278., 278.,
            277., 278., 288., 286., 291., 291., 230., 233., 235., 236., 231., 233., 278., 279.,
            275., 275., 282., 283., 280., 273.,
        ];
        assert!(e_divisive(&v, 0.05, 199, 0x5eed).is_empty());
        let found: Vec<usize> = steps(&v, 0.05, 0.0).iter().map(|s| s.index).collect();
        assert_eq!(found, [7, 20, 26]);
    }

    #[test]
    fn a_large_step_with_few_commits_after_a_small_shift_is_kept_at_its_commit() {
        // Wall times (ms) measured while the test suite ran: the machine
        // 1% slower from commit 5, the code five times slower from 8.
        let v = [
            53.6, 53.1, 53.15, 53.0, 53.12, 53.7, 53.75, 53.9, 253.3, 253.2, 253.6, 253.9,
        ];
        let found: Vec<usize> = steps(&v, 0.005, 0.0).iter().map(|s| s.index).collect();
        assert!(found.contains(&8), "{found:?}");
        let at8 = steps(&v, 0.005, 0.0)
            .into_iter()
            .find(|s| s.index == 8)
            .unwrap();
        assert!(at8.change > 3.0, "{at8:?}");
    }

    #[test]
    fn noise_alone_has_no_steps() {
        let mut state = 0x1234_5678u64;
        let v: Vec<f64> = (0..60)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                100.0 + (state % 1000) as f64 / 250.0
            })
            .collect();
        assert!(
            steps(&v, 0.01, 0.0).is_empty(),
            "{:?}",
            steps(&v, 0.01, 0.0)
        );
    }
}
