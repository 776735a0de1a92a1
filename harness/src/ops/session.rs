//! A measuring session: the database, the machine, Ctrl-C, and the loop
//! that measures each point of some scenarios at a commit, records its
//! run and compares it with its baseline. Progress and results go to the
//! caller through [`Progress`].

use crate::git::Commit;
use crate::history::{self, Row};
use crate::model::records::Machine;
use crate::model::{PointKey, RunStatus, Series, Verdict};
use crate::runner::{Failure, PointResult, Runner, RunnerOptions};
use crate::scenario::{DEFAULT_THRESHOLD, Kind, Point, Scenario, ThresholdBook};
use crate::store::{Connection as _, Location, RunRecord, Store, StoreError};
use std::collections::{BTreeMap, HashSet};

/// What a run's results depend on beside machine and toolchain.
type Env = BTreeMap<String, String>;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Assembles what is recorded of a run: the machine, the harness's
/// version, the toolchain and the command line go with every result.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub machine: Machine,
    toolchain: String,
    command_line: String,
}

impl Recorder {
    pub fn new(machine: Machine) -> Recorder {
        Recorder {
            machine,
            toolchain: crate::machine::toolchain(),
            // Stored and shown: never with a password (`--db postgres://u:PW@…`).
            command_line: crate::secrets::redact(&std::env::args().collect::<Vec<_>>().join(" ")),
        }
    }

    /// The run of `scenario` `point` at `commit`, from what its
    /// repetitions produced (a failed run keeps its status and message,
    /// and no figures).
    pub fn record(
        &self,
        commit: &Commit,
        scenario: &str,
        point: String,
        params_json: String,
        result: PointResult,
        started_unix: f64,
    ) -> RunRecord {
        let ok = result.failure.is_none();
        RunRecord {
            machine: self.machine.clone(),
            commit: commit.clone(),
            scenario: scenario.to_owned(),
            point,
            params_json,
            status: result.failure.as_ref().map_or(RunStatus::Ok, |f| f.status),
            // A failure quotes a child's stderr or a git error: shown and
            // stored without any password or token it holds.
            error: result.failure.map(|f| crate::secrets::redact(&f.message)),
            repetitions: result.recorded_repetitions,
            harness_version: env!("CARGO_PKG_VERSION").to_owned(),
            toolchain: self.toolchain.clone(),
            environment: Default::default(),
            command_line: self.command_line.clone(),
            started_unix,
            finished_unix: crate::model::unix_now(),
            metrics: if ok { result.metrics } else { vec![] },
            samples: if ok { result.samples } else { vec![] },
            phases: if ok { result.phases } else { vec![] },
        }
    }

    /// A run whose figures another tool measured (criterion, BMF): `ok`,
    /// as many repetitions as its first metric has values.
    pub fn record_found(
        &self,
        commit: &Commit,
        scenario: &str,
        point: String,
        params_json: String,
        metrics: Vec<Series>,
        started_unix: f64,
    ) -> RunRecord {
        let result = PointResult {
            recorded_repetitions: metrics.first().map_or(0, |m| m.values.len() as u32),
            metrics,
            ..Default::default()
        };
        self.record(commit, scenario, point, params_json, result, started_unix)
    }
}

/// How to measure: shared by run, history, bisect and A/B runs.
#[derive(Debug, Clone)]
pub struct MeasureSettings {
    /// Overrides every scenario's repetitions.
    pub repetitions: Option<u32>,
    /// Only points whose key contains this.
    pub filter: Option<String>,
    pub sample_interval: Duration,
    /// Where cargo builds the reference system (default: per command).
    pub target_dir: Option<PathBuf>,
    pub cargo_profile: String,
    /// Cache for checkouts and their builds (default: per repository).
    pub cache_dir: Option<PathBuf>,
    pub pin_cpu: Option<usize>,
    /// Count instructions of every point (see `RunnerOptions`).
    pub instructions: bool,
    /// The machine's name for people, stored with its results.
    pub machine_tag: Option<String>,
}

impl MeasureSettings {
    /// The settings of a job that builds two commits side by side and
    /// schedules repetitions itself (A/B, confirm, profile): the
    /// defaults, but for the cargo profile and the cache.
    pub fn side_by_side(cargo_profile: &str, cache_dir: Option<PathBuf>) -> MeasureSettings {
        MeasureSettings {
            repetitions: None,
            filter: None,
            sample_interval: Duration::from_millis(50),
            target_dir: None,
            cargo_profile: cargo_profile.to_owned(),
            cache_dir,
            pin_cpu: None,
            instructions: false,
            machine_tag: None,
        }
    }
}

