//! Alarms worth acting on: change points ranked by their size against
//! their series' threshold, change points of noisy metrics confirmed by
//! measuring the two commits again interleaved (`syncbench confirm`), and
//! people's triage of alarms (`syncbench triage`) with the precision it
//! gives the alarms.

use crate::abtest::AbResult;
use crate::history::Change;
use crate::history::Measured;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use syncbench_model::records::{AbRecord, ConfirmationKey, ConfirmationRow, TriageRecord};
use syncbench_model::{Confirmation, Triage, Verdict};

/// Whether a change is an alarm: a step of an exact count (the code's on
/// any machine), or a noisy metric's step that measuring again confirmed.
pub fn is_alarm(c: &Change) -> bool {
    c.exact || c.confirmation == Confirmation::Confirmed
}

/// The key of a change's confirmation.
pub fn key_of(c: &Change) -> ConfirmationKey {
    ConfirmationKey {
        machine: c.machine.clone(),
        scenario: c.scenario.clone(),
        point: c.point.clone(),
        metric: c.metric.clone(),
        before_sha: c.before_commit.clone(),
        sha: c.commit.clone(),
    }
}

/// The measured size of a confirmed change: the estimate and interval of
/// the A/B run that confirmed it (`None` unless confirmed with one).
pub fn measured(row: &ConfirmationRow, ab_runs: &[AbRecord]) -> Option<Measured> {
    if row.state != Confirmation::Confirmed {
        return None;
    }
    let ab = ab_runs.iter().find(|a| Some(a.id) == row.ab_id)?;
    Some(Measured {
        change_pct: ab.change? * 100.0,
        low_pct: ab.low? * 100.0,
        high_pct: ab.high? * 100.0,
        pairs: ab.pairs,
    })
}

/// Fills in each change's confirmation (with its measured size) and
/// newest triage decision.
pub fn annotate(
    changes: &mut [Change],
    confirmations: &[ConfirmationRow],
    ab_runs: &[AbRecord],
    triages: &[TriageRecord],
) {
    let by_key: HashMap<&ConfirmationKey, &ConfirmationRow> =
        confirmations.iter().map(|r| (&r.key, r)).collect();
    for c in changes {
        if let Some(r) = by_key.get(&key_of(c)) {
            c.confirmation = r.state;
            c.confirmation_reason = Some(r.reason.clone()).filter(|r| !r.is_empty());
            c.measured = measured(r, ab_runs);
            // Ranked by its measured size from then on.
            if let Some(m) = c.measured {
                c.significance = (m.change_pct / 100.0).abs() / c.threshold.value;
            }
        }
        c.triage = triage_of(triages, &c.commit, &c.scenario, &c.metric).cloned();
    }
}

/// The newest decision about `metric` at `commit` in `scenario` (a
/// decision without a scenario covers all).
pub fn triage_of<'a>(
    triages: &'a [TriageRecord],
    commit: &str,
    scenario: &str,
    metric: &str,
) -> Option<&'a TriageRecord> {
    triages
        .iter()
        .filter(|t| {
            t.commit == commit
                && t.metric == metric
                && t.scenario.as_deref().is_none_or(|s| s == scenario)
        })
        .max_by(|a, b| {
            a.created_unix
                .total_cmp(&b.created_unix)
                .then(a.id.cmp(&b.id))
        })
}

/// How trustworthy the alarms have been: of the alarms people triaged
/// (their newest decision each), the share not marked invalid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Precision {
    pub triaged: usize,
    pub invalid: usize,
    pub precision: f64,
}

/// The precision of the triaged alarms; `None` before any triage.
pub fn precision(triages: &[TriageRecord]) -> Option<Precision> {
    let mut newest: BTreeMap<(&str, &str, Option<&str>), &TriageRecord> = BTreeMap::new();
    for t in triages {
        let key = (t.commit.as_str(), t.metric.as_str(), t.scenario.as_deref());
        match newest.get(&key) {
            Some(old) if (old.created_unix, old.id) > (t.created_unix, t.id) => {}
            _ => {
                newest.insert(key, t);
            }
        }
    }
    let triaged = newest.len();
    let invalid = newest
        .values()
        .filter(|t| t.state == Triage::Invalid)
        .count();
    (triaged > 0).then(|| Precision {
        triaged,
        invalid,
        precision: 1.0 - invalid as f64 / triaged as f64,
    })
}

