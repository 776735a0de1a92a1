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
    /// The levels the change is between (the medians either side that
    /// `change` was computed from): printed with it, so the two agree.
    pub before: f64,
    pub after: f64,
}

/// How many values one E-Divisive split looks at. The whole history is
/// searched in overlapping windows of this length (see [`search`]).
pub const SEARCH_WINDOW: usize = 200;

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
/// not make a segment differ. The whole series is searched, in windows of
/// [`SEARCH_WINDOW`] values.
pub fn split_and_test(series: &[f64], alpha: f64) -> Vec<ChangePoint> {
    search(series, alpha, SEARCH_WINDOW, None)
}

/// [`split_and_test`] over a history of any length, in O(n · window)
/// rather than O(n²) time and O(window²) memory, as Hunter and Otava
/// search: splits are found in windows of `window` values, each starting
/// at the last split of the one before (or half a window on), and then
/// pruned over the whole series, each change point tested against up to
/// `window` values on each side. A series no longer than `window` is
/// searched exactly as one piece.
///
/// Incremental through `cache`: the splits of a window depend only on its
/// values, so they are looked up by them, and a history with one commit
/// more searches again only the window(s) that commit falls in (Nyrkiö's
/// observation, ICPE 2025, that appending rarely moves earlier change
/// points, here exact rather than likely: an earlier window's values did
/// not change, so neither did its splits). The pruning is re-run whole:
/// it costs O(change points · window · log window).
pub fn search(
    series: &[f64],
    alpha: f64,
    window: usize,
    cache: Option<&SplitCache>,
) -> Vec<ChangePoint> {
    let n = series.len();
    let window = window.max(8);
    let mut found = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + window).min(n);
        let part = &series[start..end];
        let local = match cache {
            Some(c) => c.splits(part, alpha, || split(part, alpha)),
            None => split(part, alpha),
        };
        found.extend(local.iter().map(|&i| i + start));
        if end == n {
            break;
        }
        let last = local.last().map_or(0, |&i| i + start);
        start = last.max(start + window / 2);
    }
    found.sort_unstable();
    found.dedup();
    prune(
        series,
        one_per_cluster(series, found, window),
        alpha,
        window,
    )
}

/// Overlapping windows can place one step at neighbouring commits (a
/// window that ends just after a step sees too little of it). Of splits
/// closer than [`MIN_LEVEL`], keeps the one that best separates the
/// values around the cluster: the share of (before, after) pairs ordered
/// one way, farthest from a half (Mann-Whitney's U, which unlike its p
/// does not saturate on clear steps).
fn one_per_cluster(series: &[f64], found: Vec<usize>, reach: usize) -> Vec<usize> {
    let n = series.len();
    let mut out: Vec<usize> = Vec::with_capacity(found.len());
    let mut i = 0;
    while i < found.len() {
        let mut j = i + 1;
        while j < found.len() && found[j] - found[j - 1] < MIN_LEVEL {
            j += 1;
        }
        let a = out.last().copied().unwrap_or(0);
        let b = found.get(j).copied().unwrap_or(n);
        let best = found[i..j]
            .iter()
            .copied()
            .map(|at| {
                let (l, r) = sides(series, a, at, b, reach);
                (at, (ordered_share(l, r) - 0.5).abs())
            })
            .max_by(|x, y| x.1.total_cmp(&y.1))
            .map_or(found[i], |(at, _)| at);
        out.push(best);
        i = j;
    }
    out
}

/// The splitting half of [`split_and_test`] on one window: indexes, sorted.
fn split(series: &[f64], alpha: f64) -> Vec<usize> {
    let n = series.len();
    let d: Vec<Vec<f64>> = series
        .iter()
        .map(|a| series.iter().map(|b| (a - b).abs()).collect())
        .collect();
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
                let p = crate::stats::mann_whitney_p(&series[a..at], &series[at..b]);
                (stat > 0.0 && p <= alpha).then_some((at, stat))
            })
            .max_by(|x, y| x.1.total_cmp(&y.1));
        match best {
            Some((at, _)) => {
                cps.push(at);
                cps.sort_unstable();
            }
            None => return cps,
        }
    }
}

