//! `syncbench report`: the results database as a static HTML site (index,
//! one page per series, one per commit, comparisons), readable from a
//! local folder or any file server, offline. Templates and the stylesheet
//! live in `reports/templates` and are compiled into the binary; charts
//! are inline SVG (`chart.rs`).
//!
//! Incremental: every page is rendered, but a file is only written when
//! its bytes changed, so a re-render after one new commit rewrites the
//! pages that show it and leaves the rest (and their timestamps) alone.

use crate::analysis;
use crate::changepoint;
use crate::chart::{self, Marker, TrendPoint};
use crate::metric::{Direction, Series, Unit};
use crate::report;
use crate::stats;
use crate::store::{Store, StoreError};
use minijinja::{Environment, context};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("results database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("template {0}")]
    Template(#[from] minijinja::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no commit {0:?} in the results database")]
    UnknownCommit(String),
}

/// What to render.
pub struct Options<'a> {
    pub out: PathBuf,
    /// Change points are searched in the last this many commits of each
    /// series (E-Divisive is quadratic in the series length).
    pub window: usize,
    /// Smallest change of level reported for (scenario, metric).
    pub min_effect: &'a dyn Fn(&str, &str) -> f64,
    /// Thresholds per metric for comparisons, per scenario.
    pub thresholds: &'a dyn Fn(&str) -> BTreeMap<String, f64>,
    /// Extra comparison pages, as (base, new) commit prefixes.
    pub compare: Vec<(String, String)>,
}

impl std::fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("out", &self.out)
            .field("window", &self.window)
            .field("compare", &self.compare)
            .finish_non_exhaustive()
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
}

/// Commits, newest first, that get a page comparing them with their parent.
const COMPARE_RECENT: usize = 30;

const STYLE: &str = include_str!("../../reports/style.css");

const TEMPLATES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../reports/templates/base.html"),
    ),
    (
        "index.html",
        include_str!("../../reports/templates/index.html"),
    ),
    (
        "series.html",
        include_str!("../../reports/templates/series.html"),
    ),
    ("run.html", include_str!("../../reports/templates/run.html")),
    (
        "compare.html",
        include_str!("../../reports/templates/compare.html"),
    ),
];

#[derive(Debug, Clone)]
struct CommitInfo {
    sha: String,
    parents: Vec<String>,
    author: String,
    time_unix: i64,
    subject: String,
}

#[derive(Debug, Clone)]
struct RunInfo {
    id: i64,
    machine: String,
    scenario: String,
    point: String,
    sha: String,
    status: String,
    error: Option<String>,
    /// Measured on a working tree with uncommitted changes.
    dirty: bool,
}

/// A series: machine × scenario point × metric.
type SeriesKey = (String, String, String, String);

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}

