//! `syncbench confirm`: each change point of a noisy metric (time, CPU,
//! memory) measured again before it alarms — the commit before it and the
//! first commit after it, built side by side and run interleaved (the A/B
//! loop of `ops::ab`) until the answer is clear or the budget is used —
//! and recorded `confirmed`, `refuted` or `inconclusive`. Mozilla
//! retriggers a job and Chromium bisects with Pinpoint for the same
//! reason: a time series on a shared machine moves with its neighbours.
//!
//! Each change point is claimed in the store before it is measured, so
//! two `confirm` runs on one database never measure one twice (and they
//! take turns on the cache's worktrees, which are locked).

use crate::abtest::{ALPHA, Settings, Target};
use crate::alarms;
use crate::history::Change;
use crate::model::Confirmation;
use crate::ops::ab::{self, Plan};
use crate::ops::session::Session;
use crate::scenario::{Point, Scenario, ThresholdBook};
use crate::store::{ConfirmationRow, StoreError};
use std::path::Path;
use std::time::Duration;

/// Which change points, and how long each may take.
#[derive(Debug, Clone)]
pub struct Options {
    /// Per change point (the commits' pair, all its metrics together).
    pub budget: Duration,
    /// Measure again those with an answer, stored A/B runs or not.
    pub again: bool,
}

/// A confirmation's answer, for the caller to print.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub row: ConfirmationRow,
    pub verdict: crate::model::Verdict,
    pub change_pct: f64,
}

/// `host:pid` of this process, the owner of its claims.
pub fn owner() -> String {
    format!("{}:{}", crate::machine::hostname(), std::process::id())
}

/// Whether a claim can be taken: left unconfirmed (an interrupted run),
/// or its owner is gone — a process of this host that no longer runs, or
/// a claim a day old (another host's, or a reused pid).
fn stale(row: &ConfirmationRow) -> bool {
    if row.state == Confirmation::Unconfirmed {
        return true;
    }
    let now = crate::model::unix_now();
    if now - row.updated_unix > 24.0 * 3600.0 {
        return true;
    }
    match row.owner.rsplit_once(':') {
        Some((host, pid)) if host == crate::machine::hostname() => {
            !Path::new("/proc").join(pid).exists()
        }
        _ => false,
    }
}

/// Confirms the change points of `scenarios` whose commit `wanted`
/// accepts; `done` sees each answer as it is recorded.
pub fn confirm(
    session: &mut Session,
    root: &Path,
    book: &ThresholdBook,
    scenarios: &[Scenario],
    wanted: &dyn Fn(&str) -> bool,
    opts: &Options,
    done: &mut dyn FnMut(&Outcome),
) -> anyhow::Result<Vec<Outcome>> {
    // HEAD's line only: a commit amended or rebased away is no alarm.
    let line = crate::git::Line::of(root, "HEAD")?;
    let mut changes =
        super::load_history(&*session.store, &|r| line.contains(&r.sha))?.changes(book);
    let (confirmations, triages) = (session.store.confirmations()?, session.store.triages()?);
    let ab_runs = session.store.ab_runs()?;
    alarms::annotate(&mut changes, &confirmations, &ab_runs, &triages);
    let machine = session.machine().fingerprint();
    let owner = owner();
    let mut out = Vec::new();
    for group in alarms::to_confirm(&changes, &machine, opts.again) {
        if session.interrupted() {
            break;
        }
        let first = group[0];
        let Some(s) = scenarios.iter().find(|s| s.name == first.scenario) else {
            continue;
        };
        if !wanted(&first.commit) {
            continue;
        }
        let mut claimed: Vec<&Change> = Vec::new();
        for c in group {
            if session
                .store
                .claim_confirmation(&alarms::key_of(c), &owner, opts.again, &stale)?
            {
                claimed.push(c);
            }
        }
        if claimed.is_empty() {
            continue;
        }
        // An interleaved run of these commits already stored answers
        // without measuring again (unless asked to measure again).
        let runs = if opts.again {
            Vec::new()
        } else {
            session.store.ab_runs()?
        };
        let mut answers: Vec<Answer> = Vec::new();
        claimed.retain(|c| match alarms::evidence(c, &runs) {
            Some(r) => {
                let (state, reason) = alarms::judge(c, &ab::AbResult::from_record(r));
                let reason = format!("{reason} (stored {} run #{})", r.purpose, r.id);
                answers.push((c, state, reason, Some(r.id)));
                false
            }
            None => true,
        });
        if !claimed.is_empty() {
            answers.extend(confirm_group(session, root, s, &claimed, opts)?);
        }
        for (c, state, reason, ab_id) in answers {
            let row = alarms::row(c, state, reason, ab_id, &owner, crate::model::unix_now());
            session.store.finish_confirmation(&row)?;
            let outcome = Outcome {
                row,
                verdict: c.verdict,
                change_pct: c.change_pct,
            };
            done(&outcome);
            out.push(outcome);
        }
    }
    Ok(out)
}

