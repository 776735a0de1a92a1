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
    if let Some(pg) = syncbench_test_support::pgtest::start_or_skip() {
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
            environment: Default::default(),
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

const TRUE: &str =
    "name = \"t\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = 1\nwarmup = 0\n";

/// Every file under `dir`, but those under `except`.
fn files_outside(dir: &std::path::Path, except: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.starts_with(except) {
                continue;
            }
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A results file whose commit is `../../x` (a file from elsewhere, as
/// `merge` takes them): the merge is refused naming the file and the
/// value, nothing of it is stored, and a dashboard of that file itself
/// writes nothing outside `--out`.
#[test]
fn a_commit_that_is_not_a_sha_is_refused_and_names_no_file() {
    let repo = repo_with(&[("scenarios/t.toml", TRUE)]);
    let work = tempfile::tempdir().unwrap();
    let evil = work.path().join("evil.sqlite");
    let out = sb(repo.path(), &evil, &["run", "t"]);
    assert!(out.status.success(), "{}", text(&out));
    {
        let c = rusqlite::Connection::open(&evil).unwrap();
        c.execute_batch(
            "PRAGMA foreign_keys = OFF;
             UPDATE commits SET sha = '../../x';
             UPDATE runs SET commit_sha = '../../x';
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
    }

    let target = work.path().join("target.sqlite");
    let out = sb(repo.path(), &target, &["merge", evil.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(evil.to_str().unwrap())
            && err.contains("\"../../x\"")
            && err.contains("not a commit sha"),
        "{err}"
    );
    let stored: i64 = rusqlite::Connection::open(&target)
        .unwrap()
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 0, "nothing of the file is stored");

    // The dashboard of that file: runs/../../x.html would be two levels
    // above runs/, outside --out.
    let site = work.path().join("deep/site");
    let before = files_outside(work.path(), &site);
    let out = sb(
        repo.path(),
        &evil,
        &["report", "--out", site.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("\"../../x\""), "{}", text(&out));
    assert!(!work.path().join("deep/x.html").exists());
    let after: Vec<_> = files_outside(work.path(), &site)
        .into_iter()
        .filter(|p| !p.to_string_lossy().starts_with(&*evil.to_string_lossy()))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|p| !p.to_string_lossy().starts_with(&*evil.to_string_lossy()))
        .collect();
    assert_eq!(after, before, "files written outside --out");
}

/// `x#y.sqlite` is that file, not `x` (a `file:` URI ends its path at
/// `#`): used with --db again, and merged, beside an `x` that is another
/// program's database.
#[test]
fn a_results_file_named_with_a_hash_sign_is_that_file() {
    let repo = repo_with(&[("scenarios/t.toml", TRUE)]);
    let work = tempfile::tempdir().unwrap();
    rusqlite::Connection::open(work.path().join("x"))
        .unwrap()
        .execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY);")
        .unwrap();
    for name in ["x#y.sqlite", "50%?a=b#c.sqlite"] {
        let db = work.path().join(name);
        for _ in 0..2 {
            // The second run opens an existing file, which is checked first.
            let out = sb(repo.path(), &db, &["run", "t"]);
            assert!(out.status.success(), "{name}: {}", text(&out));
        }
        let out = sb(repo.path(), &db, &["show", "--json"]);
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert_eq!(run_status(&db).len(), 2, "{name}");

        let target = work.path().join(format!("target-{}.sqlite", name.len()));
        let out = sb(
            repo.path(),
            &target,
            &["merge", db.to_str().unwrap(), "--json"],
        );
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert_eq!(json(&out)[0]["merged"]["runs_added"], 2, "{name}");
    }
}

/// A shared database is written by many: a commit stored there as
/// `../../x` (by whoever can write to it) is refused where it is read,
/// and the dashboard writes nothing outside `--out`.
#[test]
fn a_commit_that_is_not_a_sha_in_postgres_is_refused_where_it_is_read() {
    let Some(pg) = syncbench_test_support::pgtest::start_or_skip() else {
        return;
    };
    let url = pg.url_of("postgres");
    let repo = repo_with(&[("scenarios/t.toml", TRUE)]);
    let out = sb(repo.path(), &url, &["run", "t"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(
        "INSERT INTO commits (sha, parents, author, time_unix, subject)
             SELECT '../../x', parents, author, time_unix, subject FROM commits;
         UPDATE runs SET commit_sha = '../../x';
         DELETE FROM commits WHERE sha <> '../../x';",
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let site = work.path().join("deep/site");
    for args in [
        &["report", "--out", site.to_str().unwrap()][..],
        &["regressions", "--json"],
    ] {
        let out = sb(repo.path(), &url, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("\"../../x\"") && text(&out).contains("not a commit sha"),
            "{args:?}: {}",
            text(&out)
        );
    }
    assert_eq!(
        files_outside(work.path(), &site),
        Vec::<std::path::PathBuf>::new()
    );
}
