//! Questions asked of the stored history: how one run compares with
//! another (`rows`), which commits changed a series (`History::changes`,
//! for `regressions` and the dashboard), how two commits compare
//! (`History::compare`, for `compare`, `check` and the dashboard). Every
//! answer reads runs through the store's one definition of the run of a
//! commit.

use crate::changepoint;
use crate::stats;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use syncbench_model::records::{CommitRun, TriageRecord};
use syncbench_model::scenario::ThresholdBook;
use syncbench_model::{Direction, PointKey, RunStatus, Series, SeriesKey, Unit, Verdict};

/// One metric of a run against the same metric of a baseline run.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub metric: String,
    #[serde(serialize_with = "Unit::serialize_symbol")]
    pub unit: Unit,
    pub direction: Direction,
    pub values: Vec<f64>,
    pub median: f64,
    pub mad: f64,
    pub min: f64,
    pub max: f64,
    pub cv: f64,
    pub baseline_median: Option<f64>,
    pub change_pct: Option<f64>,
    pub p_value: Option<f64>,
    pub verdict: Verdict,
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        })
}

/// Each metric of `new` against `baseline`'s (Mann-Whitney and the
/// smallest change that counts, `min_effect(metric)`).
pub fn rows(new: &[Series], baseline: &[Series], min_effect: &dyn Fn(&str) -> f64) -> Vec<Row> {
    new.iter()
        .map(|s| {
            let base = baseline.iter().find(|b| b.name == s.name);
            let cmp = base.map(|b| {
                let mut c = stats::compare(&b.values, &s.values, min_effect(&s.name));
                // A change below the metric's absolute floor is none,
                // however large relative to a small (or zero) baseline.
                let moved = (stats::median(&s.values) - stats::median(&b.values)).abs();
                if moved < syncbench_model::absolute_floor(&s.name) {
                    c.changed = false;
                    c.too_few = false;
                }
                // One value on a side is no sample to test; only exact
                // counts (instructions under valgrind) decide from one.
                if s.unit != Unit::Count && (s.values.len() < 2 || b.values.len() < 2) {
                    c.p_value = 1.0;
                    c.changed = false;
                }
                c
            });
            let (min, max) = min_max(&s.values);
            Row {
                metric: s.name.clone(),
                unit: s.unit,
                direction: s.direction,
                values: s.values.clone(),
                median: stats::median(&s.values),
                mad: stats::mad(&s.values),
                min,
                max,
                cv: stats::cv(&s.values),
                baseline_median: base.map(|b| stats::median(&b.values)),
                change_pct: cmp.as_ref().map(|c| c.change * 100.0),
                p_value: cmp.as_ref().map(|c| c.p_value),
                verdict: match &cmp {
                    // The harness's own cost is shown, never gated on.
                    Some(_) if syncbench_model::is_informational(&s.name) => Verdict::Informational,
                    None => Verdict::NoBaseline,
                    // Not "within noise": these values cannot tell.
                    Some(c) if c.too_few => Verdict::Inconclusive,
                    Some(c) if !c.changed => Verdict::Unchanged,
                    Some(c) => Verdict::of_change(s.direction, c.change),
                },
            }
        })
        .collect()
}

/// Orders commits as history: parents before children, by commit time
/// where the stored parent links do not decide (commits made in the same
/// second are common in scripts and tests). Stable for equal keys.
pub fn sort_history<T>(
    items: &mut [T],
    sha: impl Fn(&T) -> &str,
    parents: impl Fn(&T) -> &[String],
    time: impl Fn(&T) -> i64,
) {
    let index: HashMap<&str, usize> = items.iter().enumerate().map(|(i, t)| (sha(t), i)).collect();
    let mut depth: Vec<Option<usize>> = vec![None; items.len()];
    // Iterative depth-first search: a long history must not overflow the stack.
    for start in 0..items.len() {
        let mut stack = vec![start];
        while let Some(&i) = stack.last() {
            if depth[i].is_some() {
                stack.pop();
                continue;
            }
            let ps: Vec<usize> = parents(&items[i])
                .iter()
                .filter_map(|p| index.get(p.as_str()).copied())
                .collect();
            match ps
                .iter()
                .find(|&&p| depth[p].is_none() && !stack.contains(&p))
            {
                Some(&p) => stack.push(p),
                None => {
                    depth[i] = Some(
                        ps.iter()
                            .filter_map(|&p| depth[p])
                            .map(|d| d + 1)
                            .max()
                            .unwrap_or(0),
                    );
                    stack.pop();
                }
            }
        }
    }
    let keys: HashMap<String, (i64, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, t)| (sha(t).to_owned(), (time(t), depth[i].unwrap_or(0))))
        .collect();
    items.sort_by_key(|t| keys[sha(t)]);
}

