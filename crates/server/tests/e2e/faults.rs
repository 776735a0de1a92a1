//! Crashes, restored backups and cut connections: each ends with every
//! device converging and nothing lost or duplicated.

use crate::support::*;
use client::{ClientError, Device};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

/// A TCP relay to the server that, once `threshold` bytes of requests have
/// passed, stops relaying and reports on `tripped` (once).
struct Tripwire {
    addr: SocketAddr,
    tripped: mpsc::Receiver<()>,
}

impl Tripwire {
    fn new(upstream: SocketAddr, threshold: u64) -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, tripped) = mpsc::channel();
        let sent = Arc::new(AtomicU64::new(0));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (sent, tx) = (sent.clone(), tx.clone());
                std::thread::spawn(move || relay(client, server, Some((sent, threshold, tx))));
                std::thread::spawn(move || relay(s2, c2, None));
            }
        });
        Tripwire { addr, tripped }
    }
}

fn relay(
    mut from: TcpStream,
    mut to: TcpStream,
    trip: Option<(Arc<AtomicU64>, u64, mpsc::Sender<()>)>,
) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((sent, threshold, tx)) = &trip {
            let before = sent.fetch_add(n as u64, Ordering::SeqCst);
            if before < *threshold && before + n as u64 >= *threshold {
                let _ = to.write_all(&buf[..n]);
                let _ = tx.send(());
                break;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

fn server_doc_count(s: &Setup) -> i64 {
    let conn = rusqlite::Connection::open(s.server.user_db(&s.account.user)).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    conn.query_row("SELECT count(*) FROM docs", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn kill_9_in_the_middle_of_an_upload_then_restart_converges() {
    let mut s = Setup::new(1);
    let n = 1500u64;
    // ~20 MB of uploads in several requests; the wire is cut at 10 MB.
    let wire = Tripwire::new(s.server.addr, 10 << 20);
    let dir = s.path("via-tripwire");
    let mut sender = Device::init(
        &dir,
        client::InitOptions {
            server: format!("http://{}", wire.addr),
            user: s.account.user.clone(),
            token: s.account.token.clone(),
            passphrase: PASSPHRASE.into(),
            kdf: client::default_kdf(),
        },
    )
    .unwrap();
    let ids: Vec<_> = (0..n).map(|i| id(&format!("m{i:04}"))).collect();
    let bodies: Vec<Vec<u8>> = (0..n).map(|i| vec![(i % 251) as u8; 10 * 1024]).collect();
    sender
        .put_many(ids.iter().zip(&bodies).map(|(i, b)| (i, &b[..])))
        .unwrap();

    let failed = std::thread::scope(|scope| {
        let t = scope.spawn(|| sender.sync());
        wire.tripped.recv().unwrap();
        s.server.kill9();
        t.join().unwrap()
    });
    assert!(failed.is_err(), "the sync cannot succeed across a kill -9");
    let partial = server_doc_count(&s);
    assert!(
        partial > 0 && partial < n as i64,
        "{partial} documents before the crash"
    );

    s.server.restart();
    let r = sender.sync().unwrap();
    // Whatever was stored before the crash is not stored twice.
    assert_eq!(r.sent, n - partial as u64);
    assert_eq!(server_doc_count(&s), n as i64);
    let r = s.devices[0].sync().unwrap();
    assert_eq!(r.received, n);
    let got = contents(&s.devices[0]);
    assert_eq!(got.len(), n as usize);
    for ((id, content), (want_id, want)) in got.iter().zip(ids.iter().zip(&bodies)) {
        assert_eq!(id, want_id.as_str());
        assert_eq!(content, want);
    }
}

fn copy_db(from: &std::path::Path, to: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let (f, t) = (
            format!("{}{suffix}", from.display()),
            format!("{}{suffix}", to.display()),
        );
        let _ = std::fs::remove_file(&t);
        if std::path::Path::new(&f).exists() {
            std::fs::copy(&f, &t).unwrap();
        }
    }
}

#[test]
fn server_restored_from_an_old_backup_is_noticed_and_repaired() {
    let mut s = Setup::new(2);
    for i in 0..10 {
        s.devices[0]
            .put(&id(&format!("early{i}")), b"early")
            .unwrap();
    }
    s.devices[0].sync().unwrap();
    let db = s.server.user_db(&s.account.user);
    let backup = s.path("backup.sqlite");
    assert!(s.server.terminate().success());
    copy_db(&db, &backup);
    s.server.restart();

    for i in 0..10 {
        s.devices[0].put(&id(&format!("late{i}")), b"late").unwrap();
    }
    s.devices[0].sync().unwrap();
    assert!(s.server.terminate().success());
    copy_db(&backup, &db);
    s.server.restart();

    let e = s.devices[0].sync().unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::ServerRolledBack {
                seen: 20,
                now: 10,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("--repair"), "{e}");
    let r = s.devices[0].sync_repair().unwrap();
    assert_eq!(
        r.sent, 10,
        "only the documents the server lost are stored again"
    );
    assert_eq!(r.unchanged, 10);
    s.devices[1].sync().unwrap();
    assert_eq!(contents(&s.devices[1]).len(), 20);
}

#[test]
fn device_restored_from_an_old_copy_loses_nothing() {
    let mut s = Setup::new(2);
    let d0 = s.devices.remove(0);
    let d0_dir = d0.dir().to_owned();
    let mut d0 = {
        let mut d0 = d0;
        d0.put(&id("a"), b"a").unwrap();
        d0.sync().unwrap();
        drop(d0);
        Device::open(&d0_dir).unwrap()
    };
    let copy = s.path("device0-copy.sqlite");
    copy_db(&d0_dir.join(client::STORE_FILE), &copy);
    d0.unlock(PASSPHRASE).unwrap();
    d0.put(&id("c"), b"c written before the restore").unwrap();
    d0.sync().unwrap();
    drop(d0);

    // Restore the old copy: it no longer knows it wrote "c", and writes a
    // different "c" under what would be the same revision.
    copy_db(&copy, &d0_dir.join(client::STORE_FILE));
    let mut d0 = Device::open(&d0_dir).unwrap();
    d0.unlock(PASSPHRASE).unwrap();
    d0.put(&id("c"), b"c written after the restore").unwrap();
    let r = d0.sync().unwrap();
    assert!(r.replica_rotated);
    let versions: Vec<_> = d0
        .versions(&id("c"))
        .unwrap()
        .into_iter()
        .map(|v| v.content.unwrap())
        .collect();
    assert_eq!(versions.len(), 2, "both versions of c survive");
    assert!(versions.contains(&b"c written before the restore".to_vec()));
    assert!(versions.contains(&b"c written after the restore".to_vec()));

    d0.resolve(&id("c"), Some(b"both")).unwrap();
    d0.put(&id("d"), b"d").unwrap();
    d0.sync().unwrap();
    s.devices[0].sync().unwrap();
    assert_eq!(contents(&s.devices[0]), contents(&d0));
    assert_eq!(s.devices[0].get(&id("c")).unwrap().unwrap(), b"both");
}