/// The share of pairs (x from `l`, y from `r`) with y above x, ties
/// counted half: Mann-Whitney's U over n1·n2, in O(n log n).
fn ordered_share(l: &[f64], r: &[f64]) -> f64 {
    if l.is_empty() || r.is_empty() {
        return 0.5;
    }
    let mut sorted = l.to_vec();
    sorted.sort_by(f64::total_cmp);
    let above: f64 = r
        .iter()
        .map(|y| {
            let below = sorted.partition_point(|x| x < y);
            let not_above = sorted.partition_point(|x| x <= y);
            below as f64 + (not_above - below) as f64 / 2.0
        })
        .sum();
    above / (l.len() * r.len()) as f64
}

/// Segment ends around the `k`th of `cps`.
fn neighbours(cps: &[usize], k: usize, n: usize) -> (usize, usize) {
    (
        if k == 0 { 0 } else { cps[k - 1] },
        cps.get(k + 1).copied().unwrap_or(n),
    )
}

/// The values either side of a change point at `at` between the change
/// points (or ends) `a` and `b`, up to `reach` on each side.
fn sides(series: &[f64], a: usize, at: usize, b: usize, reach: usize) -> (&[f64], &[f64]) {
    (
        &series[a.max(at.saturating_sub(reach))..at],
        &series[at..b.min(at.saturating_add(reach))],
    )
}

/// The fewest commits a level between change points holds (see
/// [`evidence`]).
const MIN_LEVEL: usize = 3;

/// A level between change points shorter than this must be apart from
/// its neighbours (see [`evidence`]). At 10, 10,000 commits of 500 noisy
/// series still had 86 false change points, pairs around levels of 10 to
/// 17 commits half a percent off; a real step undone within 20 commits
/// and not clear of the noise is left unnamed.
const SHORT_LEVEL: usize = 20;

/// What speaks for a change point, given its neighbours.
#[derive(Debug, Clone, Copy)]
struct Evidence {
    /// The values either side do not overlap at all.
    apart: bool,
    /// Mann-Whitney's, between the two sides.
    p: f64,
    /// The medians' relative and absolute difference, and the medians.
    change: f64,
    delta: f64,
    before: f64,
    after: f64,
}

/// The evidence for the `k`th of `cps`: the values either side up to the
/// neighbouring change points, and at most `reach` on each side.
fn evidence(series: &[f64], cps: &[usize], k: usize, reach: usize) -> Evidence {
    let n = series.len();
    let (a, b) = neighbours(cps, k, n);
    let at = cps[k];
    let (l, r) = sides(series, a, at, b, reach);
    let none = Evidence {
        apart: false,
        p: 1.0,
        change: 0.0,
        delta: 0.0,
        before: f64::NAN,
        after: f64::NAN,
    };
    // A level of one or two commits between two change points is an
    // outlier, not a level: one commit far from the rest has a
    // Mann-Whitney p of 2/(n+1) against any number of others, so it
    // would stand as two change points. Only the newest commits may be
    // that few (a new step has no more yet).
    if at - a < MIN_LEVEL || (b - at < MIN_LEVEL && b != n) {
        return none;
    }
    let range = |v: &[f64]| {
        v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |m, &x| {
            (m.0.min(x), m.1.max(x))
        })
    };
    let ((lmin, lmax), (rmin, rmax)) = (range(l), range(r));
    // Neighbours that do not overlap at all are the strongest evidence a
    // rank test has, however short: three commits after a five-fold step
    // cannot reach p ≤ 0.05 against three before it (p = 0.057), and
    // pruning it left a 1% shift nearby to carry the step's size.
    let apart = lmax < rmin || rmax < lmin;
    // A short level inside the history stands only if it is apart from
    // its neighbour: over a long history some run of a few commits is
    // always extreme enough for a rank test (on 1000 commits of noise,
    // 59 excursions of 3 to 9 commits, each a pair of change points),
    // while a real step undone soon after is clear of the noise. Only
    // the newest level may be short (the oldest has no such excuse).
    let short = |len: usize, newest: bool| !newest && len < SHORT_LEVEL;
    if (short(at - a, false) || short(b - at, b == n)) && !apart {
        return none;
    }
    // Sorted once for both medians and the test.
    let sorted = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    let (l, r) = (sorted(l), sorted(r));
    let (before, after) = (
        crate::stats::median_sorted(&l),
        crate::stats::median_sorted(&r),
    );
    Evidence {
        apart,
        p: crate::stats::mann_whitney_p_sorted(&l, &r),
        change: if before == 0.0 {
            0.0
        } else {
            (after - before) / before.abs()
        },
        delta: after - before,
        before,
        after,
    }
}

