//! The blob API over HTTP, against the real server process: statuses,
//! ranges, flags, listing, quota, isolation between users, and a crash in
//! the middle of an upload.

use crate::support::*;
use protocol::{BlobFlag, BlobInfo, ErrorBody, ErrorCode};
use reqwest::blocking::{Client, Response};
use std::io::Write;

fn expect_error(resp: Response, status: u16, code: ErrorCode) -> String {
    assert_eq!(resp.status().as_u16(), status);
    let body: ErrorBody = resp.json().unwrap();
    assert_eq!(body.code, code, "{}", body.message);
    body.message
}

#[test]
fn put_get_range_delete_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server"));
    let alice = server.add_user("alice");
    let api = Api::new(&server, &alice);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();

    let r = api.put("blobs/mail/m1", data.clone());
    assert_eq!(r.status(), 201);
    let info: BlobInfo = r.json().unwrap();
    assert_eq!((info.size, info.flag), (data.len() as u64, None));
    assert_eq!(
        api.get("blobs/mail/m1").send().unwrap().bytes().unwrap(),
        data
    );

    // Ranges: 206 with the slice, open-ended and suffix forms, 416 outside.
    let r = api
        .get("blobs/mail/m1")
        .header("Range", "bytes=100-199")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 100-199/{}", data.len()).as_str()
    );
    assert_eq!(r.bytes().unwrap(), data[100..200]);
    let r = api
        .get("blobs/mail/m1")
        .header("Range", "bytes=299990-")
        .send()
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.bytes().unwrap()),
        (206, data[299_990..].to_vec().into())
    );
    let r = api
        .get("blobs/mail/m1")
        .header("Range", "bytes=-5")
        .send()
        .unwrap();
    assert_eq!(r.bytes().unwrap(), data[data.len() - 5..]);
    let r = api
        .get("blobs/mail/m1")
        .header("Range", "bytes=400000-")
        .send()
        .unwrap();
    assert_eq!(r.status(), 416);

    // Immutable: a second upload under the same id is 409, the first stays.
    expect_error(api.put("blobs/mail/m1", "other"), 409, ErrorCode::Exists);
    assert_eq!(
        api.get("blobs/mail/m1").send().unwrap().bytes().unwrap(),
        data
    );

    // Ids cannot escape the user's directory.
    for bad in [
        "blobs/mail/..",
        "blobs/../m1",
        "blobs/mail/a%2Fb",
        "blobs/mail/%2E%2E",
    ] {
        let r = api.put(bad, "x");
        assert!(
            matches!(r.status().as_u16(), 400 | 404 | 405),
            "{bad}: {}",
            r.status()
        );
    }
    expect_error(api.put("blobs/mail/a%2Fb", "x"), 400, ErrorCode::BadRequest);

    // Delete: 204, then 404 for every operation on it.
    let r = api
        .http
        .delete(format!("{}/blobs/mail/m1", api.base))
        .bearer_auth(&api.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    expect_error(
        api.get("blobs/mail/m1").send().unwrap(),
        404,
        ErrorCode::NotFound,
    );
    expect_error(
        api.flag("blobs/mail/m1", "FAILED", None),
        404,
        ErrorCode::NotFound,
    );
    // Deleted, the id is free again.
    assert_eq!(api.put("blobs/mail/m1", "again").status(), 201);

    // No token, a wrong token: 401.
    let r = Client::new()
        .get(format!("{}/blobs", api.base))
        .send()
        .unwrap();
    expect_error(r, 401, ErrorCode::Unauthorized);
    let r = Client::new()
        .get(format!("{}/blobs", api.base))
        .bearer_auth("nope")
        .send()
        .unwrap();
    expect_error(r, 401, ErrorCode::Unauthorized);
    // A bad flag body: 400.
    let r = api
        .http
        .post(format!("{}/blobs/mail/m1/flag", api.base))
        .bearer_auth(&api.token)
        .json(&serde_json::json!({"flag": "DONE"}))
        .send()
        .unwrap();
    expect_error(r, 400, ErrorCode::BadRequest);
}

#[test]
fn one_user_cannot_touch_another_users_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server"));
    let alice = server.add_user("alice");
    let bob = server.add_user("bob");
    let a = Api::new(&server, &alice);
    assert_eq!(a.put("blobs/mail/secret", "alice's").status(), 201);
    // Bob's token on Alice's paths: 403 for read, list, flag, put, delete.
    let b = Api {
        token: bob.token.clone(),
        ..Api::new(&server, &alice)
    };
    expect_error(
        b.get("blobs/mail/secret").send().unwrap(),
        403,
        ErrorCode::Forbidden,
    );
    expect_error(b.get("blobs").send().unwrap(), 403, ErrorCode::Forbidden);
    expect_error(
        b.flag("blobs/mail/secret", "FAILED", None),
        403,
        ErrorCode::Forbidden,
    );
    expect_error(b.put("blobs/mail/x", "y"), 403, ErrorCode::Forbidden);
    let r = b
        .http
        .delete(format!("{}/blobs/mail/secret", b.base))
        .bearer_auth(&b.token)
        .send()
        .unwrap();
    expect_error(r, 403, ErrorCode::Forbidden);
    // Bob's own namespace is empty; Alice's blob is intact.
    assert_eq!(Api::new(&server, &bob).list("").count, 0);
    assert_eq!(
        a.get("blobs/mail/secret").send().unwrap().text().unwrap(),
        "alice's"
    );
}

