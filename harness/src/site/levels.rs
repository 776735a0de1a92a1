//! The history a render starts from, with the levels of runs kept in the
//! site's `.cache/run-levels` between renders: a render reads the values
//! of the runs it has not seen (and of those its pages show), not every
//! value of the history. At 10,000 commits × 500 series × 5 repetitions
//! that is one file of a few numbers per run and metric instead of 25
//! million rows, most of a re-render's time.
//!
//! Runs are immutable once stored (the store writes a run and its values
//! in one transaction and never changes them), so a run's levels are
//! kept under its id and identity; a run whose identity differs (another
//! database, a run rewritten by hand) is read again.
//!
//! The file is appended to: a header, then records of a kind byte, the
//! payload's length, the payload and its checksum. A metric record names
//! metric `i` (its unit, direction, name); a run record holds a run's id,
//! identity and `(metric, level, min, max, spread)` per metric. A record
//! that does not check out ends the file there; the file is then written
//! again whole from what was kept and read.

use crate::analysis::{History, RunLevel, RunLevels};
use crate::model::{Direction, RunStatus, Unit};
use crate::store::{CommitRun, Store, StoreError};
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::Path;

pub(super) const LEVEL_CACHE: &str = ".cache/run-levels";

/// Runs to read one by one (an indexed lookup each); more are read in
/// one scan of every value, as the first render does.
const ONE_BY_ONE: usize = 300;

const MAGIC: &[u8; 8] = b"SBLEVEL1";
const METRIC: u8 = 1;
const RUN: u8 = 2;
/// Bytes of one metric in a run record.
const ENTRY: usize = 4 + 4 * 8;

/// The history of every stored run, its series from kept levels where
/// they match. Returns it and how many runs' values had to be read.
pub(super) fn history(store: &Store, out: &Path) -> Result<(History, usize), StoreError> {
    let path = out.join(LEVEL_CACHE);
    let runs = store.commit_runs()?;
    let mut kept = Kept::read(&path);
    let missing: Vec<i64> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Ok && kept.identities.get(&r.id) != Some(&identity(r)))
        .map(|r| r.id)
        .collect();
    let metrics = if missing.len() > ONE_BY_ONE {
        let wanted: HashSet<i64> = missing.iter().copied().collect();
        store.all_series(&|id| wanted.contains(&id))?
    } else {
        let mut m = HashMap::new();
        for &id in &missing {
            m.insert(id, store.series(id)?);
        }
        m
    };
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
    Ok((History::build(runs, &kept.levels, metrics), read))
}

/// What identifies a run: its id alone could be reused by another
/// database (or by SQLite, for the newest id, after a deletion).
fn identity(r: &CommitRun) -> u64 {
    let text = format!(
        "{}\0{}\0{}\0{}\0{}\0{}",
        r.id,
        r.key.machine,
        r.key.scenario,
        r.key.point,
        r.sha,
        r.status.as_str()
    );
    crate::env::fnv1a(text.as_bytes())
}

/// The levels in the cache file, as read.
#[derive(Default)]
struct Kept {
    levels: RunLevels,
    identities: HashMap<i64, u64>,
    /// The file is whole and of this harness, so records can be appended.
    appendable: bool,
}

impl Kept {
    fn read(path: &Path) -> Kept {
        let mut kept = Kept::default();
        let Ok(bytes) = std::fs::read(path) else {
            return kept;
        };
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
            return file.write_all(&bytes);
        }
        let mut bytes = header().to_vec();
        let mut ids: Vec<i64> = live
            .keys()
            .copied()
            .filter(|id| self.levels.runs.contains_key(id))
            .collect();
        ids.sort_unstable();
        self.encode(&mut bytes, 0, ids.into_iter(), live);
        crate::env::write_atomically(path, &bytes)
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
    h[8..].copy_from_slice(&crate::env::fnv1a(env!("CARGO_PKG_VERSION").as_bytes()).to_le_bytes());
    h
}

fn push_record(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.push(kind);
    out.extend((payload.len() as u32).to_le_bytes());
    out.extend(payload);
    out.extend(crate::env::hash_words(payload).to_le_bytes());
}

/// The record at the start of `bytes` if it is whole and checks out:
/// (kind, payload, the bytes after it).
fn record(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&kind, rest) = bytes.split_first()?;
    let (len, rest) = u32_at(rest)?;
    let len = len as usize;
    if rest.len() < len + 8 {
        return None;
    }
    let (payload, rest) = rest.split_at(len);
    let (sum, rest) = rest.split_at(8);
    (crate::env::hash_words(payload).to_le_bytes() == sum).then_some((kind, payload, rest))
}

fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

fn u32_at(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head), rest))
}
