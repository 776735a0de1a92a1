//! Faults under load: clients that connect and say nothing, and floods of
//! requests over the size limits.

use crate::support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// With 64 file descriptors and 80 connections that send nothing, the
/// server would be locked out for good without a timeout: every silent
/// connection is closed after `--idle-timeout`, and a real device gets
/// through.
#[test]
fn silent_connections_time_out_and_do_not_lock_out_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_wrapped(
        &dir.path().join("server"),
        &["prlimit", "--nofile=64", "--"],
        &["--idle-timeout", "1"],
    );
    let account = server.add_user("alice");
    let silent: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    let t = Instant::now();
    // A plain request first, with a deadline: without the timeout it
    // would wait forever behind the silent ones.
    let mut probe = TcpStream::connect(server.addr).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    probe
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let status = read_status(&mut probe)
        .expect("the server answered nobody else while silent clients held it");
    assert_eq!(status, 200);
    let mut device = init_device(&server, &account, &dir.path().join("a"), PASSPHRASE).unwrap();
    device.put(&id("d"), b"through").unwrap();
    assert_eq!(device.sync().unwrap().sent, 1);
    let waited = t.elapsed();
    // Every silent connection is closed by the server (EOF or reset): a
    // read that blocked past 10 s would be a connection held forever.
    for mut c in silent {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 1];
        match c.read(&mut buf) {
            Ok(0) => {}
            Ok(_) => {} // a 408 answer before closing is fine too
            Err(e) => assert!(
                e.kind() == std::io::ErrorKind::ConnectionReset,
                "a silent connection stayed open: {e}"
            ),
        }
    }
    assert!(server.is_running());
    assert!(waited < Duration::from_secs(30), "{waited:?}");
}

/// Sends `head` announcing `declared` bytes (`None`: chunked encoding),
/// then up to 2 MiB of body, ignoring write errors once the server has
/// answered and closed, and returns the status.
fn flood_request(addr: std::net::SocketAddr, head: &str, declared: Option<u64>) -> u16 {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let chunked = declared.is_none();
    let framing = match declared {
        None => "Transfer-Encoding: chunked".to_owned(),
        Some(n) => format!("Content-Length: {n}"),
    };
    let _ = write!(tcp, "{head}\r\n{framing}\r\nConnection: close\r\n\r\n");
    let chunk = vec![b'x'; 64 << 10];
    let mut sent = 0;
    while sent < 2 << 20 {
        let ok = if chunked {
            write!(tcp, "{:x}\r\n", chunk.len()).is_ok()
                && tcp.write_all(&chunk).is_ok()
                && tcp.write_all(b"\r\n").is_ok()
        } else {
            tcp.write_all(&chunk).is_ok()
        };
        if !ok {
            break;
        }
        sent += chunk.len();
    }
    if chunked {
        let _ = tcp.write_all(b"0\r\n\r\n");
    }
    read_status(&mut tcp).unwrap()
}

#[test]
fn a_flood_of_oversized_requests_gets_413_without_memory_growth() {
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        TestServer::start_with_args(&dir.path().join("server"), &["--max-blob", "1MiB"]);
    let account = server.add_user("alice");
    let (addr, user, token) = (server.addr, account.user.clone(), account.token.clone());
    // Three kinds: a 2 MiB blob with its length declared, a 2 MiB blob in
    // chunks (cut off once past the limit), a sync upload announcing more
    // than its limit.
    let over_body = protocol::Limits::default().max_body_bytes + 1;
    let flood = |rounds: usize| {
        std::thread::scope(|s| {
            for t in 0..8 {
                let (user, token) = (&user, &token);
                s.spawn(move || {
                    for i in 0..rounds {
                        let auth = format!("Host: x\r\nAuthorization: Bearer {token}");
                        let (path, declared) = match i % 3 {
                            0 => (format!("blobs/f/b{t}-{i}"), Some(2 << 20)),
                            1 => (format!("blobs/f/c{t}-{i}"), None),
                            _ => ("sync/send".to_owned(), Some(over_body)),
                        };
                        let method = if i % 3 == 2 { "POST" } else { "PUT" };
                        let head = format!("{method} /v1/users/{user}/{path} HTTP/1.1\r\n{auth}");
                        assert_eq!(flood_request(addr, &head, declared), 413, "{head}");
                    }
                });
            }
        })
    };
    flood(6); // warm-up: pools, buffers and the allocator's arenas
    let before = server.rss_bytes();
    flood(30);
    let after = server.rss_bytes();
    let growth = after.saturating_sub(before);
    eprintln!("server RSS over the flood: {before} -> {after} bytes");
    assert!(
        growth < 16 << 20,
        "RSS grew by {} KiB over 240 oversized requests ({before} -> {after})",
        growth >> 10
    );
    assert!(server.is_running());
    // Nothing of the refused blobs was kept, and the server still serves.
    let device = init_device(&server, &account, &dir.path().join("a"), PASSPHRASE).unwrap();
    assert!(
        device
            .remote()
            .list_blobs(&Default::default())
            .unwrap()
            .blobs
            .is_empty()
    );
}
