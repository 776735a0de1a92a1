//! What a new user met (each test names the defect it guards): the
//! dashboard of a test database written over the user's, a cached
//! checkout of a repository cloned again, error messages said twice,
//! `report` refused outside a repository, `export | head` panicking.

use crate::support::*;
use std::io::Read;
use std::process::{Command, Stdio};

const HELLO: &str = "name = \"hello\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = 3\nwarmup = 0\ntimeout = 60\n";

#[test]
fn run_with_its_own_database_renders_next_to_it_not_over_the_users_dashboard() {
    let repo = repo_with(&[("scenarios/hello.toml", HELLO)]);
    let r = repo.path().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("mine.sqlite");
    let out = sb(r, &db, &["run", "hello"]);
    assert!(out.status.success(), "{}", text(&out));
    let site = work.path().join("mine-report/index.html");
    assert!(site.is_file(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(site.to_str().unwrap()));
    assert!(!repo.path().join("target/syncbench-report").exists());

    // --out still decides; report follows the same rule.
    let out = sb(r, &db, &["run", "hello", "--out", "elsewhere"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(repo.path().join("elsewhere/index.html").is_file());
    let out = sb(r, &db, &["report"]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .ends_with("mine-report/index.html"),
        "{}",
        text(&out)
    );

    // Without --db: the repository's own database and dashboard.
    let out = syncbench(&["--repo", r, "run", "hello"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        repo.path()
            .join("target/syncbench-report/index.html")
            .is_file()
    );
    assert!(repo.path().join(".syncbench/results.sqlite").is_file());
}

fn history(
    repo: &std::path::Path,
    db: &std::path::Path,
    cache: &std::path::Path,
) -> std::process::Output {
    sb(
        repo,
        db,
        &[
            "history",
            "hello",
            "-n",
            "1",
            "--force",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    )
}

#[test]
fn a_checkout_whose_repository_was_cloned_again_or_replaced_is_recreated() {
    let origin = repo_with(&[("scenarios/hello.toml", HELLO)]);
    let work = tempfile::tempdir().unwrap();
    let clone = work.path().join("clone");
    let (db, cache) = (work.path().join("r.sqlite"), work.path().join("cache"));
    let clone_it = || {
        git(
            work.path(),
            &["clone", "-q", origin.path().to_str().unwrap(), "clone"],
        )
    };
    clone_it();
    let out = history(&clone, &db, &cache);
    assert!(out.status.success(), "{}", text(&out));
    // Deleted and cloned again at the same path.
    std::fs::remove_dir_all(&clone).unwrap();
    clone_it();
    let out = history(&clone, &db, &cache);
    assert!(out.status.success(), "{}", text(&out));
    // The same cache for another repository.
    let other = repo_with(&[("scenarios/hello.toml", HELLO), ("other", "x")]);
    let out = history(other.path(), &db, &cache);
    assert!(out.status.success(), "{}", text(&out));
    let head = git(other.path(), &["rev-parse", "HEAD"]);
    assert_eq!(git(&cache.join("checkout"), &["rev-parse", "HEAD"]), head);
}

#[test]
fn an_error_says_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = syncbench(&["--repo", dir.path().to_str().unwrap(), "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not in a git repository"), "{err}");
    // git2's message (`could not find repository at …`) appears once.
    let cause = err
        .split("is not in a git repository: ")
        .nth(1)
        .unwrap_or_default()
        .trim();
    assert!(!cause.is_empty(), "{err}");
    assert_eq!(err.matches(cause).count(), 1, "{err}");
}

#[test]
fn report_of_a_database_works_outside_a_repository() {
    let repo = repo_with(&[("scenarios/hello.toml", HELLO)]);
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let out = sb(repo.path(), &db, &["run", "hello"]);
    assert!(out.status.success(), "{}", text(&out));
    let outside = tempfile::tempdir().unwrap();
    let out = Command::new(SYNCBENCH)
        .args(["report", "--db", db.to_str().unwrap(), "--out", "site"])
        .current_dir(outside.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(outside.path().join("site/index.html").is_file());
    // Without --db there is nothing to read: the error says why.
    let out = Command::new(SYNCBENCH)
        .args(["report"])
        .current_dir(outside.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in a git repository"));
}

#[test]
fn export_into_a_closed_pipe_ends_quietly() {
    let repo = repo_with(&[("scenarios/hello.toml", HELLO)]);
    let r = repo.path().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    // More than a pipe holds (64 KiB), so the writer meets the closed end.
    let bmf: serde_json::Map<String, serde_json::Value> = (0..3000)
        .map(|i| {
            (
                format!("bench/{i}"),
                serde_json::json!({"wall": {"value": 1.0}}),
            )
        })
        .collect();
    let file = work.path().join("bmf.json");
    std::fs::write(&file, serde_json::to_string(&bmf).unwrap()).unwrap();
    let out = sb(r, &db, &["ingest", "bmf", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let mut child = Command::new(SYNCBENCH)
        .args(["--repo", r, "export", "--db", db.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one byte, then close the pipe, as `| head -c1` does.
    let mut one = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut one).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// The CI gate keeps its verdict whatever reads its output: a reader that
/// stops early (`| head -1`) once turned exit 1 into 0, and a baseline
/// that does not exist once passed as "nothing to check".
#[test]
fn check_fails_whatever_reads_it_and_on_an_unknown_baseline() {
    use crate::golden::{SCENARIO, fixed_db, fixed_repo};
    let (repo, shas) = fixed_repo(SCENARIO);
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    fixed_db(repo.path(), &shas, &db);
    let args = |baseline: &str| {
        let mut c = Command::new(SYNCBENCH);
        c.arg("--repo").arg(repo.path()).arg("--db").arg(&db);
        // The fixed database's figures are not the scenario's: fail on the
        // stored comparison, without measuring again.
        c.args([
            "check",
            "--baseline",
            baseline,
            "--commit",
            &shas[8],
            "--no-confirm",
        ]);
        c
    };
    let mut child = args(&shas[7])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("regression(s)"),
        "{}",
        text(&out)
    );
    let out = args("nosuch").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--baseline nosuch: no such branch or commit"),
        "{}",
        text(&out)
    );
}

#[test]
fn zero_repetitions_and_a_filter_that_matches_nothing_are_refused() {
    let repo = repo_with(&[("scenarios/hello.toml", HELLO)]);
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let out = sb(repo.path(), &db, &["run", "hello", "--repetitions", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = sb(repo.path(), &db, &["run", "hello", "--filter", "zzz"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no point matches --filter"));
    assert!(!db.exists(), "nothing recorded, nothing created");
}
