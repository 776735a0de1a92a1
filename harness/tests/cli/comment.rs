//! `syncbench comment` against a stand-in for GitHub's REST API: a real
//! HTTP server on 127.0.0.1 (GitHub itself cannot be reached from here)
//! that keeps the pull request's comments and can answer as GitHub does
//! when it refuses (403, 404, rate limit).

use crate::support::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What the stand-in answers with instead of the comments, if anything.
#[derive(Clone, Copy, PartialEq)]
enum Refuse {
    No,
    Forbidden,
    Missing,
    RateLimited,
    /// GitHub's secondary limit: 403 with retry-after.
    Secondary,
}

#[derive(Default)]
struct State {
    comments: Vec<(u64, String)>,
    /// "GET /path", "POST /path", … in order.
    log: Vec<String>,
}

struct Github {
    url: String,
    state: Arc<Mutex<State>>,
    refuse: Arc<Mutex<Refuse>>,
}

impl Github {
    fn start() -> Github {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let refuse = Arc::new(Mutex::new(Refuse::No));
        let (s, r) = (state.clone(), refuse.clone());
        // Ends with the test process; each connection is one request.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, &s, *r.lock().unwrap());
            }
        });
        Github { url, state, refuse }
    }

    fn log(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().unwrap().log)
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>, refuse: Refuse) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
    );
    let mut length = 0;
    let mut auth = String::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').unwrap();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap(),
            "authorization" => auth = value.trim().to_owned(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let path = target.split('?').next().unwrap().to_owned();
    let mut st = state.lock().unwrap();
    st.log.push(format!("{method} {path}"));
    let (status, extra, reply) = match refuse {
        _ if auth != "Bearer t0ken" => (401, "", json!({"message": "Bad credentials"})),
        Refuse::Forbidden => (
            403,
            "",
            json!({"message": "Resource not accessible by integration"}),
        ),
        Refuse::Missing => (404, "", json!({"message": "Not Found"})),
        Refuse::Secondary => (
            403,
            "retry-after: 60\r\n",
            json!({"message": "You have exceeded a secondary rate limit"}),
        ),
        Refuse::RateLimited => (
            403,
            "x-ratelimit-remaining: 0\r\nx-ratelimit-reset: 1767225600\r\n",
            json!({"message": "API rate limit exceeded"}),
        ),
        Refuse::No => {
            let text = |b: &[u8]| {
                serde_json::from_slice::<Value>(b).unwrap()["body"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            };
            let view = |id: u64, body: &str| {
                json!({"id": id, "body": body, "user": {"login": "github-actions[bot]", "type": "Bot"},
                       "html_url": format!("https://github.test/o/r/pull/7#issuecomment-{id}")})
            };
            match (method.as_str(), path.as_str()) {
                ("GET", "/repos/o/r/issues/7/comments") => {
                    // Someone else's comments first, as on a real pull
                    // request: one quotes the marker, and is not ours.
                    let mut list = vec![
                        json!({"id": 1, "body": "LGTM", "html_url": "x", "user": {"type": "User"}}),
                        json!({"id": 2, "body": format!("{}\nquoted", syncbench::github::MARKER), "html_url": "x", "user": {"type": "User"}}),
                    ];
                    list.extend(st.comments.iter().map(|(id, b)| view(*id, b)));
                    (200, "", Value::Array(list))
                }
                ("POST", "/repos/o/r/issues/7/comments") => {
                    let id = 100 + st.comments.len() as u64;
                    let b = text(&body);
                    st.comments.push((id, b.clone()));
                    (201, "", view(id, &b))
                }
                ("PATCH", p) if p.starts_with("/repos/o/r/issues/comments/") => {
                    let id: u64 = p.rsplit('/').next().unwrap().parse().unwrap();
                    let b = text(&body);
                    let c = st.comments.iter_mut().find(|c| c.0 == id).unwrap();
                    c.1 = b.clone();
                    (200, "", view(id, &b))
                }
                _ => (404, "", json!({"message": "Not Found"})),
            }
        }
    };
    let reply = reply.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n{reply}",
        reply.len()
    );
}

/// `syncbench comment --pr 7 --body BODY FLAGS…` against `api` as o/r,
/// with `token` (none: GITHUB_TOKEN unset).
fn comment_at(
    api: &str,
    token: Option<&str>,
    body: &std::path::Path,
    flags: &[&str],
) -> std::process::Output {
    let mut cmd = std::process::Command::new(SYNCBENCH);
    cmd.args(["comment", "--pr", "7", "--body"])
        .arg(body)
        .args(flags)
        .env("GITHUB_REPOSITORY", "o/r")
        .env("GITHUB_API_URL", api);
    match token {
        Some(t) => cmd.env("GITHUB_TOKEN", t),
        None => cmd.env_remove("GITHUB_TOKEN"),
    };
    cmd.output().unwrap()
}

fn comment(gh: &Github, body: &std::path::Path, flags: &[&str]) -> std::process::Output {
    comment_at(&gh.url, Some("t0ken"), body, flags)
}