/// Merges change points away, weakest first, until every one left is
/// kept by `weakness` (`None`: kept; otherwise how weak). Removing one
/// changes only its neighbours' evidence, so only theirs is looked at
/// again: O(change points) evidence for the whole merge. This is how
/// Hunter and Otava merge their splits, by p-value and then by size.
fn merge(
    series: &[f64],
    mut cps: Vec<usize>,
    reach: usize,
    weakness: impl Fn(&Evidence) -> Option<f64>,
) -> Vec<(usize, Evidence)> {
    let mut ev: Vec<Evidence> = (0..cps.len())
        .map(|k| evidence(series, &cps, k, reach))
        .collect();
    loop {
        let weakest = (0..cps.len())
            .filter_map(|k| weakness(&ev[k]).map(|w| (k, w)))
            .max_by(|x, y| x.1.total_cmp(&y.1));
        let Some((k, _)) = weakest else {
            return cps.into_iter().zip(ev).collect();
        };
        cps.remove(k);
        ev.remove(k);
        for j in [k.wrapping_sub(1), k] {
            if j < cps.len() {
                ev[j] = evidence(series, &cps, j, reach);
            }
        }
    }
}

/// The pruning half of [`split_and_test`]: a change point whose sides
/// do not differ at `alpha` is merged away, the weakest (largest p)
/// first.
fn prune(series: &[f64], cps: Vec<usize>, alpha: f64, reach: usize) -> Vec<ChangePoint> {
    merge(series, cps, reach, |e| {
        (!e.apart && e.p > alpha).then_some(e.p)
    })
    .into_iter()
    .map(|(index, e)| ChangePoint {
        index,
        p_value: e.p,
    })
    .collect()
}

/// The splits of windows, by the windows' values, kept between renders
/// (see [`search`]). Shared by threads; saved with only the entries used
/// since it was loaded, so it never outgrows the history it describes.
#[derive(Debug, Default)]
pub struct SplitCache {
    entries: std::sync::Mutex<std::collections::HashMap<u64, Vec<u32>>>,
    used: std::sync::Mutex<std::collections::HashSet<u64>>,
    searched: std::sync::atomic::AtomicUsize,
}

/// The cache file's first line: another format, or another harness
/// (whose search may split differently), is not read.
const CACHE_FORMAT: &str = concat!(
    "syncbench split cache 1, syncbench ",
    env!("CARGO_PKG_VERSION")
);

impl SplitCache {
    /// The cache as [`SplitCache::to_text`] wrote it; empty if the text
    /// is of another format or harness (it is only ever a shortcut), and
    /// without any line that does not parse.
    pub fn from_text(text: &str) -> SplitCache {
        let cache = SplitCache::default();
        let mut lines = text.lines();
        if lines.next() != Some(CACHE_FORMAT) {
            return cache;
        }
        let mut entries = cache.entries.lock().expect("not poisoned");
        for line in lines {
            let mut fields = line.split(' ');
            let Some(Ok(key)) = fields.next().map(|k| u64::from_str_radix(k, 16)) else {
                continue;
            };
            let splits: Option<Vec<u32>> = fields.map(|f| f.parse().ok()).collect();
            if let Some(splits) = splits {
                entries.insert(key, splits);
            }
        }
        drop(entries);
        cache
    }

    /// The entries used since it was made, as text to keep (the site
    /// saves it beside its pages).
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let entries = self.entries.lock().expect("not poisoned");
        let used = self.used.lock().expect("not poisoned");
        let mut keys: Vec<&u64> = used.iter().collect();
        keys.sort_unstable();
        let mut text = format!("{CACHE_FORMAT}\n");
        for k in keys {
            let _ = write!(text, "{k:016x}");
            for s in &entries[k] {
                let _ = write!(text, " {s}");
            }
            text.push('\n');
        }
        text
    }

    /// How many windows were searched rather than found here.
    pub fn searched(&self) -> usize {
        self.searched.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn splits(
        &self,
        window: &[f64],
        alpha: f64,
        compute: impl FnOnce() -> Vec<usize>,
    ) -> Vec<usize> {
        // FNV-1a over the values' bits and alpha: stable across builds,
        // unlike std's hasher, and 64 bits make a collision between the
        // windows of one history vanishingly unlikely.
        let bytes: Vec<u8> = std::iter::once(alpha)
            .chain(window.iter().copied())
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect();
        let key = syncbench_model::hash::fnv1a(&bytes);
        self.used.lock().expect("not poisoned").insert(key);
        if let Some(found) = self.entries.lock().expect("not poisoned").get(&key) {
            // Splits inside the window, in order; anything else is damage.
            let fits = found.windows(2).all(|p| p[0] < p[1])
                && found.iter().all(|&i| i > 0 && (i as usize) < window.len());
            if fits {
                return found.iter().map(|&i| i as usize).collect();
            }
        }
        self.searched
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let found = compute();
        self.entries
            .lock()
            .expect("not poisoned")
            .insert(key, found.iter().map(|&i| i as u32).collect());
        found
    }
}

