use crate::support::*;
use client::ClientError;

#[test]
fn two_devices_sync_puts_edits_and_deletes() {
    let mut s = Setup::new(2);
    let docs: Vec<_> = (0..50)
        .map(|i| {
            (
                id(&format!("note.{i}")),
                format!("note {i} body").into_bytes(),
            )
        })
        .collect();
    s.devices[0]
        .put_many(docs.iter().map(|(i, c)| (i, &c[..])))
        .unwrap();
    let r = s.devices[0].sync().unwrap();
    assert_eq!((r.sent, r.received), (50, 0));

    let r = s.devices[1].sync().unwrap();
    assert_eq!((r.sent, r.received), (0, 50));
    assert_eq!(contents(&s.devices[1]), contents(&s.devices[0]));

    // An edit and a delete on device 1 reach device 0.
    s.devices[1].put(&id("note.3"), b"edited on 1").unwrap();
    s.devices[1].delete(&id("note.4")).unwrap();
    let r = s.devices[1].sync().unwrap();
    assert_eq!(
        (r.sent, r.received),
        (2, 0),
        "own changes are not echoed back"
    );
    let r = s.devices[0].sync().unwrap();
    assert_eq!(r.received, 2);
    assert_eq!(
        s.devices[0].get(&id("note.3")).unwrap().unwrap(),
        b"edited on 1"
    );
    assert_eq!(s.devices[0].get(&id("note.4")).unwrap(), None);
    assert_eq!(contents(&s.devices[1]), contents(&s.devices[0]));

    // Nothing left to do: a no-op sync moves nothing.
    let r = s.devices[0].sync().unwrap();
    assert_eq!((r.sent, r.received, r.upload_requests), (0, 0, 0));
}

#[test]
fn server_stores_only_ciphertext() {
    let mut s = Setup::new(1);
    let marker = b"PLAINTEXT-MARKER-4242";
    s.devices[0].put(&id("secret-doc"), marker).unwrap();
    s.devices[0].sync().unwrap();
    s.server.terminate();
    let mut found = Vec::new();
    for entry in walk(&s.server.data) {
        let bytes = std::fs::read(&entry).unwrap();
        if bytes.windows(marker.len()).any(|w| w == marker) {
            found.push(entry);
        }
    }
    assert!(
        found.is_empty(),
        "plaintext found on the server in {found:?}"
    );
    // The client's own store holds ciphertext too.
    let local = std::fs::read(s.devices[0].dir().join(client::STORE_FILE)).unwrap();
    assert!(!local.windows(marker.len()).any(|w| w == marker));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn wrong_passphrase_is_a_clear_error_and_creates_nothing() {
    let s = Setup::new(1);
    let dir = s.path("device-wrong");
    let e = init_device(&s.server, &s.account, &dir, "not the passphrase").unwrap_err();
    assert!(matches!(e, ClientError::WrongPassphrase), "{e}");
    assert!(!dir.join(client::STORE_FILE).exists());

    let mut d = client::Device::open(s.devices[0].dir()).unwrap();
    assert!(matches!(
        d.unlock("nope"),
        Err(ClientError::WrongPassphrase)
    ));
    assert!(matches!(d.get(&id("x")), Err(ClientError::Locked)));
}

#[test]
fn concurrent_edits_on_two_devices_keep_both_versions() {
    let mut s = Setup::new(2);
    s.devices[0].put(&id("shared"), b"base").unwrap();
    s.devices[0].sync().unwrap();
    s.devices[1].sync().unwrap();
    s.devices[0].put(&id("shared"), b"edit from 0").unwrap();
    s.devices[1].put(&id("shared"), b"edit from 1").unwrap();

    // Both sync at the same time, then once more each.
    let (a, b) = s.devices.split_at_mut(1);
    std::thread::scope(|scope| {
        let t = scope.spawn(|| a[0].sync().unwrap());
        b[0].sync().unwrap();
        t.join().unwrap();
    });
    s.devices[0].sync().unwrap();
    s.devices[1].sync().unwrap();

    // Exactly one device lost the race and holds both versions.
    let mut holder = None;
    for (i, d) in s.devices.iter().enumerate() {
        let versions = d.versions(&id("shared")).unwrap();
        let texts: Vec<_> = versions
            .iter()
            .map(|v| v.content.clone().unwrap())
            .collect();
        if versions.len() == 2 {
            assert!(
                texts.contains(&b"edit from 0".to_vec())
                    && texts.contains(&b"edit from 1".to_vec())
            );
            assert_eq!(d.conflicts().unwrap(), vec![id("shared")]);
            holder = Some(i);
        }
    }
    let holder = holder.expect("one device must hold the conflict");
    let other = 1 - holder;

    // Editing a conflicted document is refused until resolved.
    assert!(matches!(
        s.devices[holder].put(&id("shared"), b"x"),
        Err(ClientError::HasConflicts(_))
    ));
    s.devices[holder]
        .resolve(&id("shared"), Some(b"merged"))
        .unwrap();
    assert!(s.devices[holder].conflicts().unwrap().is_empty());
    s.devices[holder].sync().unwrap();
    s.devices[other].sync().unwrap();
    for d in &s.devices {
        assert_eq!(d.get(&id("shared")).unwrap().unwrap(), b"merged");
        assert!(d.conflicts().unwrap().is_empty());
    }
}

#[test]
fn many_documents_go_in_bounded_requests() {
    let mut s = Setup::new(2);
    let n = 3000;
    let body = [b'x'; 100];
    let ids: Vec<_> = (0..n).map(|i| id(&format!("d{i:05}"))).collect();
    s.devices[0]
        .put_many(ids.iter().map(|i| (i, &body[..])))
        .unwrap();
    let r = s.devices[0].sync().unwrap();
    assert_eq!(r.sent, n);
    // batch_docs is 1000: three requests, none holding the whole set.
    assert_eq!(r.upload_requests, 3);
    let r = s.devices[1].sync().unwrap();
    assert_eq!(r.received, n);
    assert_eq!(s.devices[1].list().unwrap().len(), n as usize);
}

#[test]
fn graceful_shutdown_on_sigterm() {
    let mut s = Setup::new(1);
    s.devices[0].put(&id("a"), b"1").unwrap();
    s.devices[0].sync().unwrap();
    let status = s.server.terminate();
    assert!(status.success(), "{status:?}");
}
