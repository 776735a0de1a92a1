//! The results store: every SQL statement of the harness lives behind
//! the [`Connection`] trait, a small interface of named queries (as
//! rustc-perf's database crate). `sqlite.rs` is the embedded backend
//! (`.syncbench/results.sqlite`), `postgres.rs` the shared one
//! (`--db postgres://…`) that many runners write to, and that also holds
//! the job queue (`queue.rs`). Both keep the same schema, migrated in
//! order, and answer every query in the same order, so whatever reads a
//! store (the dashboard above all) gives the same output from either.
//!
//! "The run of a commit", defined once (`THE_RUN` in each backend): of
//! the runs of one scenario point on one machine at one commit, an `ok`
//! run wins over failures, a run of the commit as committed wins over
//! one of a dirty working tree, and a newer run wins over an older one.
//! `regressions`, `compare`, `check`, `bisect`, the baseline of `run` and
//! the dashboard all read runs through it. "Newer" is the later start
//! (then the later id): a run merged from another file is as new as when
//! it was measured, not when it was copied.

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod postgres;
pub mod queue;
mod sqlite;
pub mod tls;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use syncbench_model::records::{Machine, Sample};
use syncbench_model::{
    Confirmation, Direction, Phase, PointKey, RunStatus, Series, Triage, Unit, Verdict,
};

pub use postgres::{PgError, PgStore};
pub use sqlite::{SqliteError, SqliteStore};
pub use syncbench_model::records::{
    AbRecord, CommitRow, CommitRun, ConfirmationKey, ConfirmationRow, MachineRow, ProfileRecord,
    RunRecord, RunRow, TriageRecord,
};

/// A results store, whatever its backend.
pub type Store = dyn Connection;

/// The values of runs, by run id: each metric with its per-repetition
/// values.
pub type RunValues = HashMap<i64, Vec<Series>>;

/// Where a results store is: a SQLite file or a PostgreSQL server.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL, or key=value settings.
    Postgres(String),
}

impl Location {
    /// `postgres://…` and `postgresql://…` are servers; anything else a file.
    pub fn parse(text: &str) -> Location {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Location::Postgres(text.to_owned())
        } else {
            Location::Sqlite(PathBuf::from(text))
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }

    /// Where runs this database could not take are kept, in `dir`: one
    /// file per database (named by a hash of its URL without password).
    pub fn spool_in(&self, dir: &Path) -> PathBuf {
        let hash = syncbench_model::hash::fnv1a(self.to_string().as_bytes());
        dir.join(format!("unsent-{:08x}.sqlite", hash as u32))
    }
}

/// Never shows a server's password, in `{:?}` either.
impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({self})")
    }
}

/// For messages: a server's URL without its password.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Postgres(url) => f.write_str(&syncbench_model::secrets::redact(url)),
        }
    }
}

/// Opens the results store (created if missing; an existing SQLite file
/// or PostgreSQL database is checked first, and anything that is not ours
/// is refused untouched; the schema is migrated to this build's).
pub fn open(location: &Location) -> Result<Box<Store>, StoreError> {
    Ok(match location {
        Location::Sqlite(path) => Box::new(SqliteStore::open(path)?),
        Location::Postgres(url) => Box::new(PgStore::open(url)?),
    })
}

/// The named queries of a results store.
pub trait Connection: std::fmt::Debug {
    /// Records a run whole: one transaction, so a crash leaves all or nothing.
    fn record(&mut self, run: &RunRecord) -> Result<i64, StoreError>;

    /// Records several runs in one transaction: all or none.
    fn record_all(&mut self, runs: &[RunRecord]) -> Result<Vec<i64>, StoreError>;

    /// The run of the point at the newest of `commits` (newest first)
    /// that has an `ok` one, not counting run `exclude`; with its commit.
    fn run_of(
        &self,
        key: &PointKey,
        commits: &[String],
        exclude: Option<i64>,
    ) -> Result<Option<(i64, String)>, StoreError>;

    /// Every metric of a run with its per-repetition values.
    fn series(&self, run_id: i64) -> Result<Vec<Series>, StoreError>;

    /// Runs whose commit starts with `sha_prefix` (all commits if empty),
    /// oldest first: every run, not only the run of each commit.
    fn runs(&self, sha_prefix: &str) -> Result<Vec<RunRow>, StoreError>;

    /// The run of every (machine, scenario, point, commit), oldest first.
    fn commit_runs(&self) -> Result<Vec<CommitRun>, StoreError>;

    /// The runs of commits whose run is `ok`, oldest first.
    fn ok_commit_runs(&self) -> Result<Vec<CommitRun>, StoreError> {
        let mut runs = self.commit_runs()?;
        runs.retain(|r| r.status == RunStatus::Ok);
        Ok(runs)
    }

    /// Every recorded commit.
    fn commits(&self) -> Result<Vec<CommitRow>, StoreError>;

    /// Every recorded machine.
    fn machines(&self) -> Result<Vec<MachineRow>, StoreError>;

    /// The metrics of every run `wanted` accepts, in one pass (the
    /// dashboard reads everything at once).
    fn all_series(
        &self,
        wanted: &dyn Fn(i64) -> bool,
    ) -> Result<HashMap<i64, Vec<Series>>, StoreError>;