type Answer<'a> = (&'a Change, Confirmation, String, Option<i64>);

/// Measures one group (one point, the same two commits) and judges each
/// of its changes. An interrupted run (between repetitions, or a build or
/// repetition cut short) leaves them unconfirmed (claimable again), not
/// inconclusive.
fn confirm_group<'a>(
    session: &mut Session,
    root: &Path,
    s: &Scenario,
    group: &[&'a Change],
    opts: &Options,
) -> Result<Vec<Answer<'a>>, StoreError> {
    let first = group[0];
    let all = |state: Confirmation, reason: String| -> Vec<Answer<'a>> {
        group
            .iter()
            .map(|c| (*c, state, reason.clone(), None))
            .collect()
    };
    let Some(point) = s.points.iter().find(|p| p.key() == first.point) else {
        return Ok(all(
            Confirmation::Inconclusive,
            format!(
                "the scenario {} no longer has the point {}",
                s.name, first.point
            ),
        ));
    };
    let targets = group
        .iter()
        .map(|c| Target {
            metric: c.metric.clone(),
            threshold: c.threshold.value,
            resolution: None,
        })
        .collect();
    let again = Again {
        scenario: s,
        point,
        commits: (&first.before_commit, &first.commit),
        targets,
        budget: opts.budget,
        purpose: "confirm",
    };
    let sides = match ab::sides(session, root, again.commits) {
        Ok(sides) => sides,
        Err(e) => {
            return Ok(all(
                Confirmation::Inconclusive,
                format!("cannot check the commits out: {e:#}"),
            ));
        }
    };
    let measured = measure_again(session, &sides, again)?;
    drop(sides);
    let (results, ids): (Vec<_>, Vec<_>) = match measured {
        Ok(measured) => measured.into_iter().unzip(),
        // A build cut short by Ctrl-C says nothing about the commit.
        Err(_) if session.interrupted() => {
            return Ok(all(Confirmation::Unconfirmed, "interrupted".to_owned()));
        }
        Err(e) => return Ok(all(Confirmation::Inconclusive, e)),
    };
    Ok(group
        .iter()
        .zip(results.iter().zip(ids))
        .map(|(c, (r, id))| {
            // Ctrl-C during a repetition fails it; that is no answer either.
            let cut = r.stop == Some(crate::abtest::Stop::Interrupted)
                || (r.verdict == crate::model::Verdict::Failed && session.interrupted());
            let (state, reason) = if cut {
                (Confirmation::Unconfirmed, "interrupted".to_owned())
            } else {
                alarms::judge(c, r)
            };
            (*c, state, reason, Some(id))
        })
        .collect())
}

/// The least pairs a confirmation measures before it may stop: fewer
/// cannot tell a real step from one noisy pair.
const MIN_PAIRS: usize = 5;

/// One point to measure again at two commits, for `confirm` and `check`.
#[derive(Debug)]
pub struct Again<'a> {
    pub scenario: &'a Scenario,
    pub point: &'a Point,
    /// Before and after, as A and B.
    pub commits: (&'a str, &'a str),
    /// The metrics that decide, each with the change that counts.
    pub targets: Vec<Target>,
    /// The time it may take in all.
    pub budget: Duration,
    /// What the stored A/B runs say they were for.
    pub purpose: &'static str,
}

/// Builds both commits side by side (`sides`, checked out at
/// `again.commits`) and runs them interleaved until each target's answer
/// is clear or the budget is spent (the A/B loop of `ops::ab`, warmed up,
/// at least [`MIN_PAIRS`] pairs); records the runs. Each target's result
/// comes back with its stored run's id; a side that does not build (or
/// whose build was interrupted) measures nothing and says why.
pub fn measure_again(
    session: &mut Session,
    sides: &[ab::AbSide; 2],
    again: Again<'_>,
) -> Result<Result<Vec<(ab::AbResult, i64)>, String>, StoreError> {
    if let Err(e) = ab::build(
        sides,
        again.scenario,
        again.scenario.variant_of(again.point),
    ) {
        return Ok(Err(e));
    }
    let plan = Plan {
        targets: again.targets,
        settings: Settings {
            min_pairs: MIN_PAIRS,
            max_pairs: None,
            budget: again.budget,
            alpha: ALPHA,
        },
        unpaired: None,
        warmup: true,
    };
    let results = ab::measure(
        session,
        sides,
        again.scenario,
        again.point,
        &plan,
        &mut |_, _, _| {},
    );
    let (a, b) = again.commits;
    let ids = ab::record(session, a, b, &results, again.purpose)?;
    Ok(Ok(results.into_iter().zip(ids).collect()))
}