/// Change points to confirm, grouped by the point and the two commits
/// (one interleaved run decides all the metrics that stepped there):
/// noisy metrics only (an exact count needs no confirming), on `machine`
/// (another machine's step is measured there), not yet final unless
/// `again`.
pub fn to_confirm<'a>(changes: &'a [Change], machine: &str, again: bool) -> Vec<Vec<&'a Change>> {
    let mut groups: BTreeMap<(&str, &str, &str, &str), Vec<&Change>> = BTreeMap::new();
    for c in changes
        .iter()
        .filter(|c| !c.exact && c.machine == machine && (again || !c.confirmation.is_final()))
    {
        groups
            .entry((&c.scenario, &c.point, &c.before_commit, &c.commit))
            .or_default()
            .push(c);
    }
    groups.into_values().collect()
}

/// What an interleaved run of the two commits says about a change point:
/// confirmed when it found a change the same way, refuted when it found
/// none at the threshold (or one the other way), otherwise inconclusive,
/// with the reason in words.
pub fn judge(change: &Change, ab: &AbResult) -> (Confirmation, String) {
    let interval = ab.estimate.map_or(String::new(), |e| {
        format!(
            "{:+.2}% [{:+.2}%, {:+.2}%] in {} pairs",
            e.change * 100.0,
            e.low * 100.0,
            e.high * 100.0,
            ab.pairs
        )
    });
    match (ab.verdict, &ab.error) {
        (Verdict::Failed, Some(e)) => (Confirmation::Inconclusive, e.clone()),
        (Verdict::Regression | Verdict::Improvement, _) if ab.verdict == change.verdict => {
            (Confirmation::Confirmed, interval)
        }
        (Verdict::Regression | Verdict::Improvement, _) => (
            Confirmation::Refuted,
            format!("changed the other way: {interval}"),
        ),
        (Verdict::Unchanged, _) => (
            Confirmation::Refuted,
            format!("within ±{:.1}%: {interval}", ab.threshold * 100.0),
        ),
        _ => (
            Confirmation::Inconclusive,
            format!(
                "{}: {interval}",
                ab.stop.map_or("no answer", |s| s.describe())
            ),
        ),
    }
}

/// A stored interleaved run of exactly this change point's two commits,
/// metric and point on its machine that answers it at the change's
/// threshold T (`compare --run` or `check` measured them already): its
/// interval decides at T as `abtest::decide` would, all of it beyond
/// ±T/2 for a change, all of it within ±T for none, whatever threshold
/// that run was judged at (the two thresholds are learned apart, from
/// different values). The newest such run.
pub fn evidence<'a>(change: &Change, runs: &'a [AbRecord]) -> Option<&'a AbRecord> {
    let t = change.threshold.value;
    runs.iter().rev().find(|r| {
        r.machine == change.machine
            && r.scenario == change.scenario
            && r.point == change.point
            && r.metric == change.metric
            && r.a_sha == change.before_commit
            && r.b_sha == change.commit
            // Two variants compared is not this series measured again.
            && r.a_point.is_none()
            && r.mode == crate::abtest::Mode::Interleaved.as_str()
            && match (r.verdict, r.low, r.high) {
                (Verdict::Regression | Verdict::Improvement, Some(low), Some(high)) => {
                    low > t / 2.0 || high < -t / 2.0
                }
                (Verdict::Unchanged, Some(low), Some(high)) => low > -t && high < t,
                _ => false,
            }
    })
}

