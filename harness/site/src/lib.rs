//! `syncbench report`: the results database as a static HTML site,
//! readable from a local folder or any file server, offline. By page:
//! `data.rs` loads everything in a few bulk queries and finds the change
//! points; `series.rs` renders a trend page per series (and the index's
//! tiles), `run.rs` a page per commit, `compare.rs` comparisons,
//! `index.rs` the index, `profile.rs` the function-level instruction
//! comparisons `syncbench profile` stored. Templates and the stylesheet live in
//! `reports/templates` and are compiled into the binary; charts are
//! inline SVG (`chart.rs`).
//!
//! Incremental: every page is rendered, but a file is only written when
//! its bytes changed, so a re-render after one new commit rewrites the
//! pages that show it and leaves the rest (and their timestamps) alone.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod chart;
mod compare;
mod data;
mod index;
mod levels;
mod profile;
mod run;
mod series;
mod variants;

use minijinja::Environment;
use serde::Serialize;
use std::path::{Path, PathBuf};
use syncbench_model::SeriesKey;
use syncbench_model::scenario::ThresholdBook;
use syncbench_store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("template")]
    Template(#[from] minijinja::Error),
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no commit {0:?} in the results database")]
    UnknownCommit(String),
    #[error(
        "commit {0} is not on HEAD's first-parent line (amended or rebased away): the dashboard compares the branch's commits only (`syncbench compare` compares any two)"
    )]
    NotOnBranch(String),
    #[error(
        "refusing to write {0:?}: a page's path is made of commit shas and safe names only (is a commit in the results database not a sha?)"
    )]
    UnsafePath(String),
}

/// What to render.
pub struct Options {
    pub out: PathBuf,
    /// Change points are searched over each series' whole history in
    /// overlapping windows of this many values (E-Divisive is quadratic
    /// in the length it looks at).
    pub window: usize,
    /// Smallest change of level marked, per scenario and metric.
    pub min_effect: ThresholdBook,
    /// Thresholds of comparisons, per scenario and metric.
    pub thresholds: ThresholdBook,
    /// Extra comparison pages, as (base, new) commit prefixes.
    pub compare: Vec<(String, String)>,
    /// Whether a commit (full sha) is on the line the history follows
    /// (HEAD's first-parent line: `env::Line`); `None` outside a
    /// repository, where every commit is. Runs of the others (amended or
    /// rebased away) keep their commit page, marked, and are out of every
    /// series, change point, comparison and the index.
    pub on_line: Option<OnLine>,
}

/// Whether a commit (full sha) is on the line a history follows.
pub type OnLine = Box<dyn Fn(&str) -> bool>;

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("out", &self.out)
            .field("window", &self.window)
            .field("min_effect", &self.min_effect)
            .field("thresholds", &self.thresholds)
            .field("compare", &self.compare)
            .field("on_line", &self.on_line.as_ref().map(|_| "…"))
            .finish()
    }
}

/// What a render did.
#[derive(Debug, Clone, Serialize)]
pub struct Rendered {
    pub index: PathBuf,
    pub pages: usize,
    /// Files written because they were new or changed.
    pub written: usize,
    pub bytes: u64,
    /// Comparison pages, for links from CI summaries.
    pub compare_pages: Vec<PathBuf>,
    /// Windows of the change point search searched in this render (the
    /// others were cached by an earlier one).
    pub searched_windows: usize,
    /// Runs read for their levels because no earlier render kept them
    /// (the values behind the pages rendered are read besides).
    pub read_runs: usize,
}

const STYLE: &str = include_str!("../../../reports/style.css");

const TEMPLATES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../../reports/templates/base.html"),
    ),
    (
        "index.html",
        include_str!("../../../reports/templates/index.html"),
    ),
    (
        "series.html",
        include_str!("../../../reports/templates/series.html"),
    ),
    (
        "run.html",
        include_str!("../../../reports/templates/run.html"),
    ),
    (
        "compare.html",
        include_str!("../../../reports/templates/compare.html"),
    ),
    (
        "variants.html",
        include_str!("../../../reports/templates/variants.html"),
    ),
    (
        "profile.html",
        include_str!("../../../reports/templates/profile.html"),
    ),
];

