//! A page per commit: every run at it, with its metrics and the CPU and
//! memory curves of its first repetition.

use super::chart;
use super::compare::COMPARE_RECENT;
use super::data::Data;
use super::{SiteError, Writer, anchor, date, group_anchor, machine_id, series_file, short};
use minijinja::{Environment, Value, context};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use syncbench_model::{RunStatus, Unit};
use syncbench_store::{CommitRun, Store};

/// The legend's colours: those of `.c0`–`.c3` in reports/style.css.
const COLORS: [&str; 4] = ["#3b7dd8", "#e08a2e", "#2f9a55", "#9b59c0"];

/// A commit page to render, or to keep as it is on disk.
pub(super) struct CommitPage {
    sha: String,
    /// Its runs, as indexes for [`run_of`].
    runs: Vec<usize>,
    /// Not on the line the history follows (amended or rebased away).
    off_line: bool,
    parent: Option<String>,
    recent: bool,
    fingerprint: u64,
    /// Its size, when the page on disk was made from the same inputs.
    kept: Option<u64>,
}

impl CommitPage {
    /// The runs whose values rendering it needs (none if it is kept).
    pub fn runs_to_show<'a>(&'a self, data: &'a Data) -> impl Iterator<Item = i64> + 'a {
        self.runs
            .iter()
            .map(|&i| run_of(data, i))
            .filter(|r| self.kept.is_none() && r.status == RunStatus::Ok)
            .map(|r| r.id)
    }
}

/// Run `i` of those with a page: the history's, then those of commits
/// off its line.
fn run_of(data: &Data, i: usize) -> &CommitRun {
    let n = data.history.runs.len();
    if i < n {
        &data.history.runs[i]
    } else {
        &data.off_line[i - n]
    }
}

/// Every commit's page, and whether the one on disk can stay.
pub(super) fn plan(data: &Data, out: &std::path::Path) -> Vec<CommitPage> {
    let mut by_commit: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in data.history.runs.iter().chain(&data.off_line).enumerate() {
        by_commit.entry(&r.sha).or_default().push(i);
    }
    let off_line: std::collections::HashSet<&str> =
        data.off_line.iter().map(|r| r.sha.as_str()).collect();
    let recent: std::collections::HashSet<&str> = data
        .history
        .order
        .iter()
        .rev()
        .take(COMPARE_RECENT)
        .map(String::as_str)
        .collect();
    let known = load_fingerprints(&out.join(PAGE_CACHE));
    by_commit
        .iter()
        .map(|(&sha, runs)| {
            let parent = data
                .commit(sha)
                .and_then(|c| c.parents.first())
                .filter(|p| by_commit.contains_key(p.as_str()));
            let recent = recent.contains(sha);
            let off_line = off_line.contains(sha);
            // A commit page shows its commit and runs (immutable once
            // stored), its parent's link, whether it is on the line and,
            // while recent, the comparison's: when none of that nor the
            // templates changed, the page on disk is it.
            let shown: Vec<&CommitRun> = runs.iter().map(|&i| run_of(data, i)).collect();
            let fingerprint =
                fingerprint(sha, &shown, parent.map(String::as_str), recent, off_line);
            let kept = known
                .get(sha)
                .filter(|&&(f, _)| f == fingerprint)
                .filter(|_| out.join(format!("runs/{sha}.html")).is_file())
                .map(|&(_, bytes)| bytes);
            CommitPage {
                sha: sha.to_owned(),
                runs: runs.clone(),
                off_line,
                parent: parent.cloned(),
                recent,
                fingerprint,
                kept,
            }
        })
        .collect()
}

