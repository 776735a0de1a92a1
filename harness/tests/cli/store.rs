//! A results database that is not ours is refused and left untouched.

use crate::support::*;

fn refused_untouched(path: &std::path::Path, expect: &str) {
    let before = std::fs::read(path).unwrap();
    let repo = repo_with(&[("x", "y")]);
    let out = sb(repo.path(), path, &["show"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(expect) && err.contains("left untouched"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "the file was modified"
    );
    for suffix in ["-wal", "-shm"] {
        assert!(!std::path::Path::new(&format!("{}{suffix}", path.display())).exists());
    }
}

#[test]
fn a_text_file_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.sqlite");
    std::fs::write(&path, "these are my notes, not a database\n".repeat(100)).unwrap();
    refused_untouched(&path, "is not a SQLite database");
}

#[test]
fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sqlite");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance REAL); INSERT INTO accounts VALUES (1, 9.5);")
            .unwrap();
    }
    refused_untouched(&path, "of another program");
}

#[test]
fn a_corrupt_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.sqlite");
    let repo = repo_with(&[(
        "scenarios/t.toml",
        "name = \"t\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = 1\nwarmup = 0\n",
    )]);
    let out = sb(repo.path(), &path, &["run", "t"]);
    assert!(out.status.success(), "{}", text(&out));
    // Checkpoint, then overwrite the middle of the file with junk.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len / 4..len - 16] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let _ = std::fs::remove_file(format!("{}-wal", path.display()));
    let _ = std::fs::remove_file(format!("{}-shm", path.display()));
    refused_untouched(&path, "cannot be used as a results database");
}

/// One definition of "the run of a commit" (an ok run over a failure, a
/// clean tree over a dirty one, the newest): regressions, compare, check,
/// bisect's probe and the dashboard agree on a history where dirty runs
/// (3× slower) were recorded after the clean runs of the same commits;
/// in either store.
#[test]
fn every_reader_takes_the_same_run_of_a_commit() {
    let work = tempfile::tempdir().unwrap();
    same_run_of_a_commit(work.path().join("r.sqlite").to_str().unwrap());
}

#[test]
fn every_reader_takes_the_same_run_of_a_commit_from_postgres() {
    if let Some(pg) = syncbench::pgtest::start_or_skip() {
        same_run_of_a_commit(&pg.url_of("postgres"));
    }
}

fn same_run_of_a_commit(db_s: &str) {
    use crate::golden::{SCENARIO, commit_of, fixed_repo, machine, series};
    use syncbench::model::{Direction, PointKey, RunStatus, Unit};
    use syncbench::store::RunRecord;

    let (repo, shas) = fixed_repo(SCENARIO);
    let r = repo.path().to_str().unwrap();
    let mut store = syncbench::store::open(&syncbench::store::Location::parse(db_s)).unwrap();
    let record = |i: usize, dirty: bool, status: RunStatus, level: f64| {
        let mut commit = commit_of(repo.path(), &shas[i]);
        commit.dirty = dirty;
        RunRecord {
            machine: machine(),
            commit,
            scenario: "svc".into(),
            point: "n=10".into(),
            params_json: r#"{"n":"10"}"#.into(),
            status,
            error: (!status.is_ok()).then(|| "boom".into()),
            repetitions: 5,
            harness_version: "0".into(),
            toolchain: "t".into(),
            command_line: "c".into(),
            started_unix: 0.0,
            finished_unix: 0.0,
            metrics: if status.is_ok() {
                vec![series(
                    "wall",
                    Unit::Seconds,
                    Direction::LowerIsBetter,
                    &[1.0, 1.01, 0.99, 1.0, 1.02].map(|w| w * level),
                )]
            } else {
                vec![]
            },
            samples: vec![],
            phases: vec![],
        }
    };
    let mut clean = vec![];
    for i in 0..12 {
        if i != 9 {
            clean.push(store.record(&record(i, false, RunStatus::Ok, 1.0)).unwrap());
        }
    }
    for i in 6..12 {
        let level = if i == 9 { 1.0 } else { 3.0 };
        store
            .record(&record(i, true, RunStatus::Ok, level))
            .unwrap();
    }
    store
        .record(&record(7, false, RunStatus::Failed, 0.0))
        .unwrap();

    // bisect's probe.
    let key = PointKey {
        machine: machine().fingerprint(),
        scenario: "svc".into(),
        point: "n=10".into(),
    };
    let run6 = store.run_of(&key, &[shas[6].clone()], None).unwrap();
    assert_eq!(run6, Some((clean[6], shas[6].clone())));
    let run7 = store.run_of(&key, &[shas[7].clone()], None).unwrap();
    assert_eq!(run7, Some((clean[7], shas[7].clone())));
    drop(store);

    let out = sb(r, db_s, &["regressions", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json(&out), serde_json::json!([]), "{}", text(&out));
    let out = sb(r, db_s, &["compare", &shas[5], &shas[8], "--json"]);
    let rows = &json(&out)[0]["rows"];
    assert_eq!(rows[0]["metric"], "wall");
    assert_eq!(rows[0]["median"], rows[0]["baseline_median"], "{rows}");
    let out = sb(
        r,
        db_s,
        &["check", "--baseline", &shas[5], "--commit", &shas[8]],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = sb(r, db_s, &["report", "--out", "site"]);
    assert!(out.status.success(), "{}", text(&out));
    let page = |sha: &str| {
        std::fs::read_to_string(repo.path().join(format!("site/runs/{sha}.html"))).unwrap()
    };
    assert!(!page(&shas[6]).contains("uncommitted changes"));
    assert!(!page(&shas[7]).contains("failed"));
    // A commit measured only with uncommitted changes: that run stands.
    assert!(page(&shas[9]).contains("ok (uncommitted changes)"));
    let index = std::fs::read_to_string(repo.path().join("site/index.html")).unwrap();
    assert!(
        !index.contains("tile regression"),
        "a change point on the dashboard"
    );
}
