//! Sync scenarios: the reference system built from this tree, a real
//! server and driver per repetition; a crash and Ctrl-C mid-run.

use crate::support::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn scenario(dir: &std::path::Path, docs: u32, reps: u32) -> std::path::PathBuf {
    let path = dir.join("small-sync.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"small-sync\"\nkind = \"sync\"\nworkload = \"docs\"\nrepetitions = {reps}\nwarmup = 0\ntimeout = \"300s\"\n[params]\ndocs = {docs}\nsize = \"1KiB\"\n"
        ),
    )
    .unwrap();
    path
}

/// `run SCENARIO` of this workspace's system, built in the tests' target
/// dir (dev profile), into `db`.
pub(crate) fn base_args(scenario: &std::path::Path, db: &std::path::Path) -> Vec<String> {
    let target = test_target_dir();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    [
        "--repo",
        env!("CARGO_MANIFEST_DIR"),
        "run",
        &path(scenario),
        "--db",
        &path(db),
        "--cargo-profile",
        "dev",
        "--target-dir",
        &path(&target),
    ]
    .map(str::to_owned)
    .to_vec()
}

#[test]
fn document_sync_is_measured_per_process_and_phase() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), 50, 2);
    let db = dir.path().join("r.sqlite");
    let v = run_json(&s, &db);
    let r = &v["results"][0];
    assert_eq!(r["status"], "ok", "{r}");
    let names = metric_names(r);
    for want in [
        "wall",
        "put.wall",
        "upload.wall",
        "upload.throughput",
        "download.wall",
        "noop_sync.wall",
        "conflict.wall",
        "server.cpu_user",
        "server.peak_rss",
        "driver.cpu_sys",
        "driver.peak_rss",
        "harness.sampler_cpu",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for m in r["metrics"].as_array().unwrap() {
        assert_eq!(m["values"].as_array().unwrap().len(), 2, "{m}");
    }
    // Samples of both processes and the phases are stored for the graphs.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let procs: Vec<String> = conn
        .prepare("SELECT DISTINCT process FROM samples ORDER BY 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(procs, ["driver", "server"]);
    let phases: i64 = conn
        .query_row("SELECT count(*) FROM phases", [], |r| r.get(0))
        .unwrap();
    assert_eq!(phases, 2 * 5);
}

/// The mail workload end to end under the harness: the server's services
/// listener, sync-mx spawned by the driver, both designs as two points.
#[test]
fn mail_pipeline_is_measured_for_both_designs() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("small-mail.toml");
    std::fs::write(
        &s,
        "name = \"small-mail\"\nkind = \"sync\"\nworkload = \"mail\"\nrepetitions = 1\nwarmup = 0\ntimeout = \"300s\"\n[params]\nmessages = [6]\nsize = [\"3KiB\"]\nmode = [\"blobs\", \"legacy\"]\n",
    )
    .unwrap();
    let db = dir.path().join("r.sqlite");
    let v = run_json(&s, &db);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["status"], "ok", "{r}");
        let names = metric_names(r);
        for want in [
            "deliver.wall",
            "process.wall",
            "inbox.wall",
            "open.wall",
            "server.peak_rss",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
    }
}

/// Starts `syncbench run -v`, waits until the driver runs, and returns the
/// child with the server's and driver's pids.
// The child is returned for the caller to wait on.
#[allow(clippy::zombie_processes)]
fn start_until_driver_runs(
    args: &[String],
) -> (
    std::process::Child,
    i32,
    i32,
    BufReader<std::process::ChildStderr>,
) {
    let mut child = Command::new(SYNCBENCH)
        .args(args)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let (mut server, mut line) = (0, String::new());
    loop {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("syncbench ended ({status}) before starting the driver");
        }
        if let Some(p) = line.trim().strip_prefix("syncbench: started server pid=") {
            server = p.parse().unwrap();
        }
        if let Some(p) = line.trim().strip_prefix("syncbench: started driver pid=") {
            return (child, server, p.parse().unwrap(), err);
        }
    }
}

fn gone(pid: i32) -> bool {
    !syncbench::proc::alive(pid)
}

#[test]
fn a_server_killed_mid_run_fails_the_run_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), 20000, 1);
    let db = dir.path().join("r.sqlite");
    let args = base_args(&s, &db);
    let (mut child, server, driver, _err) = start_until_driver_runs(&args);
    kill("-9", server);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let runs = run_status(&db);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].1, "failed");
    let err = runs[0].2.clone().unwrap();
    assert!(
        err.contains("sync-server died during the run") && err.contains("signal 9"),
        "{err}"
    );
    assert!(gone(driver), "the driver outlived the run");
}

#[test]
fn ctrl_c_ends_every_process_and_records_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), 20000, 3);
    let db = dir.path().join("r.sqlite");
    let args = base_args(&s, &db);
    let (mut child, server, driver, mut err) = start_until_driver_runs(&args);
    kill("-INT", child.id());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("interrupted"), "{rest}");
    let runs = run_status(&db);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].1, "interrupted");
    assert!(
        gone(server) && gone(driver),
        "processes outlived the harness"
    );
}

/// `syncbench run SCENARIO --json` of this workspace's system; its JSON.
pub(crate) fn run_json(scenario: &std::path::Path, db: &std::path::Path) -> serde_json::Value {
    let mut args = base_args(scenario, db);
    args.push("--json".into());
    let out = std::process::Command::new(SYNCBENCH)
        .args(&args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    json(&out)
}
