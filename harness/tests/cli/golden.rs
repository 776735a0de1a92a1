//! Golden outputs: what CI scripts read (`--json` of run, regressions,
//! compare, check, show, list; every export format; check's Markdown
//! summary) must stay byte for byte the same. The database is built from
//! fixed records (one machine, fixed times, a repository with fixed dates,
//! so fixed shas); `run` measures for real, so its measured figures and
//! the machine are masked, and everything else is compared.
//!
//! After a deliberate change of an output: `UPDATE_GOLDEN=1 cargo test
//! -p syncbench --test cli golden`, then review the diff of
//! `tests/fixtures/golden`.

use crate::support::*;
use std::path::{Path, PathBuf};
use syncbench::model::records::Sample;
use syncbench::model::records::{Commit, Machine};
use syncbench::model::{Direction, Phase, RunStatus, Series, Unit};
use syncbench::store::RunRecord;

pub(crate) const SCENARIO: &str = r#"
name = "svc"
kind = "command"
run = "true"
repetitions = 3
warmup = 0
[params]
n = [10]
[thresholds]
wall = 0.10
"#;

/// A repository whose twelve commits have fixed dates, hence fixed shas.
pub(crate) fn fixed_repo(scenario: &str) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let git_at = |args: &[&str], day: usize| {
        let date = format!("2026-01-{:02}T12:00:00Z", day + 1);
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(d)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    git_at(&["init", "-q", "-b", "main"], 0);
    std::fs::create_dir_all(d.join("scenarios")).unwrap();
    std::fs::write(d.join("scenarios/svc.toml"), scenario).unwrap();
    let mut shas = vec![];
    for i in 0..12 {
        std::fs::write(d.join("NOTES"), format!("commit {i}\n")).unwrap();
        git_at(&["add", "-A"], i);
        git_at(&["commit", "-q", "-m", &format!("commit {i}")], i);
        shas.push(git_at(&["rev-parse", "HEAD"], i));
    }
    (dir, shas)
}

pub(crate) fn machine() -> Machine {
    Machine {
        cpu: "Golden CPU @ 1.00GHz".into(),
        cores: 2,
        memory_bytes: 8 << 30,
        os: "Linux (Golden 1)".into(),
        kernel: "6.1.0".into(),
        hw_counters: "unavailable: golden".into(),
        tag: None,
    }
}

pub(crate) fn series(name: &str, unit: Unit, direction: Direction, values: &[f64]) -> Series {
    Series {
        name: name.into(),
        unit,
        direction,
        values: values.to_vec(),
    }
}

pub(crate) fn commit_of(repo: &Path, sha: &str) -> Commit {
    let mut out = syncbench::checkout::resolve(repo, &[sha.to_owned()], None)
        .unwrap()
        .remove(0);
    out.branch = Some("main".into());
    out
}