    /// The values of these runs (none for a run without any): one
    /// indexed lookup each for a few, one scan of every value for many.
    fn values(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<Series>>, StoreError> {
        /// More runs than this are read in one scan.
        const ONE_BY_ONE: usize = 300;
        if ids.len() > ONE_BY_ONE {
            let wanted: HashSet<i64> = ids.iter().copied().collect();
            return self.all_series(&|id| wanted.contains(&id));
        }
        ids.iter().map(|&id| Ok((id, self.series(id)?))).collect()
    }

    /// The runs of commits `wanted` accepts (failed ones too), with the
    /// values of those that are `ok`: what a history is built from.
    fn runs_with_values(
        &self,
        wanted: &dyn Fn(&CommitRun) -> bool,
    ) -> Result<(Vec<CommitRun>, RunValues), StoreError> {
        let mut runs = self.commit_runs()?;
        runs.retain(|r| wanted(r));
        let ok: HashSet<i64> = runs
            .iter()
            .filter(|r| r.status == RunStatus::Ok)
            .map(|r| r.id)
            .collect();
        let values = self.all_series(&|id| ok.contains(&id))?;
        Ok((runs, values))
    }

    /// CPU and RSS samples of a run's first recorded repetition, by
    /// process, in time order.
    fn first_samples(&self, run_id: i64) -> Result<Vec<Sample>, StoreError>;

    /// The phases of the repetition `first_samples` returns.
    fn first_phases(&self, run_id: i64) -> Result<Vec<Phase>, StoreError>;

    /// Whether this machine has a final answer (see
    /// [`RunStatus::is_final`]) for the point at the commit, measured on
    /// the commit as committed; with no point, for any point of the
    /// scenario (criterion scenarios, whose points are only known once
    /// they ran).
    fn has_final_run(
        &self,
        machine: &Machine,
        scenario: &str,
        point: Option<&str>,
        sha: &str,
    ) -> Result<bool, StoreError>;

    /// Stores a profile comparison, replacing an earlier one of the same
    /// machine, point and commits.
    fn record_profile(&mut self, profile: &ProfileRecord) -> Result<(), StoreError>;

    /// Every stored profile comparison.
    fn profiles(&self) -> Result<Vec<ProfileRecord>, StoreError>;

    /// Stores the A/B run of one metric of one point; its id.
    fn record_ab(&mut self, ab: &AbRecord) -> Result<i64, StoreError>;

    /// Every stored A/B run, oldest first.
    fn ab_runs(&self) -> Result<Vec<AbRecord>, StoreError>;

    /// Takes a change point to confirm, atomically: true when there was
    /// no row for it, or its row is `pending` and `stale` says its owner
    /// is gone, or `again` and its row is final. Two `confirm` runs on one
    /// database never both get true for one change point.
    fn claim_confirmation(
        &mut self,
        key: &ConfirmationKey,
        owner: &str,
        again: bool,
        stale: &dyn Fn(&ConfirmationRow) -> bool,
    ) -> Result<bool, StoreError>;

    /// Records the answer for a change point this owner claimed (a claim
    /// another run took over in the meantime is left to that run).
    fn finish_confirmation(&mut self, row: &ConfirmationRow) -> Result<(), StoreError>;

    /// Every confirmation row.
    fn confirmations(&self) -> Result<Vec<ConfirmationRow>, StoreError>;

    /// Stores a triage decision (the newest for an alarm is in force; the
    /// older ones are kept as its history).
    fn record_triage(&mut self, t: &TriageRecord) -> Result<i64, StoreError>;

    /// Every triage decision, oldest first.
    fn triages(&self) -> Result<Vec<TriageRecord>, StoreError>;

    /// Records the runs the store does not have yet (one transaction);
    /// how many were new. A run is the same run when its machine, commit,
    /// tree state, point and start and finish times are: merging a file
    /// twice adds nothing.
    fn merge_runs(&mut self, runs: &[RunRecord]) -> Result<usize, StoreError>;

    /// Every run whole (machine, commit, values, samples, phases), oldest
    /// first: what `merge` copies into another store.
    fn export_runs(&self) -> Result<Vec<RunRecord>, StoreError>;

    /// A fresh connection in place of a lost one (a database server that
    /// restarted); an embedded database has nothing to do.
    fn reconnect(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// What [`Connection::forget`] would remove of `sel`; changes nothing.
    fn forget_plan(&self, sel: &ForgetSelector) -> Result<ForgetPlan, StoreError>;

    /// Removes what `sel` selects and records that it did, in one
    /// transaction: a process killed midway removed nothing. Without a
    /// metric: the runs (with their values, samples and phases), the
    /// commits left with no run, and the A/B runs, confirmations and
    /// profiles of the selection (an A/B run a kept confirmation cites is
    /// kept). With a metric: its values in those runs, its A/B runs and
    /// confirmations; a run that loses values is stored anew under a new
    /// id (runs never change in place: readers keep what they computed of
    /// a run by its id). Triage decisions are people's, and kept. When the
    /// selection no longer is `plan` (another writer came between), nothing
    /// is removed: [`StoreError::ForgetChanged`].
    fn forget(
        &mut self,
        sel: &ForgetSelector,
        plan: &ForgetPlan,
        who: &str,
        command_line: &str,
    ) -> Result<ForgetRecord, StoreError>;

    /// Every forget recorded, oldest first.
    fn forgotten(&self) -> Result<Vec<ForgetRecord>, StoreError>;
}

/// What `syncbench forget` selects: the runs of a scenario, of one of its
/// points, of a commit, of some machines (`None` or empty: any), all of
/// these that are given; with `metric`, only that metric's values in them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ForgetSelector {
    pub scenario: Option<String>,
    pub point: Option<String>,
    pub metric: Option<String>,
    /// A full sha.
    pub commit: Option<String>,
    /// Machine fingerprints; empty for every machine.
    pub machines: Vec<String>,
}

/// How much a forget removes, or removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ForgetCounts {
    /// Runs removed whole, with their values, samples and phases (none
    /// when a metric is selected).
    pub runs: i64,
    /// With a metric: the runs that lose its values (they stay, with
    /// their other metrics, under a new id).
    pub runs_changed: i64,
    /// Values removed: one per repetition and metric.
    pub values: i64,
    /// Series (machine, scenario, point, metric) that lose values.
    pub series: i64,
    /// Commits left without any run, removed with their last runs.
    pub commits: i64,
    pub ab_runs: i64,
    pub confirmations: i64,
    pub profiles: i64,
}

/// The runs of one point on one machine that a forget concerns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForgetGroup {
    /// The machine's fingerprint.
    pub machine: String,
    pub scenario: String,
    pub point: String,
    pub runs: i64,
    pub commits: i64,
    pub values: i64,
}

/// What a forget removes: the counts, and the points they are of.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ForgetPlan {
    pub counts: ForgetCounts,
    /// By scenario, point and machine.
    pub groups: Vec<ForgetGroup>,
}

impl ForgetPlan {
    /// Whether there is nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.counts == ForgetCounts::default()
    }
}

/// A forget as recorded in the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ForgetRecord {
    pub id: i64,
    pub created_unix: f64,
    /// Who asked (git's user.name, else $USER).
    pub who: String,
    /// The command line, passwords redacted.
    pub command_line: String,
    pub selector: ForgetSelector,
    pub removed: ForgetCounts,
}

/// A run a forget selects, as a backend reads it: id, machine
/// fingerprint, scenario, point, commit.
pub(crate) type SelectedRun = (i64, String, String, String, String);

/// A plan from what a backend read: the selected runs, the values of
/// each (of the selected metric, if one is), and the counts it made in
/// SQL (series, commits, A/B runs, confirmations, profiles). With a
/// metric, only the runs with values of it are concerned. Returns the
/// plan and the ids of the runs concerned.
pub(crate) fn plan_of(
    sel: &ForgetSelector,
    runs: Vec<SelectedRun>,
    values: &HashMap<i64, i64>,
    counted: ForgetCounts,
) -> (ForgetPlan, Vec<i64>) {
    use std::collections::{BTreeMap, BTreeSet};
    // (scenario, point, machine) → (runs, commits, values).
    type Group = (i64, BTreeSet<String>, i64);
    let mut groups: BTreeMap<(String, String, String), Group> = BTreeMap::new();
    let mut ids = Vec::new();
    let mut total = 0;
    for (id, machine, scenario, point, commit) in runs {
        let n = values.get(&id).copied().unwrap_or(0);
        if sel.metric.is_some() && n == 0 {
            continue;
        }
        ids.push(id);
        total += n;
        let g = groups.entry((scenario, point, machine)).or_default();
        g.0 += 1;
        g.1.insert(commit);
        g.2 += n;
    }
    let concerned = ids.len() as i64;
    let (runs, runs_changed) = if sel.metric.is_some() {
        (0, concerned)
    } else {
        (concerned, 0)
    };
    let plan = ForgetPlan {
        counts: ForgetCounts {
            runs,
            runs_changed,
            values: total,
            ..counted
        },
        groups: groups
            .into_iter()
            .map(
                |((scenario, point, machine), (runs, commits, values))| ForgetGroup {
                    machine,
                    scenario,
                    point,
                    runs,
                    commits: commits.len() as i64,
                    values,
                },
            )
            .collect(),
    };
    (plan, ids)
}

