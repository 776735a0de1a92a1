//! Bad input gets a clear status and message, and the server stays up.

use crate::support::*;
use protocol::{ErrorBody, ErrorCode, Limits};
use reqwest::blocking::Client;
use std::io::{Read, Write};

fn expect(resp: reqwest::blocking::Response, status: u16, code: ErrorCode) -> String {
    assert_eq!(resp.status().as_u16(), status);
    let body: ErrorBody = resp.json().unwrap();
    assert_eq!(body.code, code, "{}", body.message);
    body.message
}

#[test]
fn auth_and_path_errors() {
    let s = Setup::new(0);
    let bob = s.server.add_user("bob");
    let http = Client::new();
    let info = |user: &str| format!("{}/v1/users/{user}/sync/info?replica=r1", s.server.url());
    let alice = s.account.user.as_str();

    let m = expect(
        http.get(info(alice)).send().unwrap(),
        401,
        ErrorCode::Unauthorized,
    );
    assert!(m.contains("Bearer"), "{m}");
    expect(
        http.get(info(alice)).bearer_auth("wrong").send().unwrap(),
        401,
        ErrorCode::Unauthorized,
    );
    expect(
        http.get(info(bob.user.as_str()))
            .bearer_auth(&s.account.token)
            .send()
            .unwrap(),
        403,
        ErrorCode::Forbidden,
    );
    expect(
        http.get(info("nobody"))
            .bearer_auth(&s.account.token)
            .send()
            .unwrap(),
        404,
        ErrorCode::UserNotFound,
    );
    let m = expect(
        http.get(info("bad%20id"))
            .bearer_auth(&s.account.token)
            .send()
            .unwrap(),
        400,
        ErrorCode::BadRequest,
    );
    assert!(m.contains("' '"), "{m}");
    let m = expect(
        http.get(format!(
            "{}/v1/users/{alice}/sync/info?replica=../x",
            s.server.url()
        ))
        .bearer_auth(&s.account.token)
        .send()
        .unwrap(),
        400,
        ErrorCode::BadRequest,
    );
    assert!(m.contains("replica"), "{m}");
    expect(
        http.get(format!("{}/nope", s.server.url())).send().unwrap(),
        404,
        ErrorCode::NotFound,
    );
    assert_eq!(
        http.get(format!("{}/health", s.server.url()))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "ok"
    );
}

#[test]
fn malformed_uploads_are_rejected_whole() {
    let mut s = Setup::new(1);
    let http = Client::new();
    let url = format!("{}/v1/users/{}/sync/send", s.server.url(), s.account.user);
    let send = |body: &str| {
        http.post(&url)
            .bearer_auth(&s.account.token)
            .body(body.to_owned())
            .send()
            .unwrap()
    };
    let header = r#"{"t":"header","replica":"r1","generation":1,"transaction_id":"t"}"#;
    let doc = r#"{"t":"doc","id":"ok","rev":"r1:1","content":"AAAA"}"#;

    let m = expect(
        send(&format!("{header}\n{doc}\n{{not json\n")),
        400,
        ErrorCode::BadRequest,
    );
    assert!(m.starts_with("frame 2 is not valid"), "{m}");
    let m = expect(
        send(&format!(
            "{header}\n{{\"t\":\"doc\",\"id\":\"../etc/passwd\",\"rev\":\"r1:1\",\"content\":null}}\n"
        )),
        400,
        ErrorCode::BadRequest,
    );
    assert!(m.contains("frame 1") && m.contains("'/'"), "{m}");
    let m = expect(send(&format!("{doc}\n")), 400, ErrorCode::BadRequest);
    assert!(m.contains("header"), "{m}");
    let m = expect(
        send(&format!("{header}\n{doc}\n")),
        400,
        ErrorCode::BadRequest,
    );
    assert!(m.contains("without an end frame"), "{m}");
    let m = expect(
        send(&format!("{header}\n{doc}\n{{\"t\":\"end\",\"count\":5}}\n")),
        400,
        ErrorCode::BadRequest,
    );
    assert!(m.contains("counts 5"), "{m}");
    expect(send(""), 400, ErrorCode::BadRequest);

    // None of those stored anything: the document "ok" is unknown.
    let r = s.devices[0].sync().unwrap();
    assert_eq!(r.received, 0);

    // A complete body is accepted.
    let summary: protocol::SendSummary =
        send(&format!("{header}\n{doc}\n{{\"t\":\"end\",\"count\":1}}\n"))
            .json()
            .unwrap();
    assert_eq!(summary.accepted, 1);
    assert!(s.server.is_running());
}

#[test]
fn oversized_bodies_get_413_before_being_read() {
    let mut s = Setup::new(0);
    let limits = Limits::default();
    // Announce a body over the limit and send none of it: the answer comes
    // from the headers alone.
    let mut tcp = std::net::TcpStream::connect(s.server.addr).unwrap();
    write!(
        tcp,
        "POST /v1/users/{}/sync/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        s.account.user,
        s.account.token,
        limits.max_body_bytes + 1
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");

    // A chunked body (no length) is cut off once it passes the limit.
    let http = Client::new();
    let url = format!("{}/v1/users/{}/sync/send", s.server.url(), s.account.user);
    let chunk = vec![b' '; 1 << 20];
    let chunks = (0..(limits.max_body_bytes >> 20) + 2).map(move |_| chunk.clone());
    let body = reqwest::blocking::Body::new(ChunkReader::new(chunks));
    match http
        .post(&url)
        .bearer_auth(&s.account.token)
        .body(body)
        .send()
    {
        Ok(resp) => {
            expect(resp, 413, ErrorCode::BodyTooLarge);
        }
        // The server may close the connection while we are still writing.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }

    // One document over max_doc_bytes.
    let big = "A".repeat((limits.max_doc_bytes as usize).div_ceil(3) * 4 + 4);
    let body = format!(
        "{{\"t\":\"header\",\"replica\":\"r1\",\"generation\":1,\"transaction_id\":\"t\"}}\n{{\"t\":\"doc\",\"id\":\"big\",\"rev\":\"r1:1\",\"content\":\"{big}\"}}\n{{\"t\":\"end\",\"count\":1}}\n"
    );
    let m = expect(
        http.post(&url)
            .bearer_auth(&s.account.token)
            .body(body)
            .send()
            .unwrap(),
        413,
        ErrorCode::DocTooLarge,
    );
    assert!(m.contains("limit"), "{m}");
    assert!(s.server.is_running());
    assert_eq!(
        http.get(format!("{}/health", s.server.url()))
            .send()
            .unwrap()
            .status(),
        200
    );
}

/// A `Read` over an iterator of chunks, for a chunked upload of unknown length.
struct ChunkReader<I: Iterator<Item = Vec<u8>>> {
    chunks: I,
    current: std::io::Cursor<Vec<u8>>,
}

impl<I: Iterator<Item = Vec<u8>>> ChunkReader<I> {
    fn new(chunks: I) -> Self {
        Self {
            chunks,
            current: std::io::Cursor::new(Vec::new()),
        }
    }
}

impl<I: Iterator<Item = Vec<u8>>> Read for ChunkReader<I> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            match self.chunks.next() {
                Some(c) => self.current = std::io::Cursor::new(c),
                None => return Ok(0),
            }
        }
    }
}
