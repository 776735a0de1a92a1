//! The PostgreSQL store through the binary, against a real server of the
//! test's own: clear errors for an unreachable server, a wrong password
//! and another program's database; two migrations at once; a run whose
//! server stops mid-run kept and stored later; merging (idempotent,
//! refusing foreign and newer files); the same dashboard from both
//! stores; machines by tag and `check --machine`.

use crate::golden::{SCENARIO, commit_of, fixed_db, fixed_repo, machine, series};
use crate::support::*;
use std::path::Path;
use std::process::Command;
use syncbench::model::{Direction, RunStatus, Unit};
use syncbench::store::{Location, RunRecord};
use syncbench_test_support::pgtest::{self, PASSWORD};

const T: &str = "name = \"t\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = 2\nwarmup = 0\n";

fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unreachable_server_wrong_password_and_foreign_database_are_clear_errors() {
    let Some(pg) = pgtest::start_or_skip() else {
        return;
    };
    let repo = repo_with(&[("scenarios/t.toml", T)]);
    // Port 1: nobody listens there.
    let out = sb(
        repo.path(),
        "postgres://syncbench:hunter2@127.0.0.1:1/db",
        &["run", "t"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach PostgreSQL at postgres://syncbench:***@127.0.0.1:1/db"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "the password is shown: {err}");

    let wrong = pg.url_of("postgres").replace(PASSWORD, "wrong-password");
    let out = sb(repo.path(), &wrong, &["run", "t"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("refused the login"), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");
    // Nothing was measured: the database is checked before any work.
    assert!(!err.contains("point(s) recorded"), "{err}");

    // A NUL in a failed run's stderr (PostgreSQL refuses NUL in text):
    // the run is stored, the character replaced.
    let nul = "name = \"nul\"\nkind = \"command\"\nrun = \"printf 'bad\\\\0byte' >&2; exit 1\"\nrepetitions = 1\nwarmup = 0\n";
    let repo2 = repo_with(&[("scenarios/nul.toml", nul)]);
    let url = pg.url_of("postgres");
    let out = sb(repo2.path(), &url, &["run", "nul"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let error: String = client(&url)
        .query_one("SELECT error FROM runs", &[])
        .unwrap()
        .get(0);
    assert!(error.contains("bad\u{FFFD}byte"), "{error:?}");

    let shop = pg.database("shop");
    client(&shop)
        .batch_execute("CREATE TABLE accounts (id INT PRIMARY KEY, balance REAL); INSERT INTO accounts VALUES (1, 9.5);")
        .unwrap();
    for args in [&["run", "t"][..], &["report"], &["migrate"]] {
        let out = sb(repo.path(), &shop, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            stderr(&out).contains("holds another program's tables (left untouched)"),
            "{}",
            text(&out)
        );
    }
    let mut c = client(&shop);
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 1, "a table was added to another program's database");
    let balance: f32 = c
        .query_one("SELECT balance FROM accounts WHERE id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(balance, 9.5);
}

#[test]
fn two_migrations_at_once_make_one_schema() {
    let Some(pg) = pgtest::start_or_skip() else {
        return;
    };
    let url = pg.database("fresh");
    let spawn = || {
        Command::new(SYNCBENCH)
            .args(["--db", &url, "migrate"])
            .env_remove("SYNCBENCH_DB")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let mut c = client(&url);
    let versions: Vec<i64> = c
        .query("SELECT version FROM syncbench_schema", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [8], "one row, at the newest migration");
    // And a third is a no-op.
    let out = syncbench(&["--db", &url, "migrate"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_run_whose_server_stops_mid_run_is_kept_and_stored_by_the_next_run() {
    let Some(mut pg) = pgtest::start_or_skip() else {
        return;
    };
    let url = pg.url_of("postgres");
    // The measured command stops the server itself (fast shutdown), so
    // it is gone when the run is stored; no timing involved.
    let pidfile = pg.data_dir().join("postmaster.pid");
    let stop = format!(
        "name = \"stop\"\nkind = \"command\"\nrun = \"kill -INT $(head -1 {}) && while [ -e {} ]; do sleep 0.05; done\"\nrepetitions = 1\nwarmup = 0\n",
        pidfile.display(),
        pidfile.display()
    );
    let repo = repo_with(&[
        ("scenarios/stop.toml", stop.as_str()),
        ("scenarios/t.toml", T),
    ]);
    let out = sb(repo.path(), &url, &["run", "stop"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    let spool = syncbench::store::Location::parse(&url).spool_in(&repo.path().join(".syncbench"));
    assert!(
        err.contains("run(s) just measured are kept in")
            && err.contains(&spool.display().to_string()),
        "{err}"
    );
    assert!(spool.exists());

    pg.restart().unwrap();
    assert_eq!(pg.url_of("postgres"), url, "restarted on another port");
    // Asked again: the next run stores the kept run first.
    let out = sb(repo.path(), &url, &["run", "t"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("stored 1 run(s) kept locally"),
        "{}",
        text(&out)
    );
    assert!(!spool.exists(), "the spool is left after it was stored");
    let scenarios: Vec<String> = client(&url)
        .query("SELECT scenario FROM runs ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(scenarios, ["stop", "t"]);
}

/// `syncbench run t` into a SQLite file of its own.
fn sqlite_with_a_run(repo: &Path, db: &Path) {
    let out = sb(repo, db, &["run", "t"]);
    assert!(out.status.success(), "{}", text(&out));
}

fn merged(out: &std::process::Output) -> Vec<u64> {
    json(out)
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["merged"]["runs_added"].as_u64().unwrap())
        .collect()
}

#[test]
fn merging_files_twice_adds_nothing_and_foreign_or_newer_files_are_refused() {
    let Some(pg) = pgtest::start_or_skip() else {
        return;
    };
    let repo = repo_with(&[("scenarios/t.toml", T)]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
    sqlite_with_a_run(repo.path(), &a);
    sqlite_with_a_run(repo.path(), &a);
    sqlite_with_a_run(repo.path(), &b);
    let before = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    let url = pg.url_of("postgres");
    let sqlite_target = dir.path().join("all.sqlite");
    for target in [url.as_str(), sqlite_target.to_str().unwrap()] {
        let out = syncbench(&["--db", target, "merge", a_s, b_s, "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(merged(&out), [2, 1], "{}", text(&out));
        let again = syncbench(&["--db", target, "merge", a_s, b_s, "--json"]);
        assert_eq!(merged(&again), [0, 0], "{}", text(&again));
        let show = syncbench(&[
            "--db",
            target,
            "show",
            "--json",
            &git(repo.path(), &["rev-parse", "HEAD"]),
        ]);
        assert_eq!(json(&show).as_array().unwrap().len(), 3, "{}", text(&show));
    }
    assert_eq!(
        (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap()),
        before,
        "a merged file was written"
    );

    let notes = dir.path().join("notes.sqlite");
    std::fs::write(&notes, "not a database\n".repeat(50)).unwrap();
    let newer = dir.path().join("newer.sqlite");
    std::fs::copy(&a, &newer).unwrap();
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let other = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY);")
        .unwrap();
    for (file, expect) in [
        (&notes, "is not a SQLite database"),
        (&newer, "is newer than this build knows"),
        (&other, "of another program"),
        (&dir.path().join("missing.sqlite"), "missing.sqlite"),
    ] {
        let out = syncbench(&["--db", &url, "merge", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = stderr(&out);
        assert!(err.contains(expect), "{expect}: {err}");
        assert!(
            err.contains(&format!("merging {}", file.display())),
            "{err}"
        );
    }
}

/// Every file under `dir`, by relative path.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn the_site_is_byte_identical_from_sqlite_and_postgres() {
    let Some(pg) = pgtest::start_or_skip() else {
        return;
    };
    let (repo, shas) = fixed_repo(SCENARIO);
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    fixed_db(repo.path(), &shas, &db);
    let url = pg.url_of("postgres");
    let out = syncbench(&["--db", &url, "merge", db.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let r = repo.path().to_str().unwrap();
    let mut sites = vec![];
    for (name, location) in [("sqlite", db.to_str().unwrap()), ("postgres", url.as_str())] {
        let site = work.path().join(name);
        let out = syncbench(&[
            "--repo",
            r,
            "--db",
            location,
            "report",
            "--out",
            site.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        sites.push(tree(&site));
    }
    assert!(sites[0].len() > 5, "{:?}", sites[0].keys());
    assert_eq!(
        sites[0].keys().collect::<Vec<_>>(),
        sites[1].keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &sites[0] {
        assert!(
            sites[1][path] == *bytes,
            "{path} differs between the stores"
        );
    }
    // And the text outputs scripts read.
    for args in [
        &["regressions", "--all", "--json"][..],
        &["show", "--json", &shas[6]],
    ] {
        let from = |location: &str| {
            let mut a = vec!["--repo", r, "--db", location];
            a.extend_from_slice(args);
            syncbench(&a).stdout
        };
        assert_eq!(from(db.to_str().unwrap()), from(&url), "{args:?}");
    }
}

#[test]
fn machines_are_listed_by_tag_and_check_judges_one() {
    let Some(pg) = pgtest::start_or_skip() else {
        return;
    };
    let url = pg.url_of("postgres");
    let (repo, shas) = fixed_repo(SCENARIO);
    let r = repo.path().to_str().unwrap();
    let mut store = syncbench::store::open(&Location::Postgres(url.clone())).unwrap();
    // Two machines at the last two commits: x86 flat, arm 50% slower at
    // the last one.
    for (tag, cpu, slower) in [("x86", "Golden CPU", 1.0), ("arm", "Other CPU", 1.5)] {
        for (i, sha) in shas.iter().enumerate().skip(10) {
            let mut m = machine();
            m.cpu = cpu.into();
            m.tag = Some(tag.into());
            let level = if i == 11 { slower } else { 1.0 };
            store
                .record(&RunRecord {
                    machine: m,
                    commit: commit_of(repo.path(), sha),
                    scenario: "svc".into(),
                    point: "n=10".into(),
                    params_json: r#"{"n":"10"}"#.into(),
                    status: RunStatus::Ok,
                    error: None,
                    repetitions: 5,
                    harness_version: "0".into(),
                    toolchain: "t".into(),
                    environment: Default::default(),
                    command_line: "c".into(),
                    started_unix: 1.0 + i as f64,
                    finished_unix: 2.0 + i as f64,
                    metrics: vec![series(
                        "wall",
                        Unit::Seconds,
                        Direction::LowerIsBetter,
                        &[
                            level,
                            level * 1.01,
                            level * 0.99,
                            level * 1.02,
                            level * 0.98,
                        ],
                    )],
                    samples: vec![],
                    phases: vec![],
                })
                .unwrap();
        }
    }
    drop(store);
    let out = syncbench(&["--db", &url, "machines", "--json"]);
    let listed = json(&out);
    let tags: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["tag"].as_str().unwrap())
        .collect();
    // Sorted by fingerprint: "Golden…" before "Other…".
    assert_eq!(tags, ["x86", "arm"], "{}", text(&out));
    let table = syncbench(&["--db", &url, "machines"]);
    assert!(text(&table).contains("arm"), "{}", text(&table));
    let check = |machine: &str| {
        syncbench(&[
            "--repo",
            r,
            "--db",
            &url,
            "check",
            "--baseline",
            "main",
            "--no-confirm",
            "--machine",
            machine,
        ])
    };
    let arm = check("arm");
    assert_eq!(arm.status.code(), Some(1), "{}", text(&arm));
    assert!(stderr(&arm).contains("1 regression(s)"), "{}", text(&arm));
    let x86 = check("x86");
    assert_eq!(x86.status.code(), Some(0), "{}", text(&x86));
    let by_fingerprint = check("Other CPU");
    assert_eq!(
        by_fingerprint.status.code(),
        Some(1),
        "{}",
        text(&by_fingerprint)
    );
    let none = check("sparc");
    assert_eq!(none.status.code(), Some(1));
    assert!(
        stderr(&none).contains("is no machine's tag") && stderr(&none).contains("arm"),
        "{}",
        text(&none)
    );
    // Two machines, two series: never averaged.
    let compare = syncbench(&[
        "--repo", r, "--db", &url, "compare", &shas[10], &shas[11], "--json",
    ]);
    assert!(compare.status.success(), "{}", text(&compare));
    let compared = json(&compare);
    let mut machines: Vec<&str> = compared
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["machine"].as_str().unwrap())
        .collect();
    machines.sort();
    assert_eq!(machines.len(), 2, "{compared}");
    assert_ne!(machines[0], machines[1]);
}
