//! `syncbench forget` end to end: a scenario, a point, a metric and a
//! commit's runs forgotten and nothing else touched (exports and the
//! site's pages of the rest compared before and after); what does not
//! exist refused with what does; no --yes where nobody can answer
//! refused; a process killed midway leaves all or nothing; PostgreSQL
//! forgets as SQLite does.

use crate::golden::{SCENARIO, commit_of, fixed_db, fixed_repo, machine, series};
use crate::support::*;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use syncbench::model::records::Sample;
use syncbench::model::{Direction, RunStatus, Unit};
use syncbench::store::{Location, RunRecord};
use syncbench_test_support::pgtest;

/// A run of scenario `gone` at `sha`, with metrics wall and extra.
fn gone_run(repo: &Path, sha: &str, point: &str, started: f64) -> RunRecord {
    RunRecord {
        machine: machine(),
        commit: commit_of(repo, sha),
        scenario: "gone".into(),
        point: point.into(),
        params_json: format!(r#"{{"n":"{}"}}"#, &point[2..]),
        status: RunStatus::Ok,
        error: None,
        repetitions: 3,
        harness_version: "0.1.0".into(),
        toolchain: "rustc 1.90.0 (golden)".into(),
        environment: Default::default(),
        command_line: "syncbench run gone".into(),
        started_unix: started,
        finished_unix: started + 5.0,
        metrics: vec![
            series(
                "wall",
                Unit::Seconds,
                Direction::LowerIsBetter,
                &[0.5, 0.51, 0.49],
            ),
            series(
                "extra",
                Unit::Count,
                Direction::LowerIsBetter,
                &[7.0, 7.0, 8.0],
            ),
        ],
        samples: vec![(
            0,
            Sample {
                process: "command".into(),
                t_ms: 0.0,
                cpu_pct: 50.0,
                rss_bytes: 1 << 20,
            },
        )],
        phases: vec![],
    }
}

/// The golden history (scenarios `svc` and `criterion`) and scenario
/// `gone`: points n=1 and n=2 at each of the twelve commits.
struct Setup {
    repo: tempfile::TempDir,
    shas: Vec<String>,
    work: tempfile::TempDir,
    db: PathBuf,
}

fn setup() -> Setup {
    let (repo, shas) = fixed_repo(SCENARIO);
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    fixed_db(repo.path(), &shas, &db);
    let mut store = syncbench::store::open(&Location::Sqlite(db.clone())).unwrap();
    let mut runs = vec![];
    for (i, sha) in shas.iter().enumerate() {
        for (k, point) in ["n=1", "n=2"].into_iter().enumerate() {
            let started = 1_767_225_700.0 + i as f64 * 86_400.0 + k as f64;
            runs.push(gone_run(repo.path(), sha, point, started));
        }
    }
    store.record_all(&runs).unwrap();
    Setup {
        repo,
        shas,
        work,
        db,
    }
}

impl Setup {
    fn r(&self) -> &str {
        self.repo.path().to_str().unwrap()
    }

    /// `syncbench --repo R --db LOCATION ARGS…` (stdin not a terminal).
    fn at(&self, location: &str, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--repo", self.r(), "--db", location];
        all.extend_from_slice(args);
        syncbench(&all)
    }

    fn sqlite(&self, args: &[&str]) -> std::process::Output {
        self.at(self.db.to_str().unwrap(), args)
    }

    /// `export --format json` of every commit.
    fn exports(&self, location: &str) -> Vec<serde_json::Value> {
        self.shas
            .iter()
            .map(|sha| {
                let out = self.at(location, &["export", "--format", "json", sha]);
                assert!(out.status.success(), "{}", text(&out));
                json(&out)
            })
            .collect()
    }

    /// The site rendered from `location` into `dir`: every file by path.
    fn site(&self, location: &str, dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let out = self.at(location, &["report", "--out", dir.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        tree(dir)
    }
}

/// An export without the runs (and BMF entries) of `scenario`.
fn without(export: &serde_json::Value, scenario: &str) -> serde_json::Value {
    let mut v = export.clone();
    v["runs"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["run"]["scenario"] != scenario);
    v["bmf"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| k != scenario && !k.starts_with(&format!("{scenario}/")));
    v
}

/// Every file under `dir` but the render's caches, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if rel == ".cache" {
                continue;
            }
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Every row of every table of a SQLite file but those of `skip`, read
/// only.
fn dump(db: &Path, skip: &[&str]) -> String {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .filter(|t: &String| !skip.contains(&t.as_str()))
        .collect();
    let mut out = String::new();
    for t in tables {
        let mut stmt = c
            .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY rowid"))
            .unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            out += &t;
            for i in 0..n {
                out += &format!(" {:?}", r.get_ref(i).unwrap());
            }
            out.push('\n');
        }
    }
    out
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn forgetting_a_scenario_removes_its_series_and_nothing_else() {
    let s = setup();
    let db = s.db.to_str().unwrap();
    let exports = s.exports(db);
    assert!(exports[5].to_string().contains("\"gone\""));
    let before = s.site(db, &s.work.path().join("before"));
    let gone_pages = before
        .keys()
        .filter(|p| p.starts_with("series/gone-"))
        .count();
    assert!(gone_pages >= 4, "{:?}", before.keys());
    // The dashboard of the same directory rendered again after the forget.
    let again = s.work.path().join("again");
    s.site(db, &again);

    let out = s.sqlite(&["forget", "gone", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains(
            "forgot scenario \"gone\": 24 run(s), 144 value(s) of 4 series; recorded as forget #1"
        ),
        "{}",
        text(&out)
    );

    for (sha, (old, new)) in s.shas.iter().zip(exports.iter().zip(s.exports(db))) {
        assert_eq!(without(old, "gone"), new, "export of {sha}");
        assert!(!new.to_string().contains("\"gone\""), "{new}");
    }
    let after = s.site(db, &s.work.path().join("after"));
    let rendered_again = s.site(db, &again);
    for site in [&after, &rendered_again] {
        assert!(!site["index.html"].windows(4).any(|w| w == b"gone"));
    }
    assert_eq!(after["index.html"], rendered_again["index.html"]);
    let mut others = 0;
    for (path, bytes) in &before {
        if path.starts_with("series/") && !path.starts_with("series/gone-") {
            others += 1;
            assert!(after.get(path) == Some(bytes), "{path} changed");
            assert!(rendered_again.get(path) == Some(bytes), "{path} changed");
        }
    }
    assert!(others >= 8, "{:?}", before.keys());
    assert!(!after.keys().any(|p| p.starts_with("series/gone-")));
    // The directory rendered before the forget keeps no page of it.
    assert!(
        !rendered_again.keys().any(|p| p.starts_with("series/gone-")),
        "stale pages: {:?}",
        rendered_again.keys()
    );
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        rendered_again.keys().collect::<Vec<_>>()
    );

    // Recorded: when, by whom, the command line, the selection, how much.
    let list = s.sqlite(&["forget", "--list", "--json"]);
    let records = json(&list);
    assert_eq!(records.as_array().unwrap().len(), 1, "{}", text(&list));
    let r = &records[0];
    assert_eq!(r["selector"]["scenario"], "gone");
    assert_eq!(r["removed"]["runs"], 24);
    assert_eq!(r["removed"]["values"], 144);
    assert!(
        r["command_line"]
            .as_str()
            .unwrap()
            .ends_with("forget gone --yes"),
        "{r}"
    );
    assert!(r["created_unix"].as_f64().unwrap() > 1.7e9);
    let listed = s.sqlite(&["forget", "--list"]);
    assert!(
        stdout(&listed).contains("#1 ") && stdout(&listed).contains("scenario \"gone\""),
        "{}",
        text(&listed)
    );
    // Forgotten is gone: a second time is an error.
    let again = s.sqlite(&["forget", "gone", "--yes"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
}

#[test]
fn a_point_a_metric_and_a_commits_runs_are_forgotten_alone() {
    let s = setup();
    let db = s.db.to_str().unwrap();
    let before = s.exports(db);

    let out = s.sqlite(&["forget", "gone", "--point", "n=2", "--yes", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["removed"]["runs"], 12, "{v}");
    assert_eq!(v["removed"]["series"], 2, "{v}");
    assert_eq!(v["groups"].as_array().unwrap().len(), 1, "{v}");
    let after_point = s.exports(db);
    for (old, new) in before.iter().zip(&after_point) {
        let mut expected = old.clone();
        expected["runs"]
            .as_array_mut()
            .unwrap()
            .retain(|r| r["run"]["scenario"] != "gone" || r["run"]["point"] != "n=2");
        expected["bmf"].as_object_mut().unwrap().remove("gone/n=2");
        assert_eq!(&expected, new);
    }

    // A metric: its values go, the runs stay with wall (under new ids);
    // a dashboard rendered before and again after forgets it too.
    let site = s.work.path().join("site");
    s.site(db, &site);
    let out = s.sqlite(&["forget", "gone", "--metric", "extra", "--yes", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    assert_eq!(
        (
            &v["removed"]["runs"],
            &v["removed"]["runs_changed"],
            &v["removed"]["values"]
        ),
        (&0.into(), &12.into(), &36.into()),
        "{v}"
    );
    let after_metric = s.exports(db);
    for (old, new) in after_point.iter().zip(&after_metric) {
        assert_eq!(without(old, "gone"), without(new, "gone"));
        for r in new["runs"].as_array().unwrap() {
            if r["run"]["scenario"] == "gone" {
                let names: Vec<&str> = r["metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["name"].as_str().unwrap())
                    .collect();
                assert_eq!(names, ["wall"], "{r}");
            }
        }
    }
    let again = s.site(db, &site);
    let fresh = s.site(db, &s.work.path().join("fresh"));
    // The forgotten metric's page is gone from the site rendered before
    // too: it is the fresh render's, page for page.
    assert!(!fresh.keys().any(|p| p.contains("gone-extra")));
    assert_eq!(
        again.keys().collect::<Vec<_>>(),
        fresh.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &fresh {
        assert!(
            again.get(path) == Some(bytes),
            "{path} differs from a fresh render"
        );
    }

    // A commit's runs, by revision: every scenario's at that commit.
    let out = s.sqlite(&["forget", "--commit", "HEAD~8", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!(
            "forgot commit {}: 3 run(s), 43 value(s) of 9 series, 1 commit(s) left without runs",
            &s.shas[3][..12]
        )),
        "{}",
        text(&out)
    );
    let show = s.sqlite(&["show", &s.shas[3]]);
    assert_eq!(show.status.code(), Some(1), "{}", text(&show));
    let after_commit = s.exports(db);
    for (i, (old, new)) in after_metric.iter().zip(&after_commit).enumerate() {
        if i == 3 {
            assert!(new["runs"].as_array().unwrap().is_empty(), "{new}");
        } else {
            assert_eq!(old, new, "commit {i}");
        }
    }
    // By a stored sha prefix, on one machine (its fingerprint's prefix).
    let out = s.sqlite(&[
        "forget",
        "--commit",
        &s.shas[4][..10],
        "--machine-tag",
        "Golden CPU",
        "svc",
        "--yes",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let left = s.exports(db);
    let scenarios: Vec<&str> = left[4]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"]["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(scenarios, ["gone"], "{}", left[4]);
    let list = json(&s.sqlite(&["forget", "--list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 4);
}

#[test]
fn forgetting_what_does_not_exist_is_an_error_naming_what_does() {
    let s = setup();
    // An unmeasured commit on top.
    std::fs::write(s.repo.path().join("NOTES"), "new\n").unwrap();
    git(s.repo.path(), &["commit", "-qam", "unmeasured"]);
    let before = dump(&s.db, &[]);
    for (args, expect) in [
        (
            &["gnoe"][..],
            &["no results of scenario \"gnoe\"", "\"gone\"", "\"svc\""][..],
        ),
        (
            &["gone", "--point", "n=3"],
            &["scenario \"gone\" has no point \"n=3\"", "\"n=1\", \"n=2\""],
        ),
        (
            &["gone", "--metric", "wal"],
            &["no metric \"wal\"", "its metrics: \"wall\", \"extra\""],
        ),
        (
            &["gone", "--commit", "HEAD"],
            &[
                "no results of scenario \"gone\" at commit",
                "has no results in",
                "has results at 12 commit(s)",
            ],
        ),
        (&["--commit", "no-such-branch"], &["no such commit"]),
        (
            &["gone", "--machine-tag", "sparc"],
            &["\"sparc\" is no machine's tag", "Golden CPU"],
        ),
    ] {
        let mut all = vec!["forget"];
        all.extend_from_slice(args);
        all.push("--yes");
        let out = s.sqlite(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let err = stderr(&out);
        for e in expect {
            assert!(err.contains(e), "{args:?}: {e:?} not in {err}");
        }
        assert_eq!(dump(&s.db, &[]), before, "{args:?} changed the store");
    }
    // Nothing selected at all is bad usage.
    let out = s.sqlite(&["forget", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(dump(&s.db, &[]), before);
}

#[test]
fn without_yes_where_nobody_can_answer_forget_refuses() {
    let s = setup();
    let before = dump(&s.db, &[]);
    // stdin is /dev/null here, and a pipe saying "y" below: no terminal.
    let out = s.sqlite(&["forget", "gone"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("pass --yes"), "{err}");
    assert!(err.contains("24 run(s), 144 value(s) of 4 series"), "{err}");
    assert!(err.contains("gone n=1  [Golden CPU"), "{err}");
    let mut child = Command::new(SYNCBENCH)
        .args([
            "--repo",
            s.r(),
            "--db",
            s.db.to_str().unwrap(),
            "forget",
            "gone",
        ])
        .env_remove("SYNCBENCH_DB")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"y\n");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(dump(&s.db, &[]), before);
    // --dry-run shows without asking, and changes nothing.
    let out = s.sqlite(&["forget", "gone", "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json(&out)["would_remove"]["runs"], 24);
    assert_eq!(dump(&s.db, &[]), before);

    // On a terminal it asks: no keeps everything, yes forgets.
    if !have(&[("script", "bsdutils")]) {
        return;
    }
    let on_terminal = |answer: &str| {
        let line = format!(
            "'{SYNCBENCH}' --repo '{}' --db '{}' forget gone --point n=1",
            s.r(),
            s.db.display()
        );
        let mut child = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env_remove("SYNCBENCH_DB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(answer.as_bytes()).unwrap();
        // Held open until the answer was read: script ends the session
        // when its input ends.
        let out = child.wait_with_output();
        drop(stdin);
        out.unwrap()
    };
    let out = on_terminal("n\n");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains("Forget these? [y/N]"),
        "{}",
        text(&out)
    );
    assert!(
        stdout(&out).contains("nothing was forgotten"),
        "{}",
        text(&out)
    );
    assert_eq!(dump(&s.db, &[]), before);
    let out = on_terminal("y\n");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("forgot scenario \"gone\", point \"n=1\": 12 run(s)"),
        "{}",
        text(&out)
    );
}

/// A store whose scenario `big` takes a while to forget: 3000 runs of 10
/// metrics × 5 repetitions and 40 samples each.
fn big_store(s: &Setup) {
    let mut store = syncbench::store::open(&Location::Sqlite(s.db.clone())).unwrap();
    let mut runs = vec![];
    for i in 0..3000 {
        let sha = &s.shas[i % s.shas.len()];
        let mut r = gone_run(s.repo.path(), sha, "n=1", 1.0 + i as f64);
        r.scenario = "big".into();
        r.point = format!("n={}", i / s.shas.len());
        r.metrics = (0..10)
            .map(|m| {
                series(
                    &format!("m{m}"),
                    Unit::Count,
                    Direction::LowerIsBetter,
                    &[1.0, 2.0, 3.0, 4.0, 5.0],
                )
            })
            .collect();
        r.samples = (0..40)
            .map(|t| {
                (
                    0,
                    Sample {
                        process: "command".into(),
                        t_ms: t as f64,
                        cpu_pct: 10.0,
                        rss_bytes: 1 << 20,
                    },
                )
            })
            .collect();
        runs.push(r);
    }
    store.record_all(&runs).unwrap();
}

#[test]
fn a_forget_killed_midway_leaves_all_or_nothing() {
    let s = setup();
    big_store(&s);
    let before = dump(&s.db, &["forgotten"]);
    let copy = |name: &str| {
        let dir = s.work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("r.sqlite");
        // The file and its log, as they are (the store is closed).
        for suffix in ["", "-wal"] {
            let from = format!("{}{suffix}", s.db.display());
            if Path::new(&from).exists() {
                std::fs::copy(&from, format!("{}{suffix}", db.display())).unwrap();
            }
        }
        db
    };
    let forget = |db: &Path| {
        Command::new(SYNCBENCH)
            .args([
                "--repo",
                s.r(),
                "--db",
                db.to_str().unwrap(),
                "forget",
                "big",
                "--yes",
            ])
            .env_remove("SYNCBENCH_DB")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long a whole forget takes here, and what it leaves.
    let whole = copy("whole");
    let t0 = Instant::now();
    assert!(forget(&whole).wait().unwrap().success());
    let took = t0.elapsed();
    let after = dump(&whole, &["forgotten"]);
    assert_ne!(before, after);
    let (mut none, mut all) = (0, 0);
    for k in 1..=12 {
        let db = copy(&format!("kill{k}"));
        let mut child = forget(&db);
        std::thread::sleep(took.mul_f64(k as f64 / 13.0));
        kill("-9", child.id());
        let _ = child.wait();
        let now = dump(&db, &["forgotten"]);
        let records = dump(&db, &[])
            .lines()
            .filter(|l| l.starts_with("forgotten "))
            .count();
        if now == before {
            none += 1;
            assert_eq!(records, 0, "kill {k}: nothing removed, yet recorded");
        } else {
            assert!(
                now == after,
                "kill {k} at {k}/13 of {took:?}: half forgotten"
            );
            assert_eq!(records, 1, "kill {k}: removed but not recorded");
            all += 1;
        }
    }
    eprintln!("a forget of {took:?} killed 12 times: {none} removed nothing, {all} everything");
    assert!(none > 0, "no kill landed before the end ({took:?})");
}

fn pg_client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

/// Every row of every table of the database, as text.
fn pg_dump(url: &str) -> Vec<String> {
    let mut c = pg_client(url);
    let tables: Vec<String> = c
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = vec![];
    for t in tables {
        for r in c
            .query(&format!("SELECT x::text FROM \"{t}\" x ORDER BY 1"), &[])
            .unwrap()
        {
            out.push(format!("{t} {}", r.get::<_, String>(0)));
        }
    }
    out
}

#[test]
fn postgres_forgets_as_sqlite_does() {
    let Some(pg) = pgtest::start_or_skip() else {
        return;
    };
    let s = setup();
    let url = pg.url_of("postgres");
    let sqlite = s.db.to_str().unwrap().to_owned();
    let out = syncbench(&["--db", &url, "merge", &sqlite]);
    assert!(out.status.success(), "{}", text(&out));
    let head8 = s.shas[3].clone();
    for args in [
        &["gone", "--metric", "extra"][..],
        &["gone", "--point", "n=2"],
        &["--commit", &head8],
        &[
            "svc",
            "--commit",
            &s.shas[7][..8],
            "--machine-tag",
            "Golden",
        ],
        &["gone"],
    ] {
        let mut removed = vec![];
        for location in [&sqlite, &url] {
            let mut all = vec!["forget"];
            all.extend_from_slice(args);
            all.extend(["--yes", "--json"]);
            let out = s.at(location, &all);
            assert!(out.status.success(), "{args:?} {location}: {}", text(&out));
            let v = json(&out);
            removed.push((
                v["removed"].clone(),
                v["selector"].clone(),
                v["groups"].clone(),
            ));
        }
        assert_eq!(removed[0], removed[1], "{args:?}");
        assert_eq!(s.exports(&sqlite), s.exports(&url), "after {args:?}");
    }
    let sites: Vec<_> = [&sqlite, &url]
        .iter()
        .enumerate()
        .map(|(i, l)| s.site(l, &s.work.path().join(format!("site{i}"))))
        .collect();
    assert!(sites[0].len() > 5);
    assert_eq!(sites[0], sites[1]);
    let lists: Vec<Vec<serde_json::Value>> = [&sqlite, &url]
        .iter()
        .map(|l| {
            json(&s.at(l, &["forget", "--list", "--json"]))
                .as_array()
                .unwrap()
                .iter()
                .map(|r| serde_json::json!([r["id"], r["selector"], r["removed"]]))
                .collect()
        })
        .collect();
    assert_eq!(lists[0], lists[1]);
    assert_eq!(lists[0].len(), 5);
}

#[test]
fn a_forget_killed_midway_in_postgres_removes_nothing() {
    let Some(pg) = pgtest::start_or_skip() else {
        return;
    };
    let s = setup();
    let url = pg.url_of("postgres");
    let out = syncbench(&["--db", &url, "merge", s.db.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let before = pg_dump(&url);
    // The record of the forget, its last step, waits for this lock: the
    // forget is killed with everything else deleted in its transaction.
    let mut holder = pg_client(&url);
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE forgotten IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let mut child = Command::new(SYNCBENCH)
        .args(["--repo", s.r(), "--db", &url, "forget", "gone", "--yes"])
        .env_remove("SYNCBENCH_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut watcher = pg_client(&url);
    let waiting = |w: &mut postgres::Client| -> i64 {
        w.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'syncbench'
               AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO forgotten%'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let t0 = Instant::now();
    while waiting(&mut watcher) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "forget never reached its record"
        );
        assert!(child.try_wait().unwrap().is_none(), "forget ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    kill("-9", child.id());
    let _ = child.wait();
    tx.rollback().unwrap();
    // The server ends the dead client's transaction once it sees it gone.
    let t0 = Instant::now();
    loop {
        let left: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'syncbench'",
                &[],
            )
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "its session stays");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(pg_dump(&url), before, "a killed forget removed something");
    let out = s.at(&url, &["forget", "gone", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(pg_dump(&url), before);
}

/// An artifact saved before a forget (a CI run's results file) merged
/// after it does not bring back what was forgotten, scenario or metric;
/// what the artifact holds besides is merged as ever.
#[test]
fn merging_an_older_file_does_not_undo_a_forget() {
    let s = setup();
    let db = s.db.to_str().unwrap();
    let artifact = s.work.path().join("artifact.sqlite");
    std::fs::copy(&s.db, &artifact).unwrap();
    let out = s.sqlite(&["forget", "gone", "--point", "n=1", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = s.sqlite(&["forget", "svc", "--metric", "load.ops", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let forgotten = s.exports(db);

    let out = s.sqlite(&["merge", artifact.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("forgotten here before, not brought back"),
        "{}",
        text(&out)
    );
    assert_eq!(s.exports(db), forgotten, "the merge undid a forget");
    for e in s.exports(db) {
        let e = e.to_string();
        assert!(!e.contains("load.ops") && !e.contains("\"n=1\""), "{e}");
    }
}
