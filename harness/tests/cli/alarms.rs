//! Alarms: change points of noisy metrics confirmed by measuring their two
//! commits again interleaved (`confirm`, `history --confirm`), listed by
//! `regressions`, triaged, and gating `check`. The workload sleeps, so its
//! wall time doubles at the step whatever else the machine runs.

use crate::support::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// Twelve commits of a command that sleeps 50 ms, then 250 ms from commit
/// index 8 on (README edits between). The step is five-fold so that a
/// commit whose repetitions all woke late on a loaded machine (+40 ms,
/// seen while the whole suite ran) still sits nearer its own level: with
/// a two-fold step such a commit moved the change point one commit early,
/// and the interleaved run rightly refuted it. `build` is the scenario's build
/// command. Returns the repository and the shas, oldest first.
fn napping_history(build: &str) -> (tempfile::TempDir, Vec<String>) {
    let scenario = format!(
        "name = \"nap\"\nkind = \"command\"\nbuild = \"{build}\"\nrun = \"sleep $(cat delay)\"\nrepetitions = 5\nwarmup = 0\ntimeout = \"30s\"\n"
    );
    let repo = repo_with(&[("scenarios/nap.toml", &scenario), ("delay", "0.05\n")]);
    let d = repo.path();
    let mut shas = vec![git(d, &["rev-parse", "HEAD"])];
    for i in 1..12 {
        if i == 8 {
            std::fs::write(d.join("delay"), "0.25\n").unwrap();
        } else {
            std::fs::write(d.join("README"), format!("note {i}\n")).unwrap();
            git(d, &["add", "-A"]);
        }
        git(d, &["commit", "-q", "-am", &format!("commit {i}")]);
        shas.push(git(d, &["rev-parse", "HEAD"]));
    }
    (repo, shas)
}

fn alarms_at<'a>(v: &'a serde_json::Value, sha: &str) -> Vec<&'a serde_json::Value> {
    v.as_array()
        .unwrap()
        .iter()
        .filter(|c| c["commit"] == sha)
        .collect()
}

