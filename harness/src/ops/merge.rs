//! `merge`: runs recorded elsewhere (a CI matrix's artifacts, a laptop, a
//! spool of runs a server could not take) copied into a results store.
//! Idempotent: a run, an A/B run, a triage decision or a profile the
//! target has is not added again. The source file is never written.

use crate::store::{
    AbRecord, ProfileRecord, RunRecord, SqliteStore, Store, StoreError, TriageRecord, checked_sha,
};
use std::collections::HashSet;
use std::path::Path;

/// What one file added.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Merged {
    pub runs: usize,
    pub runs_added: usize,
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
    let mut merged = Merged {
        runs: runs.len(),
        runs_added: target.merge_runs(&runs)?,
        ..Default::default()
    };
    let have: HashSet<_> = target.ab_runs()?.iter().map(ab_key).collect();
    for ab in abs {
        if !have.contains(&ab_key(&ab)) {
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
