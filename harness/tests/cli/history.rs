//! A throwaway repository whose performance changes at known commits:
//! history, regressions, compare, check and bisect must all point at them.

use crate::support::*;

// Times are measured while other tests run (and CPU time on this shared
// VM swings between two levels about 2x apart anyway): no verdict here may
// depend on them, so their thresholds are out of reach (a `check` once saw
// wall +393% under a parallel test run). The work is judged by
// instruction counts (valgrind) and memory, whose steps are 20% and 4×.
// The program always holds 32 MiB, more than the harness it is spawned
// from, so its peak RSS is wait4's exact figure at every commit; below the
// harness's size it would be the 50 ms sampler's, which a 15 ms process
// can slip (a `check` once saw +674% between identical commits).
const SCENARIO: &str = r#"
name = "prog"
kind = "command"
build = "cc -O2 -o prog prog.c"
run = "./prog"
repetitions = 5
warmup = 1
timeout = "60s"
instructions = true
[thresholds]
wall = 1000.0
cpu_user = 1000.0
cpu_sys = 1000.0
peak_rss = 0.5
"#;

fn program(iterations: u64, extra_mib: u64) -> String {
    format!(
        r#"#include <stdio.h>
#include <stdlib.h>
int main(void) {{
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < {iterations}UL; i++) x += i * 2654435761UL;
    size_t extra = (size_t)(32 + {extra_mib}) * 1024 * 1024;
    /* volatile: the compiler may not drop the allocation it can see through. */
    volatile char *p = extra ? malloc(extra) : 0;
    for (size_t i = 0; i < extra; i += 4096) p[i] = 1;
    printf("%lu\n", (unsigned long)x);
    return 0;
}}
"#
    )
}

/// Nine commits: the loop grows 20% at commit 3, 100 MiB more memory at 6.
fn throwaway_repo() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(d.join("scenarios")).unwrap();
    std::fs::write(d.join("scenarios/prog.toml"), SCENARIO).unwrap();
    let mut shas = vec![];
    for i in 0..9 {
        let iterations = if i >= 3 { 18_000_000 } else { 15_000_000 };
        let extra = if i >= 6 { 100 } else { 0 };
        std::fs::write(d.join("prog.c"), program(iterations, extra)).unwrap();
        std::fs::write(d.join("NOTES"), format!("commit {i}\n")).unwrap();
        git(d, &["add", "-A"]);
        git(d, &["commit", "-q", "-m", &format!("commit {i}")]);
        shas.push(git(d, &["rev-parse", "HEAD"]));
    }
    (dir, shas)
}