pub fn render(store: &Store, opts: &Options) -> Result<Rendered, SiteError> {
    let t0 = std::time::Instant::now();
    let mut data = data::load(store, opts)?;
    // Where a render's time goes (SYNCBENCH_LOG=debug).
    let lap = |stage: &str| tracing::debug!("{stage}: {:.2} s", t0.elapsed().as_secs_f64());
    lap("loaded, change points found");
    let env = environment()?;
    let mut w = Writer {
        out: opts.out.clone(),
        pages: 0,
        written: 0,
        bytes: 0,
        seen: Default::default(),
    };
    let pairs = compare::pairs(&data, opts)?;
    // The values behind the comparisons and the commit pages to render (a
    // history from kept levels has only those of runs new to it).
    let compared: std::collections::HashSet<&str> = pairs
        .all
        .iter()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    let mut ids: Vec<i64> = data
        .history
        .runs
        .iter()
        .filter(|r| r.status == syncbench_model::RunStatus::Ok && compared.contains(r.sha.as_str()))
        .map(|r| r.id)
        .collect();
    let commit_pages = run::plan(&data, &opts.out);
    ids.extend(commit_pages.iter().flat_map(|p| p.runs_to_show(&data)));
    let missing = data.history.missing_values(ids);
    data.history.metrics.extend(store.values(&missing)?);
    let (rows, alarms) = series::render_all(&data, &pairs, &env, &mut w)?;
    lap("series pages");
    run::render_all(store, &data, &commit_pages, &env, &mut w)?;
    lap("commit pages");
    let compare_pages = compare::render_all(&data, opts, &pairs, &env, &mut w)?;
    lap("comparison pages");
    profile::render_all(&data, &env, &mut w)?;
    let variant_pages = variants::render_all(&data, &env, &mut w)?;
    let index = index::render(&data, (rows, alarms), &variant_pages, &env, &mut w)?;
    w.page("style.css", STYLE)?;
    let pruned = w.prune()?;
    if pruned > 0 {
        tracing::info!("removed {pruned} page(s) of results no longer stored");
    }
    Ok(Rendered {
        index,
        pages: w.pages,
        written: w.written,
        bytes: w.bytes,
        compare_pages,
        searched_windows: data.searched,
        read_runs: data.read_runs,
    })
}

fn environment() -> Result<Environment<'static>, SiteError> {
    let mut env = Environment::new();
    // Escapes what HTML needs (& < > " '), not the '/' minijinja's default
    // also escapes: links are most of the markup, and 5 bytes per slash
    // made the site a sixth bigger.
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(text) if !value.is_safe() => out.write_str(&chart::esc(text)).map_err(Into::into),
        _ => minijinja::escape_formatter(out, state, value),
    });
    for (name, src) in TEMPLATES {
        env.add_template(name, src)?;
    }
    Ok(env)
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}

pub fn date(unix: i64) -> String {
    // Days since the epoch to a civil date (Howard Hinnant's algorithm):
    // a dependency on chrono for one format would cost more than this.
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// A file name part made of safe characters only.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_matches('.')
        .to_owned()
}

fn series_file(k: &SeriesKey) -> String {
    let full = format!("{}\0{}\0{}\0{}", k.machine, k.scenario, k.point, k.metric);
    let h = fnv1a(full.as_bytes());
    // Scenario and metric name it for people; the hash (of machine,
    // scenario, point and metric) makes it unique. The point stays out:
    // these names appear in every link, and links are most of the bytes.
    format!(
        "series/{}-{}-{h:08x}.html",
        slug(&k.scenario).chars().take(24).collect::<String>(),
        slug(&k.metric)
    )
}

/// The anchor of a scenario point's table on the index.
fn group_anchor(k: &syncbench_model::PointKey) -> String {
    let h = fnv1a(format!("{}\0{}\0{}", k.machine, k.scenario, k.point).as_bytes());
    format!("p{h:08x}")
}

/// The page of a stored profile, relative to the site's root.
fn profile_file(scenario: &str, point: &str, base: &str, new: &str) -> String {
    let h = fnv1a(format!("{scenario}\0{point}").as_bytes());
    format!(
        "profile/{}..{}-{}-{h:08x}.html",
        short(base),
        short(new),
        slug(scenario).chars().take(24).collect::<String>()
    )
}

/// A hash of the templates and the stylesheet compiled into this binary:
/// a page left by another build is rendered again.
fn templates_hash() -> u64 {
    static HASH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HASH.get_or_init(|| {
        let all: String = TEMPLATES
            .iter()
            .flat_map(|(name, src)| [*name, *src])
            .chain([STYLE, env!("CARGO_PKG_VERSION")])
            .collect();
        syncbench_model::hash::fnv1a(all.as_bytes())
    })
}

/// FNV-1a: a stable short hash to keep file names unique; not security.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

/// A machine's short id for pages: its fingerprint is a long description.
fn machine_id(fingerprint: &str) -> String {
    format!("m{:08x}", fnv1a(fingerprint.as_bytes()))
}

/// The anchor of a run's section on its commit page (short: every dot of
/// a trend links to one).
fn anchor(run_id: i64) -> String {
    format!("r{run_id}")
}

fn pct(change: f64) -> String {
    format!("{:+.1}%", change * 100.0)
}

