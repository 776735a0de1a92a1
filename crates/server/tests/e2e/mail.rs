//! Incoming mail end to end: the exchanger (the `mx` library) delivers to
//! the real server's services listener, devices process, list and open.

use crate::support::*;
use client::{ClientError, Device, MailMode};
use mx::{Delivered, Exchanger, MxError};
use protocol::{BlobFlag, BlobId, BlobQuery, FlagChange, INCOMING, Namespace};
use std::time::Duration;

fn message(i: usize, body_len: usize, attachment: bool) -> Vec<u8> {
    let mut m = format!(
        "From: Sender {i} <sender{i}@example.org>\r\nTo: alice@example.org\r\nSubject: message {i}\r\nDate: Tue, 1 Jul 2025 10:{:02}:00 +0000\r\nMessage-ID: <{i}@example.org>\r\nMIME-Version: 1.0\r\n",
        i % 60
    );
    let text: String = (0..body_len)
        .map(|j| (b'a' + (j % 26) as u8) as char)
        .collect();
    if attachment {
        m += "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n";
        m += &text;
        m += "\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQF\r\n--b--\r\n";
    } else {
        m += "Content-Type: text/plain\r\n\r\n";
        m += &text;
        m += "\r\n";
    }
    m.into_bytes()
}

fn incoming() -> Namespace {
    Namespace::new(INCOMING).unwrap()
}

fn pending(d: &Device) -> u64 {
    d.remote()
        .list_blobs(&BlobQuery {
            namespace: Some(incoming()),
            count_only: true,
            ..Default::default()
        })
        .unwrap()
        .count
}

fn deliver(s: &Setup, msgs: &[Vec<u8>]) -> Vec<BlobId> {
    let mx = Exchanger::new(&s.server.services_url(), SERVICE_TOKEN).unwrap();
    let to = mx.recipient(&s.account.user).unwrap();
    msgs.iter()
        .map(|m| {
            assert!(matches!(
                mx.deliver(&s.account.user, &to, m).unwrap(),
                Delivered::New { .. }
            ));
            mx::message_id(m)
        })
        .collect()
}

/// `plaintext` encrypted to the user's key (cut short by `cut` bytes) and
/// delivered as is through the services API under `id`, without the
/// exchanger's checks.
fn deliver_raw(s: &Setup, id: &str, plaintext: &[u8], cut: usize) {
    let mx = Exchanger::new(&s.server.services_url(), SERVICE_TOKEN).unwrap();
    let to = mx.recipient(&s.account.user).unwrap();
    let mut sealed = seal(&to.recipient, plaintext);
    sealed.truncate(sealed.len() - cut);
    put_incoming(s, id, sealed);
}

/// `plaintext` as an age file to `to`.
fn seal(to: &age::x25519::Recipient, plaintext: &[u8]) -> Vec<u8> {
    let enc = age::Encryptor::with_recipients(std::iter::once(to as &dyn age::Recipient)).unwrap();
    let mut sealed = Vec::new();
    let mut w = enc.wrap_output(&mut sealed).unwrap();
    std::io::Write::write_all(&mut w, plaintext).unwrap();
    w.finish().unwrap();
    sealed
}

