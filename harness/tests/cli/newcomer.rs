//! What a newcomer's own small project meets on the first day: a gate
//! that never passes on missing data (and writes its summary in every
//! mode), scenario files whose braces mean what they say.

use crate::support::*;
use std::path::Path;

const TWO: &[(&str, &str)] = &[
    (
        "scenarios/a.toml",
        "name = \"a\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = 2\nwarmup = 0\n",
    ),
    (
        "scenarios/b.toml",
        "name = \"b\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = 2\nwarmup = 0\n",
    ),
];

/// A repository of `n` commits on main; its shas, oldest first.
fn commits(n: usize) -> (tempfile::TempDir, Vec<String>) {
    let repo = repo_with(TWO);
    let r = repo.path();
    let mut shas = vec![git(r, &["rev-parse", "HEAD"])];
    for i in 1..n {
        shas.push(commit_in(
            r,
            "NOTES",
            &format!("{i}\n"),
            &format!("commit {i}"),
        ));
    }
    (repo, shas)
}

/// `history ARGS…` with a cache next to the database.
fn history(r: &Path, db: &Path, args: &[&str]) {
    let cache = db.with_extension("cache");
    let mut all = vec!["history", "--cache-dir", cache.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = sb(r, db, &all);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn the_gate_fails_on_missing_data_with_its_own_status_and_summary() {
    let (repo, shas) = commits(4);
    let r = repo.path();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let summary = work.path().join("summary.md");
    let s = summary.to_str().unwrap();
    history(r, &db, &["a", "b", &shas[0], &shas[1]]);
    history(r, &db, &["a", &shas[2]]);
    let check = |commit: &str, extra: &[&str]| {
        let _ = std::fs::remove_file(&summary);
        let mut args = vec![
            "check",
            "--baseline",
            "main",
            "--commit",
            commit,
            "--summary",
            s,
            "--no-confirm",
        ];
        args.extend_from_slice(extra);
        let out = sb(r, &db, &args);
        let md = std::fs::read_to_string(&summary).unwrap_or_default();
        (out, md)
    };

    // A commit of main's line never measured: exit 4, and says how.
    let (out, md) = check(&shas[3], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has no stored results") && err.contains("syncbench run"),
        "{err}"
    );
    assert!(
        md.contains("missing results") && md.contains("The gate failed"),
        "{md}"
    );

    // b measured at the baseline (shas[1]) but not at shas[2]: missing.
    let (out, md) = check(&shas[2], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(md.contains("b: no results at"), "{md}");
    // Allowed on purpose: checked as far as it can be, said in the summary.
    let (out, md) = check(&shas[2], &["--allow-missing"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        md.contains("Not checked") && md.contains("b: no results at"),
        "{md}"
    );

    // Both measured in full: passes, with a summary.
    let (out, md) = check(&shas[1], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!md.is_empty());

    // A branch whose merge base was never measured.
    git(r, &["checkout", "-q", "-b", "topic", &shas[3]]);
    std::fs::write(r.join("TOPIC"), "x\n").unwrap();
    git(r, &["add", "-A"]);
    git(r, &["commit", "-q", "-m", "topic"]);
    git(r, &["checkout", "-q", "main"]);
    let topic = git(r, &["rev-parse", "topic"]);
    history(r, &db, &["a", "b", &topic]);
    let (out, md) = check(&topic, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(md.contains("merge base"), "{md}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("syncbench history"),
        "{}",
        text(&out)
    );
}

#[test]
fn check_run_writes_its_summary() {
    let (repo, shas) = commits(2);
    let r = repo.path();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let summary = work.path().join("summary.md");
    let cache = work.path().join("cache");
    let out = sb(
        r,
        &db,
        &[
            "check",
            "--run",
            "a",
            "--baseline",
            &shas[0],
            "--commit",
            &shas[1],
            "--summary",
            summary.to_str().unwrap(),
            "--min-pairs",
            "2",
            "--max-pairs",
            "2",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("| a |") && md.contains("measured alternately"),
        "{md}"
    );
}

#[test]
fn escaped_braces_reach_the_shell_as_braces() {
    let work = tempfile::tempdir().unwrap();
    let out_file = work.path().join("out");
    let scenario = format!(
        "name = \"awk\"\nkind = \"command\"\nrun = \"echo {{n}} {{{{n}}}} | awk '{{{{print $1 \\\"-\\\" $2}}}}' > {}\"\nrepetitions = 1\nwarmup = 0\n[params]\nn = [7]\n",
        out_file.display()
    );
    let repo = repo_with(&[("scenarios/awk.toml", &scenario)]);
    let db = work.path().join("r.sqlite");
    let out = sb(repo.path(), &db, &["run", "awk"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "7-{n}\n");
}

/// Three commits of a program whose memory steps +60 MB at the last,
/// measured twice each: too few values for Mann-Whitney to say p < 0.05.
fn memory_step() -> (tempfile::TempDir, Vec<String>) {
    let scenario = "name = \"mem\"\nkind = \"command\"\n\
        run = \"python3 -c 'b = bytearray(int(open(\\\"size\\\").read())); b[::4096] = b\\\"x\\\" * len(b[::4096])'\"\n\
        repetitions = 2\nwarmup = 0\n";
    let repo = repo_with(&[("scenarios/mem.toml", scenario), ("size", "1000000")]);
    let r = repo.path();
    let mut shas = vec![git(r, &["rev-parse", "HEAD"])];
    for size in ["1000000", "61000000"] {
        std::fs::write(r.join("size"), size).unwrap();
        std::fs::write(r.join("NOTES"), size).unwrap();
        git(r, &["add", "-A"]);
        git(r, &["commit", "-q", "-m", size]);
        shas.push(git(r, &["rev-parse", "HEAD"]));
    }
    (repo, shas)
}

#[test]
fn too_few_values_are_said_and_bisect_measures_more() {
    if !have(&[("python3", "python3")]) {
        return;
    }
    let (repo, shas) = memory_step();
    let r = repo.path();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    history(r, &db, &["mem", &shas[0], &shas[1], &shas[2]]);
    // compare: +6000% in 2 values against 2 is "too few to tell", and says
    // what would tell.
    let out = sb(r, &db, &["compare", &shas[1], &shas[2]]);
    let said = text(&out);
    assert!(
        said.contains("command.peak_rss") && said.contains("too few values to tell"),
        "{said}"
    );
    assert!(
        said.contains("cannot go below p = 0.333") && said.contains("--run"),
        "{said}"
    );
    let out = sb(r, &db, &["compare", &shas[1], &shas[2], "--json"]);
    let v = json(&out);
    let rss = v[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == "command.peak_rss")
        .unwrap()
        .clone();
    assert_eq!(rss["verdict"], "inconclusive", "{rss}");
    // bisect does not give up: it measures the commits it needs again.
    let cache = db.with_extension("cache");
    let range = format!("{}..{}", shas[0], shas[2]);
    let out = sb(
        r,
        &db,
        &[
            "bisect",
            &range,
            "mem",
            "command.peak_rss",
            "--json",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("too few to tell"),
        "{}",
        text(&out)
    );
    assert_eq!(json(&out)["culprit"], shas[2].as_str(), "{}", text(&out));
}

#[test]
fn a_commit_amended_away_leaves_the_trends_and_alarms() {
    let scenario = "name = \"slow\"\nkind = \"command\"\nrun = \"sleep $(cat delay)\"\nrepetitions = 3\nwarmup = 0\n";
    let repo = repo_with(&[("scenarios/slow.toml", scenario), ("delay", "0.05")]);
    let r = repo.path();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    for i in 1..5 {
        commit_in(r, "NOTES", &format!("{i}"), &format!("commit {i}"));
    }
    // A slow commit, measured; then amended to what it should have been.
    std::fs::write(r.join("delay"), "0.2").unwrap();
    git(r, &["commit", "-q", "-am", "slow by mistake"]);
    let gone = git(r, &["rev-parse", "HEAD"]);
    history(r, &db, &["slow", "-n", "6"]);
    std::fs::write(r.join("delay"), "0.05").unwrap();
    std::fs::write(r.join("FIX"), "amended").unwrap();
    git(r, &["add", "-A"]);
    git(r, &["commit", "-q", "--amend", "-m", "as it should be"]);
    history(r, &db, &["slow", "-n", "1"]);
    let out = sb(r, &db, &["regressions", "--all", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let changes = json(&out);
    for c in changes.as_array().unwrap() {
        assert_ne!(c["commit"], gone.as_str(), "{c}");
        assert_ne!(c["before_commit"], gone.as_str(), "{c}");
    }
    // The runs stay in the store: `show` of that commit still has them.
    let out = sb(r, &db, &["show", &gone]);
    assert!(
        out.status.success() && text(&out).contains("slow"),
        "{}",
        text(&out)
    );
}

/// What a user's repository shows of itself: branches, worktrees and
/// `git status`.
fn repo_state(r: &Path) -> String {
    format!(
        "branches:\n{}\nworktrees:\n{}\nstatus:\n{}",
        git(r, &["branch", "-a"]),
        git(r, &["worktree", "list", "--porcelain"]),
        git(r, &["status", "--porcelain", "--untracked-files=all"])
    )
}

#[test]
fn measuring_leaves_the_users_repository_as_it_was() {
    let scenario = "name = \"slow\"\nkind = \"command\"\nrun = \"sleep $(cat delay)\"\nrepetitions = 3\nwarmup = 0\n";
    let repo = repo_with(&[("scenarios/slow.toml", scenario), ("delay", "0.01")]);
    let r = repo.path();
    for (i, delay) in ["0.01", "0.01", "0.01", "0.2"].iter().enumerate() {
        std::fs::write(r.join("delay"), delay).unwrap();
        std::fs::write(r.join("NOTES"), format!("{i}")).unwrap();
        git(r, &["add", "-A"]);
        git(r, &["commit", "-q", "-m", &format!("commit {i}")]);
    }
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let cache = cache.to_str().unwrap();
    // The repository's own database and dashboard (the defaults): the
    // first measuring command excludes them through .git/info/exclude.
    let before = repo_state(r);
    let run = |args: &[&str]| {
        let out = syncbench(&[&["--repo", r.to_str().unwrap()], args].concat());
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {}",
            text(&out)
        );
        assert_eq!(repo_state(r), before, "after {args:?}");
        out
    };
    let first = run(&["history", "slow", "-n", "5", "--cache-dir", cache]);
    assert!(
        text(&first).contains(".git/info/exclude"),
        "{}",
        text(&first)
    );
    run(&["run", "slow"]);
    run(&[
        "compare",
        "HEAD~1",
        "HEAD",
        "slow",
        "--run",
        "--min-pairs",
        "2",
        "--max-pairs",
        "2",
        "--cache-dir",
        cache,
    ]);
    run(&["confirm", "--confirm-budget", "5s", "--cache-dir", cache]);
    run(&[
        "bisect",
        "HEAD~3..HEAD",
        "slow",
        "wall",
        "--cache-dir",
        cache,
    ]);
    run(&["report"]);
    assert!(r.join(".syncbench/results.sqlite").is_file());
    // The second time says nothing of it.
    let again = run(&["run", "slow"]);
    assert!(
        !text(&again).contains(".git/info/exclude"),
        "{}",
        text(&again)
    );
}

/// Once `confirm` measured a step again, interleaved, its size is that
/// run's estimate and interval wherever it is shown (regressions' lines
/// and JSON, the index and the series page), with the history's levels
/// beside it; the step the history found (+20.0%) only found it.
#[test]
fn a_confirmed_step_is_shown_at_its_measured_size() {
    use crate::golden::{SCENARIO, fixed_db, fixed_repo, machine};
    use syncbench::model::{Confirmation, Verdict};
    use syncbench::store::{AbRecord, ConfirmationKey, ConfirmationRow, Location};
    let (repo, shas) = fixed_repo(SCENARIO);
    let r = repo.path();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    fixed_db(r, &shas, &db);
    // The golden history's wall step: +20% at its sixth commit.
    let (before, at) = (&shas[4], &shas[5]);
    let fingerprint = machine().fingerprint();
    let mut store = syncbench::store::open(&Location::Sqlite(db.clone())).unwrap();
    let ab_id = store
        .record_ab(&AbRecord {
            id: 0,
            machine: fingerprint.clone(),
            scenario: "svc".into(),
            point: "n=10".into(),
            a_point: None,
            metric: "wall".into(),
            a_sha: before.clone(),
            b_sha: at.clone(),
            mode: "interleaved".into(),
            verdict: Verdict::Regression,
            change: Some(0.156),
            low: Some(0.097),
            high: Some(0.273),
            threshold: 0.05,
            pairs: 24,
            stop: Some("changed".into()),
            seconds: 12.0,
            a: vec![0.25; 24],
            b: vec![0.289; 24],
            error: None,
            purpose: "confirm".into(),
            created_unix: 1.0,
        })
        .unwrap();
    let key = ConfirmationKey {
        machine: fingerprint,
        scenario: "svc".into(),
        point: "n=10".into(),
        metric: "wall".into(),
        before_sha: before.clone(),
        sha: at.clone(),
    };
    assert!(
        store
            .claim_confirmation(&key, "test:1", false, &|_| false)
            .unwrap()
    );
    store
        .finish_confirmation(&ConfirmationRow {
            key,
            state: Confirmation::Confirmed,
            reason: "+15.60% [+9.70%, +27.30%] in 24 pairs".into(),
            ab_id: Some(ab_id),
            owner: "test:1".into(),
            updated_unix: 2.0,
        })
        .unwrap();
    drop(store);

    let out = sb(r, &db, &["regressions", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    let step = v
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["commit"] == at.as_str() && c["metric"] == "wall" && c["point"] == "n=10")
        .unwrap_or_else(|| panic!("no confirmed wall step in {v:#}"));
    let m = &step["measured"];
    let close = |x: &serde_json::Value, want: f64| (x.as_f64().unwrap() - want).abs() < 1e-9;
    assert!(
        close(&m["change_pct"], 15.6) && close(&m["low_pct"], 9.7) && close(&m["high_pct"], 27.3),
        "{step:#}"
    );
    assert_eq!(m["pairs"], 24);
    // Ranked by the measured size against its threshold.
    let t = step["threshold"]["value"].as_f64().unwrap();
    assert!(close(&step["significance"], 0.156 / t), "{step:#}");
    // The history's own levels and change stay as found.
    assert!(close(&step["change_pct"], 20.0), "{step:#}");

    let out = sb(r, &db, &["regressions"]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = said
        .lines()
        .find(|l| l.starts_with(&at[..12]) && l.contains(" wall:") && l.contains("n=10"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        line.contains("+15.6% [+9.7%, +27.3%]")
            && line.contains(" ms in the history (+20.0%)")
            && line.contains("measured again in 24 pairs"),
        "{line}"
    );

    let site = work.path().join("site");
    let out = sb(r, &db, &["report", "--out", site.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(index.contains("+15.6% [+9.7%, +27.3%]"), "index:\n{index}");
    let series = std::fs::read_dir(site.join("series"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .find(|p| p.contains("+15.6% [+9.7%, +27.3%]"))
        .expect("a series page with the measured size");
    assert!(series.contains("(+20.0% in the history)"), "{series}");
}

/// Writes `text` to `file` in `r` and commits everything: the new sha.
fn commit_in(r: &Path, file: &str, text: &str, subject: &str) -> String {
    std::fs::write(r.join(file), text).unwrap();
    git(r, &["add", "-A"]);
    git(r, &["commit", "-q", "-m", subject]);
    git(r, &["rev-parse", "HEAD"])
}

/// A branch merged with a merge commit: its commits, measured, stay off
/// main's series (the first-parent line), so its slow commit is no step of
/// main. A force-push that drops the newest measured commit: the commit
/// that replaced it is compared with the commit before, never with it.
#[test]
fn merged_branches_and_force_pushes_keep_to_the_first_parent_line() {
    let scenario = "name = \"slow\"\nkind = \"command\"\nrun = \"sleep $(cat delay)\"\nrepetitions = 2\nwarmup = 0\n";
    let repo = repo_with(&[("scenarios/slow.toml", scenario), ("delay", "0.05")]);
    let r = repo.path();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let mut main = vec![git(r, &["rev-parse", "HEAD"])];
    for i in 1..3 {
        main.push(commit_in(r, "NOTES", &format!("{i}"), &format!("c{i}")));
    }
    git(r, &["checkout", "-q", "-b", "feature"]);
    let slow = commit_in(r, "delay", "0.3", "feature: slow");
    let fixed = commit_in(r, "delay", "0.05", "feature: fixed");
    git(r, &["checkout", "-q", "main"]);
    main.push(commit_in(r, "NOTES", "3", "c3"));
    git(
        r,
        &["merge", "-q", "--no-ff", "feature", "-m", "merge feature"],
    );
    main.push(git(r, &["rev-parse", "HEAD"]));
    main.push(commit_in(r, "NOTES", "5", "c5"));
    let mut all: Vec<&str> = vec!["slow"];
    all.extend(main.iter().map(String::as_str));
    all.extend([slow.as_str(), fixed.as_str()]);
    history(r, &db, &all);
    let changes = || {
        let out = sb(r, &db, &["regressions", "--all", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        json(&out).as_array().unwrap().clone()
    };
    for c in changes() {
        for off in [&slow, &fixed] {
            assert_ne!(c["commit"], off.as_str(), "{c}");
            assert_ne!(c["before_commit"], off.as_str(), "{c}");
        }
    }
    // The feature's runs stay: its commit page, `show`.
    let out = sb(r, &db, &["show", &slow]);
    assert!(text(&out).contains("slow"), "{}", text(&out));

    // Force-push: the newest measured commit replaced by a slow one.
    let dropped = main.pop().unwrap();
    git(r, &["reset", "-q", "--hard", "HEAD~1"]);
    let replaced = commit_in(r, "delay", "0.3", "c5, rewritten");
    history(r, &db, &["slow", &replaced]);
    let found = changes();
    for c in &found {
        assert_ne!(c["commit"], dropped.as_str(), "{c}");
        assert_ne!(c["before_commit"], dropped.as_str(), "{c}");
    }
    let step = found
        .iter()
        .find(|c| c["commit"] == replaced.as_str() && c["metric"] == "wall")
        .unwrap_or_else(|| panic!("no wall step at the rewritten commit: {found:#?}"));
    assert_eq!(step["before_commit"], main.last().unwrap().as_str());
    // check compares it with the merge commit before it, not the dropped one.
    let out = sb(
        r,
        &db,
        &["check", "--baseline", "main", "--no-confirm", "--json"],
    );
    let said = text(&out);
    assert!(
        said.contains(&main.last().unwrap()[..12]) && !said.contains(&dropped[..12]),
        "{said}"
    );
}

/// A shallow clone (CI's default): `history -n` says how many of the
/// commits asked for it has and how to fetch the rest; `check` against a
/// baseline the clone lacks fails with how to fetch it.
#[test]
fn a_shallow_clone_says_what_it_lacks() {
    let (origin, shas) = commits(6);
    let work = tempfile::tempdir().unwrap();
    let clone = work.path().join("clone");
    let url = format!("file://{}", origin.path().display());
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--depth", "3", &url])
        .arg(&clone)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let db = work.path().join("r.sqlite");
    let cache = work.path().join("cache");
    let out = sb(
        &clone,
        &db,
        &[
            "history",
            "a",
            "-n",
            "5",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("only 3 of the 5 commits asked for are in this shallow clone")
            && said.contains("git fetch --deepen 2"),
        "{said}"
    );
    assert!(said.contains("3 point(s) recorded"), "{said}");
    // Its line starts at its depth: the three are a history.
    let out = sb(
        &clone,
        &db,
        &["check", "--baseline", "main", "--no-confirm"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains(&shas[4][..12]), "{}", text(&out));
    // A baseline the clone does not have.
    let out = sb(&clone, &db, &["check", "--baseline", "develop"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("git fetch origin develop") && text(&out).contains("fetch-depth: 0"),
        "{}",
        text(&out)
    );
}
