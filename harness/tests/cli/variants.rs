//! Variants (issue 31): the same points on other build configurations,
//! each a series of its own; a variant that fails to build fails alone.

use crate::support::*;

/// A command scenario whose commands check they got their variant's
/// settings: a point fails unless its variant's environment and run line
/// reached it.
const SCENARIO: &str = r#"
name = "v"
kind = "command"
run = "test -z \"$SYNCBENCH_PARAM_VARIANT\" && test -z \"$WORK\""
repetitions = 2
warmup = 0
params = { n = [1, 2] }

[variants.glibc]
default = true

[variants.slow]
env = { WORK = "2" }
run = "test \"$SYNCBENCH_PARAM_VARIANT\" = slow && test \"$WORK\" = 2 && test -f built-slow"
build = "touch built-slow"

[variants.broken]
build = "echo the variant does not build >&2; exit 3"
"#;

fn runs(db: &std::path::Path) -> Vec<(String, String, Option<String>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT point, status, error FROM runs ORDER BY point")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn each_variant_is_measured_as_its_own_series_and_a_broken_one_fails_alone() {
    let repo = repo_with(&[("scenarios/v.toml", SCENARIO)]);
    let db = repo.path().join("r.sqlite");
    let out = sb(repo.path(), &db, &["run", "v", "--json"]);
    // A failed build is a failed run: the exit status says so.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let got = runs(&db);
    let status: Vec<(&str, &str)> = got
        .iter()
        .map(|(p, s, _)| (p.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        status,
        [
            ("n=1", "ok"),
            ("n=1,variant=broken", "build_failed"),
            ("n=1,variant=slow", "ok"),
            ("n=2", "ok"),
            ("n=2,variant=broken", "build_failed"),
            ("n=2,variant=slow", "ok"),
        ],
        "{got:?}"
    );
    let error = got[1].2.as_deref().unwrap_or_default();
    assert!(
        error.contains("the variant does not build") && error.contains("exit"),
        "{error}"
    );
    // `show` lists them by point key, the variant in it.
    let shown = text(&sb(repo.path(), &db, &["show"]));
    assert!(shown.contains("n=1,variant=slow"), "{shown}");
}

#[test]
fn variant_chooses_the_variants_and_an_unknown_name_is_refused() {
    let repo = repo_with(&[("scenarios/v.toml", SCENARIO)]);
    let db = repo.path().join("r.sqlite");
    let out = sb(repo.path(), &db, &["run", "v", "--variant", "slow,default"]);
    assert!(out.status.success(), "{}", text(&out));
    let points: Vec<String> = runs(&db).into_iter().map(|r| r.0).collect();
    assert_eq!(
        points,
        ["n=1", "n=1,variant=slow", "n=2", "n=2,variant=slow"]
    );
    let out = sb(repo.path(), &db, &["run", "v", "--variant", "mimalloc"]);
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("no variant \"mimalloc\"") && said.contains("broken, default, glibc, slow"),
        "{said}"
    );
    // Nothing more was measured.
    assert_eq!(runs(&db).len(), 4);
    // `list` names each variant and what it sets.
    let listed = text(&sb(repo.path(), &db, &["list"]));
    assert!(
        listed.contains("glibc        the default build") && listed.contains("WORK=2"),
        "{listed}"
    );
}

#[test]
fn a_variant_that_changes_the_workload_is_refused_before_anything_runs() {
    let scenario = "name = \"w\"\nkind = \"command\"\nrun = \"true\"\n\
                    [variants.more]\nparams = { n = 3 }\n";
    let repo = repo_with(&[("scenarios/w.toml", scenario)]);
    let db = repo.path().join("r.sqlite");
    let out = sb(repo.path(), &db, &["run", "w"]);
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("w.toml:4") && said.contains("never the workload"),
        "{said}"
    );
    assert!(!db.exists() || runs(&db).is_empty());
}