/// `body` delivered as is under `id` through the services API.
fn put_incoming(s: &Setup, id: &str, body: Vec<u8>) {
    let r = reqwest::blocking::Client::new()
        .put(format!(
            "{}/v1/incoming/{}/{id}",
            s.server.services_url(),
            s.account.user
        ))
        .bearer_auth(SERVICE_TOKEN)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[test]
fn delivered_mail_is_processed_once_and_listed_on_another_device_from_metadata() {
    let mut s = Setup::new(2);
    let msgs = vec![
        message(1, 100, false),
        message(2, 50_000, true),
        message(3, 300_000, false),
    ];
    let ids = deliver(&s, &msgs);
    // The same message again is recognised, not stored twice.
    let mx = Exchanger::new(&s.server.services_url(), SERVICE_TOKEN).unwrap();
    let to = mx.recipient(&s.account.user).unwrap();
    assert_eq!(
        mx.deliver(&s.account.user, &to, &msgs[0]).unwrap(),
        Delivered::Duplicate
    );
    assert_eq!(pending(&s.devices[0]), 3);

    let report = s.devices[0]
        .process_incoming(Duration::from_secs(600))
        .unwrap();
    assert_eq!((report.processed, report.failed.len()), (3, 0));
    assert_eq!(pending(&s.devices[0]), 0, "incoming copies are deleted");

    let b = &mut s.devices[1];
    b.sync().unwrap();
    let inbox = b.mail_list().unwrap();
    assert_eq!(inbox.len(), 3);
    let by_id = |id: &BlobId| inbox.iter().find(|m| &m.header.id == id).unwrap();
    let second = by_id(&ids[1]);
    assert_eq!(second.header.subject, "message 2");
    assert_eq!(second.header.from, "Sender 2 <sender2@example.org>");
    assert_eq!(second.header.attachments, 1);
    assert_eq!(second.header.size, msgs[1].len() as u64);
    assert!(second.in_blob);
    // Listing fetched no content: device B has no blob yet.
    assert!(!b.dir().join("blobs").exists());
    let mut opened = Vec::new();
    b.mail_open(&ids[2], &mut opened).unwrap();
    assert_eq!(opened, msgs[2]);
    let stored: Vec<_> = std::fs::read_dir(b.dir().join("blobs").join("mail"))
        .unwrap()
        .collect();
    assert_eq!(stored.len(), 1, "only the opened message was fetched");
    // Nothing on the server is plaintext.
    let blob = s
        .server
        .data
        .join("blobs")
        .join(s.account.user.as_str())
        .join("mail");
    for f in std::fs::read_dir(blob).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(!bytes.windows(9).any(|w| w == b"message 3"));
    }
}

#[test]
fn legacy_mode_carries_the_message_inside_the_document() {
    let mut s = Setup::new(2);
    s.devices[0].set_mail_mode(MailMode::Legacy).unwrap();
    let msgs = vec![message(7, 2000, true)];
    let ids = deliver(&s, &msgs);
    s.devices[0]
        .process_incoming(Duration::from_secs(600))
        .unwrap();
    let b = &mut s.devices[1];
    b.sync().unwrap();
    let inbox = b.mail_list().unwrap();
    assert_eq!((inbox.len(), inbox[0].in_blob), (1, false));
    let mut opened = Vec::new();
    b.mail_open(&ids[0], &mut opened).unwrap();
    assert_eq!(opened, msgs[0]);
    assert!(!b.dir().join("blobs").exists());
}

#[test]
fn exchanger_errors_token_unknown_user_no_key_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        TestServer::start_with_args(&dir.path().join("server"), &["--max-incoming", "10KiB"]);
    let alice = server.add_user("alice");
    let mx = Exchanger::new(&server.services_url(), SERVICE_TOKEN).unwrap();
    // A user whose devices never ran init has no key: nothing can be sent.
    assert!(matches!(mx.recipient(&alice.user), Err(MxError::NoKey(_))));
    init_device(&server, &alice, &dir.path().join("a"), PASSPHRASE).unwrap();
    let to = mx.recipient(&alice.user).unwrap();

    let wrong = Exchanger::new(&server.services_url(), "wrong token").unwrap();
    assert!(matches!(
        wrong.recipient(&alice.user),
        Err(MxError::BadToken)
    ));
    assert!(matches!(
        wrong.deliver(&alice.user, &to, &message(1, 10, false)),
        Err(MxError::BadToken)
    ));
    let nobody = protocol::UserId::new("nobody").unwrap();
    assert!(matches!(
        mx.recipient(&nobody),
        Err(MxError::UnknownUser(_))
    ));
    assert!(matches!(
        mx.deliver(&nobody, &to, &message(1, 10, false)),
        Err(MxError::UnknownUser(_))
    ));
    // Too large: the exchanger knows the limit and does not send; the
    // server answers 413 from the headers alone to one that does.
    assert!(matches!(
        mx.deliver(&alice.user, &to, &message(1, 20_000, false)),
        Err(MxError::TooLarge { .. })
    ));
    let head = format!(
        "PUT /v1/incoming/{}/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SERVICE_TOKEN}\r\nContent-Length: 20000",
        alice.user
    );
    assert_eq!(raw_status(server.services, &head, &[]), 413);
    // The users' token is not a service token, and vice versa.
    let r = reqwest::blocking::Client::new()
        .put(format!(
            "{}/v1/incoming/{}/x",
            server.services_url(),
            alice.user
        ))
        .bearer_auth(&alice.token)
        .body("x")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/v1/users/{}/blobs", server.url(), alice.user))
        .bearer_auth(SERVICE_TOKEN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    // Nothing of the refused deliveries is stored.
    assert_eq!(
        std::fs::read_dir(server.data.join("tmp")).unwrap().count(),
        0
    );
    let a = Device::open(&dir.path().join("a")).unwrap();
    let mut a = a;
    a.unlock(PASSPHRASE).unwrap();
    assert_eq!(pending(&a), 0);
}

