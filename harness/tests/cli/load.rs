//! Concurrent clients through nginx over several server processes, with
//! one of them killed while the load runs.

use crate::support::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn load_through_nginx_survives_a_killed_server_and_loses_no_acknowledged_write() {
    if syncbench::runner::proxy::nginx_binary().is_err()
        && !have(&[("/usr/sbin/nginx", "nginx-light")])
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("load-fault.toml");
    std::fs::write(
        &scenario,
        r#"name = "load-fault"
kind = "sync"
workload = "load"
repetitions = 1
warmup = 0
timeout = "120s"
server_args = "--runtime current-thread"
backends = 3
proxy = "nginx"
[params]
clients = 20
seconds = 4
mix = "mixed"
"#,
    )
    .unwrap();
    let db = dir.path().join("r.sqlite");
    let target = test_target_dir();
    let mut child = Command::new(SYNCBENCH)
        .args(["--repo", env!("CARGO_MANIFEST_DIR"), "run"])
        .arg(&scenario)
        .arg("--db")
        .arg(&db)
        .args(["--cargo-profile", "dev", "--target-dir"])
        .arg(&target)
        .args(["--json", "-v"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let (mut servers, mut line) = (Vec::new(), String::new());
    loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "syncbench ended before starting the driver"
        );
        if let Some(p) = line.trim().strip_prefix("syncbench: started server pid=") {
            servers.push(p.parse::<i32>().unwrap());
        }
        if line.contains("started driver pid=") {
            break;
        }
    }
    assert_eq!(servers.len(), 3, "{servers:?}");
    // Killed once it is serving the load (its CPU time grows), not at a
    // guessed moment.
    let victim = servers[1];
    let deadline = Instant::now() + Duration::from_secs(60);
    while syncbench::probe::cpu_seconds(victim).unwrap_or(0.0) < 0.1 {
        assert!(Instant::now() < deadline, "server {victim} never got busy");
        std::thread::sleep(Duration::from_millis(10));
    }
    kill("-9", victim);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    let out = reader.join().unwrap();
    assert!(status.success(), "{status}\n{rest}\n{out}");
    assert!(
        rest.contains("1 of 3 servers died during the run"),
        "{rest}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = &v["results"][0];
    assert_eq!(r["status"], "ok", "{r}");
    // Clients saw no error (lost requests were retried through the proxy),
    // and the driver's own check found every acknowledged upload and
    // document on the server (else the run would have failed).
    assert_eq!(metric_values(r, "load.errors"), [0.0]);
    assert_eq!(metric_values(r, "servers_lost"), [1.0]);
    assert!(metric_values(r, "load.requests")[0] > 0.0);
    for name in [
        "server1.cpu_user",
        "server3.peak_rss",
        "proxy.cpu_user",
        "proxy.peak_rss",
    ] {
        assert!(!metric_values(r, name).is_empty());
    }
}