#[test]
fn list_filters_order_count_and_conditional_flags() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server"));
    let alice = server.add_user("alice");
    let api = Api::new(&server, &alice);
    for i in 0..5 {
        assert_eq!(
            api.put(&format!("blobs/docs/d{i}"), vec![0u8; 10 + i])
                .status(),
            201
        );
    }
    assert_eq!(api.put("blobs/other/o1", "x").status(), 201);
    let all = api.list("namespace=docs");
    assert_eq!(all.count, 5);
    let ids: Vec<_> = all.blobs.iter().map(|b| b.id.to_string()).collect();
    assert_eq!(ids, ["d0", "d1", "d2", "d3", "d4"]);
    let newest = api.list("namespace=docs&order=newest&limit=2");
    let ids: Vec<_> = newest.blobs.iter().map(|b| b.id.to_string()).collect();
    assert_eq!((newest.count, ids), (5, vec!["d4".into(), "d3".into()]));
    let counted = api.list("count_only=true");
    assert_eq!((counted.count, counted.blobs.len()), (6, 0));

    // Reserving: PENDING → PROCESSING only if still PENDING.
    assert_eq!(api.flag("blobs/docs/d1", "PENDING", None).status(), 200);
    let r = api.flag("blobs/docs/d1", "PROCESSING", Some("PENDING"));
    let info: BlobInfo = r.json().unwrap();
    assert_eq!(info.flag, Some(BlobFlag::Processing));
    // A second device trying the same reservation loses: 412.
    expect_error(
        api.flag("blobs/docs/d1", "PROCESSING", Some("PENDING")),
        412,
        ErrorCode::PreconditionFailed,
    );
    let processing = api.list("flag=PROCESSING");
    assert_eq!(processing.count, 1);
    assert_eq!(processing.blobs[0].id.as_str(), "d1");
    assert_eq!(api.list("flag=PENDING").count, 0);
    expect_error(
        api.get("blobs?flag=NOPE").send().unwrap(),
        400,
        ErrorCode::BadRequest,
    );
}

#[test]
fn quota_and_size_limits() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_args(
        &dir.path().join("server"),
        &["--quota", "100KiB", "--max-blob", "60KiB"],
    );
    let alice = server.add_user("alice");
    let api = Api::new(&server, &alice);
    assert_eq!(api.put("blobs/b/one", vec![1u8; 50 * 1024]).status(), 201);
    let head = |id: &str, len: &str| {
        format!(
            "PUT /v1/users/{}/blobs/b/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n{len}",
            alice.user, alice.token
        )
    };
    // Over the quota: 507 from the declared length, before the body.
    assert_eq!(
        raw_status(server.addr, &head("two", "Content-Length: 56320"), &[]),
        507
    );
    // Over the largest blob: 413 from the declared length...
    assert_eq!(
        raw_status(server.addr, &head("big", "Content-Length: 62464"), &[]),
        413
    );
    // ...and while streaming a body of unknown length (chunked).
    let mut chunked = Vec::new();
    for _ in 0..10 {
        chunked.extend_from_slice(b"2000\r\n");
        chunked.extend_from_slice(&[2u8; 8192]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let status = raw_status(
        server.addr,
        &head("chunked", "Transfer-Encoding: chunked"),
        &chunked,
    );
    assert_eq!(status, 413);
    // Over the quota found only at the end of a chunked body: 507.
    let status = raw_status(
        server.addr,
        &head("two", "Transfer-Encoding: chunked"),
        &chunked[..7 * (8192 + 8)]
            .iter()
            .chain(b"0\r\n\r\n")
            .copied()
            .collect::<Vec<u8>>(),
    );
    assert_eq!(status, 507);
    // Nothing of the refused uploads is left, and the quota still admits
    // what fits.
    assert_eq!(api.list("").count, 1);
    assert_eq!(
        std::fs::read_dir(server.data.join("tmp")).unwrap().count(),
        0
    );
    assert_eq!(api.put("blobs/b/two", vec![1u8; 40 * 1024]).status(), 201);
}

#[test]
fn kill_9_mid_upload_leaves_nothing_and_a_retry_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(&dir.path().join("server"));
    let alice = server.add_user("alice");
    let total = 8 * 1024 * 1024;
    let mut tcp = std::net::TcpStream::connect(server.addr).unwrap();
    write!(
        tcp,
        "PUT /v1/users/{}/blobs/big/b1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {total}\r\n\r\n",
        alice.user, alice.token
    )
    .unwrap();
    tcp.write_all(&vec![7u8; total / 2]).unwrap();
    tcp.flush().unwrap();
    // Wait until the server has the partial upload on disk, then kill it.
    let tmp = server.data.join("tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(&tmp).unwrap().count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no temporary file appeared"
        );
        std::thread::yield_now();
    }
    server.kill9();
    drop(tcp);
    server.restart();
    let api = Api::new(&server, &alice);
    assert_eq!(api.list("").count, 0);
    expect_error(
        api.get("blobs/big/b1").send().unwrap(),
        404,
        ErrorCode::NotFound,
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "stale temp files"
    );
    let data = vec![9u8; total];
    assert_eq!(api.put("blobs/big/b1", data.clone()).status(), 201);
    assert_eq!(
        api.get("blobs/big/b1").send().unwrap().bytes().unwrap(),
        data
    );
}
