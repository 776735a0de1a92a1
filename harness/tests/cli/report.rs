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
    // The pages, not the caches kept beside them (binary, never linked).
    for p in all.iter().filter(|p| !p.starts_with(out.join(".cache"))) {
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
        self.open_url(&format!("file://{}", path.display()));
    }

    fn open_url(&self, url: &str) {
        let r: Value = self
            .http
            .post(format!("{}/session/{}/url", self.url, self.session))
            .json(&json!({"url": url}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert!(r["value"].is_null(), "navigating to {url}: {r}");
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

/// The link of the index's first series whose page name holds `name`.
fn series_href(browser: &Driver, name: &str) -> String {
    let href = browser.eval(&format!(
        "return Array.prototype.map.call(document.querySelectorAll('table.group a'), function (a) {{ return a.getAttribute('href'); }})
           .filter(function (h) {{ return h.indexOf('{name}') >= 0; }})[0];"
    ));
    href.as_str()
        .unwrap_or_else(|| panic!("no series {name}"))
        .to_owned()
}

/// Whether Chromium and ChromeDriver are installed (see `have`).
fn have_browser() -> bool {
    have(&[
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/chromedriver", "chromium-driver"),
    ])
}

fn chromium() -> &'static str {
    "/usr/bin/chromium"
}

/// What the browser sees on the page: charts, rows, text, errors.
const PROBE: &str = "return {
    title: document.title,
    svgs: document.querySelectorAll('svg').length,
    dots: document.querySelectorAll('svg a circle').length,
    rows: document.querySelectorAll('table.group tr[data-metric]').length,
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
    if !have_browser() {
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
    assert!(index["rows"].as_u64().unwrap() >= 3, "{index}");
    // A sparkline for each series with two commits or more.
    assert!(index["svgs"].as_u64().unwrap() >= 2, "sparklines: {index}");
    let text = index["text"].as_str().unwrap();
    assert!(
        text.contains("frames") && text.contains("<img src=x>"),
        "{text}"
    );
    // The filter works: typing a metric hides the other rows.
    let shown = browser.eval(
        "var t = document.getElementById('f-metric'); t.value = 'latency';
         t.dispatchEvent(new Event('input'));
         return document.querySelectorAll('table.group tr[data-metric]:not([hidden])').length;",
    );
    assert_eq!(
        shown,
        json!(1),
        "only the latency of parse/frames should show"
    );

    // The series page of the benchmark that doubled: three dots, a link
    // from each to its commit's page, the change marked.
    browser.open(&out.join(series_href(&browser, "latency")));
    let series = browser.eval(PROBE);
    assert_eq!(series["errors"], json!([]), "{series}");
    assert_eq!(series["external"], json!([]), "{series}");
    assert_eq!(series["dots"], json!(3), "{series}");
    let text = series["text"].as_str().unwrap();
    assert!(text.contains("lower is better"), "{text}");
    assert!(
        text.contains("2.00 µs") && text.contains("1.00 µs"),
        "{text}"
    );
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

/// A history longer than the change point search's window (and than a
/// chart is wide), written straight into a database: 900 commits of
/// `svc n=1` whose wall time
/// steps up 20% at commit 100 and whose memory drops 30% at commit 150
/// (both in the oldest third), a nanosecond benchmark, and odd series: a
/// metric with one value, one always equal, one always zero, one
/// negative. Returns the database and the commits.
/// A results database of `n` commits in a line, each with one run of six
/// series (a +20% step of wall time at 100, -30% of memory at 150). Its
/// `variant` names other commits and doubles the wall times.
fn long_history(dir: &Path, n: u64, variant: u64) -> (PathBuf, Vec<String>) {
    use syncbench::model::records::{Commit, Machine};
    use syncbench::model::{Direction, RunStatus, Series, Unit};
    use syncbench::store::RunRecord;
    let db = dir.join(format!("long-{n}-{variant}.sqlite"));
    let mut store =
        syncbench::store::open(&syncbench::store::Location::Sqlite(db.clone())).unwrap();
    let machine = Machine {
        cpu: "Test CPU".into(),
        cores: 2,
        memory_bytes: 8 << 30,
        os: "Linux".into(),
        kernel: "6.1".into(),
        hw_counters: "unavailable".into(),
        tag: None,
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let shas: Vec<String> = (0..n)
        .map(|i: u64| {
            format!(
                "{:016x}{i:024x}",
                (i + 1 + variant * 1_000_003).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            )
        })
        .collect();
    let series = |name: &str, unit: Unit, values: Vec<f64>| Series {
        name: name.into(),
        unit,
        direction: Direction::LowerIsBetter,
        values,
    };
    let mut records = Vec::new();
    for (i, sha) in shas.iter().enumerate() {
        let commit = Commit {
            sha: sha.clone(),
            parents: if i == 0 {
                vec![]
            } else {
                vec![shas[i - 1].clone()]
            },
            author: "t".into(),
            time_unix: 1_767_225_600 + i as i64 * 3600,
            subject: format!("commit {i}"),
            dirty: false,
            branch: Some("main".into()),
        };
        let mut reps =
            |base: f64| -> Vec<f64> { (0..5).map(|_| base * (1.0 + 0.01 * noise())).collect() };
        let wall = if i >= 100 { 0.120 } else { 0.100 } * (1 + variant) as f64;
        let rss = if i >= 150 { 70e6 } else { 100e6 };
        let mut metrics = vec![
            series("wall", Unit::Seconds, reps(wall)),
            series("peak_rss", Unit::Bytes, reps(rss)),
            series("tiny", Unit::Seconds, reps(3.2e-9)),
            // Another database may store a metric in another unit.
            series(
                "flat",
                [Unit::Count, Unit::Bytes][variant as usize % 2],
                vec![7.0; 5],
            ),
            series("zero", Unit::Count, vec![0.0; 5]),
            series("debt", Unit::Count, vec![-5.0 - (i % 3) as f64; 5]),
        ];
        // A series of one value, at a fixed commit: a longer history is the
        // shorter one and more commits, as a real one grows.
        if i == 899 {
            metrics.push(series("lonely", Unit::Seconds, reps(1.0)));
        }
        records.push(RunRecord {
            machine: machine.clone(),
            commit,
            scenario: "svc".into(),
            point: "n=1".into(),
            params_json: "{\"n\":1}".into(),
            status: RunStatus::Ok,
            error: None,
            repetitions: 5,
            harness_version: "0.1.0".into(),
            toolchain: "test".into(),
            environment: Default::default(),
            command_line: "test".into(),
            started_unix: 0.0,
            finished_unix: 1.0,
            metrics,
            samples: vec![],
            phases: vec![],
        });
    }
    store.record_all(&records).unwrap();
    (db, shas)
}

/// Every page of `expected` (a render from nothing) is in `site` with the
/// same bytes.
fn assert_same_pages(site: &Path, expected: &Path) {
    for f in files(expected) {
        let rel = f.strip_prefix(expected).unwrap();
        if rel.starts_with(".cache") {
            continue;
        }
        let got = std::fs::read(site.join(rel)).unwrap_or_default();
        assert!(
            got == std::fs::read(&f).unwrap(),
            "{} differs",
            rel.display()
        );
    }
}

#[test]
fn run_levels_kept_between_renders_make_the_same_pages_and_a_damaged_or_foreign_cache_is_read_again()
 {
    let repo = repo_with(&[("README", "levels\n")]);
    let d = repo.path();
    let (db300, _) = long_history(d, 300, 0);
    let (db301, _) = long_history(d, 301, 0);
    let (other, _) = long_history(d, 301, 1);
    let site = d.join("site");
    let first = render(d, &db300, &site);
    assert_eq!(first["read_runs"], 300, "{first}");
    let again = render(d, &db300, &site);
    assert_eq!(
        (again["read_runs"].as_u64(), again["written"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
    // One more commit: only its run's values are read, and the pages are
    // those of a render from nothing.
    let next = render(d, &db301, &site);
    assert_eq!(next["read_runs"], 1, "{next}");
    let fresh = d.join("fresh");
    assert_eq!(render(d, &db301, &fresh)["read_runs"], 301);
    assert_same_pages(&site, &fresh);
    // Damaged (cut short mid-record, one byte changed, not the format):
    // the runs it no longer vouches for are read again, and it is whole
    // again after.
    let cache = site.join(".cache/run-levels");
    let bytes = std::fs::read(&cache).unwrap();
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 3] ^= 0x10;
    for damaged in [
        bytes[..bytes.len() / 2].to_vec(),
        flipped,
        b"not levels".to_vec(),
    ] {
        std::fs::write(&cache, &damaged).unwrap();
        let r = render(d, &db301, &site);
        assert_eq!(r["written"], 0, "{r}");
        assert!(r["read_runs"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(render(d, &db301, &site)["read_runs"], 0);
    }
    // The newest run deleted and the point measured again: SQLite gives
    // the new run the same id, and its start time tells it apart.
    let again = d.join("again.sqlite");
    std::fs::copy(&db301, &again).unwrap();
    {
        let c = rusqlite::Connection::open(&again).unwrap();
        let id: i64 = c
            .query_row("SELECT max(id) FROM runs", [], |r| r.get(0))
            .unwrap();
        c.execute_batch(&format!(
            "CREATE TEMP TABLE r AS SELECT * FROM runs WHERE id = {id};
             CREATE TEMP TABLE m AS SELECT * FROM measurements WHERE run_id = {id};
             DELETE FROM measurements WHERE run_id = {id};
             DELETE FROM runs WHERE id = {id};
             UPDATE temp.r SET started_unix = started_unix + 60, finished_unix = finished_unix + 60;
             UPDATE temp.m SET value = value * 3;
             INSERT INTO runs SELECT * FROM temp.r;
             INSERT INTO measurements SELECT * FROM temp.m;"
        ))
        .unwrap();
    }
    let r = render(d, &again, &site);
    assert_eq!(r["read_runs"], 1, "{r}");
    let fresh_again = d.join("fresh-again");
    render(d, &again, &fresh_again);
    assert_same_pages(&site, &fresh_again);
    // Another database, the same run ids: its runs are all read, and its
    // pages show its own values (and units).
    let r = render(d, &other, &site);
    assert_eq!(r["read_runs"], 301, "{r}");
    let fresh_other = d.join("fresh-other");
    render(d, &other, &fresh_other);
    assert_same_pages(&site, &fresh_other);
}

#[test]
fn the_landing_page_compare_page_and_a_long_history_work_in_a_real_browser() {
    if !have_browser() {
        return;
    }
    let repo = repo_with(&[("README", "a long history\n")]);
    let (db, shas) = long_history(repo.path(), 900, 0);
    let out = repo.path().join("site");
    let r = render(repo.path(), &db, &out);
    assert!(r["searched_windows"].as_u64().unwrap() > 0, "{r}");
    // Rendered again with nothing new: every window's splits are cached.
    let again = render(repo.path(), &db, &out);
    assert_eq!(again["searched_windows"], 0, "{again}");
    assert_eq!(again["written"], 0, "{again}");
    // The cache is only a shortcut: without it, or damaged, the same pages.
    std::fs::remove_dir_all(out.join(".cache")).unwrap();
    let cold = render(repo.path(), &db, &out);
    assert_eq!(
        (cold["written"].as_u64(), cold["searched_windows"].as_u64()),
        (Some(0), r["searched_windows"].as_u64()),
        "{cold}"
    );
    std::fs::write(
        out.join(".cache/change-point-splits"),
        "syncbench split cache 1\n0 1\nzz\n",
    )
    .unwrap();
    assert_eq!(render(repo.path(), &db, &out)["written"], 0);
    // A commit page left unrendered because nothing it shows changed is
    // still rendered when its file is gone.
    std::fs::remove_file(out.join(format!("runs/{}.html", shas[5]))).unwrap();
    let again = render(repo.path(), &db, &out);
    assert_eq!(
        (again["written"].as_u64(), again["pages"].as_u64()),
        (Some(1), r["pages"].as_u64()),
        "{again}"
    );
    assert_eq!(again["bytes"], r["bytes"], "{again}");
    let browser = Driver::start(Path::new("/usr/bin/chromedriver"));
    let short = |i: usize| shas[i][..10].to_owned();

    // What changed, first: both old steps, each with its commit range,
    // above the grouped tables, which start within one 1280×800 screen.
    browser.open(&out.join("index.html"));
    let index = browser.eval(PROBE);
    assert_eq!(index["errors"], json!([]), "{index}");
    assert_eq!(index["external"], json!([]), "{index}");
    let text = index["text"].as_str().unwrap();
    for (i, change) in [(100, "+20."), (150, "-30.")] {
        let range = format!("{}..{}", short(i - 1), short(i));
        assert!(text.contains(&range), "{range} in {text}");
        assert!(text.contains(change), "{change} in {text}");
    }
    assert!(text.contains(" ns\t"), "nanoseconds in human units: {text}");
    let top = browser.eval(
        "window.resizeTo(1280, 800);
         return document.getElementById('series').getBoundingClientRect().top;",
    );
    assert!(
        top.as_f64().unwrap() < 800.0,
        "grouped tables start at {top}"
    );

    // Filters live in the URL: set one, and the same URL opens filtered.
    let hash = browser.eval(
        "var t = document.getElementById('f-metric'); t.value = 'peak';
         t.dispatchEvent(new Event('input'));
         return location.hash;",
    );
    assert_eq!(hash, json!("#metric=peak"));
    let visible = "return [document.getElementById('f-metric').value,
        document.querySelectorAll('table.group tr[data-metric]:not([hidden])').length,
        document.querySelectorAll('table.changes tr[data-metric]:not([hidden])').length];";
    assert_eq!(browser.eval(visible), json!(["peak", 1, 1]));
    browser.open_url(&format!(
        "file://{}#metric=wall",
        out.join("index.html").display()
    ));
    assert_eq!(browser.eval(visible), json!(["wall", 1, 1]));

    // The series page names the step 800 commits back, its dots are
    // reachable from the keyboard, and every value is one click away.
    browser.open(&out.join(series_href(&browser, "wall")));
    let page = browser.eval(PROBE);
    assert_eq!(page["errors"], json!([]), "{page}");
    assert_eq!(page["title"], json!("svc n=1 wall · syncbench"));
    let text = page["text"].as_str().unwrap();
    assert!(text.contains(&short(100)), "the step at commit 100: {text}");
    let moved = browser.eval(
        "var dots = document.querySelectorAll('svg.trend .dots a');
         dots[0].focus();
         var first = document.activeElement === dots[0];
         dots[0].dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true}));
         return [dots.length, first, Array.prototype.indexOf.call(dots, document.activeElement)];",
    );
    assert_eq!(moved, json!([432, true, 1]), "a dot per two pixel columns");
    let values = browser.eval(
        "return Array.prototype.filter.call(document.querySelectorAll('a'), function (a) { return a.textContent === 'one per commit'; })[0].getAttribute('href');",
    );
    let values =
        std::fs::read_to_string(out.join("series").join(values.as_str().unwrap())).unwrap();
    let lines: Vec<&str> = values.lines().collect();
    assert_eq!((lines.len(), lines[0]), (901, "value (s)"));
    let at = |i: usize| lines[i + 1].parse::<f64>().unwrap();
    assert!(at(99) < 0.102 && at(100) > 0.118, "{} {}", at(99), at(100));
    let commits = std::fs::read_to_string(out.join("data/commits.csv")).unwrap();
    assert_eq!(
        commits.lines().nth(101).unwrap().split(',').next().unwrap(),
        shas[100]
    );

    // The comparison either side of the step: sorted by significance, the
    // regressions-only toggle hides the rest, and it lives in the URL.
    let compare = out.join(format!("compare/{}..{}.html", shas[99], shas[100]));
    browser.open(&compare);
    let rows = "return Array.prototype.filter.call(document.querySelectorAll('#rows tr[data-verdict]'),
        function (r) { return !r.hidden; }).map(function (r) { return r.dataset.verdict + ' ' + r.dataset.text; });";
    let all = browser.eval(rows);
    assert_eq!(all[0], json!("regression svc n=1 wall"), "{all}");
    assert!(all.as_array().unwrap().len() >= 6, "{all}");
    let toggled = browser
        .eval("var r = document.getElementById('f-regressions'); r.click(); return location.hash;");
    assert_eq!(toggled, json!("#regressions"));
    assert_eq!(browser.eval(rows), json!(["regression svc n=1 wall"]));
    browser.open_url(&format!("file://{}#regressions", compare.display()));
    assert_eq!(browser.eval(rows), json!(["regression svc n=1 wall"]));
    assert_eq!(browser.eval(PROBE)["errors"], json!([]));

    // Odd series render without a broken chart: no NaN or infinity in
    // any page's markup.
    for p in files(&out) {
        if p.extension().is_some_and(|e| e == "html") {
            let html = std::fs::read_to_string(&p).unwrap();
            assert!(
                !html.contains("NaN") && !html.contains("inf\""),
                "{}",
                p.display()
            );
        }
    }
}