/// One commit's value in a series' history. For times the fastest
/// repetition: on a shared machine noise only ever adds time (another
/// tenant, a migration between cores), so the minimum moves with the code
/// and far less with the neighbours. Other metrics use the median.
pub fn level(s: &Series) -> f64 {
    match (s.unit, s.direction) {
        (Unit::Seconds, Direction::LowerIsBetter) => min_max(&s.values).0,
        _ => stats::median(&s.values),
    }
}

/// A series' value at one commit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// See [`level`].
    pub level: f64,
    pub min: f64,
    pub max: f64,
    /// The repetitions' spread: MAD / median (0 with one repetition).
    pub spread: f64,
    pub run_id: i64,
}

/// Where a series' threshold comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdSource {
    /// The scenario file sets it: it wins over everything.
    Scenario,
    /// An exact count: 1% (`scenario::exact_threshold`).
    Exact,
    /// From the series' own history ([`SeriesHistory::noise`]).
    Learned,
    /// Too little history to learn from: the default (`--min-change`).
    Default,
}

impl ThresholdSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdSource::Scenario => "scenario",
            ThresholdSource::Exact => "exact",
            ThresholdSource::Learned => "learned",
            ThresholdSource::Default => "default",
        }
    }
}

/// The smallest relative change of a series that counts, and why.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Threshold {
    pub value: f64,
    pub source: ThresholdSource,
}

/// A series' own noise, relative to its level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Noise {
    /// Commit to commit, where nothing changed: Q3 + 1.5 × IQR (Tukey's
    /// fence) of the relative differences between consecutive commits'
    /// levels, leaving out those across the series' change points (of any
    /// size: real steps, and the machine's level shifts). rustc-perf fences at
    /// 3 × IQR for instruction counts; for times on a shared machine that
    /// hid a +10% step (learned 7.9% where the step measured 8%), and a
    /// noisy metric's change point alarms only once confirmed anyway.
    pub commit: f64,
    /// Run to run: 3 × the median of the commits' MAD / median.
    pub run: f64,
}

/// Differences between consecutive commits (not across the series' change
/// points) needed to learn a threshold.
pub const LEARN_MIN_DIFFS: usize = 8;

/// The smallest threshold learned: below it a change is the machine's
/// resolution, whatever the series says.
pub const LEARNED_FLOOR: f64 = 0.01;

/// One series over the history's commits.
#[derive(Debug, Clone)]
pub struct SeriesHistory {
    pub unit: Unit,
    pub direction: Direction,
    /// Per commit index; a commit without a value is a gap, never a zero.
    pub levels: Vec<Option<Level>>,
    /// Commit indexes where the point's run failed.
    pub failed: HashSet<usize>,
}

/// A change of level found in a series.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePoint {
    /// The commit index of the first value of the new level.
    pub index: usize,
    /// The commit index of the value before it.
    pub before_index: usize,
    pub change: f64,
    pub p_value: f64,
    /// The levels `change` is between (medians around the change point,
    /// or the two commits' values): what is printed beside it.
    pub before: f64,
    pub after: f64,
}

impl SeriesHistory {
    /// Commit indexes that have a value.
    pub fn present(&self) -> Vec<usize> {
        (0..self.levels.len())
            .filter(|&i| self.levels[i].is_some())
            .collect()
    }

    pub fn value(&self, i: usize) -> Option<f64> {
        self.levels[i].map(|l| l.level)
    }

