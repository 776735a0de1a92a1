//! Finding the commit that moved a metric: a binary search over the
//! commits between GOOD and BAD, measuring only what it needs. The search
//! is over a probe closure (the values of the metric at a commit, or
//! `None` where the commit does not build or run), so its decisions are
//! tested without processes.

use crate::stats::{self, Comparison};

/// How a bisection ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// GOOD and BAD do not differ: nothing to bisect.
    NoChange(Comparison),
    /// The first commit like BAD (`culprit`) and the one before it
    /// (`parent`), as indexes into the commits, with their values.
    Culprit {
        culprit: usize,
        parent: usize,
        before: Vec<f64>,
        after: Vec<f64>,
        comparison: Comparison,
    },
    Interrupted,
}

/// Why a bisection could not start.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BisectError {
    #[error("GOOD has no value of the metric (failed, or no such metric)")]
    NoGood,
    #[error("BAD has no value of the metric (failed, or no such metric)")]
    NoBad,
    #[error("need at least two commits, GOOD and BAD")]
    TooFew,
}

/// Bisects `commits` commits (oldest first: 0 is GOOD, the last BAD).
/// `probe(i)` measures commit `i`; `threshold` is the smallest relative
/// change that counts.
/// A probe's error ends the search with it.
pub fn bisect<E: From<BisectError>>(
    commits: usize,
    threshold: f64,
    probe: &mut dyn FnMut(usize) -> Result<Option<Vec<f64>>, E>,
    interrupted: &dyn Fn() -> bool,
) -> Result<Outcome, E> {
    if commits < 2 {
        return Err(BisectError::TooFew.into());
    }
    let good = probe(0)?.ok_or(BisectError::NoGood)?;
    let bad = probe(commits - 1)?.ok_or(BisectError::NoBad)?;
    let gap = stats::compare(&good, &bad, threshold);
    if !gap.changed {
        return Ok(Outcome::NoChange(gap));
    }
    // Candidates still in play; a commit that does not build or run is
    // dropped and its neighbour tried. Invariant: the first looks like
    // GOOD, the last like BAD.
    let mut left: Vec<usize> = (0..commits).collect();
    let (mut lo, mut hi) = (0, commits - 1);
    let mut values = vec![None; commits];
    values[0] = Some(good.clone());
    values[commits - 1] = Some(bad.clone());
    while hi - lo > 1 {
        if interrupted() {
            return Ok(Outcome::Interrupted);
        }
        let mid = (lo + hi) / 2;
        match probe(left[mid])? {
            Some(v) => {
                let like_bad = looks_like_bad(&good, &bad, &v, &gap, threshold);
                values[left[mid]] = Some(v);
                if like_bad { hi = mid } else { lo = mid }
            }
            None => {
                left.remove(mid);
                hi -= 1;
            }
        }
    }
    let (parent, culprit) = (left[lo], left[hi]);
    let before = values[parent].clone().unwrap_or_default();
    let after = values[culprit].clone().unwrap_or_default();
    Ok(Outcome::Culprit {
        culprit,
        parent,
        comparison: stats::compare(&before, &after, threshold),
        before,
        after,
    })
}

/// Closer to BAD than to GOOD: changed from GOOD in the direction of the
/// whole change and not from BAD, or simply nearer BAD's median.
fn looks_like_bad(good: &[f64], bad: &[f64], v: &[f64], gap: &Comparison, threshold: f64) -> bool {
    let from_good = stats::compare(good, v, threshold);
    let from_bad = stats::compare(bad, v, threshold);
    from_good.changed && from_good.change.signum() == gap.change.signum() && !from_bad.changed
        || (stats::median(v) - stats::median(bad)).abs()
            < (stats::median(v) - stats::median(good)).abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Infallible = BisectError;

    fn values(level: f64) -> Vec<f64> {
        [1.0, 1.01, 0.99, 1.0, 1.02].map(|w| level * w).to_vec()
    }

    /// A history whose level steps from 1 to `to` at `step`; commits in
    /// `broken` do not build. Returns the outcome and what was measured.
    fn search(n: usize, step: usize, to: f64, broken: &[usize]) -> (Outcome, Vec<usize>) {
        let mut probed = vec![];
        let outcome = bisect::<Infallible>(
            n,
            0.05,
            &mut |i| {
                probed.push(i);
                Ok((!broken.contains(&i)).then(|| values(if i >= step { to } else { 1.0 })))
            },
            &|| false,
        )
        .unwrap();
        (outcome, probed)
    }

    fn culprit(o: &Outcome) -> (usize, usize) {
        match o {
            Outcome::Culprit {
                culprit, parent, ..
            } => (*culprit, *parent),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn finds_the_step_in_logarithmic_probes() {
        for step in 1..64 {
            let (o, probed) = search(64, step, 1.5, &[]);
            assert_eq!(culprit(&o), (step, step - 1), "step at {step}");
            // GOOD, BAD, and about log2(64) = 6 in between.
            assert!(probed.len() <= 9, "{step}: {probed:?}");
        }
    }

    #[test]
    fn a_step_down_is_found_as_well() {
        let (o, _) = search(20, 13, 0.5, &[]);
        assert_eq!(culprit(&o), (13, 12));
    }

    #[test]
    fn commits_that_do_not_build_are_skipped() {
        // The step's own commit is broken: the culprit is the next one
        // that builds, against the last good one before it.
        let (o, _) = search(16, 8, 2.0, &[8, 7]);
        assert_eq!(culprit(&o), (9, 6));
        let (o, _) = search(16, 8, 2.0, &[3, 12]);
        assert_eq!(culprit(&o), (8, 7));
    }

    #[test]
    fn no_change_means_nothing_to_bisect() {
        let (o, probed) = search(10, 20, 2.0, &[]);
        assert!(matches!(&o, Outcome::NoChange(c) if !c.changed), "{o:?}");
        assert_eq!(probed, [0, 9]);
    }

    #[test]
    fn ends_that_have_no_value_are_errors() {
        let r = bisect::<Infallible>(5, 0.05, &mut |i| Ok((i != 0).then(|| values(1.0))), &|| {
            false
        });
        assert_eq!(r, Err(BisectError::NoGood));
        let r = bisect::<Infallible>(5, 0.05, &mut |i| Ok((i != 4).then(|| values(1.0))), &|| {
            false
        });
        assert_eq!(r, Err(BisectError::NoBad));
        let r = bisect::<Infallible>(1, 0.05, &mut |_| Ok(Some(values(1.0))), &|| false);
        assert_eq!(r, Err(BisectError::TooFew));
    }

    #[test]
    fn an_interruption_stops_the_search() {
        let o = bisect::<Infallible>(
            10,
            0.05,
            &mut |i| Ok(Some(values(if i > 5 { 2.0 } else { 1.0 }))),
            &|| true,
        )
        .unwrap();
        assert_eq!(o, Outcome::Interrupted);
    }
}