/// Renders the commit pages `plan` did not keep; the history must hold
/// the values of their runs ([`CommitPage::runs_to_show`]).
pub(super) fn render_all(
    store: &Store,
    data: &Data,
    pages: &[CommitPage],
    env: &Environment,
    w: &mut Writer,
) -> Result<(), SiteError> {
    let mut fingerprints: Vec<(String, u64, u64)> = Vec::with_capacity(pages.len());
    let none = Vec::new();
    for p in pages {
        let (sha, parent, recent) = (p.sha.as_str(), p.parent.as_ref(), p.recent);
        let runs: Vec<&CommitRun> = p.runs.iter().map(|&i| run_of(data, i)).collect();
        let file = format!("runs/{sha}.html");
        if let Some(bytes) = p.kept {
            w.kept(&file, bytes);
            fingerprints.push((sha.to_string(), p.fingerprint, bytes));
            continue;
        }
        let c = data.commit(sha);
        let values: Vec<&Vec<syncbench_model::Series>> = runs
            .iter()
            .map(|r| data.history.metrics.get(&r.id).unwrap_or(&none))
            .collect();
        let rows: usize = values.iter().map(|v| v.len()).sum();
        let detailed = rows <= DETAILED_ROWS;
        let sections = runs
            .iter()
            .zip(&values)
            .map(|(r, v)| section(store, data, r, v, detailed))
            .collect::<Result<Vec<_>, SiteError>>()?;
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
                .filter(|_| recent)
                .map(|p| format!("../compare/{p}..{sha}.html")),
            off_line => p.off_line,
            runs => sections,
        })?;
        w.page(&file, &html)?;
        fingerprints.push((sha.to_string(), p.fingerprint, html.len() as u64));
    }
    let cache_file = w.out.join(PAGE_CACHE);
    // Only a shortcut: a render that cannot save it is still whole.
    if let Err(e) = save_fingerprints(&cache_file, &fingerprints) {
        tracing::warn!("could not save {}: {e}", cache_file.display());
    }
    Ok(())
}

/// Where the fingerprints of the commit pages on disk are kept.
const PAGE_CACHE: &str = ".cache/commit-pages";

/// What a commit page is made from, hashed: the templates, the commit,
/// each run's identity and outcome, the parent's link, the comparison's,
/// whether the commit is on the line.
fn fingerprint(
    sha: &str,
    runs: &[&CommitRun],
    parent: Option<&str>,
    recent: bool,
    off_line: bool,
) -> u64 {
    let mut text = format!(
        "{}\0{sha}\0{}\0{recent}\0{off_line}",
        super::templates_hash(),
        parent.unwrap_or("")
    );
    for r in runs {
        let _ = write!(
            text,
            "\0{}\0{}\0{}\0{}\0{}\0{}\0{:?}\0{:x}",
            r.id,
            r.key.machine,
            r.key.scenario,
            r.key.point,
            r.status,
            r.dirty,
            r.error,
            r.started_unix.to_bits()
        );
    }
    syncbench_model::hash::fnv1a(text.as_bytes())
}

/// sha → (fingerprint, bytes) of the pages the last render left.
fn load_fingerprints(path: &std::path::Path) -> std::collections::HashMap<String, (u64, u64)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Default::default();
    };
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let sha = f.next()?.to_owned();
            let fingerprint = u64::from_str_radix(f.next()?, 16).ok()?;
            let bytes = f.next()?.parse().ok()?;
            Some((sha, (fingerprint, bytes)))
        })
        .collect()
}

fn save_fingerprints(path: &std::path::Path, pages: &[(String, u64, u64)]) -> std::io::Result<()> {
    let mut text = String::new();
    for (sha, f, bytes) in pages {
        let _ = writeln!(text, "{sha} {f:016x} {bytes}");
    }
    crate::write_atomically(path, text.as_bytes())
}

/// One run's section: status, error, resources chart, metrics.
fn section(
    store: &Store,
    data: &Data,
    r: &CommitRun,
    values: &[syncbench_model::Series],
    detailed: bool,
) -> Result<Value, SiteError> {
    let mut processes: Vec<(String, chart::Samples)> = Vec::new();
    for s in store.first_samples(r.id)? {
        if processes.last().is_none_or(|p| p.0 != s.process) {
            processes.push((s.process.clone(), Vec::new()));
        }
        processes
            .last_mut()
            .expect("pushed")
            .1
            .push((s.t_ms, s.cpu_pct, s.rss_bytes as f64));
    }
    let phases = store.first_phases(r.id)?;
    // The repetition drawn is the first: its values are the first ones.
    let first = |name: &str| {
        values
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.values.first().copied())
    };
    let peaks: Vec<Option<f64>> = processes
        .iter()
        .map(|(name, _)| first(&format!("{name}.peak_rss")))
        .collect();
    let sampled = Sampled::of(&processes, &peaks);
    // The sampler ran (it records its own cost) yet took no sample.
    let unsampled = processes.is_empty()
        && r.status == RunStatus::Ok
        && values.iter().any(|m| m.name == "harness.sampler_cpu");
    let too_short =
        (unsampled || sampled.too_short()).then(|| match first("wall").filter(|w| w.is_finite()) {
            Some(w) => format!("too short to sample ({:.0} ms)", w * 1000.0),
            None => "too short to sample".to_owned(),
        });
    let metrics = metric_table(data, r, values, detailed);
    let status = if r.dirty {
        format!("{} (uncommitted changes)", r.status)
    } else {
        r.status.to_string()
    };
    Ok(context! {
        anchor => anchor(r.id),
        scenario => &r.key.scenario,
        point => &r.key.point,
        status => status,
        machine_short => machine_id(&r.key.machine),
        error => &r.error,
        repetition => 1,
        too_short => too_short,
        chart => (!processes.is_empty() && too_short.is_none()).then(|| chart::resources(&processes, &phases, &peaks)),
        phases => !phases.is_empty(),
        missed => sampled.missed(&processes),
        processes => processes.iter().enumerate().map(|(k, p)| context! { name => &p.0, color => COLORS[k % 4] }).collect::<Vec<_>>(),
        metrics => metrics,
        detailed => detailed,
        group_href => format!("../index.html#{}", group_anchor(&r.key)),
    })
}