/// Whether `rel` names a file inside the site: `/`-separated names of
/// ASCII letters, digits, `-`, `_` and `.`, none empty, `.` or `..` (what
/// slugs, hashes and commit shas are made of). Every page is written
/// through [`Writer::page`], so no stored value names a file outside
/// `--out`, whichever path builder it went through.
fn is_safe_page(rel: &str) -> bool {
    rel.split('/').all(|part| {
        !matches!(part, "" | "." | "..")
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    })
}

struct Writer {
    out: PathBuf,
    pages: usize,
    written: usize,
    bytes: u64,
    /// Every page of this render, written or kept: what is not among them
    /// in the folders of generated pages is stale (`prune`).
    seen: std::collections::HashSet<String>,
}

impl Writer {
    /// A writer into the same folder for another thread; its counts are
    /// added back by [`Writer::join`].
    fn fork(&self) -> Writer {
        Writer {
            out: self.out.clone(),
            pages: 0,
            written: 0,
            bytes: 0,
            seen: Default::default(),
        }
    }

    fn join(&mut self, other: Writer) {
        self.pages += other.pages;
        self.written += other.written;
        self.bytes += other.bytes;
        self.seen.extend(other.seen);
    }

    /// Counts a page as rendered without rendering it: the one on disk
    /// was made from the same inputs.
    fn kept(&mut self, rel: &str, bytes: u64) {
        self.pages += 1;
        self.bytes += bytes;
        self.seen.insert(rel.to_owned());
    }

    /// Removes the pages of series and commits no longer in the store (a
    /// scenario forgotten, a commit's runs forgotten) from the folders
    /// whose every page a render writes; the index would no longer link
    /// them, but a bookmark or a search would still find them. Comparison
    /// and profile pages are left: `--compare` adds them on request.
    fn prune(&self) -> Result<usize, SiteError> {
        let mut removed = 0;
        for dir in ["series", "runs", "data"] {
            let Ok(entries) = std::fs::read_dir(self.out.join(dir)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let rel = format!("{dir}/{name}");
                let ours = name.ends_with(".html") || name.ends_with(".csv");
                if ours && !self.seen.contains(&rel) && e.path().is_file() {
                    std::fs::remove_file(e.path()).map_err(|source| SiteError::Write {
                        path: e.path(),
                        source,
                    })?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Writes `rel` unless it already holds exactly these bytes; `rel`
    /// is checked to stay inside the site whatever the store held.
    fn page(&mut self, rel: &str, html: &str) -> Result<PathBuf, SiteError> {
        if !is_safe_page(rel) {
            return Err(SiteError::UnsafePath(rel.to_owned()));
        }
        let path = self.out.join(rel);
        self.pages += 1;
        self.bytes += html.len() as u64;
        self.seen.insert(rel.to_owned());
        let err = |source| SiteError::Write {
            path: path.clone(),
            source,
        };
        if std::fs::read(&path).is_ok_and(|old| old == html.as_bytes()) {
            return Ok(path);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        std::fs::write(&path, html).map_err(err)?;
        self.written += 1;
        Ok(path)
    }
}

/// Writes `bytes` to `path` whole or not at all: into a file of this
/// process beside it, then renamed over it (a process killed midway, or
/// another writing the same path, leaves a whole file).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_slugs() {
        assert_eq!(date(0), "1970-01-01 00:00 UTC");
        assert_eq!(date(1_751_364_000), "2025-07-01 10:00 UTC");
        assert_eq!(slug("size=10KiB,mode=<x>"), "size_10KiB_mode__x_");
        assert_eq!(slug("../.."), "_");
    }

    #[test]
    fn pages_stay_inside_the_site() {
        let sha = "0123456789abcdef".repeat(4);
        let k = SeriesKey {
            machine: "m".into(),
            scenario: "../../s c".into(),
            point: "p".into(),
            metric: "/etc/x".into(),
        };
        for ok in [
            format!("runs/{}.html", &sha[..40]),
            format!("compare/{}..{}.html", &sha[..40], &sha[..40]),
            series_file(&k),
            profile_file("../s", "p", &sha, &sha),
            "data/commits.csv".into(),
            "style.css".into(),
        ] {
            assert!(is_safe_page(&ok), "{ok}");
        }
        for bad in [
            "runs/../../x.html",
            "../x.html",
            "/etc/passwd",
            "runs//x.html",
            "runs/./x.html",
            "runs/x y.html",
            "runs/x\\..\\y.html",
            "",
        ] {
            assert!(!is_safe_page(bad), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer {
            out: dir.path().join("site"),
            pages: 0,
            written: 0,
            bytes: 0,
            seen: Default::default(),
        };
        assert!(matches!(
            w.page("runs/../../x.html", "x"),
            Err(SiteError::UnsafePath(_))
        ));
        assert!(!dir.path().join("x.html").exists());
    }
}