    /// The values with a level, in history order.
    fn present_values(&self) -> Vec<f64> {
        self.levels.iter().flatten().map(|l| l.level).collect()
    }

    /// Change points of any size over the whole history, searched in
    /// windows of `window` values (see `changepoint::search`); indexes
    /// among the present values.
    pub fn splits(
        &self,
        window: usize,
        cache: Option<&changepoint::SplitCache>,
    ) -> Vec<changepoint::ChangePoint> {
        changepoint::search(&self.present_values(), 0.05, window, cache)
    }

    /// The series' own noise, once it has at least [`LEARN_MIN_DIFFS`]
    /// differences between consecutive commits that do not cross one of
    /// its change points.
    pub fn noise(&self) -> Option<Noise> {
        self.noise_with(&self.splits(changepoint::SEARCH_WINDOW, None))
    }

    /// [`Self::noise`], given the series' [`Self::splits`].
    pub fn noise_with(&self, splits: &[changepoint::ChangePoint]) -> Option<Noise> {
        let levels: Vec<Level> = self.levels.iter().flatten().copied().collect();
        // "When nothing changed": differences across the series' own
        // change points (at any size) are left out.
        let steps: HashSet<usize> = splits.iter().map(|c| c.index).collect();
        let mut diffs: Vec<f64> = (1..levels.len())
            .filter(|i| !steps.contains(i) && levels[i - 1].level != 0.0)
            .map(|i| ((levels[i].level - levels[i - 1].level) / levels[i - 1].level).abs())
            .collect();
        if diffs.len() < LEARN_MIN_DIFFS {
            return None;
        }
        diffs.sort_by(f64::total_cmp);
        let (q1, q3) = (stats::quantile(&diffs, 0.25), stats::quantile(&diffs, 0.75));
        let spreads: Vec<f64> = levels.iter().map(|l| l.spread).collect();
        Some(Noise {
            commit: q3 + 1.5 * (q3 - q1),
            run: 3.0 * stats::median(&spreads),
        })
    }

    /// The threshold in force for this series of `scenario`'s `metric`
    /// (see [`threshold`]).
    pub fn threshold(&self, book: &ThresholdBook, scenario: &str, metric: &str) -> Threshold {
        threshold(book, scenario, metric, self.noise())
    }

    /// Change points over the whole history of at least `min_effect`,
    /// given the series' [`Self::splits`] in windows of `window`.
    /// `exact`: the series counts work (see `changepoint::count_steps`;
    /// the splits are not used).
    pub fn change_points(
        &self,
        splits: &[changepoint::ChangePoint],
        window: usize,
        threshold: &Threshold,
        floor: f64,
        exact: bool,
    ) -> Vec<ChangePoint> {
        let present = self.present();
        let values = self.present_values();
        let min_effect = search_effect(threshold, exact);
        let mut steps = if exact {
            changepoint::count_steps(&values, min_effect, floor)
        } else {
            changepoint::steps_of(&values, splits, min_effect, floor, window)
        };
        if !exact {
            // A short history: every commit past the threshold against its
            // parent is a candidate too (confirm decides), where the search
            // keeps no level of fewer than three commits.
            for st in changepoint::adjacent_steps(&values, threshold.value, floor) {
                if !steps.iter().any(|s| s.index == st.index) {
                    steps.push(st);
                }
            }
            steps.sort_by_key(|s| s.index);
        }
        steps
            .into_iter()
            .map(|st| ChangePoint {
                index: present[st.index],
                before_index: present[st.index - 1],
                change: st.change,
                p_value: st.p_value,
                before: st.before,
                after: st.after,
            })
            .collect()
    }
}

/// The threshold in force for `scenario`'s `metric` given the series'
/// noise: the scenario file's, else 1% for an exact count, else learned
/// (never below [`LEARNED_FLOOR`]), else the book's default.
pub fn threshold(
    book: &ThresholdBook,
    scenario: &str,
    metric: &str,
    noise: Option<Noise>,
) -> Threshold {
    if let Some(value) = book.explicit(scenario, metric) {
        return Threshold {
            value,
            source: ThresholdSource::Scenario,
        };
    }
    if book.is_exact(scenario, metric) {
        return Threshold {
            value: book.min_effect(scenario, metric),
            source: ThresholdSource::Exact,
        };
    }
    match noise {
        Some(n) => Threshold {
            value: n.commit.max(n.run).max(LEARNED_FLOOR),
            source: ThresholdSource::Learned,
        },
        None => Threshold {
            value: book.default_threshold(),
            source: ThresholdSource::Default,
        },
    }
}