#[test]
fn undecryptable_or_unparsable_messages_are_flagged_failed_and_kept() {
    let mut s = Setup::new(1);
    let good = deliver(&s, &[message(1, 100, false)]);
    put_incoming(&s, "garbage", b"this is not an age file".to_vec());
    // A well-formed age file, to another key.
    let other = age::x25519::Identity::generate().to_public();
    put_incoming(&s, "foreign", seal(&other, &message(2, 10, false)));
    // Truncated age ciphertext (to the right key).
    deliver_raw(&s, "truncated", &vec![b'x'; 200_000], 1000);

    let d = &mut s.devices[0];
    let r = d.process_incoming(Duration::from_secs(600)).unwrap();
    assert_eq!(r.processed, 1);
    let mut failed: Vec<_> = r.failed.iter().map(|(id, _)| id.as_str()).collect();
    failed.sort();
    assert_eq!(
        failed,
        ["foreign", "garbage", "truncated"],
        "{:?}",
        r.failed
    );
    // Kept and flagged; a second run leaves them alone.
    let list = d
        .remote()
        .list_blobs(&BlobQuery {
            namespace: Some(incoming()),
            flag: Some(BlobFlag::Failed),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(list.count, 3);
    let again = d.process_incoming(Duration::ZERO).unwrap();
    assert_eq!((again.processed, again.failed.len()), (0, 0));
    assert_eq!(d.mail_list().unwrap().len(), 1);
    assert_eq!(d.mail_list().unwrap()[0].header.id, good[0]);
}

#[test]
fn two_devices_processing_at_once_take_each_message_once() {
    let mut s = Setup::new(2);
    let msgs: Vec<_> = (0..60).map(|i| message(i, 3000, i % 5 == 0)).collect();
    deliver(&s, &msgs);
    let (a, b) = s.devices.split_at_mut(1);
    let (ra, rb) = std::thread::scope(|t| {
        let ha = t.spawn(|| a[0].process_incoming(Duration::from_secs(600)).unwrap());
        let hb = t.spawn(|| b[0].process_incoming(Duration::from_secs(600)).unwrap());
        (ha.join().unwrap(), hb.join().unwrap())
    });
    assert_eq!(ra.processed + rb.processed, 60, "{ra:?} {rb:?}");
    for d in s.devices.iter_mut() {
        d.sync().unwrap();
    }
    assert_eq!(s.devices[0].mail_list().unwrap().len(), 60);
    assert_eq!(s.devices[1].mail_list().unwrap().len(), 60);
    assert!(s.devices[0].conflicts().unwrap().is_empty());
    assert_eq!(pending(&s.devices[0]), 0);
}

#[test]
fn a_message_left_processing_by_a_crashed_device_is_retried_after_the_lease() {
    let mut s = Setup::new(1);
    let ids = deliver(&s, &[message(1, 100, false), message(2, 100, false)]);
    let d = &mut s.devices[0];
    // A device reserved the first message and died.
    d.remote()
        .flag_blob(
            &incoming(),
            &ids[0],
            &FlagChange {
                flag: BlobFlag::Processing,
                expect: Some(BlobFlag::Pending),
            },
        )
        .unwrap();
    let r = d.process_incoming(Duration::from_secs(600)).unwrap();
    assert_eq!(r.processed, 1, "the reserved one waits for its lease");
    assert_eq!(pending(d), 1);
    let r = d.process_incoming(Duration::ZERO).unwrap();
    assert_eq!(r.processed, 1);
    assert_eq!(pending(d), 0);
    assert_eq!(d.mail_list().unwrap().len(), 2);
}

#[test]
fn a_tampered_content_blob_is_refused_and_not_stored() {
    let mut s = Setup::new(2);
    let msgs = vec![message(1, 200_000, false)];
    let ids = deliver(&s, &msgs);
    s.devices[0]
        .process_incoming(Duration::from_secs(600))
        .unwrap();
    // Its file, named `{id}@{version}` by the server.
    let dir = s
        .server
        .data
        .join("blobs")
        .join(s.account.user.as_str())
        .join("mail");
    let prefix = format!("{}@", ids[0].as_str());
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&prefix)
        })
        .expect("the content blob's file");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let b = &mut s.devices[1];
    b.sync().unwrap();
    let mut out = Vec::new();
    let e = b.mail_open(&ids[0], &mut out).unwrap_err();
    assert!(matches!(e, ClientError::Blob { .. }), "{e}");
    assert!(out.is_empty(), "no plaintext was written");
    let local = b.dir().join("blobs").join("mail");
    let left = std::fs::read_dir(local).map_or(0, |d| d.count());
    assert_eq!(left, 0, "nothing kept of the bad download");
}