/// Refuses a schema (version `found`, at `location`) newer than this
/// build's, which knows `known` migrations.
pub(crate) fn not_newer(
    location: &dyn std::fmt::Display,
    found: i64,
    known: usize,
) -> Result<(), StoreError> {
    if found > known as i64 {
        return Err(StoreError::NewerSchema {
            location: location.to_string(),
            found,
            known,
        });
    }
    Ok(())
}

/// The tables besides runs and values that a forget removes rows of:
/// each is keyed by machine, scenario, point and two commits.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Related {
    Confirmations,
    AbRuns,
    Profiles,
}

impl Related {
    /// The table's name (the same in both backends).
    pub(crate) fn table(self) -> &'static str {
        match self {
            Related::Confirmations => "confirmations",
            Related::AbRuns => "ab_runs",
            Related::Profiles => "profiles",
        }
    }
}

/// The SQL of a forget, as a backend runs it on one connection (the
/// forget's transaction, or alone for a plan); [`forget_plan_in`] and
/// [`forget_in`] decide what to ask and check the answers.
pub(crate) trait ForgetSql {
    /// The runs `sel` selects, whatever its metric, by id.
    fn selected_runs(&mut self, sel: &ForgetSelector) -> Result<Vec<SelectedRun>, StoreError>;

    /// How many values (of `metric`, if given) each of runs `ids` has;
    /// runs without any are left out.
    fn value_counts(
        &mut self,
        ids: &[i64],
        metric: Option<&str>,
    ) -> Result<HashMap<i64, i64>, StoreError>;

    /// How many series (machine, scenario, point, metric) the values
    /// (of `metric`, if given) of runs `ids` are of.
    fn series_count(&mut self, ids: &[i64], metric: Option<&str>) -> Result<i64, StoreError>;

    /// How many commits have runs among `ids` and no other run.
    fn commits_only_of(&mut self, ids: &[i64]) -> Result<i64, StoreError>;

    /// How many rows of `related` the forget of `sel` removes.
    fn count_related(&mut self, related: Related, sel: &ForgetSelector) -> Result<i64, StoreError>;

    /// Removes the rows of `related` the forget of `sel` selects; how many.
    fn remove_related(&mut self, related: Related, sel: &ForgetSelector)
    -> Result<u64, StoreError>;

    /// Removes runs `ids` with their values, samples and phases, then the
    /// commits they leave without a run; how many values, runs, commits.
    fn remove_runs(&mut self, ids: &[i64]) -> Result<(u64, u64, u64), StoreError>;

    /// Removes the values of `metric` in runs `ids`; how many.
    fn remove_values(&mut self, ids: &[i64], metric: &str) -> Result<u64, StoreError>;

    /// Stores run `old` anew under a new id, with what is left of its
    /// values, samples and phases, and removes it: a reader that kept
    /// something of a run by its id (the site's levels) reads it again.
    fn renumber_run(&mut self, old: i64) -> Result<(), StoreError>;

    /// Removes `metric` when no run has values of it any more.
    fn remove_metric_if_unused(&mut self, metric: &str) -> Result<(), StoreError>;

    /// Records a forget of `sel` that removed `counts`; its id.
    fn record_forget(
        &mut self,
        sel: &ForgetSelector,
        counts: &ForgetCounts,
        who: &str,
        command_line: &str,
        created_unix: f64,
    ) -> Result<i64, StoreError>;
}

/// What a forget of `sel` removes, read through `sql` (in the forget's
/// transaction, or alone); and the ids of the runs concerned.
pub(crate) fn forget_plan_in(
    sql: &mut impl ForgetSql,
    sel: &ForgetSelector,
) -> Result<(ForgetPlan, Vec<i64>), StoreError> {
    let runs = sql.selected_runs(sel)?;
    let all_ids: Vec<i64> = runs.iter().map(|r| r.0).collect();
    let metric = sel.metric.as_deref();
    let values = sql.value_counts(&all_ids, metric)?;
    let series = sql.series_count(&all_ids, metric)?;
    // With a metric the runs stay, and so do their commits.
    let commits = if metric.is_some() {
        0
    } else {
        sql.commits_only_of(&all_ids)?
    };
    let counted = ForgetCounts {
        series,
        commits,
        ab_runs: sql.count_related(Related::AbRuns, sel)?,
        confirmations: sql.count_related(Related::Confirmations, sel)?,
        profiles: sql.count_related(Related::Profiles, sel)?,
        ..ForgetCounts::default()
    };
    Ok(plan_of(sel, runs, &values, counted))
}

/// [`Connection::forget`] through `sql`, in the transaction the backend
/// opened and commits once this returns its record: any step that finds
/// other than `plan` says fails it ([`StoreError::ForgetChanged`]).
pub(crate) fn forget_in(
    sql: &mut impl ForgetSql,
    sel: &ForgetSelector,
    plan: &ForgetPlan,
    who: &str,
    command_line: &str,
) -> Result<ForgetRecord, StoreError> {
    let (now, ids) = forget_plan_in(sql, sel)?;
    if now != *plan {
        return Err(StoreError::ForgetChanged);
    }
    let c = &plan.counts;
    // Confirmations first: the A/B runs they cite are kept or go after.
    let removed = [
        (
            sql.remove_related(Related::Confirmations, sel)?,
            c.confirmations,
        ),
        (sql.remove_related(Related::AbRuns, sel)?, c.ab_runs),
        (sql.remove_related(Related::Profiles, sel)?, c.profiles),
    ];
    let (values, runs, commits) = match &sel.metric {
        None => sql.remove_runs(&ids)?,
        Some(metric) => {
            let values = sql.remove_values(&ids, metric)?;
            for &old in &ids {
                sql.renumber_run(old)?;
            }
            // A metric no run has any more is forgotten too: its unit
            // and direction are not imposed on a new metric of its name.
            sql.remove_metric_if_unused(metric)?;
            (values, 0, 0)
        }
    };
    let expected = [(values, c.values), (runs, c.runs), (commits, c.commits)];
    if removed
        .iter()
        .chain(&expected)
        .any(|&(n, want)| n as i64 != want)
    {
        return Err(StoreError::ForgetChanged);
    }
    let created_unix = syncbench_model::unix_now();
    let id = sql.record_forget(sel, c, who, command_line, created_unix)?;
    Ok(ForgetRecord {
        id,
        created_unix,
        who: who.to_owned(),
        command_line: command_line.to_owned(),
        selector: sel.clone(),
        removed: c.clone(),
    })
}

/// The first of `commits` whose run, as `run_at` reads it (id and
/// status), is `ok`; with that commit (what `run_of` answers).
pub(crate) fn first_ok_run<E>(
    commits: &[String],
    mut run_at: impl FnMut(&String) -> Result<Option<(i64, RunStatus)>, E>,
) -> Result<Option<(i64, String)>, E> {
    for sha in commits {
        if let Some((id, status)) = run_at(sha)?
            && status == RunStatus::Ok
        {
            return Ok(Some((id, sha.clone())));
        }
    }
    Ok(None)
}