#[test]
fn change_points_land_on_the_commits_that_changed() {
    if !have(&[("cc", "gcc"), ("valgrind", "valgrind")]) {
        return;
    }
    let (repo, shas) = throwaway_repo();
    let r = repo.path().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let cache = work.path().join("cache");
    let (db_s, cache_s) = (db.to_str().unwrap(), cache.to_str().unwrap());

    let out = sb(
        r,
        db_s,
        &["history", "prog", "-n", "9", "--cache-dir", cache_s],
    );
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{}",
        text(&out)
    );
    assert_eq!(run_status(&db).len(), 9, "one run per commit");
    assert!(
        run_status(&db).iter().all(|r| r.1 == "ok"),
        "{:?}",
        run_status(&db)
    );

    // Measured commits are skipped the second time.
    let out = sb(
        r,
        db_s,
        &["history", "prog", "-n", "9", "--cache-dir", cache_s],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0 point(s) recorded"),
        "{}",
        text(&out)
    );

    // Every change point: the memory step is not confirmed (alarms need
    // `confirm`), so the default list holds only the exact counts'.
    let out = sb(r, db_s, &["regressions", "--all", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let changes = json(&out);
    let changes = changes.as_array().unwrap();
    let at = |i: usize, metric: &str| {
        changes
            .iter()
            .find(|c| c["commit"] == shas[i] && c["metric"] == metric)
            .unwrap_or_else(|| panic!("no {metric} change at commit {i}: {changes:#?}"))
    };
    let cpu = at(3, "command.instructions");
    assert_eq!(cpu["direction"], "regression");
    assert!(
        (cpu["change_pct"].as_f64().unwrap() - 20.0).abs() < 8.0,
        "{cpu}"
    );
    assert_eq!(cpu["scenario"], "prog");
    assert!(cpu["machine"].as_str().unwrap().contains("cores"));
    let rss = at(6, "command.peak_rss");
    assert_eq!(rss["direction"], "regression");
    assert!(rss["change_pct"].as_f64().unwrap() > 200.0, "{rss}");
    // Exact counts step only where the code changed; times may step where
    // the machine did (those wait for `confirm`), so they are not judged here.
    for c in changes {
        let i = shas.iter().position(|s| *s == c["commit"]).unwrap();
        if c["exact"] == true {
            assert_eq!(i, 3, "an exact change point at commit {i}: {c}");
        }
        if c["metric"] == "command.peak_rss" {
            assert_eq!(i, 6, "{c}");
        }
    }
    let alarms = json(&sb(r, db_s, &["regressions", "--json"]));
    assert!(
        alarms
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["exact"] == true),
        "unconfirmed changes of times listed as alarms: {alarms:#}"
    );

    // compare and check see the step between commits 2 and 3.
    let out = sb(r, db_s, &["compare", &shas[2], &shas[3], "--json"]);
    let v = json(&out);
    let wall = v[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == "command.instructions")
        .unwrap();
    assert_eq!(wall["verdict"], "regression", "{wall}");
    let summary = work.path().join("summary.md");
    let out = sb(
        r,
        db_s,
        &[
            "check",
            "--baseline",
            &shas[2],
            "--commit",
            &shas[3],
            "--summary",
            summary.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("regression(s)") && md.contains("command.instructions"),
        "{md}"
    );
    let out = sb(
        r,
        db_s,
        &["check", "--baseline", &shas[4], "--commit", &shas[5]],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // bisect finds commit 3, measuring nothing new (all measured).
    let bisect = |from: usize, to: usize, metric: &str, json: bool| {
        let range = format!("{}..{}", shas[from], shas[to]);
        let mut args = vec!["bisect", &range, "prog", metric, "--cache-dir", cache_s];
        if json {
            args.push("--json");
        }
        sb(r, db_s, &args)
    };
    let out = bisect(0, 5, "command.instructions", false);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("culprit: {}", shas[3])),
        "{}",
        text(&out)
    );

    // The memory step, printed in human units (once printed raw, as
    // `25935872.000000 -> 92069888.000000`).
    let out = bisect(3, 8, "command.peak_rss", false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.contains(&format!("culprit: {}", shas[6])),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains(" MiB -> ") && stdout.contains(" MiB (median"),
        "{stdout}"
    );
    // The same for scripts.
    let out = bisect(3, 8, "command.peak_rss", true);
    let v = json(&out);
    assert_eq!(v["culprit"], shas[6].as_str(), "{v}");
    assert_eq!(v["parent"], shas[5].as_str(), "{v}");
    assert_eq!(v["unit"], "B");
    assert!(v["after"].as_f64() > v["before"].as_f64(), "{v}");
}

#[test]
fn bisect_measures_only_what_it_needs() {
    if !have(&[("cc", "gcc"), ("valgrind", "valgrind")]) {
        return;
    }
    let (repo, shas) = throwaway_repo();
    let r = repo.path().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let cache = work.path().join("cache");
    let range = format!("{}..{}", shas[0], shas[8]);
    let out = sb(
        r,
        &db,
        &[
            "bisect",
            &range,
            "prog",
            "command.instructions",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--repetitions",
            "5",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("culprit: {}", shas[3])),
        "{}",
        text(&out)
    );
    // 9 commits; a binary search needs both ends and about log2(8) = 3 more.
    let measured = run_status(&db).len();
    assert!(measured <= 6, "bisect measured {measured} commits");
}

#[test]
fn a_commit_that_does_not_build_is_a_recorded_gap() {
    if !have(&[("cc", "gcc"), ("valgrind", "valgrind")]) {
        return;
    }
    let (repo, _) = throwaway_repo();
    let d = repo.path();
    std::fs::write(d.join("prog.c"), "this is not C\n").unwrap();
    git(d, &["commit", "-q", "-am", "broken build"]);
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let out = sb(
        d,
        &db,
        &[
            "history",
            "prog",
            "-n",
            "2",
            "--cache-dir",
            work.path().join("cache").to_str().unwrap(),
            "--repetitions",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let runs = run_status(&db);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].1, "ok");
    assert_eq!(runs[1].1, "build_failed");
    assert!(runs[1].2.as_ref().unwrap().contains("error"), "{runs:?}");
}