#[test]
fn batches_over_the_published_limits_are_refused_before_their_body_is_read() {
    let s = Setup::new(1);
    let limits = s.devices[0].remote().config().unwrap();
    let (items, bytes) = (limits.max_batch_items, limits.max_batch_bytes);
    assert!(items > 0 && bytes > 0, "{limits:?}");
    let head = |op: &str, len: u64| {
        format!(
            "POST /v1/users/{}/batch/incoming/{op} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {len}",
            s.account.user, s.account.token
        )
    };
    // Declared over the limit: 413 with no byte of the body sent.
    assert_eq!(
        raw_status(s.server.addr, &head("store", bytes + 1), &[]),
        413
    );
    for op in ["flags", "fetch", "delete"] {
        assert_eq!(
            raw_status(s.server.addr, &head(op, 10 * bytes), &[]),
            413,
            "{op}"
        );
    }
    // More items than published (each id short, so the body fits): 413.
    let ids: Vec<BlobId> = (0..=items)
        .map(|i| BlobId::new(format!("m{i}")).unwrap())
        .collect();
    let err = s.devices[0]
        .remote()
        .delete_blobs(&incoming(), ids)
        .unwrap_err();
    assert_eq!(err.code(), Some(protocol::ErrorCode::BodyTooLarge), "{err}");
}

/// Each item of a batch is answered on its own: a wrong expectation, a
/// missing blob, an existing id, an item over `batch_blob_bytes`.
#[test]
fn batch_items_succeed_and_fail_on_their_own() {
    let s = Setup::new(1);
    let ids = deliver(&s, &[message(1, 100, false), message(2, 100, false)]);
    let r = s.devices[0].remote();
    let missing = BlobId::new("missing").unwrap();
    let flagged = r
        .flag_blobs(
            &incoming(),
            vec![
                protocol::FlagItem {
                    id: ids[0].clone(),
                    flag: BlobFlag::Processing,
                    expect: Some(BlobFlag::Pending),
                },
                protocol::FlagItem {
                    id: ids[1].clone(),
                    flag: BlobFlag::Processing,
                    expect: Some(BlobFlag::Failed),
                },
                protocol::FlagItem {
                    id: missing.clone(),
                    flag: BlobFlag::Processing,
                    expect: None,
                },
            ],
        )
        .unwrap();
    assert_eq!(
        flagged[0].info.as_ref().map(|i| i.flag),
        Some(Some(BlobFlag::Processing))
    );
    let code = |r: &protocol::ItemResult| r.error.as_ref().map(|e| e.code);
    assert_eq!(
        code(&flagged[1]),
        Some(protocol::ErrorCode::PreconditionFailed)
    );
    assert_eq!(code(&flagged[2]), Some(protocol::ErrorCode::NotFound));
    let fetched = r
        .fetch_blobs(
            &incoming(),
            vec![ids[1].clone(), missing.clone(), ids[0].clone()],
        )
        .unwrap();
    let mut one = Vec::new();
    std::io::Read::read_to_end(&mut r.get_blob(&incoming(), &ids[0]).unwrap(), &mut one).unwrap();
    assert_eq!(fetched[2].1, one, "batch and single fetch differ");
    assert_eq!(
        fetched[1].0.error.as_ref().map(|e| e.code),
        Some(protocol::ErrorCode::NotFound)
    );
    let limits = r.config().unwrap();
    let ns = Namespace::new("batch-test").unwrap();
    let a = BlobId::new("a").unwrap();
    let big = BlobId::new("big").unwrap();
    let stored = r
        .store_blobs(
            &ns,
            protocol::FramedBlobs::of(&[
                (a.clone(), b"first"),
                (big.clone(), &vec![7; limits.batch_blob_bytes as usize + 1]),
            ]),
        )
        .unwrap();
    assert_eq!(stored[0].info.as_ref().map(|i| i.size), Some(5));
    assert_eq!(code(&stored[1]), Some(protocol::ErrorCode::BodyTooLarge));
    let again = r
        .store_blobs(&ns, protocol::FramedBlobs::of(&[(a.clone(), b"other")]))
        .unwrap();
    assert_eq!(code(&again[0]), Some(protocol::ErrorCode::Exists));
    let deleted = r.delete_blobs(&ns, vec![a.clone(), big.clone()]).unwrap();
    assert_eq!(
        (code(&deleted[0]), code(&deleted[1])),
        (None, Some(protocol::ErrorCode::NotFound))
    );
}

