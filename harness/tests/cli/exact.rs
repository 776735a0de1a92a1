//! Exact metrics of sync scenarios: I/O counters, the driver's requests,
//! the server's own counters and instruction counts under valgrind, with
//! the faults they must survive (an endpoint down, slow or answering
//! garbage; valgrind missing; a process dying under valgrind).

use crate::support::*;
use crate::sync::{base_args, run_json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A docs scenario of `docs` 1 KiB documents, with `extra` TOML lines.
fn docs_scenario(dir: &Path, docs: u32, reps: u32, extra: &str) -> PathBuf {
    let path = dir.join("exact-sync.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"exact-sync\"\nkind = \"sync\"\nworkload = \"docs\"\nrepetitions = {reps}\nwarmup = 0\ntimeout = \"300s\"\n{extra}\n[params]\ndocs = {docs}\nsize = \"1KiB\"\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn sync_points_get_exact_counters_per_process_and_phase() {
    let dir = tempfile::tempdir().unwrap();
    let s = docs_scenario(dir.path(), 40, 2, "prometheus = \"{services}/metrics\"");
    let v = run_json(&s, &dir.path().join("r.sqlite"));
    let r = &v["results"][0];
    assert_eq!(r["status"], "ok", "{r}");
    // The same work, the same requests: exact in every repetition.
    let sends = metric_values(r, "upload.http.requests.send");
    assert!(
        sends[0] >= 1.0 && sends.iter().all(|v| *v == sends[0]),
        "{sends:?}"
    );
    // Counted on both sides of the wire: the driver's requests are the
    // server's, route by route.
    assert_eq!(
        sends,
        metric_values(r, "upload.server.counter.http_requests.sync_send.200")
    );
    assert_eq!(
        metric_values(r, "download.http.requests.changes"),
        metric_values(r, "download.server.counter.http_requests.sync_changes.200")
    );
    // The server committed what was sent, and its statements are counted.
    assert!(metric_values(r, "upload.server.counter.sqlite_commits")[0] >= 1.0);
    assert!(metric_values(r, "upload.server.counter.sqlite_statements")[0] >= 40.0);
    // 40 KiB of ciphertext went up and came down (bodies, plus framing).
    assert!(metric_values(r, "upload.http.sent")[0] >= 40.0 * 1024.0);
    assert!(metric_values(r, "download.http.received")[0] >= 40.0 * 1024.0);
    // I/O of each process, whole and per phase: the server writes what it
    // stores, the driver's device writes what it downloads.
    assert!(metric_values(r, "upload.server.io.wchar")[0] >= 40.0 * 1024.0);
    assert!(metric_values(r, "download.driver.io.wchar")[0] >= 40.0 * 1024.0);
    // A process's whole count holds its phases' (read at exit, after them).
    for process in ["server", "driver"] {
        let whole = metric_values(r, &format!("{process}.io.wchar"));
        let phases: Vec<Vec<f64>> = ["put", "upload", "download", "noop_sync", "conflict"]
            .iter()
            .map(|p| metric_values(r, &format!("{p}.{process}.io.wchar")))
            .collect();
        for (rep, total) in whole.iter().enumerate() {
            let sum: f64 = phases.iter().map(|v| v[rep]).sum();
            assert!(*total >= sum, "{process} rep {rep}: {total} < {sum}");
        }
    }
    let names = metric_names(r);
    assert!(
        !names.iter().any(|n| n.contains("_metrics")),
        "scrapes counted: {names:?}"
    );
}

/// A local endpoint answering every connection with `answer` (or never,
/// when `None`), for the duration of the test.
fn endpoint(answer: Option<&'static str>) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = vec![];
        for conn in l.incoming() {
            let Ok(mut c) = conn else { break };
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            match answer {
                Some(body) => {
                    let _ = write!(
                        c,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                // Slow: keep the connection open, say nothing.
                None => held.push(c),
            }
        }
    });
    format!("http://{addr}/metrics")
}

#[test]
fn an_endpoint_down_slow_or_answering_garbage_leaves_the_run_going() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/metrics", l.local_addr().unwrap())
    };
    for (what, url) in [
        ("down", closed),
        ("garbage", endpoint(Some("<html>it works</html>\n"))),
        ("slow", endpoint(None)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let s = docs_scenario(dir.path(), 5, 1, &format!("prometheus = \"{url}\""));
        let db = dir.path().join("r.sqlite");
        let mut args = base_args(&s, &db);
        args.push("--json".into());
        let out = Command::new(SYNCBENCH).args(&args).output().unwrap();
        assert!(out.status.success(), "{what}: {}", text(&out));
        let v = json(&out);
        let r = &v["results"][0];
        assert_eq!(r["status"], "ok", "{what}: {r}");
        let names = metric_names(r);
        assert!(
            !names.iter().any(|n| n.contains(".server.counter.")),
            "{what}: {names:?}"
        );
        // The other exact metrics are there; the run says what is missing.
        assert!(names.contains(&"upload.http.requests"), "{what}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no server counters"), "{what}: {err}");
    }
}