/// The smallest change a change-point search reports for a series with
/// this threshold: the threshold for exact counts (their steps alarm as
/// found); half of it for noisy metrics, whose change points alarm only
/// once an interleaved run confirms them — by its own rule, a change
/// beyond half the threshold. A history's levels are measured minutes
/// apart and move with the machine (a +10% step of work measured +6.7%
/// in one history, +9.8% interleaved), so the search must not be the
/// stricter of the two.
pub fn search_effect(threshold: &Threshold, exact: bool) -> f64 {
    if exact {
        threshold.value
    } else {
        threshold.value / 2.0
    }
}

/// What a trend keeps of one metric of one run: its [`level`], range and
/// spread (see [`Level`]), a few numbers instead of every repetition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunLevel {
    /// Index into [`RunLevels::metrics`].
    pub metric: u32,
    pub level: f64,
    pub min: f64,
    pub max: f64,
    pub spread: f64,
}

/// A metric's name, unit and direction, once for all runs.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricInfo {
    pub name: String,
    pub unit: Unit,
    pub direction: Direction,
}

/// The metrics of runs reduced to [`RunLevel`]s: what a history's series
/// are built from (the dashboard keeps them between renders).
#[derive(Debug, Default, Clone)]
pub struct RunLevels {
    pub metrics: Vec<MetricInfo>,
    /// By run id, in the run's order of metrics (by name).
    pub runs: HashMap<i64, Vec<RunLevel>>,
    /// Indexes by name: one per unit and direction the name had (in
    /// different databases rendered into one site).
    by_name: HashMap<String, Vec<u32>>,
}

impl RunLevels {
    /// The index of a metric, added if new.
    pub fn metric(&mut self, name: &str, unit: Unit, direction: Direction) -> u32 {
        let same = |&i: &u32| {
            let m = &self.metrics[i as usize];
            m.unit == unit && m.direction == direction
        };
        if let Some(&i) = self
            .by_name
            .get(name)
            .and_then(|ids| ids.iter().find(|i| same(i)))
        {
            return i;
        }
        let i = self.metrics.len() as u32;
        self.metrics.push(MetricInfo {
            name: name.to_owned(),
            unit,
            direction,
        });
        self.by_name.entry(name.to_owned()).or_default().push(i);
        i
    }

    /// Reduces a run's metrics, replacing what was known of the run.
    pub fn add(&mut self, run_id: i64, series: &[Series]) {
        let levels = series
            .iter()
            .map(|m| {
                let (min, max) = min_max(&m.values);
                let median = stats::median(&m.values);
                RunLevel {
                    metric: self.metric(&m.name, m.unit, m.direction),
                    level: level(m),
                    min,
                    max,
                    spread: if median == 0.0 {
                        0.0
                    } else {
                        stats::mad(&m.values) / median.abs()
                    },
                }
            })
            .collect();
        self.runs.insert(run_id, levels);
    }
}

/// Every stored run of commits, in history order, with the metrics of
/// those that are `ok`, grouped into series.
#[derive(Debug, Default)]
pub struct History {
    /// Commits with runs, parents before children.
    pub order: Vec<String>,
    /// The run of each commit (the store's definition), failed ones too.
    pub runs: Vec<CommitRun>,
    /// Every value of `ok` runs, by run id: of all of them from
    /// [`History::from_values`]; when built from kept [`RunLevels`], of the
    /// runs new to them and those added since.
    pub metrics: HashMap<i64, Vec<Series>>,
    pub series: BTreeMap<SeriesKey, SeriesHistory>,
}

impl History {
    /// The scenarios with a successful run at `sha`.
    pub fn scenarios_at(&self, sha: &str) -> std::collections::BTreeSet<String> {
        self.runs
            .iter()
            .filter(|r| r.sha == sha && r.status == RunStatus::Ok)
            .map(|r| r.key.scenario.clone())
            .collect()
    }