/// Older clients process mail one message at a time: reserve, fetch,
/// store the content, mark, delete. Those endpoints still work.
#[test]
fn the_per_message_endpoints_still_work_for_older_clients() {
    let s = Setup::new(1);
    let ids = deliver(&s, &[message(1, 100, false)]);
    let r = s.devices[0].remote();
    let reserved = r
        .flag_blob(
            &incoming(),
            &ids[0],
            &FlagChange {
                flag: BlobFlag::Processing,
                expect: Some(BlobFlag::Pending),
            },
        )
        .unwrap();
    assert_eq!(reserved.flag, Some(BlobFlag::Processing));
    let mut ct = Vec::new();
    std::io::Read::read_to_end(&mut r.get_blob(&incoming(), &ids[0]).unwrap(), &mut ct).unwrap();
    assert_eq!(ct.len() as u64, reserved.size);
    let mail = Namespace::new("mail").unwrap();
    s.devices[0]
        .upload_blob(&mail, &ids[0], std::io::Cursor::new(b"raw".to_vec()), 3)
        .unwrap();
    r.flag_blob(
        &incoming(),
        &ids[0],
        &FlagChange {
            flag: BlobFlag::Processed,
            expect: None,
        },
    )
    .unwrap();
    assert!(r.delete_blob(&incoming(), &ids[0]).unwrap());
    assert_eq!(pending(&s.devices[0]), 0);
}

/// A real device process killed with SIGKILL in the middle of a batch:
/// after it is run again, every message is processed exactly once (one
/// metadata document each, the right content, nothing left incoming).
#[test]
fn a_device_killed_mid_batch_loses_and_duplicates_nothing() {
    let mut s = Setup::new(2);
    let msgs: Vec<_> = (0..600).map(|i| message(i, 2000, i % 7 == 0)).collect();
    let ids = deliver(&s, &msgs);
    let watcher = s.devices.pop().unwrap();
    s.devices.clear(); // device0's directory goes to the real process
    let fetch = || {
        std::process::Command::new(client_bin())
            .arg("--dir")
            .arg(s.path("device0"))
            .args(["mail", "fetch", "--lease", "0s"])
            .env("SYNC_PASSPHRASE", PASSPHRASE)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let reserved = || {
        watcher
            .remote()
            .list_blobs(&BlobQuery {
                namespace: Some(incoming()),
                flag: Some(BlobFlag::Processing),
                count_only: true,
                ..Default::default()
            })
            .unwrap()
            .count
    };
    let mut child = fetch();
    // Until it holds a reserved batch (bounded: it exits when done).
    while reserved() == 0 && child.try_wait().unwrap().is_none() {
        std::thread::yield_now();
    }
    let killed_mid_batch = reserved() > 0 && child.try_wait().unwrap().is_none();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        killed_mid_batch,
        "the device finished before it could be killed"
    );
    let out = fetch().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut watcher = watcher;
    assert_eq!(pending(&watcher), 0, "messages left incoming");
    watcher.sync().unwrap();
    let listed = watcher.mail_list().unwrap();
    let mut seen: Vec<&BlobId> = listed.iter().map(|m| &m.header.id).collect();
    seen.sort();
    seen.dedup();
    assert_eq!((listed.len(), seen.len()), (600, 600));
    assert!(watcher.conflicts().unwrap().is_empty());
    for i in [0, 1, 299, 599] {
        let mut raw = Vec::new();
        watcher.mail_open(&ids[i], &mut raw).unwrap();
        assert_eq!(raw, msgs[i], "message {i}");
    }
}