/// Change points of a per-commit series ([`split_and_test`] at 5%) that
/// change the level by at least `min_effect` (relative) and `floor`
/// (absolute), oldest first.
pub fn steps(series: &[f64], min_effect: f64, floor: f64) -> Vec<Step> {
    steps_of(
        series,
        &split_and_test(series, 0.05),
        min_effect,
        floor,
        SEARCH_WINDOW,
    )
}

/// The change points `cps` of `series` (from [`search`]) that change the
/// level by at least `min_effect` and `floor`: the medians of up to
/// `reach` values on each side, not past the neighbouring change points.
/// Those too small are merged away smallest first, and their neighbours
/// measured again against the longer levels that leaves: over a long
/// history of noise, splits at 5% find levels of ten or twenty commits
/// whose medians differ by a percent, which vanish once merged with
/// their neighbours, while a real step stays as large.
pub fn steps_of(
    series: &[f64],
    cps: &[ChangePoint],
    min_effect: f64,
    floor: f64,
    reach: usize,
) -> Vec<Step> {
    const ALPHA: f64 = 0.05;
    let at: Vec<usize> = cps.iter().map(|c| c.index).collect();
    merge(series, at, reach, |e| {
        if !e.apart && e.p > ALPHA {
            Some(2.0 + e.p)
        } else if e.change.abs() < min_effect || e.delta.abs() < floor {
            Some(1.0 - (e.change.abs() / min_effect.max(f64::MIN_POSITIVE)).min(1.0))
        } else {
            None
        }
    })
    .into_iter()
    .map(|(index, e)| Step {
        index,
        change: e.change,
        p_value: e.p,
        before: e.before,
        after: e.after,
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
                before,
                after,
            });
            last = i;
        }
    }
    out
}

/// The fewest values a series needs before a commit's change against
/// its parent alone makes it a step candidate (see [`adjacent_steps`]).
pub const ADJACENT_FROM: usize = 5;

/// Up to how many values a series is short enough for [`adjacent_steps`]:
/// there the rank tests of the search cannot separate steps a commit or
/// two apart (a level of fewer than [`MIN_LEVEL`] commits is taken for an
/// outlier), nor one at the newest commit.
pub const ADJACENT_UNTIL: usize = 2 * SHORT_LEVEL;