fn date(unix: i64) -> String {
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
    let full = format!("{}\0{}\0{}\0{}", k.0, k.1, k.2, k.3);
    let h = fnv1a(full.as_bytes());
    // Scenario and metric name it for people; the hash (of machine,
    // scenario, point and metric) makes it unique. The point stays out:
    // these names appear in every link, and links are most of the bytes.
    format!(
        "series/{}-{}-{h:08x}.html",
        slug(&k.1).chars().take(24).collect::<String>(),
        slug(&k.3)
    )
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

struct Writer {
    out: PathBuf,
    pages: usize,
    written: usize,
    bytes: u64,
}

impl Writer {
    /// Writes `rel` unless it already holds exactly these bytes.
    fn page(&mut self, rel: &str, html: &str) -> Result<PathBuf, SiteError> {
        let path = self.out.join(rel);
        self.pages += 1;
        self.bytes += html.len() as u64;
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

fn better(d: Direction) -> &'static str {
    match d {
        Direction::LowerIsBetter => "lower is better",
        Direction::HigherIsBetter => "higher is better",
    }
}

fn unit_name(u: Unit) -> &'static str {
    match u {
        Unit::Seconds => "seconds",
        Unit::Bytes => "bytes",
        Unit::MegabytesPerSecond => "MB/s",
        Unit::OpsPerSecond => "operations per second",
        Unit::Percent => "percent of one core",
        Unit::Count => "counts",
    }
}

fn pct(change: f64) -> String {
    format!("{:+.1}%", change * 100.0)
}

/// Everything the pages are made from, read in a few bulk queries.
struct Data {
    commits: HashMap<String, CommitInfo>,
    /// Commits with runs, in history order.
    order: Vec<String>,
    runs: Vec<RunInfo>,
    metrics: HashMap<i64, Vec<Series>>,
    machines: BTreeMap<String, String>,
}

fn load(store: &Store) -> Result<Data, SiteError> {
    let c = store.connection();
    let mut commits = HashMap::new();
    for row in c
        .prepare("SELECT sha, parents, author, time_unix, subject FROM commits")?
        .query_map([], |r| {
            Ok(CommitInfo {
                sha: r.get(0)?,
                parents: r
                    .get::<_, String>(1)?
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                author: r.get(2)?,
                time_unix: r.get(3)?,
                subject: r.get(4)?,
            })
        })?
    {
        let row = row?;
        commits.insert(row.sha.clone(), row);
    }
    let mut machines = BTreeMap::new();
    for row in c
        .prepare("SELECT fingerprint, cpu, cores, memory_bytes, os FROM machines")?
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                format!(
                    "{}, {} cores, {}, {}",
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    Unit::Bytes.human(r.get::<_, i64>(3)? as f64),
                    r.get::<_, String>(4)?
                ),
            ))
        })?
    {
        let (k, v) = row?;
        machines.insert(k, v);
    }
    // The newest run per machine, scenario point and commit; a clean run
    // (of the commit as committed) wins over one of a dirty working tree.
    let mut newest: HashMap<(String, String, String, String), RunInfo> = HashMap::new();
    for row in c
        .prepare(
            "SELECT r.id, m.fingerprint, r.scenario, r.point, r.commit_sha, r.status, r.error, r.dirty
             FROM runs r JOIN machines m ON m.id = r.machine_id ORDER BY r.dirty DESC, r.id",
        )?
        .query_map([], |r| {
            Ok(RunInfo {
                id: r.get(0)?,
                machine: r.get(1)?,
                scenario: r.get(2)?,
                point: r.get(3)?,
                sha: r.get(4)?,
                status: r.get(5)?,
                error: r.get(6)?,
                dirty: r.get(7)?,
            })
        })?
    {
        let run = row?;
        let key = (run.machine.clone(), run.scenario.clone(), run.point.clone(), run.sha.clone());
        // A later ok run replaces anything; a failure does not hide an ok.
        match newest.get(&key) {
            Some(old) if old.status == "ok" && run.status != "ok" && old.dirty == run.dirty => {}
            _ => {
                newest.insert(key, run);
            }
        }
    }
    let mut runs: Vec<RunInfo> = newest.into_values().collect();
    runs.sort_by_key(|r| r.id);
    let ok: HashSet<i64> = runs
        .iter()
        .filter(|r| r.status == "ok")
        .map(|r| r.id)
        .collect();
    let mut metrics: HashMap<i64, Vec<Series>> = HashMap::new();
    let mut stmt = c.prepare(
        "SELECT ms.run_id, mt.name, mt.unit, mt.direction, ms.value FROM measurements ms
         JOIN metrics mt ON mt.id = ms.metric_id ORDER BY ms.run_id, mt.name, ms.repetition",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let run: i64 = r.get(0)?;
        if !ok.contains(&run) {
            continue;
        }
        let name: String = r.get(1)?;
        let list = metrics.entry(run).or_default();
        if list.last().is_none_or(|m| m.name != name) {
            let unit: String = r.get(2)?;
            let dir: String = r.get(3)?;
            list.push(Series {
                name,
                unit: Unit::parse(&unit).unwrap_or(Unit::Count),
                direction: Direction::parse(&dir).unwrap_or(Direction::LowerIsBetter),
                values: Vec::new(),
            });
        }
        list.last_mut().expect("pushed").values.push(r.get(4)?);
    }
    let with_runs: HashSet<&str> = runs.iter().map(|r| r.sha.as_str()).collect();
    let mut order: Vec<&CommitInfo> = commits
        .values()
        .filter(|c| with_runs.contains(c.sha.as_str()))
        .collect();
    analysis::sort_history(&mut order, |c| &c.sha, |c| &c.parents, |c| c.time_unix);
    let order = order.into_iter().map(|c| c.sha.clone()).collect();
    Ok(Data {
        commits,
        order,
        runs,
        metrics,
        machines,
    })
}