    /// The history of `runs` (the store's commit runs) and the values
    /// of those that are `ok`.
    pub fn from_values(runs: Vec<CommitRun>, metrics: HashMap<i64, Vec<Series>>) -> History {
        let mut levels = RunLevels::default();
        for (id, series) in &metrics {
            levels.add(*id, series);
        }
        Self::build(runs, &levels, metrics)
    }

    /// The history of `runs` (the store's commit runs) with the
    /// series of their `levels`, and the values of the runs in `metrics`.
    pub fn build(
        runs: Vec<CommitRun>,
        levels: &RunLevels,
        metrics: HashMap<i64, Vec<Series>>,
    ) -> History {
        let mut commits: Vec<&CommitRun> = Vec::new();
        let mut seen = HashSet::new();
        for r in &runs {
            if seen.insert(r.sha.as_str()) {
                commits.push(r);
            }
        }
        sort_history(&mut commits, |c| &c.sha, |c| &c.parents, |c| c.time_unix);
        let order: Vec<String> = commits.iter().map(|c| c.sha.clone()).collect();
        let mut history = History {
            order,
            runs: Vec::new(),
            metrics,
            series: BTreeMap::new(),
        };
        history.group(&runs, levels);
        history.runs = runs;
        history
    }

    /// Of these runs, those whose values are not in memory yet: those
    /// the pages of a history built from kept levels show.
    pub fn missing_values(&self, run_ids: impl IntoIterator<Item = i64>) -> Vec<i64> {
        run_ids
            .into_iter()
            .filter(|id| !self.metrics.contains_key(id))
            .collect::<HashSet<i64>>()
            .into_iter()
            .collect()
    }

    /// Builds the series from the runs' levels.
    fn group(&mut self, runs: &[CommitRun], levels: &RunLevels) {
        let position: HashMap<&str, usize> = self
            .order
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        let n = self.order.len();
        // Series found so far, by point and metric index: at 25 million
        // values a key built (or even hashed) per value was most of a
        // large render's load; this is one hash per run.
        let mut points: HashMap<&PointKey, (Vec<Option<usize>>, HashSet<usize>)> = HashMap::new();
        let mut slots: Vec<(SeriesKey, SeriesHistory)> = Vec::new();
        for run in runs {
            let i = position[run.sha.as_str()];
            let (slot_of, failed) = points.entry(&run.key).or_default();
            if run.status != RunStatus::Ok {
                failed.insert(i);
                continue;
            }
            for l in levels.runs.get(&run.id).into_iter().flatten() {
                let m = l.metric as usize;
                if slot_of.len() <= m {
                    slot_of.resize(m + 1, None);
                }
                let slot = *slot_of[m].get_or_insert_with(|| {
                    let info = &levels.metrics[m];
                    slots.push((
                        run.key.metric(&info.name),
                        SeriesHistory {
                            unit: info.unit,
                            direction: info.direction,
                            levels: vec![None; n],
                            failed: HashSet::new(),
                        },
                    ));
                    slots.len() - 1
                });
                slots[slot].1.levels[i] = Some(Level {
                    level: l.level,
                    min: l.min,
                    max: l.max,
                    spread: l.spread,
                    run_id: run.id,
                });
            }
        }
        for (k, s) in &mut slots {
            let point = PointKey {
                machine: k.machine.clone(),
                scenario: k.scenario.clone(),
                point: k.point.clone(),
            };
            if let Some((_, f)) = points.get(&point) {
                s.failed = f.clone();
            }
        }
        self.series.extend(slots);
    }

    pub fn run(&self, id: i64) -> Option<&CommitRun> {
        self.runs.iter().find(|r| r.id == id)
    }