/// Where a session reports what it does.
pub trait Progress {
    /// A point starts (its repetitions follow).
    fn point_started(&mut self, scenario: &str, point: &str);
    /// `done` of `total` repetitions (warm-up included) are behind.
    fn repetition(&mut self, done: u32, total: u32);
    fn point_finished(&mut self);
    /// A run was recorded and compared with its baseline.
    fn recorded(&mut self, report: &RunReport);
}

/// A recorded run, compared with its baseline.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub scenario: String,
    pub point: String,
    pub commit: String,
    pub status: RunStatus,
    pub error: Option<String>,
    pub repetitions: u32,
    /// The baseline's name (a branch, `parent`, or empty for none).
    pub baseline_name: String,
    /// The commit of the baseline run found.
    pub baseline: Option<String>,
    pub rows: Vec<Row>,
}

impl RunReport {
    pub fn regressions(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regression)
            .count()
    }
}

/// Counts over a measuring session.
#[derive(Debug, Default)]
pub struct Tally {
    pub commits: Vec<Commit>,
    pub points: usize,
    pub failed: usize,
    pub regressions: usize,
    pub reports: Vec<RunReport>,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.commits.extend(other.commits);
        self.points += other.points;
        self.failed += other.failed;
        self.regressions += other.regressions;
        self.reports.extend(other.reports);
    }
}

/// The baseline a session compares each run with.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    /// For people: a branch, `parent`, or empty for none.
    pub name: String,
    /// Candidate commits, newest first: the first with a run wins.
    pub commits: Vec<String>,
}

/// The scenarios with points left to measure at a commit, and the
/// points (scenario, key) that have their answer already.
#[derive(Debug, Default)]
pub struct Todo {
    pub scenarios: Vec<Scenario>,
    pub done: HashSet<(String, String)>,
}

impl Todo {
    /// Whether this point is measured already.
    pub fn skip(&self, s: &Scenario, p: &Point) -> bool {
        self.done.contains(&(s.name.clone(), p.key()))
    }
}

