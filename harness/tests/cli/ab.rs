//! `compare --run`: both commits built in their own worktrees and measured
//! alternately in one job.

use crate::support::*;

/// Two commits; each repetition appends the commit's marker to LOG.
fn two_commits(run: &str, build_b: &str) -> (tempfile::TempDir, String, String) {
    let scenario = format!(
        "name = \"mark\"\nkind = \"command\"\nbuild = \"sh build.sh\"\nrun = \"{run}\"\nrepetitions = 3\nwarmup = 1\ntimeout = \"30s\"\n"
    );
    let repo = repo_with(&[
        ("scenarios/mark.toml", &scenario),
        ("marker", "a"),
        ("build.sh", "true\n"),
    ]);
    let d = repo.path();
    let a = git(d, &["rev-parse", "HEAD"]);
    std::fs::write(d.join("marker"), "b").unwrap();
    std::fs::write(d.join("build.sh"), build_b).unwrap();
    git(d, &["commit", "-q", "-am", "b"]);
    let b = git(d, &["rev-parse", "HEAD"]);
    (repo, a, b)
}

fn compare_run(repo: &std::path::Path, a: &str, b: &str, extra: &[&str]) -> std::process::Output {
    let cache = repo.join(".cache");
    let db = repo.join("r.sqlite");
    let mut args = vec![
        "--repo",
        repo.to_str().unwrap(),
        "compare",
        a,
        b,
        "mark",
        "--run",
        "--json",
        "--db",
        db.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    syncbench(&args)
}

#[test]
fn repetitions_alternate_a_b_a_b_never_a_a() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let (repo, a, b) = two_commits(&format!("cat marker >> {}", log.display()), "true\n");
    let out = compare_run(
        repo.path(),
        &a,
        &b,
        &[
            "--min-pairs",
            "6",
            "--max-pairs",
            "6",
            "--threshold",
            "0.000001",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let order = std::fs::read_to_string(&log).unwrap();
    // One warm-up pair, then six measured pairs.
    assert_eq!(order, "ab".repeat(7), "{order}");
    let v = json(&out);
    assert_eq!(v["results"][0]["pairs"], 6, "{v}");
    assert_eq!(v["results"][0]["mode"], "interleaved");
}

#[test]
fn a_budget_stops_cleanly_with_inconclusive_not_a_guess() {
    // Noise far above the threshold: no interval can settle.
    let run = "sleep 0.0$(( $(od -An -N1 -tu1 /dev/urandom) % 9 + 1 ))";
    let (repo, a, b) = two_commits(run, "true\n");
    // Decisions wait for --min-pairs; the budget is checked after every pair.
    let out = compare_run(
        repo.path(),
        &a,
        &b,
        &[
            "--min-pairs",
            "1000",
            "--budget",
            "2s",
            "--max-pairs",
            "1000",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    let r = &v["results"][0];
    assert_eq!(r["verdict"], "inconclusive", "{r}");
    assert_eq!(r["stop"], "budget", "{r}");
    assert!(r["seconds"].as_f64().unwrap() < 10.0, "{r}");
    // The other limit: a maximum count of pairs.
    let out = compare_run(
        repo.path(),
        &a,
        &b,
        &["--min-pairs", "1000", "--max-pairs", "5"],
    );
    let v = json(&out);
    assert_eq!(v["results"][0]["stop"], "max_pairs", "{v}");
    assert_eq!(v["results"][0]["pairs"], 5, "{v}");
}

#[test]
fn a_build_that_fails_on_one_side_is_reported_as_such() {
    let (repo, a, b) = two_commits("true", "echo 'missing header' >&2; exit 3\n");
    let out = compare_run(repo.path(), &a, &b, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = json(&out);
    let r = &v["results"][0];
    assert_eq!(r["verdict"], "failed", "{r}");
    let e = r["error"].as_str().unwrap();
    assert!(
        e.starts_with(&format!("B ({}) failed to build", &b[..12])),
        "{e}"
    );
    assert!(e.contains("missing header"), "{e}");
}