    /// Change points of every series but the harness's own, ranked
    /// ([`rank`]), each with the threshold in force for its series.
    /// Their confirmation and triage are filled in by `alarms::annotate`.
    pub fn changes(&self, book: &ThresholdBook) -> Vec<Change> {
        let runs: HashMap<i64, &CommitRun> = self.runs.iter().map(|r| (r.id, r)).collect();
        let mut out = Vec::new();
        for (k, s) in &self.series {
            if syncbench_model::is_informational(&k.metric) {
                continue;
            }
            let window = changepoint::SEARCH_WINDOW;
            let splits = s.splits(window, None);
            let threshold = threshold(book, &k.scenario, &k.metric, s.noise_with(&splits));
            let floor = syncbench_model::absolute_floor(&k.metric);
            let exact = book.is_exact(&k.scenario, &k.metric);
            for cp in s.change_points(&splits, window, &threshold, floor, exact) {
                let at = s.levels[cp.index].expect("present");
                let before = s.levels[cp.before_index].expect("present");
                let run = runs[&at.run_id];
                let before_run = runs[&before.run_id];
                out.push(Change {
                    environment_changed: environment_change(
                        &before_run.environment,
                        &run.environment,
                    ),
                    commit: run.sha.clone(),
                    before_commit: before_run.sha.clone(),
                    subject_time_unix: run.time_unix,
                    scenario: k.scenario.clone(),
                    point: k.point.clone(),
                    params: serde_json::from_str(&run.params).unwrap_or_default(),
                    metric: k.metric.clone(),
                    unit: s.unit,
                    verdict: Verdict::of_change(s.direction, cp.change),
                    change_pct: cp.change * 100.0,
                    before: cp.before,
                    after: cp.after,
                    confidence: 1.0 - cp.p_value,
                    machine: k.machine.clone(),
                    exact,
                    threshold,
                    significance: cp.change.abs() / threshold.value,
                    confirmation: syncbench_model::Confirmation::Unconfirmed,
                    confirmation_reason: None,
                    measured: None,
                    triage: None,
                });
            }
        }
        rank(&mut out);
        out
    }

    /// The threshold in force for a series (the book's default for one
    /// not in this history).
    pub fn threshold(&self, key: &SeriesKey, book: &ThresholdBook) -> Threshold {
        let noise = self.series.get(key).and_then(SeriesHistory::noise);
        threshold(book, &key.scenario, &key.metric, noise)
    }

    /// Every point measured (ok) at both `base` and `new` (full shas),
    /// compared metric by metric.
    pub fn compare(&self, base: &str, new: &str, book: &ThresholdBook) -> Vec<Compared> {
        self.compare_by(base, new, &|k| self.threshold(k, book).value)
    }

    /// [`Self::compare`] with each series' threshold given (by a caller
    /// that already learned them).
    pub fn compare_by(
        &self,
        base: &str,
        new: &str,
        threshold: &dyn Fn(&SeriesKey) -> f64,
    ) -> Vec<Compared> {
        let ok = |sha: &str, key: &PointKey| {
            self.runs
                .iter()
                .find(|r| r.sha == sha && r.key == *key && r.status == RunStatus::Ok)
        };
        let none = Vec::new();
        let series = |id: i64| self.metrics.get(&id).unwrap_or(&none);
        let mut out = Vec::new();
        for r in self
            .runs
            .iter()
            .filter(|r| r.sha == new && r.status == RunStatus::Ok)
        {
            let Some(b) = ok(base, &r.key) else {
                continue;
            };
            out.push(Compared {
                machine: r.key.machine.clone(),
                scenario: r.key.scenario.clone(),
                point: r.key.point.clone(),
                rows: rows(series(r.id), series(b.id), &|m| threshold(&r.key.metric(m))),
            });
        }
        out
    }
}