/// A confirmation's row for a change, as `judge` decided, updated at
/// `updated_unix` (the caller's clock).
pub fn row(
    change: &Change,
    state: Confirmation,
    reason: String,
    ab_id: Option<i64>,
    owner: &str,
    updated_unix: f64,
) -> ConfirmationRow {
    ConfirmationRow {
        key: key_of(change),
        state,
        reason,
        ab_id,
        owner: owner.to_owned(),
        updated_unix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abtest::Mode;
    use crate::abtest::{Estimate, Stop};
    use crate::history::{Threshold, ThresholdSource};
    use syncbench_model::Unit;

    fn change(metric: &str, verdict: Verdict, significance: f64, exact: bool) -> Change {
        Change {
            environment_changed: vec![],
            commit: "b".repeat(40),
            before_commit: "a".repeat(40),
            subject_time_unix: 1,
            scenario: "s".into(),
            point: "n=1".into(),
            params: serde_json::Value::Null,
            metric: metric.into(),
            unit: Unit::Seconds,
            verdict,
            change_pct: 10.0,
            before: 1.0,
            after: 1.1,
            confidence: 0.99,
            machine: "m".into(),
            exact,
            threshold: Threshold {
                value: 0.05,
                source: ThresholdSource::Learned,
            },
            significance,
            confirmation: Confirmation::Unconfirmed,
            confirmation_reason: None,
            measured: None,
            triage: None,
        }
    }

    fn ab(verdict: Verdict, stop: Option<Stop>, error: Option<&str>) -> AbResult {
        AbResult {
            scenario: "s".into(),
            point: "n=1".into(),
            a_point: None,
            metric: "wall".into(),
            mode: Mode::Interleaved,
            verdict,
            estimate: Some(Estimate {
                change: 0.1,
                low: 0.08,
                high: 0.12,
            }),
            threshold: 0.05,
            pairs: 14,
            stop,
            seconds: 3.0,
            a: vec![],
            b: vec![],
            error: error.map(str::to_owned),
        }
    }

    fn triage(state: Triage, at: f64, scenario: Option<&str>) -> TriageRecord {
        TriageRecord {
            id: at as i64,
            commit: "b".repeat(40),
            metric: "wall".into(),
            scenario: scenario.map(str::to_owned),
            state,
            by: None,
            who: "me".into(),
            note: None,
            created_unix: at,
        }
    }

    #[test]
    fn regressions_come_first_by_significance_then_improvements() {
        let mut v = vec![
            change("a", Verdict::Improvement, 9.0, false),
            change("b", Verdict::Regression, 1.5, false),
            change("c", Verdict::Regression, 4.0, false),
        ];
        crate::history::rank(&mut v);
        let order: Vec<&str> = v.iter().map(|c| c.metric.as_str()).collect();
        assert_eq!(order, ["c", "b", "a"]);
    }

    #[test]
    fn a_step_is_judged_by_the_interleaved_run() {
        let c = change("wall", Verdict::Regression, 2.0, false);
        let j = |v, stop, e| judge(&c, &ab(v, stop, e)).0;
        assert_eq!(
            j(Verdict::Regression, Some(Stop::Changed), None),
            Confirmation::Confirmed
        );
        assert_eq!(
            j(Verdict::Improvement, Some(Stop::Changed), None),
            Confirmation::Refuted
        );
        assert_eq!(
            j(Verdict::Unchanged, Some(Stop::WithinThreshold), None),
            Confirmation::Refuted
        );
        assert_eq!(
            j(Verdict::Inconclusive, Some(Stop::Budget), None),
            Confirmation::Inconclusive
        );
        // A commit that no longer builds: inconclusive, never refuted.
        let (state, reason) = judge(&c, &ab(Verdict::Failed, None, Some("B failed to build: x")));
        assert_eq!(state, Confirmation::Inconclusive);
        assert!(reason.contains("failed to build"), "{reason}");
    }

    #[test]
    fn triage_newest_wins_and_precision_counts_invalid_alarms() {
        let t = [
            triage(Triage::Invalid, 1.0, None),
            triage(Triage::Acknowledged, 2.0, Some("s")),
            triage(Triage::Fixed, 3.0, Some("other")),
        ];
        let got = triage_of(&t, &"b".repeat(40), "s", "wall").unwrap();
        assert_eq!(got.state, Triage::Acknowledged);
        assert!(triage_of(&t, &"b".repeat(40), "s", "cpu").is_none());
        // Three alarms triaged (the None-scoped one, s and other), one invalid.
        let p = precision(&t).unwrap();
        assert_eq!((p.triaged, p.invalid), (3, 1));
        assert!((p.precision - 2.0 / 3.0).abs() < 1e-9);
        assert!(precision(&[]).is_none());
        // A later decision on the same alarm replaces the earlier one.
        let p = precision(&[
            triage(Triage::Invalid, 1.0, None),
            triage(Triage::Fixed, 2.0, None),
        ])
        .unwrap();
        assert_eq!((p.triaged, p.invalid), (1, 0));
    }

    #[test]
    fn only_noisy_unconfirmed_steps_of_this_machine_are_confirmed_together() {
        let mut done = change("cpu_sys", Verdict::Regression, 2.0, false);
        done.confirmation = Confirmation::Refuted;
        let mut elsewhere = change("wall", Verdict::Regression, 2.0, false);
        elsewhere.machine = "other".into();
        let v = vec![
            change("wall", Verdict::Regression, 2.0, false),
            change("cpu_user", Verdict::Regression, 2.0, false),
            change("command.instructions", Verdict::Regression, 2.0, true),
            done,
            elsewhere,
        ];
        let groups = to_confirm(&v, "m", false);
        assert_eq!(groups.len(), 1);
        let metrics: Vec<&str> = groups[0].iter().map(|c| c.metric.as_str()).collect();
        assert_eq!(metrics, ["wall", "cpu_user"]);
        assert_eq!(to_confirm(&v, "m", true)[0].len(), 3);
    }

    fn stored(verdict: Verdict, threshold: f64, b_sha: &str) -> AbRecord {
        stored_with(verdict, threshold, (0.08, 0.12), b_sha)
    }

    fn stored_with(
        verdict: Verdict,
        threshold: f64,
        (low, high): (f64, f64),
        b_sha: &str,
    ) -> AbRecord {
        AbRecord {
            id: 7,
            machine: "m".into(),
            scenario: "s".into(),
            point: "n=1".into(),
            a_point: None,
            metric: "wall".into(),
            a_sha: "a".repeat(40),
            b_sha: b_sha.into(),
            mode: "interleaved".into(),
            verdict,
            change: Some((low + high) / 2.0),
            low: Some(low),
            high: Some(high),
            threshold,
            pairs: 20,
            stop: Some("changed".into()),
            seconds: 4.0,
            a: vec![],
            b: vec![],
            error: None,
            purpose: "check".into(),
            created_unix: 1.0,
        }
    }

    #[test]
    fn a_stored_interleaved_run_of_the_same_commits_is_evidence_at_a_compatible_threshold() {
        let c = change("wall", Verdict::Regression, 2.0, false); // threshold 5%
        let b = "b".repeat(40);
        let found = |r: AbRecord| evidence(&c, std::slice::from_ref(&r)).is_some();
        assert!(found(stored(Verdict::Regression, 0.05, &b)));
        // Its interval decides, whatever threshold it was judged at:
        // [+8%, +12%] is beyond 2.5% though judged at 2%, or at 20% …
        assert!(found(stored(Verdict::Regression, 0.02, &b)));
        // … [+1.5%, +3%], changed at 2%, is not beyond half of 5%.
        let small = (0.015, 0.03);
        assert!(!found(stored_with(Verdict::Regression, 0.02, small, &b)));
        // Within ±2% is within ±5%; within ±10% ([-8%, +9%]) is not.
        assert!(found(stored_with(
            Verdict::Unchanged,
            0.02,
            (-0.01, 0.015),
            &b
        )));
        assert!(!found(stored_with(
            Verdict::Unchanged,
            0.10,
            (-0.08, 0.09),
            &b
        )));
        assert!(!found(stored(Verdict::Inconclusive, 0.05, &b)));
        assert!(!found(stored(Verdict::Regression, 0.05, &"c".repeat(40))));
        let (state, _) = judge(
            &c,
            &AbResult::from_record(&stored(Verdict::Regression, 0.05, &b)),
        );
        assert_eq!(state, Confirmation::Confirmed);
    }
}