/// Adds a value of metric `name`, read by `value`, to the metric's series
/// in `out`, which `new` makes at the metric's first value.
pub(crate) fn add_value<E>(
    out: &mut BTreeMap<String, Series>,
    name: String,
    new: impl FnOnce() -> Result<Series, E>,
    value: impl FnOnce() -> Result<f64, E>,
) -> Result<(), E> {
    let series = match out.entry(name) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => e.insert(new()?),
    };
    series.values.push(value()?);
    Ok(())
}

/// A new series (no values yet) of a metric as stored: its name, unit
/// and direction. An unknown unit or direction (a newer harness's) reads
/// as a count, lower is better.
pub(crate) fn stored_series(name: String, unit: &str, direction: &str) -> Series {
    Series {
        name,
        unit: Unit::parse(unit).unwrap_or(Unit::Count),
        direction: Direction::parse(direction).unwrap_or(Direction::LowerIsBetter),
        values: Vec::new(),
    }
}

/// A commit's parents as stored: their shas, separated by spaces.
pub(crate) fn parents(text: String) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// A commit's parents as they are stored (read back by [`parents`]).
pub(crate) fn parents_text(parents: &[String]) -> String {
    parents.join(" ")
}

/// A confirmation's state as stored. A newer harness's state reads as
/// inconclusive: final (left alone), not an alarm.
pub(crate) fn stored_confirmation(state: &str) -> Confirmation {
    Confirmation::parse(state).unwrap_or(Confirmation::Inconclusive)
}

/// A triage decision's state as stored. An unknown state is a newer
/// harness's: read as `fixed`, which silences nothing, so an older gate
/// never passes because of it.
pub(crate) fn stored_triage(state: &str) -> Triage {
    Triage::parse(state).unwrap_or(Triage::Fixed)
}

/// A run's environment as stored: JSON, or NULL when nothing is known.
pub(crate) fn environment_json(env: &BTreeMap<String, String>) -> Option<String> {
    (!env.is_empty()).then(|| serde_json::to_string(env).expect("strings serialize"))
}

/// A stored environment read back (unreadable or NULL: nothing known).
pub(crate) fn environment_of(text: Option<&str>) -> BTreeMap<String, String> {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// An A/B run's verdict as stored; a newer harness's reads as failed.
pub(crate) fn stored_verdict(verdict: &str) -> Verdict {
    Verdict::parse(verdict).unwrap_or(Verdict::Failed)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} is not a SQLite database (left untouched); give another --db")]
    NotSqlite(PathBuf),
    #[error("{0} is a SQLite database of another program (left untouched); give another --db")]
    Foreign(PathBuf),
    #[error(
        "{path} holds a {what}, which syncbench never makes (left untouched): not a results database to read"
    )]
    Untrusted { path: PathBuf, what: String },
    #[error("{path} cannot be used as a results database (left untouched)")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: sqlite::SqliteError,
    },
    #[error("creating {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("results database")]
    Sqlite(#[source] sqlite::SqliteError),
    #[error(
        "{location}: its schema (version {found}) is newer than this build knows ({known}); use a newer syncbench"
    )]
    NewerSchema {
        location: String,
        found: i64,
        known: usize,
    },
    #[error("cannot reach PostgreSQL at {url}: is the server running, and is this its address?")]
    PgUnreachable {
        url: String,
        #[source]
        source: postgres::PgError,
    },
    #[error("no TLS connection to PostgreSQL at {url}: {cause}")]
    PgTls {
        url: String,
        cause: String,
        #[source]
        source: postgres::PgError,
    },
    #[error("the TLS settings of {url}")]
    PgTlsSettings {
        url: String,
        #[source]
        source: tls::TlsError,
    },
    #[error(
        "PostgreSQL at {url} refused the login: check the user and password in --db (or SYNCBENCH_DB)"
    )]
    PgLogin {
        url: String,
        #[source]
        source: postgres::PgError,
    },
    #[error(
        "the PostgreSQL database at {0} holds another program's tables (left untouched); give an empty database, or one syncbench created"
    )]
    PgForeign(String),
    #[error("results database (PostgreSQL)")]
    Postgres(#[source] postgres::PgError),
    #[error(
        "{location} holds {what} {value:?}, which is not a commit sha (40 or 64 lowercase hex digits): refused, nothing was used or written from it"
    )]
    NotASha {
        location: String,
        what: &'static str,
        value: String,
    },
    #[error(
        "the results changed while forget was asking (another command wrote to the database): nothing was forgotten; run it again"
    )]
    ForgetChanged,
    #[error(
        "storing in {db} failed; the {count} run(s) just measured are kept in {spool} and stored by the next `syncbench run`, `history` or `worker` with this --db (or now: `syncbench merge {spool} --db …`)",
        spool = spool.display()
    )]
    Kept {
        db: String,
        count: usize,
        spool: PathBuf,
        #[source]
        source: Box<StoreError>,
    },
}

impl StoreError {
    /// The server went away (or was never there): what was measured
    /// should be kept elsewhere and stored later.
    pub fn is_connection(&self) -> bool {
        match self {
            // A certificate refused on a reconnect (it expired meanwhile)
            // is a server gone, too: runs are kept, and the error says why.
            StoreError::PgUnreachable { .. } | StoreError::PgTls { .. } => true,
            StoreError::Postgres(e) => e.is_connection(),
            _ => false,
        }
    }
}

/// `value`, a commit id read from `location` (a file being merged, a
/// shared database), if it is one (`model::is_full_sha`): what a store
/// holds is data, and a commit id becomes a page's file name.
pub fn checked_sha(
    location: &dyn std::fmt::Display,
    what: &'static str,
    value: String,
) -> Result<String, StoreError> {
    if syncbench_model::is_full_sha(&value) {
        return Ok(value);
    }
    // Shown, not whole: it may be anything, of any length.
    let mut value = value;
    if value.len() > 100 {
        let mut cut = 100;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
        value.push('…');
    }
    Err(StoreError::NotASha {
        location: location.to_string(),
        what,
        value,
    })
}

/// The behaviour every backend owes: each test takes a fresh, empty
/// store, so a second backend runs the same tests.
#[cfg(test)]
pub(crate) mod conformance {
    use super::*;
    use syncbench_model::records::Commit;
    use syncbench_model::{Confirmation, Direction, Triage, Unit, Verdict};

    pub fn machine() -> Machine {
        Machine {
            cpu: "cpu".into(),
            cores: 2,
            memory_bytes: 8 << 30,
            os: "os".into(),
            kernel: "k".into(),
            hw_counters: "unavailable".into(),
            tag: None,
        }
    }

    fn commit(n: u8, parent: Option<u8>) -> Commit {
        let sha = |n: u8| format!("{n:02x}").repeat(20);
        Commit {
            sha: sha(n),
            parents: parent.map(sha).into_iter().collect(),
            author: "t".into(),
            time_unix: 1_700_000_000 + i64::from(n),
            subject: format!("commit {n}"),
            dirty: false,
            branch: None,
        }
    }