/// Every commit of a short series whose value differs from its parent's
/// by at least `threshold` (relative) and `floor` (absolute): candidates,
/// each to be confirmed by measuring it against its parent interleaved
/// (`syncbench confirm`), which tells a step from an outlier. Steps on
/// adjacent commits are separate candidates. From [`ADJACENT_FROM`]
/// values on, up to [`ADJACENT_UNTIL`]; a longer series has the search's
/// levels to go by.
pub fn adjacent_steps(series: &[f64], threshold: f64, floor: f64) -> Vec<Step> {
    if !(ADJACENT_FROM..=ADJACENT_UNTIL).contains(&series.len()) {
        return vec![];
    }
    (1..series.len())
        .filter_map(|i| {
            let (before, after) = (series[i - 1], series[i]);
            let change = if before == 0.0 {
                return None;
            } else {
                (after - before) / before.abs()
            };
            (change.abs() >= threshold && (after - before).abs() >= floor).then_some(Step {
                index: i,
                change,
                p_value: 1.0,
                before,
                after,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_series_have_every_commit_past_the_threshold_as_a_candidate() {
        // +30% at 3, +22% at 5 (two commits apart), +20% at 7 (the newest).
        let s = [100.0, 101.0, 99.0, 130.0, 131.0, 160.0, 159.0, 191.0];
        let steps = adjacent_steps(&s, 0.1, 0.0);
        let at: Vec<usize> = steps.iter().map(|s| s.index).collect();
        assert_eq!(at, [3, 5, 7]);
        // The size printed is the size between the levels printed.
        for st in &steps {
            assert!((st.after / st.before - 1.0 - st.change).abs() < 1e-12);
        }
        // Four values are too few to go by; a long series has the search.
        assert!(adjacent_steps(&s[..4], 0.1, 0.0).is_empty());
        assert!(adjacent_steps(&[1.0; 41], 0.1, 0.0).is_empty());
        // Below the floor: none.
        assert!(adjacent_steps(&s, 0.1, 100.0).is_empty());
    }

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

    /// Values around 100 with uniform noise of ±`spread`, seeded.
    fn noisy(n: usize, spread: f64, seed: u64) -> Vec<f64> {
        let mut rng = Rng(seed);
        (0..n)
            .map(|_| 100.0 + spread * ((rng.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0))
            .collect()
    }

    #[test]
    fn steps_in_the_oldest_third_of_a_long_history_are_found() {
        for seed in 1..=5 {
            let mut v = noisy(3000, 1.0, seed);
            // +5% at 400, -4% at 900; nothing after.
            v[400..].iter_mut().for_each(|x| *x *= 1.05);
            v[900..].iter_mut().for_each(|x| *x *= 0.96);
            let found: Vec<usize> = steps(&v, 0.01, 0.0).iter().map(|s| s.index).collect();
            assert_eq!(found, [400, 900], "seed {seed}");
        }
    }

    #[test]
    fn a_long_history_of_noise_has_no_steps() {
        for seed in 1..=5 {
            let v = noisy(3000, 1.0, seed);
            assert_eq!(steps(&v, 0.01, 0.0), [], "seed {seed}");
        }
    }

    #[test]
    fn a_short_excursion_stands_only_clear_of_the_noise() {
        let mut v = noisy(600, 1.0, 7);
        // Five commits 2% slower (clear of ±1% noise), then back.
        v[300..305].iter_mut().for_each(|x| *x *= 1.03);
        let found: Vec<usize> = steps(&v, 0.01, 0.0).iter().map(|s| s.index).collect();
        assert_eq!(found, [300, 305]);
        // Four commits within the noise: no level of their own.
        let mut v = noisy(600, 1.0, 7);
        v[300..304].iter_mut().for_each(|x| *x = 100.9);
        assert_eq!(steps(&v, 0.005, 0.0), []);
    }

    #[test]
    fn the_cache_makes_one_more_commit_cost_one_window() {
        let mut v = noisy(2000, 1.0, 3);
        v[500..].iter_mut().for_each(|x| *x *= 1.05);
        let cache = SplitCache::default();
        let cold = search(&v[..1999], 0.05, 200, Some(&cache));
        assert_eq!(cold, search(&v[..1999], 0.05, 200, None));
        let windows = cache.searched();
        assert!(windows >= 10, "{windows}");
        // One commit more: only the window it falls in is searched.
        let again = search(&v, 0.05, 200, Some(&cache));
        assert!(
            cache.searched() - windows <= 2,
            "{} more",
            cache.searched() - windows
        );
        assert_eq!(again, search(&v, 0.05, 200, None));
        // Kept and read back, the same; a damaged text is an empty cache.
        let loaded = SplitCache::from_text(&cache.to_text());
        assert_eq!(search(&v, 0.05, 200, Some(&loaded)), again);
        assert_eq!(loaded.searched(), 0);
        let other = SplitCache::from_text("syncbench split cache 1\nzz 1 2\n");
        assert_eq!(search(&v, 0.05, 200, Some(&other)), again);
        // Entries that cannot be a window's splits (out of order, past
        // its end) are searched again.
        let damaged: String = cache
            .to_text()
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i == 0 {
                    format!("{l}\n")
                } else {
                    format!("{} 900 3\n", l.split(' ').next().unwrap())
                }
            })
            .collect();
        let damaged = SplitCache::from_text(&damaged);
        assert_eq!(search(&v, 0.05, 200, Some(&damaged)), again);
        assert!(damaged.searched() > 0);
    }
}