/// The fixed history: `svc n=10` at every commit (wall 20% slower from
/// commit 5, ops/s 30% lower from commit 8), a second point from commit
/// 2, a failed run at commit 11, and a run ingested from another tool.
pub(crate) fn fixed_db(repo: &Path, shas: &[String], db: &Path) {
    let mut store =
        syncbench::store::open(&syncbench::store::Location::Sqlite(db.to_owned())).unwrap();
    let mut records = vec![];
    for (i, sha) in shas.iter().enumerate() {
        let slow = if i >= 5 { 1.2 } else { 1.0 };
        let ops = if i >= 8 { 700.0 } else { 1000.0 };
        let wiggle = [1.0, 1.01, 0.99, 1.0, 1.02];
        let run = |point: &str, params: &str, status: &str, metrics: Vec<Series>| RunRecord {
            machine: machine(),
            commit: commit_of(repo, sha),
            scenario: "svc".into(),
            point: point.into(),
            params_json: params.into(),
            status: RunStatus::parse(status),
            error: (status != "ok").then(|| format!("`true` exited with status 1 at {i}")),
            repetitions: if status == "ok" { 5 } else { 0 },
            harness_version: "0.1.0".into(),
            toolchain: "rustc 1.90.0 (golden)".into(),
            environment: Default::default(),
            command_line: "syncbench run svc".into(),
            started_unix: 1_767_225_600.0 + i as f64 * 86_400.0,
            finished_unix: 1_767_225_610.5 + i as f64 * 86_400.0,
            samples: if metrics.is_empty() {
                vec![]
            } else {
                (0..3)
                    .map(|t| {
                        (
                            0,
                            Sample {
                                process: "command".into(),
                                t_ms: 50.0 * t as f64,
                                cpu_pct: 90.0 + t as f64,
                                rss_bytes: 1_000_000 + 4096 * t,
                            },
                        )
                    })
                    .collect()
            },
            phases: if metrics.is_empty() {
                vec![]
            } else {
                vec![Phase {
                    repetition: 0,
                    name: "load".into(),
                    start_ms: 10.0,
                    end_ms: 90.0,
                }]
            },
            metrics,
        };
        let metrics = |scale: f64| {
            vec![
                series(
                    "wall",
                    Unit::Seconds,
                    Direction::LowerIsBetter,
                    &wiggle.map(|w| 0.25 * slow * scale * w),
                ),
                series(
                    "load.ops",
                    Unit::OpsPerSecond,
                    Direction::HigherIsBetter,
                    &wiggle.map(|w| ops * w),
                ),
                series(
                    "command.peak_rss",
                    Unit::Bytes,
                    Direction::LowerIsBetter,
                    &[
                        5_242_880.0,
                        5_246_976.0,
                        5_242_880.0,
                        5_242_880.0,
                        5_251_072.0,
                    ],
                ),
                series(
                    "harness.sampler_cpu",
                    Unit::Percent,
                    Direction::LowerIsBetter,
                    &wiggle.map(|w| 0.4 * w * (1.0 + i as f64 / 10.0)),
                ),
            ]
        };
        records.push(run("n=10", r#"{"n":"10"}"#, "ok", metrics(1.0)));
        if i >= 2 {
            records.push(run("n=100", r#"{"n":"100"}"#, "ok", metrics(10.0)));
        }
        if i == 11 {
            records.push(run("n=1000", r#"{"n":"1000"}"#, "failed", vec![]));
        }
    }
    let mut ingested = records[0].clone();
    ingested.commit = commit_of(repo, &shas[11]);
    ingested.scenario = "criterion".into();
    ingested.point = "doc/encrypt, \"16KiB\"".into();
    ingested.params_json = r#"{"source":"/golden/bmf.json"}"#.into();
    ingested.metrics = vec![series(
        "time",
        Unit::Seconds,
        Direction::LowerIsBetter,
        &[2.5e-6, 2.6e-6, 2.4e-6, 2.5e-6, 2.45e-6],
    )];
    ingested.samples = vec![];
    ingested.phases = vec![];
    records.push(ingested);
    store.record_all(&records).unwrap();
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden")
}

/// Compares `actual` with the golden file (or rewrites it, with
/// UPDATE_GOLDEN=1).
fn check_golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from its golden file at line {}:\nexpected: {:?}\nactual:   {:?}\n--- whole output ---\n{actual}",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

fn stdout_ok(args: &[&str]) -> String {
    let out = syncbench(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn json_outputs_of_a_fixed_database_are_unchanged() {
    let (repo, shas) = fixed_repo(SCENARIO);
    let r = repo.path().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("golden.sqlite");
    fixed_db(repo.path(), &shas, &db);
    let db = db.to_str().unwrap();
    let base = &["--repo", r, "--db", db];
    let with = |args: &[&str]| -> Vec<String> {
        base.iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let run = |args: &[&str]| {
        let v = with(args);
        stdout_ok(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    check_golden(
        "regressions.json",
        &run(&["regressions", "--all", "--json"]),
    );
    check_golden(
        "compare.json",
        &run(&["compare", &shas[2], &shas[9], "--json"]),
    );
    check_golden("show.json", &run(&["show", &shas[11], "--json"]));
    check_golden("list.json", &run(&["list", "--json"]));
    check_golden("export.json", &run(&["export", &shas[11]]));
    check_golden(
        "export.bmf.json",
        &run(&["export", &shas[11], "--format", "bmf"]),
    );
    check_golden(
        "export.csv",
        &run(&["export", &shas[11], "--format", "csv"]),
    );

    // check: exit 1 on the regression, the JSON and the summary.
    let summary = work.path().join("summary.md");
    let v = with(&[
        "check",
        "--baseline",
        &shas[7],
        "--commit",
        &shas[8],
        "--no-confirm",
        "--json",
        "--summary",
        summary.to_str().unwrap(),
    ]);
    let out = syncbench(&v.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    check_golden("check.json", &String::from_utf8(out.stdout).unwrap());
    check_golden(
        "check.summary.md",
        &std::fs::read_to_string(&summary).unwrap(),
    );
}

/// `run --json` with what is measured masked: the machine, and every
/// figure of a metric row (their keys and order stay compared).
fn mask_run(text: &str) -> String {
    const MASKED: &[&str] = &[
        "cpu",
        "cores",
        "memory_bytes",
        "os",
        "kernel",
        "hw_counters",
        "median",
        "mad",
        "min",
        "max",
        "cv",
        "baseline_median",
        "change_pct",
        "p_value",
    ];
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let comma = if trimmed.ends_with(',') { "," } else { "" };
        let masked = match trimmed.split_once("\": ") {
            Some((key, _)) if MASKED.contains(&key.trim_start_matches('"')) => {
                Some(format!("{key}\": <masked>{comma}"))
            }
            // Timing decides between these two (a few milliseconds move
            // a tiny command past its threshold in too few values to tell).
            Some((key, v))
                if key == "\"verdict"
                    && matches!(
                        v.trim_end_matches(','),
                        "\"unchanged\"" | "\"inconclusive\""
                    ) =>
            {
                Some(format!("{key}\": <no change>{comma}"))
            }
            _ if trimmed.trim_end_matches(',').parse::<f64>().is_ok() => {
                Some(format!("<n>{comma}"))
            }
            _ => None,
        };
        out.push_str(indent);
        out.push_str(masked.as_deref().unwrap_or(trimmed));
        out.push('\n');
    }
    out
}

#[test]
fn run_json_is_unchanged_but_for_what_it_measured() {
    // A command that uses more memory than the harness it inherits from
    // (about 128 MiB), so that its peak is exact from wait4 at every repetition
    // however briefly it runs (an unsampled `true` has no known peak, and
    // the golden list of metrics would depend on the sampler's timing).
    // Its times are noise: no threshold they could cross.
    let scenario = SCENARIO
        .replace(
            "run = \"true\"",
            "run = \"perl -e '$x = \\\"a\\\" x 64e6'\"",
        )
        .replace(
            "wall = 0.10",
            "wall = 1000.0\ncpu_user = 1000.0\ncpu_sys = 1000.0\npeak_rss = 1000.0\nsampler_cpu = 1000.0",
        );
    let (repo, _shas) = fixed_repo(&scenario);
    let r = repo.path().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("run.sqlite");
    let args = [
        "--repo",
        r,
        "--db",
        db.to_str().unwrap(),
        "run",
        "svc",
        "--json",
    ];
    // The first has no baseline; the second has the first (same commit, on main).
    let first = stdout_ok(&args);
    let second = stdout_ok(&args);
    check_golden("run.first.json", &mask_run(&first));
    check_golden("run.second.json", &mask_run(&second));
}