/// A detected change in a series' history.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The first commit of the new level.
    pub commit: String,
    pub subject_time_unix: i64,
    pub scenario: String,
    pub point: String,
    pub params: serde_json::Value,
    pub metric: String,
    #[serde(serialize_with = "Unit::serialize_symbol")]
    pub unit: Unit,
    /// Regression or improvement, by the metric's direction.
    #[serde(rename = "direction")]
    pub verdict: Verdict,
    pub change_pct: f64,
    pub before: f64,
    pub after: f64,
    /// 1 - the permutation test's p-value (1 for exact counts).
    pub confidence: f64,
    pub machine: String,
    /// The metric counts work (instructions, requests…): the step is the
    /// code's on any machine. Otherwise (time, memory) it may be the
    /// machine's: a busier neighbour moves time series too.
    pub exact: bool,
    /// The commit before it in the series (the last of the old level).
    pub before_commit: String,
    /// The threshold in force for the series.
    pub threshold: Threshold,
    /// The change relative to the threshold (1 = just at it): the rank.
    pub significance: f64,
    /// Whether measuring the two commits again, interleaved, found it.
    pub confirmation: syncbench_model::Confirmation,
    pub confirmation_reason: Option<String>,
    /// Once confirmed, its size as the interleaved run measured it: what
    /// is shown as its size from then on.
    pub measured: Option<Measured>,
    /// The newest triage decision about it.
    pub triage: Option<TriageRecord>,
    /// What of the runs' environment differs between the two commits
    /// (`cargo_lock`, `governor`…): the change may be the environment's;
    /// `confirm`, measuring both in one environment, tells.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environment_changed: Vec<String>,
}

/// What differs between two runs' stored environments (JSON): the keys
/// both recorded, with other values (a key one run lacks, as from an
/// older harness, is no change).
pub fn environment_change(before: &str, after: &str) -> Vec<String> {
    let parse =
        |t: &str| -> BTreeMap<String, String> { serde_json::from_str(t).unwrap_or_default() };
    let (b, a) = (parse(before), parse(after));
    a.iter()
        .filter(|(k, v)| b.get(*k).is_some_and(|old| old != *v))
        .map(|(k, _)| k.clone())
        .collect()
}

/// One point compared between two commits.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    pub machine: String,
    pub scenario: String,
    pub point: String,
    pub rows: Vec<Row>,
}

/// Regressions first, then improvements; each by significance (the
/// change over its series' threshold), largest first; newest first among
/// equals.
pub fn rank(changes: &mut [Change]) {
    changes.sort_by(|a, b| {
        (a.verdict != Verdict::Regression)
            .cmp(&(b.verdict != Verdict::Regression))
            .then(b.significance.total_cmp(&a.significance))
            .then(b.subject_time_unix.cmp(&a.subject_time_unix))
            .then(a.metric.cmp(&b.metric))
    });
}

/// A confirmed change's size as the interleaved run of its two commits
/// measured it: once confirmed, this is the change's size wherever it is
/// shown (the history's levels, from few values apart in time, only
/// found it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measured {
    /// B against A, in percent, and its confidence interval.
    pub change_pct: f64,
    pub low_pct: f64,
    pub high_pct: f64,
    pub pairs: i64,
}

impl Measured {
    /// `+15.6% [+9.7%, +27.3%]`.
    pub fn label(&self) -> String {
        format!(
            "{:+.1}% [{:+.1}%, {:+.1}%]",
            self.change_pct, self.low_pct, self.high_pct
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_change_names_the_keys_both_runs_recorded_differently() {
        let a = r#"{"cargo_lock":"01","governor":"powersave"}"#;
        let b = r#"{"cargo_lock":"02","governor":"powersave","cpufreq_driver":"x"}"#;
        assert_eq!(environment_change(a, b), ["cargo_lock"]);
        assert!(environment_change(a, a).is_empty());
        // Nothing recorded on one side (an older harness): no change.
        assert!(environment_change("", b).is_empty());
        assert!(environment_change(a, "not json").is_empty());
    }
    use syncbench_model::Unit;

    fn series(name: &str, values: &[f64]) -> Series {
        Series {
            name: name.into(),
            unit: Unit::Percent,
            direction: Direction::LowerIsBetter,
            values: values.to_vec(),
        }
    }

    // Regression test: the sampler's own CPU share once failed a `check`.
    #[test]
    fn harness_metrics_are_never_a_regression() {
        let base = [
            series("harness.sampler_cpu", &[0.5, 0.51, 0.49, 0.5, 0.52]),
            series("wall", &[1.0, 1.01, 0.99, 1.0, 1.02]),
        ];
        let new = [
            series("harness.sampler_cpu", &[0.9, 0.91, 0.89, 0.9, 0.92]),
            series("wall", &[2.0, 2.01, 1.99, 2.0, 2.02]),
        ];
        let rows = rows(&new, &base, &|_| 0.05);
        assert_eq!(rows[0].verdict, Verdict::Informational);
        assert_eq!(rows[1].verdict, Verdict::Regression);
    }

    // Regression test: `--repetitions 1` called +76% of CPU time a
    // regression with p = 0 (one value looks "constant").
    #[test]
    fn one_repetition_decides_only_for_exact_counts() {
        let time = |v: f64| Series {
            unit: Unit::Seconds,
            ..series("cpu_user", &[v])
        };
        let r = rows(&[time(1.76)], &[time(1.0)], &|_| 0.05);
        assert_eq!(
            (r[0].verdict, r[0].p_value),
            (Verdict::Unchanged, Some(1.0))
        );
        let count = |v: f64| Series {
            unit: Unit::Count,
            ..series("command.instructions", &[v])
        };
        let r = rows(&[count(1.2e9)], &[count(1.0e9)], &|_| 0.05);
        assert_eq!(r[0].verdict, Verdict::Regression);
    }

    fn history(values: &[f64], spread: f64) -> SeriesHistory {
        SeriesHistory {
            unit: Unit::Seconds,
            direction: Direction::LowerIsBetter,
            levels: values
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    Some(Level {
                        level: v,
                        min: v,
                        max: v,
                        spread,
                        run_id: i as i64,
                    })
                })
                .collect(),
            failed: HashSet::new(),
        }
    }

