//! `syncbench report`: the static site from a real results database of a
//! throwaway repository, checked as files (escaping, no outside requests,
//! incremental writes) and in a real browser (headless Chromium driven
//! through ChromeDriver's WebDriver API).

use crate::support::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const SCENARIO: &str = "name = \"sleepy\"\nkind = \"command\"\nrun = \"sleep 0.3\"\nrepetitions = 2\nwarmup = 0\ntimeout = \"30s\"\n";

/// A repository of three commits (the first one's subject is a script
/// tag), benchmark results ingested for each, and a measured run of a
/// command scenario at the last one. Returns the repo, the database and
/// the commits.
fn measured_repo() -> (tempfile::TempDir, PathBuf, Vec<String>) {
    let repo = repo_with(&[("scenarios/sleepy.toml", SCENARIO)]);
    let d = repo.path();
    let r = d.to_str().unwrap();
    let db = d.join("results.sqlite");
    let mut shas = Vec::new();
    for i in 0..3 {
        if i > 0 {
            std::fs::write(d.join("NOTES"), format!("{i}\n")).unwrap();
            git(d, &["add", "-A"]);
            git(
                d,
                &["commit", "-q", "-m", &format!("commit {i} & <b>bold</b>")],
            );
        }
        shas.push(git(d, &["rev-parse", "HEAD"]));
        let bmf = d.join("bmf.json");
        let latency = if i == 2 { 2000.0 } else { 1000.0 };
        std::fs::write(
            &bmf,
            json!({"parse/frames": {"latency": {"value": latency}}, "<img src=x>": {"throughput": {"value": 5.0}}})
                .to_string(),
        )
        .unwrap();
        let out = sb(r, &db, &["ingest", "bmf", bmf.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = sb(r, &db, &["run", "sleepy"]);
    assert!(out.status.success(), "{}", text(&out));
    (repo, db, shas)
}

fn render(repo: &Path, db: &Path, out: &Path) -> Value {
    let o = sb(
        repo,
        db,
        &["report", "--out", out.to_str().unwrap(), "--json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    json(&o)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_site_escapes_outside_text_loads_nothing_from_outside_and_rewrites_only_changes() {
    let (repo, db, shas) = measured_repo();
    let out = repo.path().join("site");
    let r = render(repo.path(), &db, &out);
    let index = PathBuf::from(r["index"].as_str().unwrap());
    assert!(index.ends_with("site/index.html"));
    let all = files(&out);
    // Index, a series page per benchmark and metric, a page per commit,
    // the comparison of each commit with its parent, the stylesheet.
    assert!(
        all.iter()
            .filter(|p| p.starts_with(out.join("runs")))
            .count()
            == 3
    );
    assert!(all.iter().any(|p| p.starts_with(out.join("series"))));
    assert!(
        out.join(format!("compare/{}..{}.html", shas[1], shas[2]))
            .exists()
    );
    for p in &all {
        let html = std::fs::read_to_string(p).unwrap();
        // The commit subject and the benchmark name arrive as text only.
        assert!(!html.contains("<script>alert"), "{}", p.display());
        assert!(!html.contains("<b>bold"), "{}", p.display());
        assert!(!html.contains("<img src=x>"), "{}", p.display());
        // No request can leave the folder: no absolute URLs in src/href,
        // and the pages forbid it (Content-Security-Policy).
        for attr in [
            "src=\"http",
            "href=\"http",
            "src=\"//",
            "href=\"//",
            "url(http",
            "@import",
        ] {
            assert!(!html.contains(attr), "{attr} in {}", p.display());
        }
        if p.extension().is_some_and(|e| e == "html") {
            assert!(html.contains("default-src 'none'"), "{}", p.display());
        }
    }
    let first = std::fs::read_to_string(out.join(format!("runs/{}.html", shas[0]))).unwrap();
    assert!(first.contains("&lt;script&gt;alert(1)&lt;/script&gt; first"));
    // BMF's "parse/frames" is scenario "parse", point "frames".
    let html = std::fs::read_to_string(&index).unwrap();
    assert!(html.contains("parse") && html.contains("frames") && html.contains("+100.0%"));

    // Nothing changed: nothing is rewritten.
    let again = render(repo.path(), &db, &out);
    assert_eq!(again["written"], 0, "{again}");
    // One more commit measured: its pages and those showing it change;
    // the old commits' pages stay as they were.
    let d = repo.path();
    std::fs::write(d.join("NOTES"), "3\n").unwrap();
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "commit 3"]);
    let o = sb(d, &db, &["run", "sleepy"]);
    assert!(o.status.success(), "{}", text(&o));
    let before = std::fs::metadata(out.join(format!("runs/{}.html", shas[0])))
        .unwrap()
        .modified()
        .unwrap();
    let third = render(repo.path(), &db, &out);
    let written = third["written"].as_u64().unwrap();
    let pages = third["pages"].as_u64().unwrap();
    assert!(written > 0 && written < pages, "{third}");
    let after = std::fs::metadata(out.join(format!("runs/{}.html", shas[0])))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "an old commit's page was rewritten");
}

/// A ChromeDriver process, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    http: reqwest::blocking::Client,
    session: String,
}

impl Driver {
    /// Starts ChromeDriver on a free port and a headless Chromium session.
    fn start(chromedriver: &Path) -> Driver {
        let mut child = Command::new(chromedriver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut port = None;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                port = Some(rest.trim_end_matches('.').to_owned());
                break;
            }
        }
        let url = format!(
            "http://127.0.0.1:{}",
            port.expect("chromedriver did not report its port")
        );
        let http = reqwest::blocking::Client::new();
        let profile = tempfile::tempdir().unwrap().keep();
        // The flags keep Chromium from reaching for Google's services,
        // which this machine's closed network refuses.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let resp: Value = http
            .post(format!("{url}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium(), "args": args},
            }}}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {resp}"))
            .to_owned();
        Driver {
            child,
            url,
            http,
            session,
        }
    }

    fn open(&self, path: &Path) {
        let r: Value = self
            .http
            .post(format!("{}/session/{}/url", self.url, self.session))
            .json(&json!({"url": format!("file://{}", path.display())}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert!(
            r["value"].is_null(),
            "navigating to {}: {r}",
            path.display()
        );
    }

    fn eval(&self, script: &str) -> Value {
        let r: Value = self
            .http
            .post(format!(
                "{}/session/{}/execute/sync",
                self.url, self.session
            ))
            .json(&json!({"script": script, "args": []}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        r["value"].clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.url, self.session))
            .send();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> &'static str {
    "/usr/bin/chromium"
}

/// What the browser sees on the page: charts, rows, text, errors.
const PROBE: &str = "return {
    title: document.title,
    svgs: document.querySelectorAll('svg').length,
    dots: document.querySelectorAll('svg a circle').length,
    tiles: document.querySelectorAll('.tile').length,
    phases: document.querySelectorAll('svg .phase').length,
    procs: document.querySelectorAll('svg path.proc').length,
    text: document.body.innerText,
    scripts: document.querySelectorAll('body script:not([src])').length,
    errors: window.__errors,
    external: performance.getEntriesByType('resource').map(function (e) { return e.name; })
        .filter(function (u) { return u.indexOf('file://') !== 0; }),
};";

#[test]
fn index_series_and_run_pages_render_in_a_real_browser() {
    if !have(&[
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/chromedriver", "chromium-driver"),
    ]) {
        return;
    }
    let chromedriver = Path::new("/usr/bin/chromedriver");
    let (repo, db, shas) = measured_repo();
    let out = repo.path().join("site");
    render(repo.path(), &db, &out);
    let browser = Driver::start(chromedriver);

    browser.open(&out.join("index.html"));
    let index = browser.eval(PROBE);
    assert_eq!(index["errors"], json!([]), "{index}");
    assert_eq!(index["external"], json!([]), "{index}");
    assert!(index["tiles"].as_u64().unwrap() >= 3, "{index}");
    assert!(index["svgs"].as_u64().unwrap() >= 3, "sparklines: {index}");
    let text = index["text"].as_str().unwrap();
    assert!(
        text.contains("frames") && text.contains("<img src=x>"),
        "{text}"
    );
    // The filter works: typing a metric hides the other tiles.
    let shown = browser.eval(
        "var t = document.getElementById('f-metric'); t.value = 'latency';
         t.dispatchEvent(new Event('input'));
         return Array.prototype.filter.call(document.querySelectorAll('.tile'),
             function (e) { return e.style.display !== 'none'; }).length;",
    );
    assert_eq!(
        shown,
        json!(1),
        "only the latency of parse/frames should show"
    );

    // The series page of the benchmark that doubled: three dots, a link
    // from each to its commit's page, the change marked.
    let href = browser.eval(
        "return Array.prototype.map.call(document.querySelectorAll('.tile'), function (a) { return a.getAttribute('href'); })
           .filter(function (h) { return h.indexOf('latency') >= 0; })[0];",
    );
    browser.open(&out.join(href.as_str().unwrap()));
    let series = browser.eval(PROBE);
    assert_eq!(series["errors"], json!([]), "{series}");
    assert_eq!(series["external"], json!([]), "{series}");
    assert_eq!(series["dots"], json!(3), "{series}");
    let text = series["text"].as_str().unwrap();
    assert!(text.contains("lower is better"), "{text}");
    assert!(text.contains("2.0 µs") && text.contains("1.0 µs"), "{text}");
    assert!(
        text.contains("<script>alert(1)</script> first"),
        "subject shown as text: {text}"
    );

    // The run page of the last commit: CPU and RSS curves of the command.
    browser.open(&out.join(format!("runs/{}.html", shas[2])));
    let run = browser.eval(PROBE);
    assert_eq!(run["errors"], json!([]), "{run}");
    assert_eq!(run["external"], json!([]), "{run}");
    assert!(
        run["procs"].as_u64().unwrap() >= 2,
        "CPU and RSS lines: {run}"
    );
    let text = run["text"].as_str().unwrap();
    assert!(
        text.contains("sleepy") && text.contains("peak_rss"),
        "{text}"
    );
}
