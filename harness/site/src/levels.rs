//! The history a render starts from, with the levels of runs kept in the
//! site's `.cache/run-levels` between renders: a render reads the values
//! of the runs it has not seen (and of those its pages show), not every
//! value of the history. At 10,000 commits × 500 series × 5 repetitions
//! that is one file of a few numbers per run and metric instead of 25
//! million rows, most of a re-render's time.
//!
//! Runs are immutable once stored (the store writes a run and its values
//! in one transaction and never changes them), so a run's levels are
//! kept under its id and identity (machine, scenario, point, commit,
//! status, start time): a run of another database, or one stored again
//! under a reused id, is read again. Values edited in place by hand are
//! not noticed: the README says to delete `.cache/` after that.
//!
//! The file is appended to: a header, then records of a kind byte, the
//! payload's length, the payload and a checksum of all three. A metric
//! record names metric `i` (its unit, direction, name); a run record
//! holds a run's id, identity and `(metric, level, min, max, spread)` per
//! metric. Reading stops at the first record that does not check out
//! (those after it are read again from the store); the file is then
//! written again whole.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use syncbench_analysis::history::{History, RunLevel, RunLevels};
use syncbench_model::{Direction, RunStatus, Unit};
use syncbench_store::{CommitRun, Store, StoreError};

pub(super) const LEVEL_CACHE: &str = ".cache/run-levels";

/// The format: bump its number with any change to the records or to
/// what a level is (`analysis::level`, `RunLevels::add`), so that no
/// site keeps levels computed the old way.
const MAGIC: &[u8; 8] = b"SBLEVEL2";
const METRIC: u8 = 1;
const RUN: u8 = 2;
/// Bytes of one metric in a run record.
const ENTRY: usize = 4 + 4 * 8;

/// The history of the stored runs of commits `on_line` accepts (HEAD's
/// first-parent line), its series from kept levels where they match.
/// Returns it, the runs of the other commits (amended or rebased away:
/// their pages only) and how many runs' values had to be read.
pub(super) fn history(
    store: &Store,
    out: &Path,
    on_line: Option<&dyn Fn(&str) -> bool>,
) -> Result<(History, Vec<CommitRun>, usize), StoreError> {
    let path = out.join(LEVEL_CACHE);
    let runs = store.commit_runs()?;
    let mut kept = Kept::read(&path);
    let missing: Vec<i64> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Ok && kept.identities.get(&r.id) != Some(&identity(r)))
        .map(|r| r.id)
        .collect();
    let metrics = store.values(&missing)?;
    let metrics_before = kept.levels.metrics.len();
    for &id in &missing {
        kept.levels
            .add(id, metrics.get(&id).map_or(&[][..], Vec::as_slice));
    }
    // Only a shortcut: a render that cannot save it is still whole.
    let live: HashMap<i64, u64> = runs.iter().map(|r| (r.id, identity(r))).collect();
    if let Err(e) = kept.save(&path, &live, &missing, metrics_before) {
        tracing::warn!("could not save {}: {e}", path.display());
    }
    let read = missing.len();
    let (runs, off_line) = split_by_line(runs, on_line);
    Ok((History::build(runs, &kept.levels, metrics), off_line, read))
}

/// The runs of commits on the line, and the others. A store none of whose
/// commits is on the line is another history's (a `--db` of another
/// project, read from inside this one): all of it is kept, as outside a
/// repository.
fn split_by_line(
    runs: Vec<CommitRun>,
    on_line: Option<&dyn Fn(&str) -> bool>,
) -> (Vec<CommitRun>, Vec<CommitRun>) {
    let Some(on_line) = on_line else {
        return (runs, Vec::new());
    };
    let mut verdicts: HashMap<&str, bool> = HashMap::new();
    for r in &runs {
        verdicts.entry(&r.sha).or_insert_with(|| on_line(&r.sha));
    }
    if !verdicts.is_empty() && !verdicts.values().any(|&on| on) {
        tracing::warn!(
            "no commit of the results database is on HEAD's first-parent line: \
             showing every commit (is the database of another repository?)"
        );
        return (runs, Vec::new());
    }
    let on: std::collections::HashSet<String> = verdicts
        .into_iter()
        .filter(|&(_, on)| on)
        .map(|(sha, _)| sha.to_owned())
        .collect();
    runs.into_iter().partition(|r| on.contains(&r.sha))
}