    fn run(c: Commit, status: RunStatus, wall: f64) -> RunRecord {
        let ok = status.is_ok();
        RunRecord {
            machine: machine(),
            commit: c,
            scenario: "s".into(),
            point: "n=1".into(),
            params_json: r#"{"n":"1"}"#.into(),
            status,
            error: (!ok).then(|| "boom".into()),
            repetitions: 2,
            harness_version: "0".into(),
            toolchain: "t".into(),
            environment: [("cargo_lock".to_owned(), "00ff".to_owned())].into(),
            command_line: "c".into(),
            started_unix: 1.0,
            finished_unix: 2.0,
            metrics: if ok {
                vec![Series {
                    name: "wall".into(),
                    unit: Unit::Seconds,
                    direction: Direction::LowerIsBetter,
                    values: vec![wall, wall * 1.01],
                }]
            } else {
                vec![]
            },
            samples: vec![(
                0,
                Sample {
                    process: "command".into(),
                    t_ms: 0.0,
                    cpu_pct: 50.0,
                    rss_bytes: 4096,
                },
            )],
            phases: vec![Phase {
                repetition: 0,
                name: "load".into(),
                start_ms: 0.0,
                end_ms: 5.0,
            }],
        }
    }

    fn key() -> PointKey {
        PointKey {
            machine: machine().fingerprint(),
            scenario: "s".into(),
            point: "n=1".into(),
        }
    }