/// Renames a SQLite database with its `-wal` and `-shm` files; false
/// when there was none.
fn move_db(from: &Path, to: &Path) -> std::io::Result<bool> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        other => other?,
    }
    for suffix in ["-wal", "-shm"] {
        let side = |p: &Path| PathBuf::from(format!("{}{suffix}", p.display()));
        match std::fs::rename(side(from), side(to)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(true)
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// What `run`, `history` and `bisect` share.
#[derive(Debug)]
pub struct Session {
    pub store: Box<Store>,
    pub db: Location,
    pub recorder: Recorder,
    pub settings: MeasureSettings,
    /// Where runs go that a database server could not take (lost
    /// mid-run): a local SQLite file, stored by the next session.
    pub spool: Option<PathBuf>,
    /// With `Some`, runs are kept here instead of stored (a queue
    /// worker stores them with the job that completes).
    pub held: Option<Vec<RunRecord>>,
    interrupted: Arc<AtomicBool>,
    /// Scenarios whose thresholds were checked against a run's metrics.
    thresholds_checked: std::collections::BTreeSet<String>,
}

impl Session {
    /// Opens the database first: a bad --db fails before any work. With
    /// a database server, runs it fails to take are written to `spool`
    /// (see [`Session::keep`]).
    pub fn open(
        db: &Location,
        settings: MeasureSettings,
        interrupted: Arc<AtomicBool>,
        spool: Option<PathBuf>,
    ) -> Result<Session, StoreError> {
        let mut machine = crate::machine::detect_machine();
        machine.tag = settings.machine_tag.clone();
        Ok(Session {
            store: crate::store::open(db)?,
            db: db.clone(),
            recorder: Recorder::new(machine),
            settings,
            spool: spool.filter(|_| db.is_postgres()),
            held: None,
            interrupted,
            thresholds_checked: Default::default(),
        })
    }

    /// Stores the runs `spool` kept from an earlier session; how many
    /// were new. The file is removed once they are stored.
    pub fn restore_spool(&mut self) -> Result<usize, StoreError> {
        let Some(spool) = self.spool.clone() else {
            return Ok(0);
        };
        // Moved aside first (with its log), so runs another process keeps
        // meanwhile go to a new spool instead of being deleted with this one.
        let taken = spool.with_extension(format!("restoring-{}.sqlite", std::process::id()));
        let moved = move_db(&spool, &taken).map_err(|source| StoreError::Io {
            path: spool.clone(),
            source,
        })?;
        if !moved {
            return Ok(0);
        }
        let runs = crate::store::SqliteStore::open(&taken)?.export_runs()?;
        let stored = self.store.merge_runs(&runs);
        if stored.is_err() {
            // Back where the next session finds them (merging is idempotent).
            crate::store::SqliteStore::open(&spool)?.merge_runs(&runs)?;
        }
        remove_db(&taken);
        stored
    }

    /// Stores runs (or holds them, see `held`); their ids (0 when held).
    /// When the database server fails, they are written to the spool
    /// first, and the error says where they are.
    pub fn keep(&mut self, runs: &[RunRecord]) -> Result<Vec<i64>, StoreError> {
        if let Some(held) = &mut self.held {
            held.extend_from_slice(runs);
            return Ok(vec![0; runs.len()]);
        }
        let source = match self.store.record_all(runs) {
            Ok(ids) => return Ok(ids),
            Err(e) => e,
        };
        let Some(spool) = self.spool.clone().filter(|_| source.is_connection()) else {
            return Err(source);
        };
        match crate::store::SqliteStore::open(&spool).and_then(|mut s| s.merge_runs(runs)) {
            Ok(_) => Err(StoreError::Kept {
                db: self.db.to_string(),
                count: runs.len(),
                spool,
                source: Box::new(source),
            }),
            // Nowhere to keep them: the first error is the one to see.
            Err(_) => Err(source),
        }
    }

    pub fn machine(&self) -> &Machine {
        &self.recorder.machine
    }

    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// The cache for checkouts of `root`.
    pub fn cache(&self, root: &Path) -> PathBuf {
        self.settings
            .cache_dir
            .clone()
            .unwrap_or_else(|| crate::checkout::default_cache(root))
    }

    /// A runner on `tree`, building into `target_dir` unless the
    /// settings name one.
    pub fn runner(&self, tree: PathBuf, target_dir: PathBuf) -> Runner {
        let target_dir = self.settings.target_dir.clone().unwrap_or(target_dir);
        self.runner_at(tree, target_dir)
    }

    /// A runner on `tree` building into `target_dir`, whatever the
    /// settings say (the two sides of an A/B run must not share one).
    pub fn runner_at(&self, tree: PathBuf, target_dir: PathBuf) -> Runner {
        Runner::new(
            tree,
            RunnerOptions {
                repetitions: self.settings.repetitions,
                sample_interval: self.settings.sample_interval,
                target_dir,
                cargo_profile: self.settings.cargo_profile.clone(),
                pin_cpu: self.settings.pin_cpu,
                instructions: self.settings.instructions,
            },
            self.interrupted.clone(),
        )
    }

    /// The reusable checkout of `root` in the cache, and a runner on it
    /// whose builds share the cache's target dir.
    pub fn checkout(
        &self,
        root: &Path,
    ) -> Result<(crate::checkout::Checkout, Runner), crate::git::GitError> {
        let cache = self.cache(root);
        let checkout = crate::checkout::Checkout::open(root, &cache)?;
        let runner = self.runner(checkout.dir.clone(), cache.join("target"));
        Ok((checkout, runner))
    }

    /// Whether this machine has a final answer for every point of `s`
    /// at `sha` (criterion points are only known once they ran).
    pub fn is_measured(&self, s: &Scenario, p: &Point, sha: &str) -> Result<bool, StoreError> {
        let key = p.key();
        let point = (!matches!(s.kind, Kind::Criterion { .. })).then_some(key.as_str());
        self.store
            .has_final_run(self.machine(), &s.name, point, sha)
    }

    /// What is left to measure of `scenarios` at `sha`: the points
    /// without a final answer on this machine (every point with
    /// `force`), and the scenarios that have any.
    pub fn unmeasured(
        &self,
        scenarios: &[Scenario],
        sha: &str,
        force: bool,
    ) -> Result<Todo, StoreError> {
        let mut done = HashSet::new();
        for s in scenarios {
            for p in &s.points {
                if !force && self.is_measured(s, p, sha)? {
                    done.insert((s.name.clone(), p.key()));
                }
            }
        }
        let todo = Todo {
            scenarios: vec![],
            done,
        };
        let scenarios = scenarios
            .iter()
            .filter(|s| s.points.iter().any(|p| !todo.skip(s, p)))
            .cloned()
            .collect();
        Ok(Todo { scenarios, ..todo })
    }

    /// Measures the points of `scenarios` (minus `skip`) on the runner's
    /// tree, checked out at `commit`; records and reports each.
    pub fn measure(
        &mut self,
        runner: &Runner,
        commit: &Commit,
        scenarios: &[Scenario],
        baseline: &Baseline,
        skip: &dyn Fn(&Scenario, &Point) -> bool,
        progress: &mut dyn Progress,
    ) -> Result<Tally, StoreError> {
        let mut tally = Tally {
            commits: vec![commit.clone()],
            ..Default::default()
        };
        for s in scenarios {
            if matches!(s.kind, Kind::Criterion { .. }) {
                self.measure_criterion(runner, commit, s, baseline, &mut tally, progress)?;
            } else {
                self.measure_points(runner, commit, s, baseline, skip, &mut tally, progress)?;
            }
            if self.interrupted() {
                break;
            }
        }
        Ok(tally)
    }

    #[allow(clippy::too_many_arguments)]
    fn measure_points(
        &mut self,
        runner: &Runner,
        commit: &Commit,
        s: &Scenario,
        baseline: &Baseline,
        skip: &dyn Fn(&Scenario, &Point) -> bool,
        tally: &mut Tally,
        progress: &mut dyn Progress,
    ) -> Result<(), StoreError> {
        let filter = self.settings.filter.clone();
        let points: Vec<&Point> = s
            .points
            .iter()
            .filter(|p| filter.as_ref().is_none_or(|f| p.key().contains(f.as_str())) && !skip(s, p))
            .collect();
        if points.is_empty() {
            return Ok(());
        }
        // Each variant built once, before its points; a variant that does
        // not build fails its own points only.
        // Per variant: its build's result, toolchain and environment.
        type Built<'a> = (&'a str, Result<(), Failure>, Option<String>, Env);
        let mut built: Option<Built> = None;
        for point in points {
            let variant = s.variant_of(point);
            if built
                .as_ref()
                .is_none_or(|(name, ..)| *name != variant.name)
            {
                let t0 = std::time::Instant::now();
                let result = runner.build(s, variant);
                tracing::info!(
                    "{}: variant {} built in {:.1} s{}",
                    s.name,
                    variant.name,
                    t0.elapsed().as_secs_f64(),
                    if result.is_ok() { "" } else { " (failed)" }
                );
                // After the build, which installs a missing toolchain.
                let toolchain = variant
                    .toolchain
                    .as_deref()
                    .map(|t| crate::machine::toolchain_named(Some(t)));
                let env = crate::machine::environment(&runner.lock_file(variant));
                built = Some((&variant.name, result, toolchain, env));
            }
            let (_, built, toolchain, env) = &built.as_ref().expect("just built");
            let started = crate::model::unix_now();
            progress.point_started(&s.name, &point.key());
            let result = match &built {
                Ok(()) => runner.run_point(s, point, &mut |i, n| progress.repetition(i, n)),
                Err(f) => PointResult {
                    failure: Some(f.clone()),
                    ..Default::default()
                },
            };
            progress.point_finished();
            let mut record =
                self.recorder
                    .record(commit, &s.name, point.key(), point.json(), result, started);
            if let Some(t) = toolchain {
                record.toolchain = t.clone();
            }
            record.environment = env.clone();
            self.check_thresholds(s, std::slice::from_ref(&record));
            let run_id = self.keep(std::slice::from_ref(&record))?[0];
            let report = self.report(&record, run_id, s, baseline)?;
            tally.count(report, progress);
            if self.interrupted() {
                break;
            }
        }
        Ok(())
    }

    /// A criterion scenario: one `cargo bench`, each benchmark a point.
    fn measure_criterion(
        &mut self,
        runner: &Runner,
        commit: &Commit,
        s: &Scenario,
        baseline: &Baseline,
        tally: &mut Tally,
        progress: &mut dyn Progress,
    ) -> Result<(), StoreError> {
        let started = crate::model::unix_now();
        let records: Vec<RunRecord> = match runner.criterion(s) {
            Ok(found) => found
                .into_iter()
                .map(|i| {
                    self.recorder.record_found(
                        commit,
                        &s.name,
                        i.point,
                        "{}".into(),
                        i.metrics,
                        started,
                    )
                })
                .collect(),
            Err(f) => vec![self.recorder.record(
                commit,
                &s.name,
                String::new(),
                "{}".into(),
                failed(f),
                started,
            )],
        };
        self.check_thresholds(s, &records);
        let ids = self.keep(&records)?;
        for (r, id) in records.iter().zip(ids) {
            let report = self.report(r, id, s, baseline)?;
            tally.count(report, progress);
        }
        Ok(())
    }

    /// Once per scenario, after its first successful run: the thresholds
    /// that name no metric it recorded (a typo, or a metric of a point
    /// not measured yet), said with the likely one.
    fn check_thresholds(&mut self, s: &Scenario, records: &[RunRecord]) {
        let names: Vec<&str> = records
            .iter()
            .filter(|r| r.status == RunStatus::Ok)
            .flat_map(|r| r.metrics.iter().map(|m| m.name.as_str()))
            .collect();
        if names.is_empty() || !self.thresholds_checked.insert(s.name.clone()) {
            return;
        }
        for (key, likely) in s.thresholds.unmatched(&names) {
            tracing::warn!(
                "{}: [thresholds] {key} names no metric this run of {} recorded{}; \
                 it applies to none until one is (a threshold names a metric in full or by \
                 its last part: `syncbench show` lists them)",
                s.path.display(),
                s.name,
                likely.map_or(String::new(), |l| format!(" (did you mean {l}?)"))
            );
        }
    }

    /// Compares a recorded run with its baseline.
    fn report(
        &self,
        record: &RunRecord,
        run_id: i64,
        s: &Scenario,
        baseline: &Baseline,
    ) -> Result<RunReport, StoreError> {
        let key = PointKey {
            machine: self.machine().fingerprint(),
            scenario: record.scenario.clone(),
            point: record.point.clone(),
        };
        let base = self.store.run_of(&key, &baseline.commits, Some(run_id))?;
        let base_series = match &base {
            Some((id, _)) => self.store.series(*id)?,
            None => vec![],
        };
        let book = ThresholdBook::of(s, DEFAULT_THRESHOLD);
        Ok(RunReport {
            scenario: record.scenario.clone(),
            point: record.point.clone(),
            commit: record.commit.sha.clone(),
            status: record.status,
            error: record.error.clone(),
            repetitions: record.repetitions,
            baseline_name: baseline.name.clone(),
            baseline: base.map(|b| b.1),
            rows: history::rows(&record.metrics, &base_series, &|m| {
                book.min_effect(&s.name, m)
            }),
        })
    }
}

fn failed(f: Failure) -> PointResult {
    PointResult {
        failure: Some(f),
        ..Default::default()
    }
}

impl Tally {
    fn count(&mut self, report: RunReport, progress: &mut dyn Progress) {
        self.points += 1;
        self.regressions += report.regressions();
        if report.status != RunStatus::Ok {
            self.failed += 1;
        }
        progress.recorded(&report);
        self.reports.push(report);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Direction, Unit};

    fn machine() -> Machine {
        Machine {
            cpu: "cpu".into(),
            cores: 1,
            memory_bytes: 1 << 30,
            os: "os".into(),
            kernel: "k".into(),
            hw_counters: "unavailable".into(),
            tag: None,
        }
    }

    fn commit() -> Commit {
        Commit {
            sha: "a".repeat(40),
            parents: vec![],
            author: "t".into(),
            time_unix: 0,
            subject: "s".into(),
            dirty: true,
            branch: None,
        }
    }

    fn wall(values: &[f64]) -> Series {
        Series {
            name: "wall".into(),
            unit: Unit::Seconds,
            direction: Direction::LowerIsBetter,
            values: values.to_vec(),
        }
    }

    #[test]
    fn a_failed_run_keeps_its_status_and_message_and_no_figures() {
        let r = Recorder::new(machine());
        let result = PointResult {
            metrics: vec![wall(&[1.0])],
            failure: Some(Failure::new(RunStatus::Timeout, "too slow")),
            recorded_repetitions: 1,
            ..Default::default()
        };
        let rec = r.record(&commit(), "s", "n=1".into(), "{}".into(), result, 5.0);
        assert_eq!(rec.status, RunStatus::Timeout);
        assert_eq!(rec.error.as_deref(), Some("too slow"));
        assert!(rec.metrics.is_empty() && rec.samples.is_empty() && rec.phases.is_empty());
        assert!(rec.commit.dirty);
        assert_eq!(rec.harness_version, env!("CARGO_PKG_VERSION"));
        assert!(rec.finished_unix >= rec.started_unix);
    }

    #[test]
    fn results_of_other_tools_count_their_values_as_repetitions() {
        let r = Recorder::new(machine());
        let rec = r.record_found(
            &commit(),
            "criterion",
            "b".into(),
            "{}".into(),
            vec![wall(&[1.0, 2.0, 3.0])],
            0.0,
        );
        assert_eq!(
            (rec.status, rec.repetitions, rec.error),
            (RunStatus::Ok, 3, None)
        );
        let rec = r.record_found(&commit(), "criterion", "b".into(), "{}".into(), vec![], 0.0);
        assert_eq!(rec.repetitions, 0);
    }
}