/// What identifies a run: its id alone could be reused by another
/// database (or by SQLite, for the newest id, after a deletion).
fn identity(r: &CommitRun) -> u64 {
    let text = format!(
        "{}\0{}\0{}\0{}\0{}\0{}\0{:x}",
        r.id,
        r.key.machine,
        r.key.scenario,
        r.key.point,
        r.sha,
        r.status.as_str(),
        r.started_unix.to_bits()
    );
    syncbench_model::hash::fnv1a(text.as_bytes())
}

/// The levels in the cache file, as read.
#[derive(Default)]
struct Kept {
    levels: RunLevels,
    identities: HashMap<i64, u64>,
    /// The file is whole and of this harness, so records can be appended.
    appendable: bool,
    /// Its length as read: another render's write since then means
    /// writing it whole instead of appending.
    len: u64,
}

impl Kept {
    fn read(path: &Path) -> Kept {
        let mut kept = Kept::default();
        let Ok(bytes) = std::fs::read(path) else {
            return kept;
        };
        kept.len = bytes.len() as u64;
        let Some(mut rest) = bytes.strip_prefix(&header()[..]) else {
            return kept;
        };
        while !rest.is_empty() {
            let Some((kind, payload, after)) = record(rest) else {
                return kept;
            };
            let whole = match kind {
                METRIC => kept.metric(payload),
                RUN => kept.run(payload),
                _ => false,
            };
            if !whole {
                return kept;
            }
            rest = after;
        }
        kept.appendable = true;
        kept
    }

    fn metric(&mut self, payload: &[u8]) -> bool {
        let Some((id, rest)) = u32_at(payload) else {
            return false;
        };
        let mut fields = rest.splitn(3, |&b| b == 0);
        let (Some(unit), Some(direction), Some(name)) = (
            fields.next().and_then(text).and_then(Unit::parse),
            fields.next().and_then(text).and_then(Direction::parse),
            fields.next().and_then(text),
        ) else {
            return false;
        };
        // Metrics are numbered in the order they are written.
        id as usize == self.levels.metrics.len() && self.levels.metric(name, unit, direction) == id
    }

    fn run(&mut self, payload: &[u8]) -> bool {
        if payload.len() < 16 || !(payload.len() - 16).is_multiple_of(ENTRY) {
            return false;
        }
        let id = i64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
        let identity = u64::from_le_bytes(payload[8..16].try_into().expect("8 bytes"));
        let f =
            |b: &[u8], at: usize| f64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let mut levels = Vec::with_capacity((payload.len() - 16) / ENTRY);
        for e in payload[16..].chunks_exact(ENTRY) {
            let metric = u32::from_le_bytes(e[..4].try_into().expect("4 bytes"));
            if metric as usize >= self.levels.metrics.len() {
                return false;
            }
            levels.push(RunLevel {
                metric,
                level: f(e, 4),
                min: f(e, 12),
                max: f(e, 20),
                spread: f(e, 28),
            });
        }
        self.levels.runs.insert(id, levels);
        self.identities.insert(id, identity);
        true
    }

    /// Appends the runs `added` (and the metrics from `metrics_before` on)
    /// when the file is whole and holds nothing but `live` runs; else
    /// writes it again with the `live` ones only.
    fn save(
        &self,
        path: &Path,
        live: &HashMap<i64, u64>,
        added: &[i64],
        metrics_before: usize,
    ) -> std::io::Result<()> {
        let stale = self
            .identities
            .iter()
            .any(|(id, i)| live.get(id) != Some(i));
        if self.appendable && !stale {
            if added.is_empty() && metrics_before == self.levels.metrics.len() {
                return Ok(());
            }
            let mut bytes = Vec::new();
            self.encode(&mut bytes, metrics_before, added.iter().copied(), live);
            // A render killed midway leaves a record cut short: the next
            // one reads up to it and writes the file again.
            let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
            if file.metadata()?.len() == self.len {
                return file.write_all(&bytes);
            }
        }
        let mut bytes = header().to_vec();
        let mut ids: Vec<i64> = live
            .keys()
            .copied()
            .filter(|id| self.levels.runs.contains_key(id))
            .collect();
        ids.sort_unstable();
        self.encode(&mut bytes, 0, ids.into_iter(), live);
        crate::write_atomically(path, &bytes)
    }

