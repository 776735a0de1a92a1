//! Everything the pages are made from, read in a few bulk queries, and
//! the change points of every series (in parallel: the part of a render
//! that costs).

use super::{Options, SiteError, anchor};
use std::collections::{BTreeMap, HashMap};
use syncbench_analysis::changepoint::SplitCache;
use syncbench_analysis::history::{ChangePoint, History, Noise, SeriesHistory, Threshold};
use syncbench_analysis::profile::ProfileDiff;
use syncbench_model::Confirmation;
use syncbench_model::scenario::ThresholdBook;
use syncbench_model::{PointKey, SeriesKey, Unit, absolute_floor, is_informational};
use syncbench_store::{AbRecord, ConfirmationKey, ConfirmationRow, TriageRecord};
use syncbench_store::{CommitRow, CommitRun, Store};

pub(super) struct Data {
    /// The runs of the commits on the line (all of them outside a
    /// repository).
    pub history: History,
    /// Runs of commits off the line (amended or rebased away): on their
    /// commit pages, marked, and nowhere else.
    pub off_line: Vec<CommitRun>,
    pub commits: HashMap<String, CommitRow>,
    /// Fingerprint → a short description.
    pub machines: BTreeMap<String, String>,
    /// Change points of every series but the harness's own.
    pub steps: BTreeMap<SeriesKey, Vec<ChangePoint>>,
    /// The threshold in force for each of those series, and whether it
    /// counts work exactly (its steps need no confirming).
    pub thresholds: BTreeMap<SeriesKey, (Threshold, bool)>,
    /// Each of those series' own noise, where it has enough history.
    pub noise: BTreeMap<SeriesKey, Noise>,
    /// Which change points `confirm` measured again.
    confirmations: HashMap<ConfirmationKey, ConfirmationRow>,
    /// People's decisions about alarms, oldest first.
    pub triages: Vec<TriageRecord>,
    /// Stored A/B runs, oldest first.
    pub ab_runs: Vec<AbRecord>,
    /// Windows searched because no earlier render had (the rest came
    /// from the cache).
    pub searched: usize,
    /// Runs whose values were read because no earlier render kept their
    /// levels.
    pub read_runs: usize,
    /// The run of a point at a commit, as an index into `history.runs`.
    run_at: HashMap<(PointKey, String), usize>,
    /// Stored `syncbench profile` comparisons, by (scenario, point, base,
    /// new): instruction counts hardly depend on the machine, so any
    /// machine's explains a change.
    pub profiles: BTreeMap<(String, String, String, String), ProfileDiff>,
}

pub(super) fn load(store: &Store, opts: &Options) -> Result<Data, SiteError> {
    let t0 = std::time::Instant::now();
    let (history, off_line, read) =
        super::levels::history(store, &opts.out, opts.on_line.as_deref())?;
    // Commits name pages (`runs/{sha}.html`): a store's value that is not
    // a sha is refused here, by name, before any page is made of it
    // (`Writer::page` refuses an unsafe path whatever built it).
    for sha in history.order.iter().chain(off_line.iter().map(|r| &r.sha)) {
        syncbench_store::checked_sha(&"the results database", "a commit", sha.clone())?;
    }
    tracing::debug!(
        "history loaded ({read} runs' values read): {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let commits = store
        .commits()?
        .into_iter()
        .map(|c| (c.sha.clone(), c))
        .collect();
    let machines = store
        .machines()?
        .into_iter()
        .map(|m| {
            // A machine's tag, where it has one, is how people know it.
            let label = format!(
                "{}{}, {} cores, {}, {}",
                m.tag.map_or(String::new(), |t| format!("{t}: ")),
                m.cpu,
                m.cores,
                Unit::Bytes.human(m.memory_bytes as f64),
                m.os
            );
            (m.fingerprint, label)
        })
        .collect();
    let run_at = history
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.key.clone(), r.sha.clone()), i))
        .collect();
    let cache_file = opts.out.join(SPLIT_CACHE);
    // Only a shortcut: unreadable, it is empty; a render that cannot
    // save it is still whole.
    let cache = SplitCache::from_text(&std::fs::read_to_string(&cache_file).unwrap_or_default());
    let (steps, thresholds, noise) = change_points(&history, &opts.min_effect, opts.window, &cache);
    if let Err(e) = crate::write_atomically(&cache_file, cache.to_text().as_bytes()) {
        tracing::warn!("could not save {}: {e}", cache_file.display());
    }
    let confirmations = store
        .confirmations()?
        .into_iter()
        .map(|r| (r.key.clone(), r))
        .collect();
    let mut profiles = BTreeMap::new();
    for p in store.profiles()? {
        // Their commits name pages too (`profile/{base}..{new}-…`).
        for sha in [&p.base_sha, &p.new_sha] {
            syncbench_store::checked_sha(
                &"the results database",
                "a profile's commit",
                sha.clone(),
            )?;
        }
        match serde_json::from_str::<ProfileDiff>(&p.diff) {
            Ok(d) => {
                profiles.insert((p.scenario, p.point, p.base_sha, p.new_sha), d);
            }
            // A newer harness's format: its page is for that harness.
            Err(e) => tracing::warn!(
                "a stored profile of {} {} is unreadable: {e}",
                p.scenario,
                p.point
            ),
        }
    }
    Ok(Data {
        history,
        off_line,
        commits,
        machines,
        steps,
        thresholds,
        noise,
        confirmations,
        triages: store.triages()?,
        ab_runs: store.ab_runs()?,
        searched: cache.searched(),
        read_runs: read,
        run_at,
        profiles,
    })
}