#[test]
fn a_confirmed_step_alarms_can_be_triaged_and_then_no_longer_fails_check() {
    let (repo, shas) = napping_history("true");
    let r = repo.path();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let cache = work.path().join("cache");
    let cache_s = cache.to_str().unwrap();
    let out = sb(
        r,
        &db,
        &[
            "history",
            "-n",
            "12",
            "nap",
            "--confirm",
            "--confirm-budget",
            "40s",
            "--cache-dir",
            cache_s,
        ],
    );
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{} confirmed", &shas[8][..12])),
        "{}",
        text(&out)
    );

    // regressions lists the confirmed step with its threshold and rank.
    let v = json(&sb(r, &db, &["regressions", "--json"]));
    let at8 = alarms_at(&v, &shas[8]);
    let wall = at8
        .iter()
        .find(|c| c["metric"] == "wall")
        .unwrap_or_else(|| panic!("no wall alarm at the step: {v:#}"));
    assert_eq!(wall["direction"], "regression", "{wall}");
    assert_eq!(wall["confirmation"], "confirmed", "{wall}");
    assert!(wall["significance"].as_f64().unwrap() >= 1.0, "{wall}");
    assert!(wall["threshold"]["value"].as_f64().unwrap() > 0.0, "{wall}");
    // By default only alarms: every change listed is exact or confirmed.
    for c in v.as_array().unwrap() {
        assert!(
            c["exact"] == true || c["confirmation"] == "confirmed",
            "{c}"
        );
    }
    let all = json(&sb(r, &db, &["regressions", "--all", "--json"]));
    assert!(all.as_array().unwrap().len() >= v.as_array().unwrap().len());

    // check: the step, confirmed again interleaved, fails the gate...
    let check = |extra: &[&str]| {
        let mut args = vec![
            "check",
            "--baseline",
            &shas[7],
            "--commit",
            &shas[8],
            "--cache-dir",
            cache_s,
            "--confirm-budget",
            "40s",
        ];
        args.extend_from_slice(extra);
        sb(r, &db, &args)
    };
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("confirmed"), "{}", text(&out));

    // ...triage: a commit or metric that does not exist is a clear error,
    // and nothing is stored.
    let out = sb(r, &db, &["triage", &shas[8], "no.such.metric", "invalid"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no metric \"no.such.metric\""),
        "{}",
        text(&out)
    );
    let out = sb(r, &db, &["triage", "deadbeef", "wall", "invalid"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("deadbeef"), "{}", text(&out));
    let out = sb(r, &db, &["triage", &shas[8], "wall", "fixed"]);
    assert!(text(&out).contains("--by"), "{}", text(&out));
    let listed = json(&sb(r, &db, &["triage", "--list", "--json"]));
    assert_eq!(listed["triage"], serde_json::json!([]), "{listed}");
    assert!(listed["precision"].is_null(), "{listed}");

    // Acknowledged: shown, and check passes.
    let out = sb(
        r,
        &db,
        &[
            "triage",
            &shas[8][..10],
            "wall",
            "acknowledged",
            "--note",
            "the nap is the feature",
            "--who",
            "reviewer",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&sb(r, &db, &["regressions", "--json"]));
    let wall = alarms_at(&v, &shas[8])
        .into_iter()
        .find(|c| c["metric"] == "wall")
        .unwrap();
    assert_eq!(wall["triage"]["state"], "acknowledged", "{wall}");
    assert_eq!(wall["triage"]["who"], "reviewer", "{wall}");
    // Another metric of `sleep` (its few ms of CPU) may be flagged by
    // noise, and without confirmation it would fail: judge wall's row.
    let summary = work.path().join("summary.md");
    let out = check(&["--no-confirm", "--summary", summary.to_str().unwrap()]);
    let md = std::fs::read_to_string(&summary).unwrap();
    let row = md
        .lines()
        .find(|l| l.contains("| wall |") && l.contains("acknowledged"))
        .unwrap_or_else(|| panic!("no acknowledged wall row: {md}\n{}", text(&out)));
    assert!(!row.contains('🔴'), "{row}");
    if out.status.code() != Some(0) {
        // The flagged table (above "Every series", whose rows show each
        // comparison's own verdict): wall is not among the failing rows.
        let flagged = md.split("<details>").next().unwrap();
        assert!(
            flagged
                .lines()
                .filter(|l| l.contains('🔴'))
                .all(|l| !l.contains("| wall |")),
            "{md}"
        );
    }
    let listed = json(&sb(r, &db, &["triage", "--list", "--json"]));
    assert_eq!(listed["precision"]["triaged"], 1, "{listed}");
    assert_eq!(listed["precision"]["invalid"], 0, "{listed}");

    // The dashboard: the alarm ranked on the index with its state and
    // triage, the threshold on the series page, the interleaved runs with
    // their pairs on the compare page.
    let site = work.path().join("site");
    let out = sb(r, &db, &["report", "--out", site.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    let alarms =
        &index[index.find("<h2>Alarms").unwrap()..index.find("<h2>Not confirmed").unwrap()];
    assert!(alarms.contains(&shas[8][..10]), "{alarms}");
    assert!(
        alarms.contains("confirmed, acknowledged by reviewer"),
        "{alarms}"
    );
    assert!(index.contains("Precision of the alarms: 100%"), "{index}");
    let compare =
        std::fs::read_to_string(site.join(format!("compare/{}..{}.html", shas[7], shas[8])))
            .unwrap();
    assert!(compare.contains("Measured again, interleaved"), "{compare}");
    assert!(
        compare.contains("confirm") && compare.contains("the interval excludes no change"),
        "{compare}"
    );
    let series = std::fs::read_dir(site.join("series"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|page| page.contains("nap") && page.contains("· wall</h1>"))
        .expect("the wall series page");
    assert!(series.contains("Threshold in force"), "{series}");
}

#[test]
fn confirm_runs_at_once_measure_each_change_point_once_and_a_broken_build_is_inconclusive() {
    let work = tempfile::tempdir().unwrap();
    let broken = work.path().join("broken");
    let (repo, shas) = napping_history(&format!("test ! -e {}", broken.display()));
    let r = repo.path();
    let db = work.path().join("r.sqlite");
    let cache = work.path().join("cache");
    let cache_s = cache.to_str().unwrap();
    let out = sb(
        r,
        &db,
        &["history", "-n", "12", "nap", "--cache-dir", cache_s],
    );
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let all = json(&sb(r, &db, &["regressions", "--all", "--json"]));
    let to_confirm = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["exact"] == false)
        .count();
    let shown = sb(r, &db, &["show", &shas[8]]);
    assert!(
        to_confirm >= 1,
        "no change point to confirm: {all:#}\n{}\n{}",
        text(&out),
        text(&shown)
    );

    // check measures the step again, interleaved, and stores that run:
    // confirm takes it as the answer instead of measuring a third time.
    let out = sb(
        r,
        &db,
        &[
            "check",
            "--baseline",
            &shas[7],
            "--commit",
            &shas[8],
            "--cache-dir",
            cache_s,
            "--confirm-budget",
            "40s",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let checked = text(&out);

    // Two confirm runs at once on one database and one cache.
    let spawn = || {
        Command::new(SYNCBENCH)
            .arg("--repo")
            .arg(r)
            .arg("--db")
            .arg(&db)
            .args([
                "confirm",
                "nap",
                "--json",
                "--confirm-budget",
                "40s",
                "--cache-dir",
                cache_s,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let outs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    let mut answers = Vec::new();
    for out in &outs {
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(out));
        answers.extend(json(out).as_array().unwrap().clone());
    }
    assert_eq!(answers.len(), to_confirm, "each change point answered once");
    let from_check = answers
        .iter()
        .filter(|o| o["reason"].as_str().unwrap().contains("stored check run"))
        .count();
    assert!(
        answers.iter().any(|o| o["key"]["sha"] == shas[8]
            && o["key"]["metric"] == "wall"
            && o["state"] == "confirmed"
            && o["reason"].as_str().unwrap().contains("stored check run")),
        "the step's answer is check's run: {answers:#?}\ncheck said: {checked}\nall: {all:#}"
    );
    let (rows, measured) = counts(&db);
    assert_eq!(rows, to_confirm);
    assert_eq!(
        measured,
        to_confirm - from_check,
        "each change point measured once, none already answered"
    );

    // The commits no longer build: inconclusive with the reason, never refuted.
    std::fs::write(&broken, "").unwrap();
    let out = sb(
        r,
        &db,
        &[
            "confirm",
            "nap",
            "--again",
            "--json",
            "--cache-dir",
            cache_s,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = json(&out);
    assert_eq!(v.as_array().unwrap().len(), to_confirm, "{v:#}");
    for o in v.as_array().unwrap() {
        assert_eq!(o["state"], "inconclusive", "{o}");
        assert!(
            o["reason"].as_str().unwrap().contains("failed to build"),
            "{o}"
        );
    }
    let at8 = alarms_at(
        &json(&sb(r, &db, &["regressions", "--all", "--json"])),
        &shas[8],
    )
    .len();
    assert!(at8 >= 1, "the step is still listed with --all");
}

/// (confirmation rows, A/B runs made by confirm).
fn counts(db: &Path) -> (usize, usize) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let one = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as usize;
    (
        one("SELECT count(*) FROM confirmations WHERE state != 'pending'"),
        one("SELECT count(*) FROM ab_runs WHERE purpose = 'confirm'"),
    )
}

/// A branch is checked against its merge base with the baseline, and a
/// merge base without results fails loudly instead of passing.
#[test]
fn check_compares_a_branch_with_its_merge_base_and_refuses_one_without_results() {
    let scenario =
        "name = \"quick\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = 2\nwarmup = 0\n";
    let repo = repo_with(&[("scenarios/quick.toml", scenario)]);
    let r = repo.path();
    let base = git(r, &["rev-parse", "HEAD"]);
    git(r, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(r.join("README"), "feature\n").unwrap();
    git(r, &["add", "-A"]);
    git(r, &["commit", "-q", "-m", "feature"]);
    // main moves on too: its tip is not the pull request's baseline.
    git(r, &["checkout", "-q", "main"]);
    std::fs::write(r.join("NEWS"), "main moved\n").unwrap();
    git(r, &["add", "-A"]);
    git(r, &["commit", "-q", "-m", "main moved"]);
    let tip = git(r, &["rev-parse", "HEAD"]);
    git(r, &["checkout", "-q", "feature"]);
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let out = sb(
        r,
        &db,
        &[
            "history",
            "quick",
            &tip,
            "HEAD",
            "--cache-dir",
            work.path().join("c").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = sb(r, &db, &["check", "--baseline", "main"]);
    // Missing data: its own status, never a pass.
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = text(&out);
    assert!(
        err.contains("merge base") && err.contains(&base[..12]),
        "{err}"
    );
    assert!(err.contains("syncbench history"), "{err}");
    let out = sb(
        r,
        &db,
        &[
            "history",
            "quick",
            &base,
            "--cache-dir",
            work.path().join("c").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = sb(r, &db, &["check", "--baseline", "main", "--no-confirm"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("@ {}", &base[..12])),
        "{}",
        text(&out)
    );
}