    /// Seeded wobble of ±`amplitude` (relative) around 100.
    fn wobbly(n: usize, amplitude: f64) -> Vec<f64> {
        let mut state = 0x5151_7a7au64;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                100.0 * (1.0 + amplitude * (2.0 * u - 1.0))
            })
            .collect()
    }

    #[test]
    fn thresholds_are_learned_from_each_series_own_noise() {
        let book = ThresholdBook::new(0.05);
        // A quiet series catches 1%; a noisy one needs more than its noise.
        let quiet = history(&wobbly(30, 0.002), 0.001);
        let t = quiet.threshold(&book, "s", "wall");
        assert_eq!(t.source, ThresholdSource::Learned);
        assert_eq!(t.value, LEARNED_FLOOR);
        let noisy = history(&wobbly(30, 0.05), 0.01);
        let t = noisy.threshold(&book, "s", "wall");
        assert!(t.value > 0.05 && t.value < 0.2, "{t:?}");
        // Steps of the series do not make it look noisier.
        let mut stepped = wobbly(30, 0.002);
        stepped[10..].iter_mut().for_each(|v| *v *= 1.3);
        stepped[20..].iter_mut().for_each(|v| *v *= 0.7);
        assert_eq!(
            history(&stepped, 0.001).threshold(&book, "s", "wall").value,
            LEARNED_FLOOR
        );
        // Run-to-run spread counts too: 3 x the median MAD/median.
        let t = history(&wobbly(30, 0.002), 0.02).threshold(&book, "s", "wall");
        assert!((t.value - 0.06).abs() < 1e-9, "{t:?}");
        // Too little history: the default; an exact count: 1%.
        let t = history(&wobbly(5, 0.05), 0.01).threshold(&book, "s", "wall");
        assert_eq!((t.source, t.value), (ThresholdSource::Default, 0.05));
        let t = noisy.threshold(&book, "s", "command.instructions");
        assert_eq!((t.source, t.value), (ThresholdSource::Exact, 0.01));
    }

    #[test]
    fn a_scenario_threshold_wins_over_the_learned_one() {
        let scenario = syncbench_model::scenario::Scenario::parse(
            std::path::Path::new("s.toml"),
            "name = \"s\"\nkind = \"command\"\nrun = \"true\"\n[thresholds]\nwall = 0.25\n",
        )
        .unwrap();
        let book = ThresholdBook::of(&scenario, 0.05);
        let t = history(&wobbly(30, 0.002), 0.001).threshold(&book, "s", "wall");
        assert_eq!((t.source, t.value), (ThresholdSource::Scenario, 0.25));
    }
}