type Found = (
    BTreeMap<SeriesKey, Vec<ChangePoint>>,
    BTreeMap<SeriesKey, (Threshold, bool)>,
    BTreeMap<SeriesKey, Noise>,
);

/// Where the splits of the change point search are kept between renders,
/// in the site's folder.
pub(super) const SPLIT_CACHE: &str = ".cache/change-point-splits";

/// Change points of every series over its whole history, at the threshold
/// in force for each (`book`), the work split over the cores.
fn change_points(
    history: &History,
    book: &ThresholdBook,
    search_window: usize,
    cache: &SplitCache,
) -> Found {
    // The search's own floor, so the reach of every test is the same.
    let window = search_window.max(8);
    let work: Vec<(&SeriesKey, &SeriesHistory)> = history
        .series
        .iter()
        .filter(|(k, _)| !is_informational(&k.metric))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = work.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(k, s)| {
                            let splits = s.splits(window, Some(cache));
                            let noise = s.noise_with(&splits);
                            let threshold = syncbench_analysis::history::threshold(
                                book,
                                &k.scenario,
                                &k.metric,
                                noise,
                            );
                            let floor = absolute_floor(&k.metric);
                            let exact = book.is_exact(&k.scenario, &k.metric);
                            let steps =
                                s.change_points(&splits, search_window, &threshold, floor, exact);
                            ((*k).clone(), steps, (threshold, exact), noise)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut found: Found = Default::default();
        for (k, steps, threshold, noise) in handles
            .into_iter()
            .flat_map(|h| h.join().expect("change point search panicked"))
        {
            found.1.insert(k.clone(), threshold);
            if let Some(noise) = noise {
                found.2.insert(k.clone(), noise);
            }
            found.0.insert(k, steps);
        }
        found
    })
}

impl Data {
    /// How many commits the history has.
    pub fn len(&self) -> usize {
        self.history.order.len()
    }

    pub fn commit(&self, sha: &str) -> Option<&CommitRow> {
        self.commits.get(sha)
    }

    pub fn subject(&self, sha: &str) -> String {
        self.commit(sha)
            .map_or(String::new(), |c| c.subject.clone())
    }

    pub fn run_at(&self, key: &PointKey, sha: &str) -> Option<&CommitRun> {
        self.run_at
            .get(&(key.clone(), sha.to_owned()))
            .map(|&i| &self.history.runs[i])
    }

    /// Whether the commit has runs (and so a page and comparisons).
    pub fn measured(&self, sha: &str) -> bool {
        self.history.runs.iter().any(|r| r.sha == sha)
    }

    /// The stored profile of a point between two commits, if any.
    pub fn profile(
        &self,
        scenario: &str,
        point: &str,
        base: &str,
        new: &str,
    ) -> Option<&ProfileDiff> {
        self.profiles.get(&(
            scenario.to_owned(),
            point.to_owned(),
            base.to_owned(),
            new.to_owned(),
        ))
    }

    /// Where a change point of a series stands: exact counts need no
    /// confirming (`None`), others are as `confirm` left them.
    pub fn confirmation(
        &self,
        k: &SeriesKey,
        cp: &ChangePoint,
        exact: bool,
    ) -> Option<Confirmation> {
        if exact {
            return None;
        }
        Some(
            self.confirmation_row(k, cp)
                .map_or(Confirmation::Unconfirmed, |r| r.state),
        )
    }

    /// A confirmed change point's size as the interleaved run measured it
    /// (what is shown as its size once there is one).
    pub fn measured_size(
        &self,
        k: &SeriesKey,
        cp: &ChangePoint,
    ) -> Option<syncbench_analysis::history::Measured> {
        syncbench_analysis::alarms::measured(self.confirmation_row(k, cp)?, &self.ab_runs)
    }

    fn confirmation_row(&self, k: &SeriesKey, cp: &ChangePoint) -> Option<&ConfirmationRow> {
        self.confirmations.get(&ConfirmationKey {
            machine: k.machine.clone(),
            scenario: k.scenario.clone(),
            point: k.point.clone(),
            metric: k.metric.clone(),
            before_sha: self.history.order[cp.before_index].clone(),
            sha: self.history.order[cp.index].clone(),
        })
    }

    /// The link to a point's run on its commit's page.
    pub fn run_href(&self, root: &str, sha: &str, key: &PointKey) -> String {
        match self.run_at(key, sha) {
            Some(r) => format!("{root}runs/{sha}.html#{}", anchor(r.id)),
            None => format!("{root}runs/{sha}.html"),
        }
    }
}

/// The point a series belongs to.
pub(super) fn point_of(k: &SeriesKey) -> PointKey {
    PointKey {
        machine: k.machine.clone(),
        scenario: k.scenario.clone(),
        point: k.point.clone(),
    }
}