#[test]
fn a_toolchain_that_cannot_be_installed_fails_its_variant_with_the_command_to_run() {
    if !have(&[("rustup", "--version")]) {
        eprintln!("skipped: no rustup");
        return;
    }
    let scenario = "name = \"t\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = 1\n\
                    warmup = 0\n[variants.ancient]\ntoolchain = \"0.0.1-no-such\"\n";
    let repo = repo_with(&[("scenarios/t.toml", scenario)]);
    let db = repo.path().join("r.sqlite");
    let out = sb(repo.path(), &db, &["run", "t"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let got = runs(&db);
    assert_eq!(got[0].1, "ok", "{got:?}");
    // Failed, not build_failed: the network may be why, and it is tried
    // again next time.
    assert_eq!(got[1].1, "failed", "{got:?}");
    let error = got[1].2.as_deref().unwrap_or_default();
    assert!(
        error.contains("rustup toolchain install 0.0.1-no-such"),
        "{error}"
    );
}

/// The reference system with variants that cannot work, beside its
/// default build: each fails with its own error, the default is measured.
#[test]
fn sync_variants_that_cannot_build_or_start_fail_alone_with_their_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("sv.toml");
    std::fs::write(
        &s,
        "name = \"sv\"\nkind = \"sync\"\nworkload = \"docs\"\nrepetitions = 1\nwarmup = 0\n\
         timeout = \"300s\"\nparams = { docs = 5, size = \"1KiB\" }\n\
         [variants.nofeature]\nfeatures = [\"server/no-such-feature\"]\n\
         [variants.nodep]\ndependencies = { no-such-crate = \"1.0.0\" }\n\
         [variants.badargs]\nserver_args = \"--no-such-flag\"\n\
         [variants.quiet]\nenv = { RUST_LOG = \"error\" }\n",
    )
    .unwrap();
    let db = dir.path().join("r.sqlite");
    let lock = std::fs::read(workspace().join("Cargo.lock")).unwrap();
    let args = crate::sync::base_args(&s, &db);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = syncbench(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let got = runs(&db);
    let find = |point: &str| {
        got.iter()
            .find(|r| r.0 == point)
            .unwrap_or_else(|| panic!("no run of {point}: {got:?}"))
    };
    assert_eq!(find("docs=5,size=1KiB").1, "ok", "{got:?}");
    // A variant that sets only its processes' environment shares the
    // default's build, and runs.
    assert_eq!(find("docs=5,size=1KiB,variant=quiet").1, "ok", "{got:?}");
    let (_, status, error) = find("docs=5,size=1KiB,variant=nofeature");
    assert_eq!(status, "build_failed");
    assert!(
        error.as_deref().unwrap().contains("no-such-feature"),
        "{error:?}"
    );
    let (_, status, error) = find("docs=5,size=1KiB,variant=nodep");
    assert_eq!(status, "failed");
    let error = error.as_deref().unwrap();
    assert!(
        error.contains("cargo update -p no-such-crate --precise 1.0.0"),
        "{error}"
    );
    let (_, status, error) = find("docs=5,size=1KiB,variant=badargs");
    assert_eq!(status, "failed");
    assert!(
        error.as_deref().unwrap().contains("no-such-flag"),
        "{error:?}"
    );
    // The user's lock file was never touched (the pin ran in a copy).
    assert!(std::fs::read(workspace().join("Cargo.lock")).unwrap() == lock);
}

/// A command scenario doing `WORK` iterations of a shell loop, and a
/// variant doing three times as many.
const HEAVIER: &str = "name = \"ab\"\nkind = \"command\"\nrepetitions = 2\nwarmup = 0\n\
                       params = { n = 1 }\n\
                       run = \"i=0; while [ $i -lt ${WORK:-20000} ]; do i=$((i+1)); done\"\n\
                       [variants.heavier]\nenv = { WORK = \"60000\" }\n";

/// `compare HEAD HEAD ab --run --variant-a default --variant-b B`, its
/// worktrees and builds in `cache`.
fn compare_variants(
    repo: &std::path::Path,
    db: &std::path::Path,
    b: &str,
    cache: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let cache = cache.to_str().unwrap();
    let mut args = vec![
        "compare",
        "HEAD",
        "HEAD",
        "ab",
        "--run",
        "--variant-a",
        "default",
        "--variant-b",
        b,
        "--cache-dir",
        cache,
    ];
    args.extend_from_slice(extra);
    sb(repo, db, &args)
}

/// Two variants at one commit, measured alternately: the one doing three
/// times the work is found slower, and the A/B run is stored with both points.
#[test]
fn compare_runs_two_variants_of_one_commit_side_by_side() {
    let repo = repo_with(&[("scenarios/ab.toml", HEAVIER)]);
    let db = repo.path().join("r.sqlite");
    let cache = tempfile::tempdir().unwrap();
    let out = compare_variants(
        repo.path(),
        &db,
        "heavier",
        cache.path(),
        &["--budget", "60s", "--json"],
    );
    let v = json(&out);
    let r = &v["results"][0];
    assert_eq!(r["point"], "n=1,variant=heavier", "{v}");
    assert_eq!(r["a_point"], "n=1", "{v}");
    assert_eq!(r["verdict"], "regression", "{v}");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (point, a_point, a_sha, b_sha): (String, String, String, String) = conn
        .query_row(
            "SELECT point, a_point, a_sha, b_sha FROM ab_runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (point.as_str(), a_point.as_str()),
        ("n=1,variant=heavier", "n=1")
    );
    assert_eq!(a_sha, b_sha);
    // A variant no scenario has is refused before anything is built.
    let out = compare_variants(repo.path(), &db, "thrice", cache.path(), &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("declares both variant"),
        "{}",
        text(&out)
    );
}

/// The dashboard: a page per scenario with variants (a row per variant,
/// its ratio to the default, the A/B verdict against it, a variant dropped
/// later marked with its last commit) linked from the index, and each
/// variant's trend drawn over the others on its series page.
#[test]
fn the_dashboard_shows_variants_side_by_side_and_overlaid() {
    let both = HEAVIER;
    let gone = format!("{both}[variants.gone]\nenv = {{ WORK = \"10000\" }}\n");
    let repo = repo_with(&[("scenarios/ab.toml", &gone)]);
    let db = repo.path().join("r.sqlite");
    let out = sb(repo.path(), &db, &["run", "ab"]);
    assert!(out.status.success(), "{}", text(&out));
    // The next commit drops variant `gone`.
    std::fs::write(repo.path().join("scenarios/ab.toml"), both).unwrap();
    git(repo.path(), &["commit", "-qam", "drop the gone variant"]);
    let out = sb(repo.path(), &db, &["run", "ab"]);
    assert!(out.status.success(), "{}", text(&out));
    let cache = tempfile::tempdir().unwrap();
    let out = compare_variants(
        repo.path(),
        &db,
        "heavier",
        cache.path(),
        &["--budget", "60s"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let site = repo.path().join("site");
    let out = sb(
        repo.path(),
        &db,
        &["report", "--out", site.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));

    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(index.contains("href=\"variants/ab.html\""), "{index}");
    let page = std::fs::read_to_string(site.join("variants/ab.html")).unwrap();
    let row = |name: &str| {
        let at = page
            .find(&format!(">{name}</a>"))
            .unwrap_or_else(|| panic!("no row of {name}: {page}"));
        let start = page[..at].rfind("<tr>").unwrap();
        page[start..].split("</tr>").next().unwrap().to_owned()
    };
    assert!(row("default").contains("(default)"));
    // The ratio is of the two variants' levels at the newest commit (for
    // times the fastest repetition), as stored; and the A/B run's verdict.
    let heavier = row("heavier");
    let ratio: f64 = heavier
        .split("×</span>")
        .next()
        .and_then(|s| s.rsplit('>').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ratio in {heavier}"));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let fastest = |point: &str| -> f64 {
        conn.query_row(
            "SELECT min(m.value) FROM measurements m JOIN metrics k ON k.id = m.metric_id
             JOIN runs r ON r.id = m.run_id
             WHERE k.name = 'wall' AND r.point = ?1
               AND r.id = (SELECT max(id) FROM runs WHERE point = ?1)",
            [point],
            |r| r.get(0),
        )
        .unwrap()
    };
    let want = fastest("n=1,variant=heavier") / fastest("n=1");
    assert!(
        (ratio - want).abs() < 0.0015,
        "{ratio} against {want}: {heavier}"
    );
    assert!(heavier.contains("regression"), "{heavier}");
    // Dropped at the second commit: still shown, with its last commit.
    assert!(row("gone").contains("last measured at"), "{}", row("gone"));
    // The series page of a variant draws the others over it.
    let href = heavier
        .split("href=\"../")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    let series = std::fs::read_to_string(site.join(href)).unwrap();
    assert!(
        series.contains("class=\"overlay\"") && series.contains("— default"),
        "{series}"
    );
}

/// Each run records the hash of the Cargo.lock it was built with; the
/// series page names the commit where it changed.
#[test]
fn a_changed_cargo_lock_is_recorded_and_marked_on_the_series_page() {
    let scenario =
        "name = \"e\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = 1\nwarmup = 0\n";
    let repo = repo_with(&[("scenarios/e.toml", scenario), ("Cargo.lock", "# one\n")]);
    let db = repo.path().join("r.sqlite");
    let mut shas = vec![];
    for (i, lock) in ["# one\n", "# one\n", "# two\n"].into_iter().enumerate() {
        if i > 0 {
            std::fs::write(repo.path().join("Cargo.lock"), lock).unwrap();
            std::fs::write(repo.path().join("n"), i.to_string()).unwrap();
            git(repo.path(), &["add", "-A"]);
            git(repo.path(), &["commit", "-qm", &format!("commit {i}")]);
        }
        shas.push(git(repo.path(), &["rev-parse", "HEAD"]));
        let out = sb(repo.path(), &db, &["run", "e"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let envs: Vec<String> = conn
        .prepare("SELECT environment FROM runs ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(envs[0].contains("\"cargo_lock\""), "{envs:?}");
    assert_eq!(envs[0], envs[1]);
    assert_ne!(envs[1], envs[2]);
    let site = repo.path().join("site");
    let out = sb(
        repo.path(),
        &db,
        &["report", "--out", site.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let series = std::fs::read_dir(site.join("series"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().contains("-wall-"))
        .unwrap();
    let page = std::fs::read_to_string(series).unwrap();
    let said = page
        .split("The environment changed")
        .nth(1)
        .unwrap_or_else(|| panic!("{page}"));
    let said = said.split("</p>").next().unwrap();
    assert!(
        said.contains(&shas[2][..10]) && said.contains("(cargo_lock)"),
        "{said}"
    );
    assert!(!said.contains(&shas[1][..10]), "{said}");
}

/// The variants workflow's matrix (.github/workflows/variants.yml): each
/// leg measures one variant into a file of its own, the merge job merges
/// every leg's file into one history; a leg that failed (no file) leaves
/// the others whole; merging again adds nothing.
#[test]
fn a_matrix_of_one_variant_per_job_merges_into_one_history() {
    let repo = repo_with(&[("scenarios/v.toml", SCENARIO)]);
    let parts = tempfile::tempdir().unwrap();
    for variant in ["default", "slow"] {
        let part = parts.path().join(format!("variant-{variant}.sqlite"));
        let out = sb(repo.path(), &part, &["run", "v", "--variant", variant]);
        assert!(out.status.success(), "{variant}: {}", text(&out));
    }
    let merged = repo.path().join("variants.sqlite");
    let files: Vec<String> = ["default", "slow"]
        .iter()
        .map(|v| {
            let p = parts.path().join(format!("variant-{v}.sqlite"));
            p.to_str().unwrap().to_owned()
        })
        .collect();
    for file in &files {
        let out = sb(repo.path(), &merged, &["merge", file]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let points: Vec<String> = runs(&merged).into_iter().map(|r| r.0).collect();
    assert_eq!(
        points,
        ["n=1", "n=1,variant=slow", "n=2", "n=2,variant=slow"]
    );
    let out = sb(repo.path(), &merged, &["merge", &files[1]]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(runs(&merged).len(), 4, "merged twice");
    let site = repo.path().join("site");
    let out = sb(
        repo.path(),
        &merged,
        &["report", "--out", site.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let page = std::fs::read_to_string(site.join("variants/v.html")).unwrap();
    assert!(
        page.contains(">slow</a>") && page.contains(">default</a>"),
        "{page}"
    );
    // The workflow's legs are these commands.
    let workflow =
        std::fs::read_to_string(workspace().join(".github/workflows/variants.yml")).unwrap();
    assert!(
        workflow.contains("run variants --variant \"$VARIANT\"")
            && workflow.contains("syncbench merge \"$part\" --db variants.sqlite"),
        "{workflow}"
    );
}