#[test]
fn instructions_under_valgrind_per_process_and_phase() {
    if !have(&[("valgrind", "valgrind"), ("vgdb", "valgrind")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = docs_scenario(dir.path(), 5, 1, "instructions = true");
    let v = run_json(&s, &dir.path().join("r.sqlite"));
    let r = &v["results"][0];
    assert_eq!(r["status"], "ok", "{r}");
    for process in ["server", "driver"] {
        let total = metric_values(r, &format!("{process}.instructions"));
        assert_eq!(total.len(), 1, "once per point");
        let phases: f64 = ["put", "upload", "download", "noop_sync", "conflict"]
            .iter()
            .map(|p| metric_values(r, &format!("{p}.{process}.instructions"))[0])
            .sum();
        // The phases are part of the whole (start-up and shut-down are not
        // in any phase), and each did real work.
        assert!(
            phases > 0.0 && phases < total[0],
            "{process}: {phases} of {total:?}"
        );
    }
    assert!(metric_values(r, "upload.server.instructions")[0] > 100_000.0);
    // The native repetition's metrics are there too.
    assert!(metric_names(r).contains(&"upload.wall"));
}

/// A PATH with `sh` and nothing else: no valgrind.
fn path_without_valgrind(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("/bin/sh", bin.join("sh")).unwrap();
    bin
}

#[test]
fn valgrind_missing_fails_the_point_naming_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with(&[("README", "x")]);
    let s = dir.path().join("count.toml");
    std::fs::write(
        &s,
        "name = \"count\"\nkind = \"command\"\nrun = \"true\"\nrepetitions = 1\nwarmup = 0\ninstructions = true\n",
    )
    .unwrap();
    let db = dir.path().join("r.sqlite");
    let out = Command::new(SYNCBENCH)
        .args(["--repo", repo.path().to_str().unwrap()])
        .args(["--db", db.to_str().unwrap()])
        .args(["run", s.to_str().unwrap(), "--json"])
        .env("PATH", path_without_valgrind(dir.path()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let runs = run_status(&db);
    assert_eq!(runs[0].1, "failed");
    let err = runs[0].2.clone().unwrap();
    assert!(err.contains("apt-get install valgrind"), "{err}");
    let v = json(&out);
    assert!(
        !metric_names(&v["results"][0]).contains(&"command.instructions"),
        "a value recorded without valgrind"
    );
}

#[test]
fn a_process_that_dies_under_valgrind_fails_the_run_with_its_log() {
    if !have(&[("valgrind", "valgrind")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with(&[("README", "x")]);
    let s = dir.path().join("dies.toml");
    // Fine natively; under valgrind (its preload library is in
    // LD_PRELOAD) the shell kills itself.
    std::fs::write(
        &s,
        "name = \"dies\"\nkind = \"command\"\nrun = 'case \"$LD_PRELOAD\" in *vgpreload*) kill -SEGV $$ ;; esac'\nrepetitions = 1\nwarmup = 0\ninstructions = true\n",
    )
    .unwrap();
    let db = dir.path().join("r.sqlite");
    let out = sb(repo.path(), &db, &["run", s.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let runs = run_status(&db);
    assert_eq!(runs[0].1, "failed");
    let err = runs[0].2.clone().unwrap();
    assert!(
        err.contains("under valgrind") && err.contains("signal 11"),
        "{err}"
    );
}