#[test]
fn profile_names_the_function_that_grew_and_the_dashboard_links_it() {
    if !have(&[("cc", "gcc"), ("valgrind", "valgrind")]) {
        return;
    }
    let (repo, shas) = throwaway_repo();
    let r = repo.path().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let cache = work.path().join("cache");
    let cache = cache.to_str().unwrap();
    // The loop in main grows 20% at commit 3.
    let out = sb(
        r,
        &db,
        &[
            "profile",
            &shas[2],
            &shas[3],
            "prog",
            "--json",
            "--cache-dir",
            cache,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    let total = &v["totals"][0];
    assert_eq!(total["process"], "command");
    let (base, new) = (
        total["base"].as_f64().unwrap(),
        total["new"].as_f64().unwrap(),
    );
    // 3M more iterations of a loop of a few instructions each.
    assert!(new - base > 5e6 && new < base * 1.5, "{base} → {new}");
    let main = v["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == "main")
        .unwrap_or_else(|| panic!("no main in {v}"));
    assert!(
        main["new"]["self"].as_f64().unwrap() > main["base"]["self"].as_f64().unwrap(),
        "{main}"
    );
    // The text form leads with the largest change.
    let out = sb(
        r,
        &db,
        &["profile", &shas[2], &shas[3], "prog", "--cache-dir", cache],
    );
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("largest changes, exclusive"), "{printed}");
    assert!(printed.contains("main"), "{printed}");
    // Measured at both commits, the compare page links the profile.
    let out = sb(
        r,
        &db,
        &["history", "prog", &shas[2], &shas[3], "--cache-dir", cache],
    );
    // Exit 1: the 20% step is a regression.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let site = work.path().join("site");
    let out = sb(r, &db, &["report", "--out", site.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let compare = std::fs::read_to_string(
        site.join("compare")
            .join(format!("{}..{}.html", shas[2], shas[3])),
    )
    .unwrap();
    let link = compare
        .split("href=\"../profile/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no profile link in the compare page"));
    let page = std::fs::read_to_string(site.join("profile").join(link)).unwrap();
    assert!(
        page.contains("main") && page.contains("Largest changes"),
        "{page}"
    );
}

/// `<cache-dir>/checkout` holding someone's own worktree (of another
/// repository, or of the measured one) with uncommitted work: `history`
/// refuses, says what to do, and leaves every file as it was; a checkout
/// the cache made itself is still made again for another repository.
#[test]
fn the_cache_never_touches_a_checkout_it_did_not_make() {
    const TRUE: &str =
        "name = \"t\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = 1\nwarmup = 0\n";
    let measured = repo_with(&[("scenarios/t.toml", TRUE)]);
    let other = repo_with(&[("scenarios/t.toml", TRUE), ("notes.txt", "committed\n")]);
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("r.sqlite");
    let cache = work.path().join("cache");
    let checkout = cache.join("checkout");
    let history = |repo: &std::path::Path, cache: &std::path::Path| {
        sb(
            repo,
            &db,
            &[
                "history",
                "t",
                "-n",
                "1",
                "--cache-dir",
                cache.to_str().unwrap(),
            ],
        )
    };

    for owner in [other.path(), measured.path()] {
        git(
            owner,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                checkout.to_str().unwrap(),
            ],
        );
        std::fs::write(checkout.join("mine.txt"), "uncommitted work\n").unwrap();
        std::fs::write(checkout.join("scenarios/t.toml"), "# edited\n").unwrap();
        let out = history(measured.path(), &cache);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(checkout.to_str().unwrap())
                && err.contains("did not make")
                && err.contains("another --cache-dir"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(checkout.join("mine.txt")).unwrap(),
            "uncommitted work\n"
        );
        assert_eq!(
            std::fs::read_to_string(checkout.join("scenarios/t.toml")).unwrap(),
            "# edited\n"
        );
        git(
            owner,
            &["worktree", "remove", "--force", checkout.to_str().unwrap()],
        );
    }
    assert!(run_status(&db).is_empty(), "nothing was measured");

    // The cache's own checkout: made, reused, and made again when the
    // cache dir is given to another repository.
    let own = work.path().join("own-cache");
    for repo in [measured.path(), measured.path(), other.path()] {
        let out = history(repo, &own);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    assert!(own.join("checkout/notes.txt").is_file());
}