    fn encode(
        &self,
        out: &mut Vec<u8>,
        metrics_from: usize,
        runs: impl Iterator<Item = i64>,
        live: &HashMap<i64, u64>,
    ) {
        let mut payload = Vec::new();
        for (i, m) in self.levels.metrics.iter().enumerate().skip(metrics_from) {
            payload.clear();
            payload.extend((i as u32).to_le_bytes());
            for part in [m.unit.as_str(), m.direction.as_str(), &m.name] {
                payload.extend(part.as_bytes());
                payload.push(0);
            }
            payload.pop();
            push_record(out, METRIC, &payload);
        }
        for id in runs {
            let Some(levels) = self.levels.runs.get(&id) else {
                continue;
            };
            payload.clear();
            payload.extend(id.to_le_bytes());
            payload.extend(live[&id].to_le_bytes());
            for l in levels {
                payload.extend(l.metric.to_le_bytes());
                for v in [l.level, l.min, l.max, l.spread] {
                    payload.extend(v.to_le_bytes());
                }
            }
            push_record(out, RUN, &payload);
        }
    }
}

/// The file's first bytes: another format, or another harness (whose
/// levels may be defined differently), is not read.
fn header() -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(
        &syncbench_model::hash::fnv1a(env!("CARGO_PKG_VERSION").as_bytes()).to_le_bytes(),
    );
    h
}

fn push_record(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let start = out.len();
    out.push(kind);
    out.extend((payload.len() as u32).to_le_bytes());
    out.extend(payload);
    let sum = syncbench_model::hash::hash_words(&out[start..]);
    out.extend(sum.to_le_bytes());
}

/// The record at the start of `bytes` if it is whole and checks out:
/// (kind, payload, the bytes after it).
fn record(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&kind, rest) = bytes.split_first()?;
    let (len, rest) = u32_at(rest)?;
    let len = len as usize;
    if len.checked_add(8).is_none_or(|whole| rest.len() < whole) {
        return None;
    }
    let (payload, rest) = rest.split_at(len);
    let (sum, rest) = rest.split_at(8);
    let summed = &bytes[..5 + len];
    (syncbench_model::hash::hash_words(summed).to_le_bytes() == sum)
        .then_some((kind, payload, rest))
}

fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

fn u32_at(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncbench_model::PointKey;

    fn run(id: i64, sha: &str) -> CommitRun {
        CommitRun {
            id,
            key: PointKey {
                machine: "m".into(),
                scenario: "s".into(),
                point: "p".into(),
            },
            params: "{}".into(),
            sha: sha.into(),
            time_unix: id,
            parents: vec![],
            status: RunStatus::Ok,
            error: None,
            dirty: false,
            started_unix: 0.0,
            environment: String::new(),
        }
    }

    #[test]
    fn runs_off_the_line_are_set_apart_unless_none_is_on_it() {
        let runs = || vec![run(1, "a"), run(2, "b"), run(3, "gone"), run(4, "b")];
        let on = |s: &str| s != "gone";
        let (kept, off) = split_by_line(runs(), Some(&on));
        assert_eq!(kept.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2, 4]);
        assert_eq!(off.iter().map(|r| r.id).collect::<Vec<_>>(), [3]);
        // Outside a repository, every run.
        assert_eq!(split_by_line(runs(), None).0.len(), 4);
        // Another history's database: nothing of it is on this line.
        let (kept, off) = split_by_line(runs(), Some(&|_: &str| false));
        assert_eq!((kept.len(), off.len()), (4, 0));
    }
}