/// What the samples of a run's first repetition caught.
struct Sampled {
    /// Per process: its samples' largest RSS, and its exact peak.
    rss: Vec<(f64, Option<f64>)>,
    /// Per process, how many samples.
    counts: Vec<usize>,
}

impl Sampled {
    fn of(processes: &[(String, chart::Samples)], peaks: &[Option<f64>]) -> Sampled {
        Sampled {
            rss: processes
                .iter()
                .zip(peaks)
                .map(|((_, s), &p)| (s.iter().map(|x| x.2).fold(0.0, f64::max), p))
                .collect(),
            counts: processes.iter().map(|(_, s)| s.len()).collect(),
        }
    }

    /// No process was sampled twice: a CPU figure needs two samples (the
    /// first has none to compare with), so its chart would be empty.
    fn too_short(&self) -> bool {
        !self.counts.is_empty() && self.counts.iter().all(|&n| n < 2)
    }

    /// Where the samples stayed well below the exact peak (it fell
    /// between them): each such process, its samples' top and its peak.
    fn missed(&self, processes: &[(String, chart::Samples)]) -> Vec<String> {
        self.rss
            .iter()
            .zip(processes)
            .filter_map(|(&(seen, peak), (name, _))| {
                let peak = peak.filter(|&p| p.is_finite() && seen < MISSED * p)?;
                Some(format!(
                    "{name}: the samples reach {}, its peak_rss is {} (between samples; the dashed line)",
                    Unit::Bytes.human(seen),
                    Unit::Bytes.human(peak)
                ))
            })
            .collect()
    }
}

/// Samples whose top is below this share of the exact peak missed it.
const MISSED: f64 = 0.9;

/// A commit page lists this many metric values at most in full: with a
/// link to the series and every repetition. Beyond it, a row is the name
/// and the median: at 500 series over 10,000 commits the full rows alone
/// made the site 470 MB. Each run's heading links to its point's table on
/// the index, whose rows link to the series, and the repetitions show as
/// the band on the series page.
const DETAILED_ROWS: usize = 200;

/// A run's metrics: as table rows with name, median, a link and the
/// repetitions in the median's scale (end tags left out, as HTML allows),
/// or, not `detailed`, as aligned lines of text with name and median.
fn metric_table(
    data: &Data,
    r: &CommitRun,
    metrics: &[syncbench_model::Series],
    detailed: bool,
) -> Option<String> {
    let mut out = String::new();
    // Plain text when not detailed (escaped by the template).
    let width = metrics
        .iter()
        .map(|m| m.name.chars().count())
        .max()
        .unwrap_or(0);
    for m in metrics {
        let key = r.key.metric(&m.name);
        let median = syncbench_analysis::stats::median(&m.values);
        let name = chart::esc(&m.name);
        if !detailed {
            let _ = writeln!(out, "{:width$}  {:>9}", m.name, m.unit.human(median));
            continue;
        }
        let _ = if data.history.series.contains_key(&key) {
            write!(
                out,
                "<tr><td><a href=\"../{}\">{name}</a>",
                series_file(&key)
            )
        } else {
            write!(out, "<tr><td>{name}")
        };
        let (div, sym) = m.unit.scale(median);
        let values: Vec<String> = m
            .values
            .iter()
            .map(|v| syncbench_model::sig3(v / div))
            .collect();
        let _ = writeln!(
            out,
            "<td class=\"num\">{}<td class=\"muted\">{} {sym}",
            chart::esc(&m.unit.human(median)),
            values.join(", ")
        );
    }
    (!out.is_empty()).then_some(out)
}