/// A message that decrypts but is no RFC 5322 message: FAILED, and the
/// content blob stored while it was being parsed is removed again.
#[test]
fn a_message_that_does_not_parse_leaves_no_content_blob() {
    let mut s = Setup::new(1);
    let good = deliver(&s, &[message(1, 100, false)]);
    deliver_raw(&s, "headerless", b"\r\n\r\njust a body, no headers", 0);
    let d = &mut s.devices[0];
    let report = d.process_incoming(Duration::from_secs(600)).unwrap();
    assert_eq!(report.processed, 1);
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].0, "headerless");
    let contents: Vec<String> = d
        .remote()
        .list_blobs(&BlobQuery {
            namespace: Some(Namespace::new("mail").unwrap()),
            ..Default::default()
        })
        .unwrap()
        .blobs
        .into_iter()
        .map(|b| b.id.to_string())
        .collect();
    assert_eq!(contents, [good[0].to_string()]);
}

/// Large messages are decrypted while they download and their content
/// blobs uploaded as they decrypt: good ones are processed whole, each
/// bad one fails alone and leaves no content blob.
#[test]
fn large_messages_are_decrypted_while_they_download() {
    // Over the client's streaming threshold (512 KiB) all, so they go
    // through the one-pass path, several at once.
    let mut s = Setup::new(1);
    let bigs = vec![
        message(1, 600 << 10, true),
        message(2, 1 << 20, false),
        message(3, 5 << 20, false),
    ];
    let good = deliver(&s, &bigs);
    deliver_raw(&s, "truncated-big", &message(4, 5 << 20, false), 100);
    // Valid age to this user, but not a message: its content blob is
    // uploaded while it decrypts, then removed when it does not parse.
    let mut headerless = b"\r\n\r\n".to_vec();
    headerless.resize(1 << 20, b'x');
    deliver_raw(&s, "not-a-message", &headerless, 0);
    put_incoming(&s, "garbage-big", vec![0x5a; 1 << 20]);
    let other = age::x25519::Identity::generate().to_public();
    put_incoming(&s, "foreign-big", seal(&other, &message(5, 1 << 20, false)));

    let d = &mut s.devices[0];
    let report = d.process_incoming(Duration::from_secs(600)).unwrap();
    assert_eq!(report.processed, 3, "{report:?}");
    let mut failed: Vec<&str> = report.failed.iter().map(|f| f.0.as_str()).collect();
    failed.sort();
    assert_eq!(
        failed,
        [
            "foreign-big",
            "garbage-big",
            "not-a-message",
            "truncated-big"
        ]
    );
    // Exactly the good messages' content blobs: an aborted upload keeps
    // nothing, an unparsable message's blob is removed.
    let mail = Namespace::new(client::MAIL_NAMESPACE).unwrap();
    let mut stored: Vec<BlobId> = d
        .remote()
        .list_blobs(&BlobQuery {
            namespace: Some(mail),
            ..Default::default()
        })
        .unwrap()
        .blobs
        .into_iter()
        .map(|b| b.id)
        .collect();
    stored.sort();
    let mut want = good.clone();
    want.sort();
    assert_eq!(stored, want);
    for (id, big) in good.iter().zip(&bigs) {
        let mut raw = Vec::new();
        d.mail_open(id, &mut raw).unwrap();
        assert!(&raw == big, "large message {id} came back different");
    }
    // Delivered again after processing (the same id): its content blob
    // exists, which the one-pass upload takes as stored.
    deliver(&s, &bigs[2..]);
    let d = &mut s.devices[0];
    let again = d.process_incoming(Duration::from_secs(600)).unwrap();
    assert_eq!((again.processed, again.failed.len()), (1, 0), "{again:?}");
    let mut raw = Vec::new();
    d.mail_open(&good[2], &mut raw).unwrap();
    assert!(raw == bigs[2], "the large message came back different");
}
