//! `merge`: runs recorded elsewhere (a CI matrix's artifacts, a laptop, a
//! spool of runs a server could not take) copied into a results store.
//! Idempotent: a run, an A/B run, a triage decision or a profile the
//! target has is not added again. The source file is never written.

use crate::store::{
    AbRecord, ForgetRecord, ForgetSelector, ProfileRecord, RunRecord, SqliteStore, Store,
    StoreError, TriageRecord, checked_sha,
};
use std::collections::HashSet;
use std::path::Path;

/// What one file added.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Merged {
    pub runs: usize,
    pub runs_added: usize,
    /// Runs (or, with a metric, values) the target's `forget` removed
    /// before: not brought back.
    pub runs_forgotten: usize,
    pub ab_added: usize,
    pub triage_added: usize,
    pub profiles_added: usize,
}

/// An A/B run is the same when measured of the same metric at the same
/// commits and stored at the same moment.
fn ab_key(a: &AbRecord) -> (String, String, String, String, String, String, u64) {
    (
        a.machine.clone(),
        a.scenario.clone(),
        a.point.clone(),
        a.metric.clone(),
        a.a_sha.clone(),
        a.b_sha.clone(),
        a.created_unix.to_bits(),
    )
}

fn triage_key(t: &TriageRecord) -> (String, String, Option<String>, String, u64) {
    (
        t.commit.clone(),
        t.metric.clone(),
        t.scenario.clone(),
        t.who.clone(),
        t.created_unix.to_bits(),
    )
}

/// Copies what `file` (a syncbench SQLite database) holds into `target`.
pub fn merge_file(target: &mut Store, file: &Path) -> Result<Merged, StoreError> {
    let dir = tempfile::tempdir().map_err(|source| StoreError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let source = SqliteStore::open_copy(file, dir.path())?;
    let source: &Store = &source;
    // Read whole and checked before anything is written: a file from
    // elsewhere is data, and its commit ids become file names.
    let runs = source.export_runs()?;
    let abs = source.ab_runs()?;
    let triages = source.triages()?;
    let profiles = source.profiles()?;
    check_shas(file, &runs, &abs, &triages, &profiles)?;
    let forgotten = target.forgotten()?;
    let total = runs.len();
    let (runs, runs_forgotten) = unforgotten(runs, &forgotten);
    let mut merged = Merged {
        runs: total,
        runs_added: target.merge_runs(&runs)?,
        runs_forgotten,
        ..Default::default()
    };
    let have: HashSet<_> = target.ab_runs()?.iter().map(ab_key).collect();
    for ab in abs {
        let forgot = forgotten.iter().any(|f| {
            ab.created_unix <= f.created_unix
                && [&ab.a_sha, &ab.b_sha]
                    .into_iter()
                    .any(|sha| selects(&f.selector, &ab.machine, &ab.scenario, &ab.point, sha))
                && f.selector.metric.as_ref().is_none_or(|m| *m == ab.metric)
        });
        if !forgot && !have.contains(&ab_key(&ab)) {
            target.record_ab(&ab)?;
            merged.ab_added += 1;
        }
    }
    let have: HashSet<_> = target.triages()?.iter().map(triage_key).collect();
    for t in triages {
        if !have.contains(&triage_key(&t)) {
            target.record_triage(&t)?;
            merged.triage_added += 1;
        }
    }
    let have = target.profiles()?;
    for p in profiles {
        // The newer comparison of the same point and commits stays.
        let newer_or_same = have.iter().any(|h| {
            (&h.machine, &h.scenario, &h.point, &h.base_sha, &h.new_sha)
                == (&p.machine, &p.scenario, &p.point, &p.base_sha, &p.new_sha)
                && h.created_unix >= p.created_unix
        });
        if !newer_or_same {
            target.record_profile(&p)?;
            merged.profiles_added += 1;
        }
    }
    Ok(merged)
}

/// Whether a forget's selection covers a run of this machine, scenario,
/// point and commit (its metric aside).
fn selects(sel: &ForgetSelector, machine: &str, scenario: &str, point: &str, sha: &str) -> bool {
    sel.scenario.as_ref().is_none_or(|s| s == scenario)
        && sel.point.as_ref().is_none_or(|p| p == point)
        && sel.commit.as_ref().is_none_or(|c| c == sha)
        && (sel.machines.is_empty() || sel.machines.iter().any(|m| m == machine))
}

/// The runs without what the target forgot: a run measured before a
/// forget that selects it is what that forget removed (one measured after
/// it was measured again on purpose, and stays); with a metric, only that
/// metric's values go. A forget is a decision about the history, so an
/// older artifact merged later must not undo it. Also how many runs
/// lost something.
fn unforgotten(runs: Vec<RunRecord>, forgotten: &[ForgetRecord]) -> (Vec<RunRecord>, usize) {
    let mut dropped = 0;
    let mut out = Vec::with_capacity(runs.len());
    for mut r in runs {
        let machine = r.machine.fingerprint();
        let mut whole = false;
        let mut touched = false;
        for f in forgotten.iter().filter(|f| {
            r.finished_unix <= f.created_unix
                && selects(&f.selector, &machine, &r.scenario, &r.point, &r.commit.sha)
        }) {
            match &f.selector.metric {
                None => whole = true,
                Some(m) => {
                    let before = r.metrics.len();
                    r.metrics.retain(|s| s.name != *m);
                    touched |= r.metrics.len() != before;
                }
            }
        }
        if whole || touched {
            dropped += 1;
        }
        if !whole {
            out.push(r);
        }
    }
    (out, dropped)
}

/// Every commit id `file` holds is a commit sha, or the merge is refused
/// (naming the file, the field and the value).
fn check_shas(
    file: &Path,
    runs: &[RunRecord],
    abs: &[AbRecord],
    triages: &[TriageRecord],
    profiles: &[ProfileRecord],
) -> Result<(), StoreError> {
    let at = file.display();
    let check = |what, sha: &String| checked_sha(&at, what, sha.clone()).map(drop);
    for r in runs {
        check("a commit", &r.commit.sha)?;
        for p in &r.commit.parents {
            check("a parent commit", p)?;
        }
    }
    for a in abs {
        check("an A/B run's commit", &a.a_sha)?;
        check("an A/B run's commit", &a.b_sha)?;
    }
    for t in triages {
        check("a triaged commit", &t.commit)?;
        if let Some(by) = &t.by {
            check("a triaged commit", by)?;
        }
    }
    for p in profiles {
        check("a profile's commit", &p.base_sha)?;
        check("a profile's commit", &p.new_sha)?;
    }
    Ok(())
}