#[test]
fn the_comment_is_posted_when_flagged_then_updated_in_place_and_refusals_are_reported() {
    let gh = Github::start();
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("summary.md");
    std::fs::write(
        &body,
        "**1 regression(s)**\n\n| metric | change |\n|---|---|\n| wall | +20.0% |\n",
    )
    .unwrap();

    // Nothing flagged and nobody asked: it only looks.
    let o = comment(&gh, &body, &["--json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(json(&o), json!({"action": "quiet"}));
    assert_eq!(gh.log(), ["GET /repos/o/r/issues/7/comments"]);

    // Flagged: posted, with the marker, the table and the link.
    let o = comment(
        &gh,
        &body,
        &["--flagged", "--json", "--link", "https://o.github.io/r/"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(json(&o)["action"], "posted");
    let posted = gh.state.lock().unwrap().comments.clone();
    assert_eq!(posted.len(), 1);
    assert!(
        posted[0].1.starts_with(syncbench::github::MARKER),
        "{}",
        posted[0].1
    );
    assert!(
        posted[0].1.contains("| wall | +20.0% |")
            && posted[0].1.contains("Dashboard: https://o.github.io/r/")
    );
    gh.log();

    // Pushed again, still flagged: the same comment, edited.
    let o = comment(&gh, &body, &["--flagged", "--json"]);
    assert_eq!(json(&o)["action"], "updated", "{}", text(&o));
    assert_eq!(
        gh.log(),
        [
            "GET /repos/o/r/issues/7/comments",
            "PATCH /repos/o/r/issues/comments/100"
        ]
    );
    // Fixed: the comment says so rather than keep the old alarm.
    std::fs::write(&body, "No regression.\n").unwrap();
    let o = comment(&gh, &body, &["--json"]);
    assert_eq!(json(&o)["action"], "updated", "{}", text(&o));
    let now = gh.state.lock().unwrap().comments.clone();
    assert_eq!(now.len(), 1, "never a second comment");
    assert!(
        now[0].1.contains("No regression.") && now[0].1.contains("Nothing flagged"),
        "{}",
        now[0].1
    );

    // GitHub refusing: a clear message and a failed status, which the CI
    // step reports without failing the bench job (ci/bench.sh).
    for (refuse, says) in [
        (Refuse::Forbidden, "read-only token"),
        (Refuse::Missing, "no pull request 7 in o/r"),
        (Refuse::RateLimited, "rate limit"),
        (Refuse::Secondary, "rate limit"),
    ] {
        *gh.refuse.lock().unwrap() = refuse;
        let o = comment(&gh, &body, &["--flagged"]);
        assert!(!o.status.success(), "{}", text(&o));
        assert!(text(&o).contains(says), "{says}: {}", text(&o));
    }
    *gh.refuse.lock().unwrap() = Refuse::No;

    // An https API needs the TLS build; the default one says how. (With
    // the feature it would reach out to GitHub, which tests never do.)
    if !cfg!(feature = "github") {
        let o = comment_at(
            "https://api.github.com",
            Some("t0ken"),
            &body,
            &["--flagged"],
        );
        assert!(
            !o.status.success() && text(&o).contains("--features github"),
            "{}",
            text(&o)
        );
    }
    // No token: says where it comes from.
    let o = comment_at(&gh.url, None, &body, &[]);
    assert!(
        !o.status.success() && text(&o).contains("GITHUB_TOKEN"),
        "{}",
        text(&o)
    );
}

/// A summary far over GitHub's limit that ends inside a code fence: the
/// comment is within the limit, every fence closed, and ends with the
/// dashboard's link; a short one is posted as it is.
#[test]
fn a_long_comment_is_cut_closing_its_code_fence_and_keeps_the_link() {
    let gh = Github::start();
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("summary.md");
    let mut long = String::from("**1 regression(s)**\n\n```text\n");
    for i in 0..10_000 {
        long.push_str(&format!("svc n={i} wall +20.0%\n"));
    }
    std::fs::write(&body, &long).unwrap();
    let link = "https://o.github.io/r/";
    let o = comment(&gh, &body, &["--flagged", "--json", "--link", link]);
    assert!(o.status.success(), "{}", text(&o));
    let posted = gh.state.lock().unwrap().comments[0].1.clone();
    assert!(posted.chars().count() <= 65_536, "{}", posted.len());
    let fences = posted.lines().filter(|l| l.starts_with("```")).count();
    assert_eq!(fences % 2, 0, "a code fence left open");
    assert!(
        posted.ends_with(&format!("Dashboard: {link}\n")),
        "{}",
        &posted[posted.len() - 200..]
    );
    assert!(posted.contains("cut short"));

    let short = "**1 regression(s)**\n\n| wall | +20.0% |\n";
    std::fs::write(&body, short).unwrap();
    let o = comment(&gh, &body, &["--flagged", "--json", "--link", link]);
    assert_eq!(json(&o)["action"], "updated", "{}", text(&o));
    let posted = gh.state.lock().unwrap().comments[0].1.clone();
    assert_eq!(
        posted,
        format!(
            "{}\n{short}\n\nDashboard: {link}\n",
            syncbench::github::MARKER
        )
    );
}