/// One series' values over the ordered commits.
struct SeriesData {
    unit: Unit,
    direction: Direction,
    /// Per commit index: (level, min, max).
    points: Vec<Option<(f64, f64, f64)>>,
    /// Commit indexes where the point's run failed.
    failed: HashSet<usize>,
    steps: Vec<changepoint::Step>,
    /// Commit indexes of the values the steps index into.
    present: Vec<usize>,
}

pub fn render(store: &Store, opts: &Options) -> Result<Rendered, SiteError> {
    let data = load(store)?;
    let position: HashMap<&str, usize> = data
        .order
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let n = data.order.len();

    let mut series: BTreeMap<SeriesKey, SeriesData> = BTreeMap::new();
    let mut failures: HashMap<(String, String, String), HashSet<usize>> = HashMap::new();
    for run in &data.runs {
        let Some(&i) = position.get(run.sha.as_str()) else {
            continue;
        };
        if run.status != "ok" {
            failures
                .entry((run.machine.clone(), run.scenario.clone(), run.point.clone()))
                .or_default()
                .insert(i);
            continue;
        }
        for m in data.metrics.get(&run.id).into_iter().flatten() {
            let key = (
                run.machine.clone(),
                run.scenario.clone(),
                run.point.clone(),
                m.name.clone(),
            );
            let s = series.entry(key).or_insert_with(|| SeriesData {
                unit: m.unit,
                direction: m.direction,
                points: vec![None; n],
                failed: HashSet::new(),
                steps: Vec::new(),
                present: Vec::new(),
            });
            let (lo, hi) = m
                .values
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            s.points[i] = Some((analysis::level(m), lo, hi));
        }
    }
    for (k, s) in series.iter_mut() {
        if let Some(f) = failures.get(&(k.0.clone(), k.1.clone(), k.2.clone())) {
            s.failed = f.clone();
        }
    }
    // Change points, in parallel: the part of the render that costs.
    let window = opts.window;
    let work: Vec<(f64, &mut SeriesData)> = series
        .iter_mut()
        .filter(|(k, _)| !k.3.starts_with("harness."))
        .map(|(k, s)| ((opts.min_effect)(&k.1, &k.3), s))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = work.len().div_ceil(threads).max(1);
    let mut work = work;
    std::thread::scope(|scope| {
        for part in work.chunks_mut(chunk) {
            scope.spawn(move || {
                for (min_effect, s) in part.iter_mut() {
                    let present: Vec<usize> = (0..s.points.len())
                        .filter(|&i| s.points[i].is_some())
                        .collect();
                    let from = present.len().saturating_sub(window);
                    let present = present[from..].to_vec();
                    let values: Vec<f64> = present
                        .iter()
                        .map(|&i| s.points[i].expect("present").0)
                        .collect();
                    s.steps = changepoint::steps(&values, *min_effect);
                    s.present = present;
                }
            });
        }
    });

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
    let mut w = Writer {
        out: opts.out.clone(),
        pages: 0,
        written: 0,
        bytes: 0,
    };
    let commit = |sha: &str| data.commits.get(sha);
    let subject = |sha: &str| commit(sha).map_or(String::new(), |c| c.subject.clone());
    let run_at: HashMap<(&str, &str, &str, &str), &RunInfo> = data
        .runs
        .iter()
        .map(|r| {
            (
                (
                    r.machine.as_str(),
                    r.scenario.as_str(),
                    r.point.as_str(),
                    r.sha.as_str(),
                ),
                r,
            )
        })
        .collect();
    let run_href = |root: &str, sha: &str, scenario: &str, point: &str, machine: &str| match run_at
        .get(&(machine, scenario, point, sha))
    {
        Some(r) => format!("{root}runs/{sha}.html#{}", anchor(r.id)),
        None => format!("{root}runs/{sha}.html"),
    };

    // Series pages and index tiles.
    #[derive(Serialize)]
    struct Tile {
        href: String,
        machine: String,
        machine_short: String,
        scenario: String,
        point: String,
        metric: String,
        better: &'static str,
        latest: String,
        latest_sha: String,
        change: String,
        change_class: &'static str,
        flag: &'static str,
        flag_label: String,
        sparkline: String,
        rank: (u8, i64),
    }
    let mut tiles = Vec::new();
    for (k, s) in &series {
        let file = series_file(k);
        let mut markers = Vec::new();
        let mut changes = Vec::new();
        for st in &s.steps {
            let i = s.present[st.index];
            let regression = match s.direction {
                Direction::LowerIsBetter => st.change > 0.0,
                Direction::HigherIsBetter => st.change < 0.0,
            };
            markers.push(Marker {
                index: i,
                label: pct(st.change),
                regression,
            });
            let sha = &data.order[i];
            let before = s.points[s.present[st.index - 1]].map_or(f64::NAN, |p| p.0);
            changes.push(context! {
                href => run_href("../", sha, &k.1, &k.2, &k.0),
                short => short(sha),
                subject => subject(sha),
                label => pct(st.change),
                class => if regression { "up" } else { "down" },
                before => s.unit.human(before),
                after => s.unit.human(s.points[i].map_or(f64::NAN, |p| p.0)),
                confidence => format!("{:.1}%", (1.0 - st.p_value) * 100.0),
            });
        }
        let points: Vec<TrendPoint> = (0..n)
            .map(|i| {
                let sha = &data.order[i];
                let c = commit(sha);
                let (level, min, max) = match s.points[i] {
                    Some((l, a, b)) => (Some(l), a, b),
                    None => (None, 0.0, 0.0),
                };
                let failed = s.failed.contains(&i);
                let value = match level {
                    Some(v) => s.unit.human(v),
                    None if failed => "failed".into(),
                    None => "no value".into(),
                };
                TrendPoint {
                    level,
                    min,
                    max,
                    title: format!(
                        "{} {}\n{}\n{}",
                        short(sha),
                        c.map_or("", |c| c.subject.as_str()),
                        c.map_or(String::new(), |c| date(c.time_unix)),
                        value
                    ),
                    href: run_href("../", sha, &k.1, &k.2, &k.0),
                    failed,
                }
            })
            .collect();
        let label_every = n.div_ceil(8).max(1);
        let x_labels: Vec<(usize, String)> = (0..n)
            .filter(|i| i % label_every == 0 || *i == n - 1)
            .map(|i| {
                (
                    i,
                    short(&data.order[i])[..7.min(short(&data.order[i]).len())].to_owned(),
                )
            })
            .collect();
        let present: Vec<usize> = (0..n).filter(|&i| s.points[i].is_some()).collect();
        let recent: Vec<_> = present
            .iter()
            .rev()
            .take(15)
            .map(|&i| {
                let sha = &data.order[i];
                let (l, a, b) = s.points[i].expect("present");
                context! {
                    href => run_href("../", sha, &k.1, &k.2, &k.0),
                    short => short(sha),
                    date => commit(sha).map_or(String::new(), |c| date(c.time_unix)),
                    subject => subject(sha),
                    value => s.unit.human(l),
                    range => format!("{} – {}", s.unit.human(a), s.unit.human(b)),
                }
            })
            .collect();
        let html = env.get_template("series.html")?.render(context! {
            root => "../",
            scenario => &k.1,
            point => &k.2,
            metric => &k.3,
            machine_short => machine_id(&k.0),
            machine_label => data.machines.get(&k.0),
            better => better(s.direction),
            unit => unit_name(s.unit),
            window => (n > opts.window).then_some(opts.window),
            chart => chart::trend(&points, &markers, s.unit, &x_labels),
            changes => changes,
            recent => recent,
        })?;
        w.page(&file, &html)?;

        let Some(&last) = present.last() else {
            continue;
        };
        let latest = s.points[last].expect("present").0;
        let prev = present
            .iter()
            .rev()
            .nth(1)
            .map(|&i| s.points[i].expect("present").0);
        let change = prev.filter(|p| *p != 0.0).map(|p| (latest - p) / p.abs());
        let worse = |c: f64| match s.direction {
            Direction::LowerIsBetter => c > 0.0,
            Direction::HigherIsBetter => c < 0.0,
        };
        let last_step = s.steps.last();
        let (flag, flag_label) = match last_step {
            Some(st) if worse(st.change) => ("regression", pct(st.change)),
            Some(st) => ("improvement", pct(st.change)),
            None => ("", String::new()),
        };
        let spark: Vec<Option<f64>> = s.points[n.saturating_sub(60)..]
            .iter()
            .map(|p| p.map(|p| p.0))
            .collect();
        tiles.push(Tile {
            href: file,
            machine: machine_id(&k.0),
            machine_short: machine_id(&k.0),
            scenario: k.1.clone(),
            point: k.2.clone(),
            metric: k.3.clone(),
            better: better(s.direction),
            latest: s.unit.human(latest),
            latest_sha: short(&data.order[last]).to_owned(),
            change: change.map_or(String::new(), pct),
            change_class: match change {
                Some(c) if c.abs() < 0.005 => "flat",
                Some(c) if worse(c) => "up",
                Some(_) => "down",
                None => "flat",
            },
            flag,
            flag_label,
            sparkline: chart::sparkline(&spark),
            rank: (
                match flag {
                    "regression" => 0,
                    "improvement" => 1,
                    _ if k.3.starts_with("harness.") => 3,
                    _ => 2,
                },
                -(last_step.map_or(0, |st| s.present[st.index] as i64)),
            ),
        });
    }
    tiles.sort_by(|a, b| {
        a.rank.cmp(&b.rank).then_with(|| {
            (&a.scenario, &a.point, &a.metric).cmp(&(&b.scenario, &b.point, &b.metric))
        })
    });

    // One page per commit: every run at it, with metrics and resources.
    let mut by_commit: BTreeMap<&str, Vec<&RunInfo>> = BTreeMap::new();
    for r in &data.runs {
        by_commit.entry(&r.sha).or_default().push(r);
    }
    let mut samples_stmt = store.connection().prepare(
        "SELECT process, t_ms, cpu_pct, rss_bytes FROM samples WHERE run_id = ?1 AND repetition =
           (SELECT min(repetition) FROM samples WHERE run_id = ?1) ORDER BY process, t_ms",
    )?;
    let mut phases_stmt = store.connection().prepare(
        "SELECT name, start_ms, end_ms FROM phases WHERE run_id = ?1 AND repetition =
           (SELECT min(repetition) FROM samples WHERE run_id = ?1) ORDER BY start_ms",
    )?;
    let colors = ["#2f6fb3", "#d9822b", "#2a8a4a", "#8e44ad"];
    for (sha, runs) in &by_commit {
        let c = commit(sha);
        let mut sections = Vec::new();
        for r in runs {
            let mut processes: Vec<(String, chart::Samples)> = Vec::new();
            let mut rows = samples_stmt.query([r.id])?;
            while let Some(row) = rows.next()? {
                let name: String = row.get(0)?;
                if processes.last().is_none_or(|p| p.0 != name) {
                    processes.push((name, Vec::new()));
                }
                let rss: i64 = row.get(3)?;
                processes.last_mut().expect("pushed").1.push((
                    row.get(1)?,
                    row.get(2)?,
                    rss as f64,
                ));
            }
            let phases: Vec<(String, f64, f64)> = phases_stmt
                .query_map([r.id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<Result<_, _>>()?;
            let metrics: Vec<_> = data
                .metrics
                .get(&r.id)
                .into_iter()
                .flatten()
                .map(|m| {
                    let key = (r.machine.clone(), r.scenario.clone(), r.point.clone(), m.name.clone());
                    context! {
                        name => &m.name,
                        href => series.contains_key(&key).then(|| format!("../{}", series_file(&key))),
                        median => m.unit.human(stats::median(&m.values)),
                        values => m.values.iter().map(|v| m.unit.human(*v)).collect::<Vec<_>>().join(", "),
                    }
                })
                .collect();
            sections.push(context! {
                anchor => anchor(r.id),
                scenario => &r.scenario,
                point => &r.point,
                status => if r.dirty { format!("{} (uncommitted changes)", r.status) } else { r.status.clone() },
                machine_short => machine_id(&r.machine),
                error => &r.error,
                repetition => 1,
                chart => (!processes.is_empty()).then(|| chart::resources(&processes, &phases)),
                processes => processes.iter().enumerate().map(|(k, p)| context! { name => &p.0, color => colors[k % 4] }).collect::<Vec<_>>(),
                metrics => metrics,
            });
        }
        let parent = c
            .and_then(|c| c.parents.first())
            .filter(|p| by_commit.contains_key(p.as_str()));
        let html = env.get_template("run.html")?.render(context! {
            root => "../",
            sha => sha,
            short => short(sha),
            subject => c.map_or("", |c| c.subject.as_str()),
            author => c.map_or("", |c| c.author.as_str()),
            date => c.map_or(String::new(), |c| date(c.time_unix)),
            parent => parent,
            parent_href => parent.map(|p| format!("{p}.html")),
            compare_href => parent
                .filter(|_| data.order.iter().rev().take(COMPARE_RECENT).any(|s| s == sha))
                .map(|p| format!("../compare/{p}..{sha}.html")),
            runs => sections,
        })?;
        w.page(&format!("runs/{sha}.html"), &html)?;
    }

    // Comparisons: the newest commits with their parents, and those asked
    // for. Each is computed from the data in memory; one page per commit
    // of a long history would double the site for pages rarely opened.
    let resolve = |prefix: &str| -> Result<String, SiteError> {
        let found: Vec<&String> = data
            .order
            .iter()
            .filter(|s| s.starts_with(prefix))
            .collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(SiteError::UnknownCommit(prefix.to_owned())),
        }
    };
    let mut asked = Vec::new();
    for (a, b) in &opts.compare {
        asked.push((resolve(a)?, resolve(b)?));
    }
    let mut pairs: Vec<(String, String)> = asked.clone();
    for sha in data.order.iter().rev().take(COMPARE_RECENT) {
        if let Some(p) = commit(sha)
            .and_then(|c| c.parents.first())
            .filter(|p| by_commit.contains_key(p.as_str()))
        {
            let pair = (p.clone(), sha.clone());
            if !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
    }
    let no_series = Vec::new();
    let mut compare_pages = Vec::new();
    for (base, new) in &pairs {
        let mut groups = Vec::new();
        for r in data
            .runs
            .iter()
            .filter(|r| &r.sha == new && r.status == "ok")
        {
            let Some(base_run) = run_at
                .get(&(
                    r.machine.as_str(),
                    r.scenario.as_str(),
                    r.point.as_str(),
                    base.as_str(),
                ))
                .filter(|b| b.status == "ok")
            else {
                continue;
            };
            let rows = report::rows(
                data.metrics.get(&r.id).unwrap_or(&no_series),
                data.metrics.get(&base_run.id).unwrap_or(&no_series),
                &(opts.thresholds)(&r.scenario),
            );
            groups.push(context! {
                scenario => &r.scenario,
                point => &r.point,
                machine_short => machine_id(&r.machine),
                rows => rows.iter().map(|r| {
                    let unit = Unit::parse(r.unit).unwrap_or(Unit::Count);
                    context! {
                        metric => &r.metric,
                        base => r.baseline_median.map_or("–".into(), |v| unit.human(v)),
                        new => unit.human(r.median),
                        change => r.change_pct.map_or(String::new(), |c| format!("{c:+.1}%")),
                        verdict => r.verdict,
                        class => match r.verdict { "regression" => "up", "improvement" => "down", _ => "flat" },
                    }
                }).collect::<Vec<_>>(),
            });
        }
        let html = env.get_template("compare.html")?.render(context! {
            root => "../",
            base_short => short(base),
            new_short => short(new),
            base_href => format!("../runs/{base}.html"),
            base_subject => subject(base),
            new_subject => subject(new),
            groups => groups,
        })?;
        let path = w.page(&format!("compare/{base}..{new}.html"), &html)?;
        if asked.contains(&(base.clone(), new.clone())) {
            compare_pages.push(path);
        }
    }

    let mut scenarios: Vec<&String> = series.keys().map(|k| &k.1).collect();
    scenarios.dedup();
    let html = env.get_template("index.html")?.render(context! {
        root => "",
        series => tiles,
        commits => n,
        rendered => data.order.last().map_or(String::new(), |s| format!("latest commit {}", short(s))),
        machines => data.machines.iter().map(|(id, label)| context! { id => machine_id(id), label => label }).collect::<Vec<_>>(),
        scenarios => scenarios,
    })?;
    let index = w.page("index.html", &html)?;
    w.page("style.css", STYLE)?;
    Ok(Rendered {
        index,
        pages: w.pages,
        written: w.written,
        bytes: w.bytes,
        compare_pages,
    })
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
}
