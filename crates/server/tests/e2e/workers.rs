//! `--workers N` and `--runtime`: several processes on one port sharing
//! one data directory, supervised by the first.

use crate::support::*;
use std::process::Command;

/// Pids of the direct children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Socket inodes of the established TCP connections whose local port is
/// `port` (the server side of clients' connections), from /proc/net/tcp.
fn established_on(port: u16) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            // State 01 is ESTABLISHED; field 9 is the socket's inode.
            (local_port == port && f[3] == "01").then(|| f[9].to_owned())
        })
        .collect()
}

/// True when process `pid` has one of `inodes` open.
fn holds_any(pid: u32, inodes: &[String]) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|t| {
            let t = t.to_string_lossy();
            inodes.iter().any(|i| t == format!("socket:[{i}]"))
        })
    })
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn workers_share_the_port_and_the_data_survive_killed_workers_and_stop_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_with_args(
        &dir.path().join("server"),
        &["--workers", "3", "--runtime", "current-thread"],
    );
    let workers = children(server.pid());
    assert_eq!(workers.len(), 3, "{workers:?}");
    let account = server.add_user("alice");
    let mut a = init_device(&server, &account, &dir.path().join("a"), PASSPHRASE).unwrap();
    let mut b = init_device(&server, &account, &dir.path().join("b"), PASSPHRASE).unwrap();
    // Many short connections: the kernel spreads them over the workers;
    // whichever answers, they all see one data directory.
    for i in 0..30 {
        a.put(&id(&format!("d{i}")), format!("v{i}").as_bytes())
            .unwrap();
        a.sync().unwrap();
    }
    b.sync().unwrap();
    assert_eq!(contents(&b).len(), 30);

    // Workers holding kept-alive client connections are killed, all but
    // one worker: a device's next request goes out on a dead connection,
    // and the client's retry takes it to a worker still alive. Nothing
    // acknowledged is lost.
    let held = established_on(server.addr.port());
    let mut victims: Vec<u32> = workers
        .iter()
        .copied()
        .filter(|&w| holds_any(w, &held))
        .collect();
    victims.truncate(workers.len() - 1);
    assert!(!victims.is_empty(), "no worker holds {held:?}");
    for w in &victims {
        Command::new("kill")
            .args(["-9", &w.to_string()])
            .status()
            .unwrap();
    }
    for i in 0..10 {
        b.put(&id(&format!("e{i}")), b"after").unwrap();
        b.sync().unwrap();
    }
    a.sync().unwrap();
    assert_eq!(contents(&a).len(), 40);

    // SIGTERM to the supervisor ends every worker, gracefully.
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        workers.iter().all(|&p| !alive(p)),
        "a worker outlived the supervisor"
    );
}

#[test]
fn each_runtime_serves_and_a_wrong_one_is_refused() {
    for args in [
        &["--runtime", "multi-thread", "--threads", "1"][..],
        &["--runtime", "current-thread"][..],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start_with_args(&dir.path().join("server"), args);
        let account = server.add_user("alice");
        let mut a = init_device(&server, &account, &dir.path().join("a"), PASSPHRASE).unwrap();
        a.put(&id("x"), b"y").unwrap();
        assert_eq!(a.sync().unwrap().sent, 1, "{args:?}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sync-server"))
        .args([
            "serve",
            "--data",
            "/nonexistent",
            "--runtime",
            "green-threads",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("multi-thread") && err.contains("current-thread"),
        "{err}"
    );
}