    /// A run written is read back whole: its values, samples, phases,
    /// commit and machine.
    pub fn round_trip(store: &mut Store) {
        let id = store
            .record(&run(commit(1, None), RunStatus::Ok, 1.0))
            .unwrap();
        let series = store.series(id).unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].values, [1.0, 1.01]);
        assert_eq!(store.all_series(&|_| true).unwrap()[&id], series);
        assert_eq!(store.first_samples(id).unwrap()[0].rss_bytes, 4096);
        assert_eq!(store.first_phases(id).unwrap()[0].name, "load");
        let rows = store.runs("0101").unwrap();
        assert_eq!((rows.len(), rows[0].status), (1, RunStatus::Ok));
        assert_eq!(store.commits().unwrap()[0].subject, "commit 1");
        assert_eq!(
            store.machines().unwrap()[0].fingerprint,
            machine().fingerprint()
        );
    }

    /// The run of a commit: ok over failed, clean over dirty, newest.
    pub fn the_run_of_a_commit(store: &mut Store) {
        let c = commit(2, Some(1));
        let mut dirty = c.clone();
        dirty.dirty = true;
        let clean = store.record(&run(c.clone(), RunStatus::Ok, 1.0)).unwrap();
        store
            .record(&run(dirty.clone(), RunStatus::Ok, 3.0))
            .unwrap();
        store
            .record(&run(c.clone(), RunStatus::Failed, 0.0))
            .unwrap();
        let shas = [c.sha.clone()];
        assert_eq!(
            store.run_of(&key(), &shas, None).unwrap(),
            Some((clean, c.sha.clone()))
        );
        assert_eq!(
            store
                .run_of(&key(), &shas, Some(clean))
                .unwrap()
                .map(|r| r.0),
            Some(clean + 1)
        );
        let runs = store.commit_runs().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].environment, r#"{"cargo_lock":"00ff"}"#);
        assert_eq!(
            (runs[0].id, runs[0].dirty, runs[0].parents.len()),
            (clean, false, 1)
        );
        // Only a failure at a commit: it is the commit's run, not an ok one.
        let failed = store
            .record(&run(commit(3, Some(2)), RunStatus::Failed, 0.0))
            .unwrap();
        let runs = store.commit_runs().unwrap();
        assert_eq!(
            runs.iter().find(|r| r.id == failed).map(|r| r.status),
            Some(RunStatus::Failed)
        );
        assert_eq!(store.ok_commit_runs().unwrap().len(), 1);
        assert_eq!(
            store.run_of(&key(), &[commit(3, None).sha], None).unwrap(),
            None
        );
    }

    /// Final answers: ok, build_failed and unsupported of a clean tree.
    pub fn final_runs(store: &mut Store) {
        let m = machine();
        let (c4, c5) = (commit(4, None), commit(5, None));
        store
            .record(&run(c4.clone(), RunStatus::Timeout, 0.0))
            .unwrap();
        assert!(!store.has_final_run(&m, "s", Some("n=1"), &c4.sha).unwrap());
        store
            .record(&run(c4.clone(), RunStatus::BuildFailed, 0.0))
            .unwrap();
        assert!(store.has_final_run(&m, "s", Some("n=1"), &c4.sha).unwrap());
        assert!(store.has_final_run(&m, "s", None, &c4.sha).unwrap());
        assert!(!store.has_final_run(&m, "s", Some("n=2"), &c4.sha).unwrap());
        let mut dirty = c5.clone();
        dirty.dirty = true;
        store.record(&run(dirty, RunStatus::Ok, 1.0)).unwrap();
        assert!(!store.has_final_run(&m, "s", None, &c5.sha).unwrap());
    }

    /// Several runs in one transaction: all or none.
    pub fn all_or_none(store: &mut Store) {
        let ok = run(commit(6, None), RunStatus::Ok, 1.0);
        let mut bad = ok.clone();
        bad.metrics[0].values = vec![1.0];
        bad.metrics.push(bad.metrics[0].clone()); // the same metric twice
        assert!(store.record_all(&[ok.clone(), bad]).is_err());
        assert!(store.runs("").unwrap().is_empty());
        assert_eq!(store.record_all(&[ok.clone(), ok]).unwrap().len(), 2);
    }

    /// A profile of the same machine, point and commits replaces the
    /// earlier one; others are kept.
    pub fn profiles(store: &mut Store) {
        let p = ProfileRecord {
            machine: "m".into(),
            scenario: "s".into(),
            point: "n=1".into(),
            base_sha: "a".repeat(40),
            new_sha: "b".repeat(40),
            created_unix: 1.0,
            diff: "{}".into(),
        };
        store.record_profile(&p).unwrap();
        let newer = ProfileRecord {
            created_unix: 2.0,
            diff: "{\"x\":1}".into(),
            ..p.clone()
        };
        store.record_profile(&newer).unwrap();
        let other = ProfileRecord {
            point: "n=2".into(),
            ..p
        };
        store.record_profile(&other).unwrap();
        assert_eq!(store.profiles().unwrap(), vec![newer, other]);
    }

    fn ab(purpose: &str) -> AbRecord {
        AbRecord {
            id: 0,
            machine: "m".into(),
            scenario: "s".into(),
            point: "n=1".into(),
            a_point: None,
            metric: "wall".into(),
            a_sha: "a".repeat(40),
            b_sha: "b".repeat(40),
            mode: "interleaved".into(),
            verdict: Verdict::Regression,
            change: Some(0.031),
            low: Some(0.012),
            high: Some(0.05),
            threshold: 0.02,
            pairs: 3,
            stop: Some("changed".into()),
            seconds: 1.5,
            a: vec![1.0, 1.1, 0.9],
            b: vec![1.03, 1.13, 0.93],
            error: None,
            purpose: purpose.into(),
            created_unix: 5.0,
        }
    }

    /// A/B runs come back whole, pair structure and all; an unpaired run
    /// has no interval.
    pub fn ab_runs(store: &mut Store) {
        let first = ab("compare");
        let id = store.record_ab(&first).unwrap();
        // Unpaired, and of two variants (A's point stored beside B's).
        let unpaired = AbRecord {
            mode: "unpaired".into(),
            point: "n=1,variant=mimalloc".into(),
            a_point: Some("n=1".into()),
            low: None,
            high: None,
            stop: None,
            ..ab("check")
        };
        let id2 = store.record_ab(&unpaired).unwrap();
        assert_ne!(id, id2);
        let all = store.ab_runs().unwrap();
        assert_eq!(
            all,
            vec![
                AbRecord { id, ..first },
                AbRecord {
                    id: id2,
                    ..unpaired
                }
            ]
        );
    }

    fn confirmation_key(metric: &str) -> ConfirmationKey {
        ConfirmationKey {
            machine: "m".into(),
            scenario: "s".into(),
            point: "n=1".into(),
            metric: metric.into(),
            before_sha: "a".repeat(40),
            sha: "b".repeat(40),
        }
    }

    /// A change point is claimed once; a stale claim (its owner gone) and,
    /// with `again`, a final answer can be claimed anew.
    pub fn confirmations(store: &mut Store) {
        let key = confirmation_key("wall");
        let never = |_: &ConfirmationRow| false;
        assert!(
            store
                .claim_confirmation(&key, "h:1", false, &never)
                .unwrap()
        );
        assert!(
            !store
                .claim_confirmation(&key, "h:2", false, &never)
                .unwrap()
        );
        let rows = store.confirmations().unwrap();
        assert_eq!((rows.len(), rows[0].state), (1, Confirmation::Pending));
        // Its owner died: the claim is stale.
        let gone = |r: &ConfirmationRow| r.owner == "h:1";
        assert!(store.claim_confirmation(&key, "h:2", false, &gone).unwrap());
        assert_eq!(store.confirmations().unwrap()[0].owner, "h:2");
        let ab_id = store.record_ab(&ab("confirm")).unwrap();
        let done = ConfirmationRow {
            key: key.clone(),
            state: Confirmation::Confirmed,
            reason: "+3.1% [+1.2%, +5.0%]".into(),
            ab_id: Some(ab_id),
            owner: "h:2".into(),
            updated_unix: 9.0,
        };
        // An answer from a run whose claim was taken over is not recorded.
        store
            .finish_confirmation(&ConfirmationRow {
                owner: "h:1".into(),
                state: Confirmation::Refuted,
                ..done.clone()
            })
            .unwrap();
        assert_eq!(
            store.confirmations().unwrap()[0].state,
            Confirmation::Pending
        );
        store.finish_confirmation(&done).unwrap();
        assert_eq!(store.confirmations().unwrap(), vec![done.clone()]);
        // A final answer is left alone, even by a claim that finds it
        // "stale", unless asked again.
        let always = |_: &ConfirmationRow| true;
        assert!(
            !store
                .claim_confirmation(&key, "h:3", false, &always)
                .unwrap()
        );
        assert!(store.claim_confirmation(&key, "h:3", true, &never).unwrap());
        let other = confirmation_key("cpu_user");
        assert!(
            store
                .claim_confirmation(&other, "h:3", false, &never)
                .unwrap()
        );
        assert_eq!(store.confirmations().unwrap().len(), 2);
    }

    /// Triage decisions are kept, oldest first.
    pub fn triages(store: &mut Store) {
        let t = TriageRecord {
            id: 0,
            commit: "a".repeat(40),
            metric: "wall".into(),
            scenario: None,
            state: Triage::Invalid,
            by: None,
            who: "me".into(),
            note: Some("a noisy neighbour".into()),
            created_unix: 1.0,
        };
        let id = store.record_triage(&t).unwrap();
        let later = TriageRecord {
            state: Triage::Fixed,
            scenario: Some("s".into()),
            by: Some("c".repeat(40)),
            note: None,
            created_unix: 2.0,
            ..t.clone()
        };
        let id2 = store.record_triage(&later).unwrap();
        assert_eq!(
            store.triages().unwrap(),
            vec![TriageRecord { id, ..t }, TriageRecord { id: id2, ..later }]
        );
    }

    /// Merging adds only the runs the store lacks, and exported runs come
    /// back whole; a machine's newest tag is kept, and a run without one
    /// leaves it.
    pub fn merging(store: &mut Store) {
        let a = run(commit(7, None), RunStatus::Ok, 1.0);
        let b = run(commit(8, Some(7)), RunStatus::Failed, 0.0);
        assert_eq!(store.merge_runs(&[a.clone(), b.clone()]).unwrap(), 2);
        assert_eq!(store.merge_runs(&[b.clone(), a.clone()]).unwrap(), 0);
        let mut tagged = a.clone();
        tagged.machine.tag = Some("x86-quiet".into());
        tagged.started_unix = 3.0;
        assert_eq!(store.merge_runs(&[tagged]).unwrap(), 1);
        assert_eq!(store.merge_runs(std::slice::from_ref(&a)).unwrap(), 0);
        assert_eq!(
            store.machines().unwrap()[0].tag.as_deref(),
            Some("x86-quiet")
        );
        assert_eq!(store.machines().unwrap()[0].runs, 3);
        let exported = store.export_runs().unwrap();
        assert_eq!(exported.len(), 3);
        for (got, want) in exported.iter().zip([&a, &b]) {
            let mut got = got.clone();
            got.machine.tag = None;
            assert_eq!(format!("{got:?}"), format!("{want:?}"));
        }
    }

    /// Runs of scenario `s` (points n=1 with metrics wall and cpu at
    /// commits 11, 12 and 14, n=2 with wall at 11) and `t` (n=1, wall, at
    /// 11, 12 and 13); A/B runs, a confirmation citing one, and profiles
    /// of both scenarios.
    pub fn forget_fixture(store: &mut Store) {
        let mut runs = Vec::new();
        for (n, parent) in [(11, None), (12, Some(11)), (14, Some(12))] {
            let mut r = run(commit(n, parent), RunStatus::Ok, f64::from(n));
            let mut cpu = r.metrics[0].clone();
            cpu.name = "cpu".into();
            r.metrics.push(cpu);
            r.started_unix = f64::from(n);
            runs.push(r);
        }
        let mut n2 = run(commit(11, None), RunStatus::Ok, 2.0);
        n2.point = "n=2".into();
        runs.push(n2);
        for (n, parent) in [(11, None), (12, Some(11)), (13, Some(12))] {
            let mut r = run(commit(n, parent), RunStatus::Ok, 5.0);
            r.scenario = "t".into();
            r.started_unix = 100.0 + f64::from(n);
            runs.push(r);
        }
        store.record_all(&runs).unwrap();
        let (c11, c12) = (commit(11, None).sha, commit(12, None).sha);
        let mut cited = 0;
        for (scenario, metric) in [("s", "wall"), ("s", "cpu"), ("t", "wall")] {
            let id = store
                .record_ab(&AbRecord {
                    machine: machine().fingerprint(),
                    scenario: scenario.into(),
                    metric: metric.into(),
                    a_sha: c11.clone(),
                    b_sha: c12.clone(),
                    ..ab("confirm")
                })
                .unwrap();
            if (scenario, metric) == ("s", "wall") {
                cited = id;
            }
        }
        let key = ConfirmationKey {
            machine: machine().fingerprint(),
            scenario: "s".into(),
            point: "n=1".into(),
            metric: "wall".into(),
            before_sha: c11.clone(),
            sha: c12.clone(),
        };
        assert!(
            store
                .claim_confirmation(&key, "h:1", false, &|_| false)
                .unwrap()
        );
        store
            .finish_confirmation(&ConfirmationRow {
                key,
                state: Confirmation::Confirmed,
                reason: "+3%".into(),
                ab_id: Some(cited),
                owner: "h:1".into(),
                updated_unix: 3.0,
            })
            .unwrap();
        for scenario in ["s", "t"] {
            store
                .record_profile(&ProfileRecord {
                    machine: machine().fingerprint(),
                    scenario: scenario.into(),
                    point: "n=1".into(),
                    base_sha: c11.clone(),
                    new_sha: c12.clone(),
                    created_unix: 1.0,
                    diff: "{}".into(),
                })
                .unwrap();
        }
    }

    /// Everything a store holds, as text (runs without their ids unless
    /// `ids`), and what of it belongs to scenario `t`.
    pub fn contents(store: &Store) -> (String, String) {
        let runs = store.export_runs().unwrap();
        let ab = store.ab_runs().unwrap();
        let confirmations = store.confirmations().unwrap();
        let profiles = store.profiles().unwrap();
        let commits: Vec<String> = store
            .commits()
            .unwrap()
            .into_iter()
            .map(|c| c.sha)
            .collect();
        let all = format!(
            "{runs:?}\n{ab:?}\n{confirmations:?}\n{profiles:?}\n{commits:?}\n{:?}\n{:?}",
            store.runs("").unwrap(),
            store.forgotten().unwrap()
        );
        let t = format!(
            "{:?}\n{:?}\n{:?}\n{:?}",
            runs.iter()
                .filter(|r| r.scenario == "t")
                .collect::<Vec<_>>(),
            ab.iter().filter(|r| r.scenario == "t").collect::<Vec<_>>(),
            confirmations
                .iter()
                .filter(|r| r.key.scenario == "t")
                .collect::<Vec<_>>(),
            profiles
                .iter()
                .filter(|r| r.scenario == "t")
                .collect::<Vec<_>>(),
        );
        (all, t)
    }

    fn select(scenario: Option<&str>, point: Option<&str>, metric: Option<&str>) -> ForgetSelector {
        ForgetSelector {
            scenario: scenario.map(Into::into),
            point: point.map(Into::into),
            metric: metric.map(Into::into),
            ..ForgetSelector::default()
        }
    }

    /// A scenario forgotten: its runs, values, A/B runs, confirmation and
    /// profile, and the commit only it had; the other scenario as it was;
    /// the forget recorded.
    pub fn forget_a_scenario(store: &mut Store) {
        forget_fixture(store);
        let (_, t_before) = contents(store);
        let sel = select(Some("s"), None, None);
        let plan = store.forget_plan(&sel).unwrap();
        assert_eq!(
            plan.counts,
            ForgetCounts {
                runs: 4,
                runs_changed: 0,
                values: 3 * 4 + 2,
                series: 3,
                commits: 1,
                ab_runs: 2,
                confirmations: 1,
                profiles: 1,
            }
        );
        assert_eq!(
            plan.groups
                .iter()
                .map(|g| (g.point.as_str(), g.runs, g.commits, g.values))
                .collect::<Vec<_>>(),
            [("n=1", 3, 3, 12), ("n=2", 1, 1, 2)]
        );
        let record = store
            .forget(&sel, &plan, "me", "syncbench forget s")
            .unwrap();
        assert_eq!(
            (record.removed, record.selector),
            (plan.counts, sel.clone())
        );
        let (_, t_after) = contents(store);
        assert_eq!(t_before, t_after, "scenario t was touched");
        assert!(store.runs("").unwrap().iter().all(|r| r.scenario == "t"));
        assert!(store.ab_runs().unwrap().iter().all(|r| r.scenario == "t"));
        assert!(store.confirmations().unwrap().is_empty());
        assert_eq!(store.profiles().unwrap().len(), 1);
        assert!(
            !store
                .commits()
                .unwrap()
                .iter()
                .any(|c| c.sha == commit(14, None).sha)
        );
        assert_eq!(store.commits().unwrap().len(), 3);
        let listed = store.forgotten().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, record.id);
        assert_eq!(listed[0].who, "me");
        assert_eq!(listed[0].removed.runs, 4);
        assert!(store.forget_plan(&sel).unwrap().is_empty());
    }

    /// A metric forgotten: its values and A/B run go, the runs stay with
    /// their other metric under new ids; a point of one commit forgotten:
    /// its run, and what involves the commit.
    pub fn forget_a_metric_and_a_commit(store: &mut Store) {
        forget_fixture(store);
        let (_, t_before) = contents(store);
        let before = store.runs("").unwrap();
        let sel = select(Some("s"), None, Some("cpu"));
        let plan = store.forget_plan(&sel).unwrap();
        assert_eq!(
            plan.counts,
            ForgetCounts {
                runs: 0,
                runs_changed: 3,
                values: 6,
                series: 1,
                commits: 0,
                ab_runs: 1,
                confirmations: 0,
                profiles: 0,
            }
        );
        store.forget(&sel, &plan, "me", "c").unwrap();
        let after = store.runs("").unwrap();
        assert_eq!(after.len(), before.len());
        let all = store.all_series(&|_| true).unwrap();
        for r in &after {
            let names: Vec<&str> = all[&r.id].iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["wall"], "{r:?}");
            // The runs that changed have new ids; the others kept theirs.
            let old = before
                .iter()
                .find(|b| {
                    b.started_unix == r.started_unix
                        && b.point == r.point
                        && b.scenario == r.scenario
                })
                .unwrap();
            assert_eq!(
                r.id == old.id,
                r.scenario == "t" || r.point == "n=2",
                "{r:?}"
            );
        }
        assert_eq!(
            store.first_samples(after.last().unwrap().id).unwrap().len(),
            1
        );
        assert_eq!(contents(store).1, t_before);
        assert_eq!(store.ab_runs().unwrap().len(), 2);
        assert!(store.forget_plan(&sel).unwrap().is_empty());

        let sel = ForgetSelector {
            commit: Some(commit(12, None).sha),
            ..select(Some("s"), Some("n=1"), None)
        };
        let plan = store.forget_plan(&sel).unwrap();
        assert_eq!(
            plan.counts,
            ForgetCounts {
                runs: 1,
                values: 2,
                series: 1,
                ab_runs: 1,
                confirmations: 1,
                profiles: 1,
                ..ForgetCounts::default()
            }
        );
        store.forget(&sel, &plan, "me", "c").unwrap();
        assert_eq!(contents(store).1, t_before);
        assert_eq!(store.runs(&commit(12, None).sha).unwrap().len(), 1);
        // Machines select too.
        let elsewhere = ForgetSelector {
            machines: vec!["another machine".into()],
            ..select(Some("t"), None, None)
        };
        assert!(store.forget_plan(&elsewhere).unwrap().is_empty());
        let here = ForgetSelector {
            machines: vec![machine().fingerprint()],
            ..elsewhere
        };
        assert_eq!(store.forget_plan(&here).unwrap().counts.runs, 3);
        assert_eq!(store.forgotten().unwrap().len(), 2);
    }

    /// A forget whose selection changed since it was shown removes
    /// nothing.
    pub fn forget_of_a_changed_selection(store: &mut Store) {
        forget_fixture(store);
        let sel = select(Some("s"), None, None);
        let plan = store.forget_plan(&sel).unwrap();
        store
            .record(&run(commit(15, Some(14)), RunStatus::Ok, 1.0))
            .unwrap();
        let (before, _) = contents(store);
        let e = store.forget(&sel, &plan, "me", "c").unwrap_err();
        assert!(matches!(e, StoreError::ForgetChanged), "{e}");
        assert_eq!(contents(store).0, before);
    }

    /// After `sabotage` made its last step fail, a forget removed nothing.
    pub fn forget_is_all_or_nothing(store: &mut Store, sabotage: &mut dyn FnMut()) {
        forget_fixture(store);
        let sel = select(Some("s"), None, None);
        let plan = store.forget_plan(&sel).unwrap();
        let (before, _) = contents_without_forgotten(store);
        sabotage();
        assert!(store.forget(&sel, &plan, "me", "c").is_err());
        assert_eq!(contents_without_forgotten(store).0, before);
        let sel = select(Some("s"), None, Some("cpu"));
        let plan = store.forget_plan(&sel).unwrap();
        assert!(store.forget(&sel, &plan, "me", "c").is_err());
        assert_eq!(contents_without_forgotten(store).0, before);
    }

    /// As [`contents`], for a store whose record of forgets is broken.
    fn contents_without_forgotten(store: &Store) -> (String, ()) {
        let all = format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            store.export_runs().unwrap(),
            store.ab_runs().unwrap(),
            store.confirmations().unwrap(),
            store.profiles().unwrap(),
            store
                .commits()
                .unwrap()
                .into_iter()
                .map(|c| c.sha)
                .collect::<Vec<_>>(),
            store.runs("").unwrap(),
            store
                .all_series(&|_| true)
                .unwrap()
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
        );
        (all, ())
    }

    /// The conformance tests for a backend; `$open` gives `(guard,
    /// store)`, or `None` where the backend cannot run (the test skips).
    macro_rules! tests_for {
        ($open:expr) => {
            #[test]
            fn round_trip() {
                let Some((_guard, mut store)) = $open else {
                    return;
                };
                $crate::conformance::round_trip(&mut *store);
            }
            #[test]
            fn the_run_of_a_commit() {
                let Some((_guard, mut store)) = $open else {
                    return;
                };
                $crate::conformance::the_run_of_a_commit(&mut *store);
            }
            #[test]
            fn final_runs() {
                let Some((_guard, mut store)) = $open else {
                    return;
                };
                $crate::conformance::final_runs(&mut *store);
            }
            #[test]
            fn all_or_none() {
                let Some((_guard, mut store)) = $open else {
                    return;
                };
                $crate::conformance::all_or_none(&mut *store);
            }
            #[test]
            fn profiles() {
                let Some((_guard, mut store)) = $open else {
                    return;
                };
                $crate::conformance::profiles(&mut *store);
            }
            #[test]
            fn ab_runs() {
                let Some((_guard, mut store)) = $open else {
                    return;
                };
                $crate::conformance::ab_runs(&mut *store);
            }
            #[test]
            fn confirmations() {
                let Some((_guard, mut store)) = $open else {
                    return;
                };
                $crate::conformance::confirmations(&mut *store);
            }
            #[test]
            fn merging() {
                let Some((_guard, mut store)) = $open else {
                    return;
                };
                $crate::conformance::merging(&mut *store);
            }
            #[test]
            fn triages() {
                let Some((_guard, mut store)) = $open else {
                    return;
                };
                $crate::conformance::triages(&mut *store);
            }
            #[test]
            fn forget_a_scenario() {
                let Some((_guard, mut store)) = $open else {
                    return;
                };
                $crate::conformance::forget_a_scenario(&mut *store);
            }
            #[test]
            fn forget_a_metric_and_a_commit() {
                let Some((_guard, mut store)) = $open else {
                    return;
                };
                $crate::conformance::forget_a_metric_and_a_commit(&mut *store);
            }
            #[test]
            fn forget_of_a_changed_selection() {
                let Some((_guard, mut store)) = $open else {
                    return;
                };
                $crate::conformance::forget_of_a_changed_selection(&mut *store);
            }
        };
    }
    pub(crate) use tests_for;
}

#[cfg(test)]
mod sqlite_tests {
    /// A fresh SQLite store, and its temp dir to keep while it is used.
    fn fresh() -> Option<(tempfile::TempDir, Box<super::Store>)> {
        let dir = tempfile::tempdir().unwrap();
        let store = super::open(&super::Location::Sqlite(dir.path().join("r.sqlite"))).unwrap();
        Some((dir, store))
    }

    super::conformance::tests_for!(fresh());

    /// The record of the forget, its last step, fails: nothing removed.
    #[test]
    fn a_forget_failing_at_its_last_step_removed_nothing() {
        let (dir, mut store) = fresh().unwrap();
        let path = dir.path().join("r.sqlite");
        super::conformance::forget_is_all_or_nothing(&mut *store, &mut || {
            rusqlite::Connection::open(&path)
                .unwrap()
                .execute_batch("DROP TABLE forgotten")
                .unwrap();
        });
    }
}

/// The same tests against a real PostgreSQL server of their own.
#[cfg(test)]
mod postgres_tests {
    use super::Location;

    fn fresh() -> Option<(syncbench_test_support::pgtest::PgServer, Box<super::Store>)> {
        let server = syncbench_test_support::pgtest::start_or_skip()?;
        let store = super::open(&Location::Postgres(server.url_of("postgres"))).unwrap();
        Some((server, store))
    }

    super::conformance::tests_for!(fresh());

    /// As SQLite's: a forget failing at its last step removed nothing.
    #[test]
    fn a_forget_failing_at_its_last_step_removed_nothing() {
        let Some((server, mut store)) = fresh() else {
            return;
        };
        let url = server.url_of("postgres");
        super::conformance::forget_is_all_or_nothing(&mut *store, &mut || {
            postgres::Client::connect(&url, postgres::NoTls)
                .unwrap()
                .batch_execute("DROP TABLE forgotten")
                .unwrap();
        });
    }
}
