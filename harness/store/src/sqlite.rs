//! The SQLite backend of the results store (`.syncbench/results.sqlite`
//! by default): WAL, migrations by `user_version`, checked before use.

use super::{
    AbRecord, CommitRow, CommitRun, ConfirmationKey, ConfirmationRow, Connection, ForgetCounts,
    ForgetPlan, ForgetRecord, ForgetSelector, ForgetSql, MachineRow, ProfileRecord, Related,
    RunRecord, RunRow, SelectedRun, StoreError, TriageRecord, parents, parents_text,
};
use rusqlite::{OpenFlags, OptionalExtension, named_params, params};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use syncbench_model::records::Sample;
use syncbench_model::records::{Commit, Machine};
use syncbench_model::{Confirmation, Phase, PointKey, RunStatus, Series};

/// The order that picks the run of a commit (see the module doc of
/// `store`) among the runs of one point at one commit: the first row
/// wins. `?1` is bound to `ok`.
const THE_RUN: &str = "(r.status = ?1) DESC, r.dirty ASC, r.started_unix DESC, r.id DESC";

/// `PRAGMA application_id` of our databases ("SBNC").
const APPLICATION_ID: i64 = 0x5342_4e43;

const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE machines (
        id INTEGER PRIMARY KEY,
        fingerprint TEXT NOT NULL UNIQUE,
        cpu TEXT NOT NULL, cores INTEGER NOT NULL, memory_bytes INTEGER NOT NULL,
        os TEXT NOT NULL, kernel TEXT NOT NULL, hw_counters TEXT NOT NULL
    ) STRICT;
    CREATE TABLE commits (
        sha TEXT PRIMARY KEY,
        parents TEXT NOT NULL,
        author TEXT NOT NULL,
        time_unix INTEGER NOT NULL,
        subject TEXT NOT NULL
    ) STRICT;
    -- All repetitions of one scenario point at one commit on one machine.
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        machine_id INTEGER NOT NULL REFERENCES machines (id),
        commit_sha TEXT NOT NULL REFERENCES commits (sha),
        dirty INTEGER NOT NULL,
        branch TEXT,
        scenario TEXT NOT NULL,
        point TEXT NOT NULL,
        params TEXT NOT NULL,
        -- ok, failed, timeout, interrupted, build_failed, unsupported
        status TEXT NOT NULL,
        error TEXT,
        repetitions INTEGER NOT NULL,
        harness_version TEXT NOT NULL,
        toolchain TEXT NOT NULL,
        command_line TEXT NOT NULL,
        started_unix REAL NOT NULL,
        finished_unix REAL NOT NULL
    ) STRICT;
    CREATE INDEX runs_by_series ON runs (machine_id, scenario, point, commit_sha);
    CREATE TABLE metrics (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        unit TEXT NOT NULL,
        direction TEXT NOT NULL
    ) STRICT;
    -- Raw values: one per repetition and metric.
    CREATE TABLE measurements (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        metric_id INTEGER NOT NULL REFERENCES metrics (id),
        repetition INTEGER NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (run_id, metric_id, repetition)
    ) STRICT;
    -- CPU and RSS over time, per process tree.
    CREATE TABLE samples (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        repetition INTEGER NOT NULL,
        process TEXT NOT NULL,
        t_ms REAL NOT NULL,
        cpu_pct REAL NOT NULL,
        rss_bytes INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX samples_by_run ON samples (run_id, repetition);
    -- The driver's phases on the repetition's clock.
    CREATE TABLE phases (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        repetition INTEGER NOT NULL,
        name TEXT NOT NULL,
        start_ms REAL NOT NULL,
        end_ms REAL NOT NULL
    ) STRICT;
",
    "
    -- Where the instructions of one point went, compared between two
    -- commits (`syncbench profile`): ops::profile::ProfileDiff as JSON.
    CREATE TABLE profiles (
        id INTEGER PRIMARY KEY,
        machine TEXT NOT NULL,
        scenario TEXT NOT NULL,
        point TEXT NOT NULL,
        base_sha TEXT NOT NULL,
        new_sha TEXT NOT NULL,
        created_unix REAL NOT NULL,
        diff TEXT NOT NULL,
        UNIQUE (machine, scenario, point, base_sha, new_sha)
    ) STRICT;
",
    "
    -- One metric of one point measured A/B (compare --run, check,
    -- confirm): both sides' values as JSON arrays in measuring order,
    -- a[i] and b[i] being pair i. low/high are NULL for the unpaired way.
    CREATE TABLE ab_runs (
        id INTEGER PRIMARY KEY,
        machine TEXT NOT NULL,
        scenario TEXT NOT NULL,
        point TEXT NOT NULL,
        metric TEXT NOT NULL,
        a_sha TEXT NOT NULL,
        b_sha TEXT NOT NULL,
        mode TEXT NOT NULL,
        verdict TEXT NOT NULL,
        change REAL,
        low REAL,
        high REAL,
        threshold REAL NOT NULL,
        pairs INTEGER NOT NULL,
        stop TEXT,
        seconds REAL NOT NULL,
        a_values TEXT NOT NULL,
        b_values TEXT NOT NULL,
        error TEXT,
        purpose TEXT NOT NULL,
        created_unix REAL NOT NULL
    ) STRICT;
    CREATE INDEX ab_runs_by_commits ON ab_runs (b_sha, a_sha);
    -- Change points of noisy metrics measured again (syncbench confirm);
    -- a row is claimed (pending) before measuring, so two runs at once
    -- never both take it.
    CREATE TABLE confirmations (
        machine TEXT NOT NULL,
        scenario TEXT NOT NULL,
        point TEXT NOT NULL,
        metric TEXT NOT NULL,
        before_sha TEXT NOT NULL,
        sha TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        ab_id INTEGER REFERENCES ab_runs (id),
        owner TEXT NOT NULL,
        updated_unix REAL NOT NULL,
        PRIMARY KEY (machine, scenario, point, metric, sha, before_sha)
    ) STRICT;
    -- People's decisions about alarms (syncbench triage); the newest per
    -- alarm is in force.
    CREATE TABLE triage (
        id INTEGER PRIMARY KEY,
        commit_sha TEXT NOT NULL,
        metric TEXT NOT NULL,
        scenario TEXT,
        state TEXT NOT NULL,
        by_sha TEXT,
        who TEXT NOT NULL,
        note TEXT,
        created_unix REAL NOT NULL
    ) STRICT;
",
    "
    -- The name people gave a machine (--machine-tag); the newest wins.
    ALTER TABLE machines ADD COLUMN tag TEXT;
    -- merge finds a run it already has by machine, commit and times.
    CREATE INDEX runs_by_commit ON runs (commit_sha, started_unix);
",
    "
    -- Removing a run (syncbench forget) finds its phases by run, as
    -- PostgreSQL's phases_by_run does, instead of reading them all.
    CREATE INDEX phases_by_run ON phases (run_id);
    -- What syncbench forget removed, when, for whom and by which command
    -- line: the selection (NULL: any; machines a JSON array of
    -- fingerprints, [] for every machine) and how much of each kind.
    CREATE TABLE forgotten (
        id INTEGER PRIMARY KEY,
        created_unix REAL NOT NULL,
        who TEXT NOT NULL,
        command_line TEXT NOT NULL,
        scenario TEXT,
        point TEXT,
        metric TEXT,
        commit_sha TEXT,
        machines TEXT NOT NULL,
        runs INTEGER NOT NULL,
        runs_changed INTEGER NOT NULL,
        value_count INTEGER NOT NULL,
        series INTEGER NOT NULL,
        commits INTEGER NOT NULL,
        ab_runs INTEGER NOT NULL,
        confirmations INTEGER NOT NULL,
        profiles INTEGER NOT NULL
    ) STRICT;
",
    "
    -- A's point where it is not B's: two variants compared at a commit.
    ALTER TABLE ab_runs ADD COLUMN a_point TEXT;
",
    "
    -- What else a run depends on (RunRecord::environment), as JSON.
    ALTER TABLE runs ADD COLUMN environment TEXT;
",
];

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(SqliteError(e))
    }
}

/// rusqlite's error without its source: its message already says what
/// the source (SQLite's numeric code) says, and a chain would say it twice.
#[derive(Debug)]
pub struct SqliteError(pub rusqlite::Error);

impl std::fmt::Display for SqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SqliteError {}

#[derive(Debug)]
pub struct SqliteStore {
    conn: rusqlite::Connection,
}

impl SqliteStore {
    /// Opens (creating if needed) the results database. An existing file
    /// is checked read-only first: anything that is not ours is refused
    /// before a single byte of it is written.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let exists = path.metadata().map(|m| m.len() > 0).unwrap_or(false);
        if exists {
            check_existing(path)?;
        } else if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        let conn = sqlite_util::open(path, MIGRATIONS).map_err(|e| StoreError::Unreadable {
            path: path.to_owned(),
            source: SqliteError(e),
        })?;
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        Ok(SqliteStore { conn })
    }

    /// The machine's id, recorded if new; `retag` as in the PostgreSQL
    /// backend (a live run's tag replaces the stored one, a merged one
    /// only fills a gap).
    fn machine_id(tx: &rusqlite::Connection, m: &Machine, retag: bool) -> Result<i64, StoreError> {
        tx.execute(
            "INSERT INTO machines (fingerprint, cpu, cores, memory_bytes, os, kernel, hw_counters, tag)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (fingerprint) DO NOTHING",
            params![
                m.fingerprint(),
                m.cpu,
                m.cores,
                m.memory_bytes as i64,
                m.os,
                m.kernel,
                m.hw_counters,
                m.tag
            ],
        )?;
        if m.tag.is_some() {
            tx.execute(
                "UPDATE machines SET tag = ?2 WHERE fingerprint = ?1
                   AND tag IS NOT ?2 AND (?3 OR tag IS NULL)",
                params![m.fingerprint(), m.tag, retag],
            )?;
        }
        Ok(tx.query_row(
            "SELECT id FROM machines WHERE fingerprint = ?1",
            [m.fingerprint()],
            |r| r.get(0),
        )?)
    }
}

// What each query answers is documented on the trait.
impl Connection for SqliteStore {
    fn record(&mut self, run: &RunRecord) -> Result<i64, StoreError> {
        let tx = self.conn.transaction()?;
        let id = insert_run(&tx, run, true)?;
        tx.commit()?;
        Ok(id)
    }

    fn record_all(&mut self, runs: &[RunRecord]) -> Result<Vec<i64>, StoreError> {
        let tx = self.conn.transaction()?;
        let ids = runs
            .iter()
            .map(|r| insert_run(&tx, r, true))
            .collect::<Result<_, _>>()?;
        tx.commit()?;
        Ok(ids)
    }

    fn run_of(
        &self,
        key: &PointKey,
        commits: &[String],
        exclude: Option<i64>,
    ) -> Result<Option<(i64, String)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT r.id, r.status FROM runs r JOIN machines m ON m.id = r.machine_id
             WHERE m.fingerprint = ?2 AND r.scenario = ?3 AND r.point = ?4 AND r.commit_sha = ?5
               AND r.id != ?6
             ORDER BY {THE_RUN} LIMIT 1"
        ))?;
        Ok(super::first_ok_run(commits, |sha| {
            stmt.query_row(
                params![
                    RunStatus::Ok.as_str(),
                    key.machine,
                    key.scenario,
                    key.point,
                    sha,
                    exclude.unwrap_or(-1)
                ],
                |r| Ok((r.get(0)?, RunStatus::parse(&r.get::<_, String>(1)?))),
            )
            .optional()
        })?)
    }

    fn series(&self, run_id: i64) -> Result<Vec<Series>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.name, m.unit, m.direction, v.value FROM measurements v JOIN metrics m ON m.id = v.metric_id
             WHERE v.run_id = ?1 ORDER BY m.name, v.repetition",
        )?;
        let mut out: BTreeMap<String, Series> = BTreeMap::new();
        let mut rows = stmt.query([run_id])?;
        while let Some(r) = rows.next()? {
            super::add_value(&mut out, r.get(0)?, || metric_of(r), || r.get(3))?;
        }
        Ok(out.into_values().collect())
    }

    fn runs(&self, sha_prefix: &str) -> Result<Vec<RunRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT r.id, m.fingerprint, r.commit_sha, r.dirty, r.scenario, r.point, r.status, r.error, r.started_unix
             FROM runs r JOIN machines m ON m.id = r.machine_id
             WHERE substr(r.commit_sha, 1, length(?1)) = ?1 ORDER BY r.id",
        )?;
        let rows = stmt.query_map([sha_prefix], |r| {
            Ok(RunRow {
                id: r.get(0)?,
                machine: r.get(1)?,
                commit: r.get(2)?,
                dirty: r.get(3)?,
                scenario: r.get(4)?,
                point: r.get(5)?,
                status: RunStatus::parse(&r.get::<_, String>(6)?),
                error: r.get(7)?,
                started_unix: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn commit_runs(&self) -> Result<Vec<CommitRun>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT id, fingerprint, scenario, point, params, sha, time_unix, parents, status, error, dirty,
                    started_unix, environment
             FROM (SELECT r.id, m.fingerprint, r.scenario, r.point, r.params, c.sha, c.time_unix,
                          c.parents, r.status, r.error, r.dirty, r.started_unix, r.environment,
                          row_number() OVER (PARTITION BY r.machine_id, r.scenario, r.point, r.commit_sha
                                             ORDER BY {THE_RUN}) AS rank
                   FROM runs r JOIN machines m ON m.id = r.machine_id
                   JOIN commits c ON c.sha = r.commit_sha)
             WHERE rank = 1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([RunStatus::Ok.as_str()], |r| {
            Ok(CommitRun {
                id: r.get(0)?,
                key: PointKey {
                    machine: r.get(1)?,
                    scenario: r.get(2)?,
                    point: r.get(3)?,
                },
                params: r.get(4)?,
                sha: r.get(5)?,
                time_unix: r.get(6)?,
                parents: parents(r.get(7)?),
                status: RunStatus::parse(&r.get::<_, String>(8)?),
                error: r.get(9)?,
                dirty: r.get(10)?,
                started_unix: r.get(11)?,
                environment: r.get::<_, Option<String>>(12)?.unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn commits(&self) -> Result<Vec<CommitRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT sha, parents, author, time_unix, subject FROM commits ORDER BY sha")?;
        let rows = stmt.query_map([], |r| {
            Ok(CommitRow {
                sha: r.get(0)?,
                parents: parents(r.get(1)?),
                author: r.get(2)?,
                time_unix: r.get(3)?,
                subject: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn machines(&self) -> Result<Vec<MachineRow>, StoreError> {
        let mut stmt = self.conn.prepare(MACHINES)?;
        let rows = stmt.query_map([], |r| {
            Ok(MachineRow {
                fingerprint: r.get(0)?,
                tag: r.get(1)?,
                cpu: r.get(2)?,
                cores: r.get(3)?,
                memory_bytes: r.get(4)?,
                os: r.get(5)?,
                runs: r.get(6)?,
                last_run_unix: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn all_series(
        &self,
        wanted: &dyn Fn(i64) -> bool,
    ) -> Result<HashMap<i64, Vec<Series>>, StoreError> {
        // The metrics by id, then the values in the primary key's order
        // (no sort, no string per row: at 25 million values this took the
        // load from 12 s to about 3), each run's metrics ordered by name
        // after.
        let mut metrics: HashMap<i64, Series> = HashMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, unit, direction FROM metrics")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            metrics.insert(
                id,
                super::stored_series(r.get(1)?, &r.get::<_, String>(2)?, &r.get::<_, String>(3)?),
            );
        }
        let mut out: HashMap<i64, Vec<Series>> = HashMap::new();
        let mut stmt = self.conn.prepare(
            "SELECT run_id, metric_id, value FROM measurements ORDER BY run_id, metric_id, repetition",
        )?;
        let mut rows = stmt.query([])?;
        let mut current: Option<(i64, i64)> = None;
        let mut list: Option<&mut Vec<Series>> = None;
        while let Some(r) = rows.next()? {
            let run: i64 = r.get(0)?;
            if !wanted(run) {
                continue;
            }
            let metric: i64 = r.get(1)?;
            if current != Some((run, metric)) {
                // The foreign key makes an unknown metric impossible.
                let Some(template) = metrics.get(&metric) else {
                    continue;
                };
                if current.is_none_or(|c| c.0 != run) {
                    list = Some(out.entry(run).or_default());
                }
                current = Some((run, metric));
                list.as_mut().expect("set with current").push(Series {
                    name: template.name.clone(),
                    unit: template.unit,
                    direction: template.direction,
                    values: Vec::new(),
                });
            }
            let series = list.as_mut().and_then(|l| l.last_mut()).expect("pushed");
            series.values.push(r.get(2)?);
        }
        for list in out.values_mut() {
            list.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(out)
    }

    fn first_samples(&self, run_id: i64) -> Result<Vec<Sample>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT process, t_ms, cpu_pct, rss_bytes FROM samples WHERE run_id = ?1 AND repetition =
               (SELECT min(repetition) FROM samples WHERE run_id = ?1) ORDER BY process, t_ms",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            Ok(Sample {
                process: r.get(0)?,
                t_ms: r.get(1)?,
                cpu_pct: r.get(2)?,
                rss_bytes: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn first_phases(&self, run_id: i64) -> Result<Vec<Phase>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT repetition, name, start_ms, end_ms FROM phases WHERE run_id = ?1 AND repetition =
               (SELECT min(repetition) FROM samples WHERE run_id = ?1)
             ORDER BY start_ms, end_ms, name",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            Ok(Phase {
                repetition: r.get(0)?,
                name: r.get(1)?,
                start_ms: r.get(2)?,
                end_ms: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn record_profile(&mut self, p: &ProfileRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO profiles (machine, scenario, point, base_sha, new_sha, created_unix, diff)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (machine, scenario, point, base_sha, new_sha)
             DO UPDATE SET created_unix = excluded.created_unix, diff = excluded.diff",
            params![
                p.machine,
                p.scenario,
                p.point,
                p.base_sha,
                p.new_sha,
                p.created_unix,
                p.diff
            ],
        )?;
        Ok(())
    }

    fn profiles(&self) -> Result<Vec<ProfileRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT machine, scenario, point, base_sha, new_sha, created_unix, diff
             FROM profiles ORDER BY scenario, point, created_unix",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ProfileRecord {
                machine: r.get(0)?,
                scenario: r.get(1)?,
                point: r.get(2)?,
                base_sha: r.get(3)?,
                new_sha: r.get(4)?,
                created_unix: r.get(5)?,
                diff: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn record_ab(&mut self, ab: &AbRecord) -> Result<i64, StoreError> {
        let json = |v: &[f64]| serde_json::to_string(v).expect("numbers serialize");
        self.conn.execute(
            "INSERT INTO ab_runs (machine, scenario, point, metric, a_sha, b_sha, mode, verdict,
                 change, low, high, threshold, pairs, stop, seconds, a_values, b_values, error,
                 purpose, created_unix, a_point)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17, ?18, ?19, ?20, ?21)",
            params![
                ab.machine,
                ab.scenario,
                ab.point,
                ab.metric,
                ab.a_sha,
                ab.b_sha,
                ab.mode,
                ab.verdict.as_str(),
                ab.change,
                ab.low,
                ab.high,
                ab.threshold,
                ab.pairs,
                ab.stop,
                ab.seconds,
                json(&ab.a),
                json(&ab.b),
                ab.error,
                ab.purpose,
                ab.created_unix,
                ab.a_point
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn ab_runs(&self) -> Result<Vec<AbRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, machine, scenario, point, metric, a_sha, b_sha, mode, verdict, change,
                    low, high, threshold, pairs, stop, seconds, a_values, b_values, error,
                    purpose, created_unix, a_point
             FROM ab_runs ORDER BY id",
        )?;
        let values = |text: String| serde_json::from_str::<Vec<f64>>(&text).unwrap_or_default();
        let rows = stmt.query_map([], |r| {
            Ok(AbRecord {
                id: r.get(0)?,
                machine: r.get(1)?,
                scenario: r.get(2)?,
                point: r.get(3)?,
                metric: r.get(4)?,
                a_sha: r.get(5)?,
                b_sha: r.get(6)?,
                mode: r.get(7)?,
                verdict: super::stored_verdict(&r.get::<_, String>(8)?),
                change: r.get(9)?,
                low: r.get(10)?,
                high: r.get(11)?,
                threshold: r.get(12)?,
                pairs: r.get(13)?,
                stop: r.get(14)?,
                seconds: r.get(15)?,
                a: values(r.get(16)?),
                b: values(r.get(17)?),
                error: r.get(18)?,
                purpose: r.get(19)?,
                created_unix: r.get(20)?,
                a_point: r.get(21)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn claim_confirmation(
        &mut self,
        key: &ConfirmationKey,
        owner: &str,
        again: bool,
        stale: &dyn Fn(&ConfirmationRow) -> bool,
    ) -> Result<bool, StoreError> {
        // IMMEDIATE: the write lock is taken before the row is read, so
        // two claims cannot both see it missing.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let existing = tx
            .query_row(
                &format!("{CONFIRMATION_SELECT} {CONFIRMATION_KEY}"),
                confirmation_params(key),
                confirmation_of,
            )
            .optional()?;
        let take = match &existing {
            None => true,
            Some(row) if row.state.is_final() => again,
            Some(row) => stale(row),
        };
        if take {
            tx.execute(
                "INSERT INTO confirmations (machine, scenario, point, metric, before_sha, sha,
                     state, reason, ab_id, owner, updated_unix)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '', NULL, ?8, ?9)
                 ON CONFLICT (machine, scenario, point, metric, sha, before_sha) DO UPDATE SET
                     state = excluded.state, reason = '', ab_id = NULL,
                     owner = excluded.owner, updated_unix = excluded.updated_unix",
                params![
                    key.machine,
                    key.scenario,
                    key.point,
                    key.metric,
                    key.before_sha,
                    key.sha,
                    Confirmation::Pending.as_str(),
                    owner,
                    syncbench_model::unix_now()
                ],
            )?;
        }
        tx.commit()?;
        Ok(take)
    }

    fn finish_confirmation(&mut self, row: &ConfirmationRow) -> Result<(), StoreError> {
        let k = &row.key;
        self.conn.execute(
            "UPDATE confirmations SET state = ?7, reason = ?8, ab_id = ?9, owner = ?10,
                 updated_unix = ?11
             WHERE machine = ?1 AND scenario = ?2 AND point = ?3 AND metric = ?4
               AND before_sha = ?5 AND sha = ?6 AND owner = ?10",
            params![
                k.machine,
                k.scenario,
                k.point,
                k.metric,
                k.before_sha,
                k.sha,
                row.state.as_str(),
                row.reason,
                row.ab_id,
                row.owner,
                row.updated_unix
            ],
        )?;
        Ok(())
    }

    fn confirmations(&self) -> Result<Vec<ConfirmationRow>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "{CONFIRMATION_SELECT} ORDER BY updated_unix, machine, scenario, point, metric, sha, before_sha"
        ))?;
        let rows = stmt.query_map([], confirmation_of)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn record_triage(&mut self, t: &TriageRecord) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO triage (commit_sha, metric, scenario, state, by_sha, who, note,
                 created_unix)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                t.commit,
                t.metric,
                t.scenario,
                t.state.as_str(),
                t.by,
                t.who,
                t.note,
                t.created_unix
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn triages(&self) -> Result<Vec<TriageRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, commit_sha, metric, scenario, state, by_sha, who, note, created_unix
             FROM triage ORDER BY created_unix, id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TriageRecord {
                id: r.get(0)?,
                commit: r.get(1)?,
                metric: r.get(2)?,
                scenario: r.get(3)?,
                state: super::stored_triage(&r.get::<_, String>(4)?),
                by: r.get(5)?,
                who: r.get(6)?,
                note: r.get(7)?,
                created_unix: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn merge_runs(&mut self, runs: &[RunRecord]) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut added = 0;
        for run in runs {
            let known = tx.prepare_cached(SAME_RUN)?.exists(params![
                run.commit.sha,
                run.started_unix,
                run.finished_unix,
                run.machine.fingerprint(),
                run.commit.dirty,
                run.scenario,
                run.point
            ])?;
            if !known {
                insert_run(&tx, run, false)?;
                added += 1;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    fn export_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut metrics = self.all_series(&|_| true)?;
        let mut samples: HashMap<i64, Vec<(u32, Sample)>> = HashMap::new();
        let mut stmt = self.conn.prepare(
            "SELECT run_id, repetition, process, t_ms, cpu_pct, rss_bytes FROM samples
             ORDER BY run_id, rowid",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            samples.entry(r.get(0)?).or_default().push((
                r.get(1)?,
                Sample {
                    process: r.get(2)?,
                    t_ms: r.get(3)?,
                    cpu_pct: r.get(4)?,
                    rss_bytes: r.get::<_, i64>(5)? as u64,
                },
            ));
        }
        let mut phases: HashMap<i64, Vec<Phase>> = HashMap::new();
        let mut stmt = self.conn.prepare(
            "SELECT run_id, repetition, name, start_ms, end_ms FROM phases ORDER BY run_id, rowid",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            phases.entry(r.get(0)?).or_default().push(Phase {
                repetition: r.get(1)?,
                name: r.get(2)?,
                start_ms: r.get(3)?,
                end_ms: r.get(4)?,
            });
        }
        let mut stmt = self.conn.prepare(
            "SELECT r.id, m.cpu, m.cores, m.memory_bytes, m.os, m.kernel, m.hw_counters, m.tag,
                    c.sha, c.parents, c.author, c.time_unix, c.subject, r.dirty, r.branch,
                    r.scenario, r.point, r.params, r.status, r.error, r.repetitions,
                    r.harness_version, r.toolchain, r.command_line, r.started_unix, r.finished_unix,
                    r.environment
             FROM runs r JOIN machines m ON m.id = r.machine_id JOIN commits c ON c.sha = r.commit_sha
             ORDER BY r.id",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            out.push(RunRecord {
                machine: Machine {
                    cpu: r.get(1)?,
                    cores: r.get(2)?,
                    memory_bytes: r.get::<_, i64>(3)? as u64,
                    os: r.get(4)?,
                    kernel: r.get(5)?,
                    hw_counters: r.get(6)?,
                    tag: r.get(7)?,
                },
                commit: Commit {
                    sha: r.get(8)?,
                    parents: parents(r.get(9)?),
                    author: r.get(10)?,
                    time_unix: r.get(11)?,
                    subject: r.get(12)?,
                    dirty: r.get(13)?,
                    branch: r.get(14)?,
                },
                scenario: r.get(15)?,
                point: r.get(16)?,
                params_json: r.get(17)?,
                status: RunStatus::parse(&r.get::<_, String>(18)?),
                error: r.get(19)?,
                repetitions: r.get(20)?,
                harness_version: r.get(21)?,
                toolchain: r.get(22)?,
                environment: super::environment_of(r.get::<_, Option<String>>(26)?.as_deref()),
                command_line: r.get(23)?,
                started_unix: r.get(24)?,
                finished_unix: r.get(25)?,
                metrics: metrics.remove(&id).unwrap_or_default(),
                samples: samples.remove(&id).unwrap_or_default(),
                phases: phases.remove(&id).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    fn has_final_run(
        &self,
        machine: &Machine,
        scenario: &str,
        point: Option<&str>,
        sha: &str,
    ) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.status FROM runs r JOIN machines m ON m.id = r.machine_id
             WHERE m.fingerprint = ?1 AND r.scenario = ?2 AND (?3 IS NULL OR r.point = ?3)
               AND r.commit_sha = ?4 AND r.dirty = 0",
        )?;
        let mut rows = stmt.query(params![machine.fingerprint(), scenario, point, sha])?;
        while let Some(r) = rows.next()? {
            if RunStatus::parse(&r.get::<_, String>(0)?).is_final() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn forget_plan(&self, sel: &ForgetSelector) -> Result<ForgetPlan, StoreError> {
        Ok(super::forget_plan_in(&mut ForgetIn(&self.conn), sel)?.0)
    }

    fn forget(
        &mut self,
        sel: &ForgetSelector,
        plan: &ForgetPlan,
        who: &str,
        command_line: &str,
    ) -> Result<ForgetRecord, StoreError> {
        // IMMEDIATE: no other writer between reading the selection and
        // removing it.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let record = super::forget_in(&mut ForgetIn(&tx), sel, plan, who, command_line)?;
        tx.commit()?;
        Ok(record)
    }

    fn forgotten(&self) -> Result<Vec<ForgetRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, created_unix, who, command_line, scenario, point, metric, commit_sha,
                    machines, runs, runs_changed, value_count, series, commits, ab_runs,
                    confirmations, profiles
             FROM forgotten ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ForgetRecord {
                id: r.get(0)?,
                created_unix: r.get(1)?,
                who: r.get(2)?,
                command_line: r.get(3)?,
                selector: ForgetSelector {
                    scenario: r.get(4)?,
                    point: r.get(5)?,
                    metric: r.get(6)?,
                    commit: r.get(7)?,
                    machines: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or_default(),
                },
                removed: ForgetCounts {
                    runs: r.get(9)?,
                    runs_changed: r.get(10)?,
                    values: r.get(11)?,
                    series: r.get(12)?,
                    commits: r.get(13)?,
                    ab_runs: r.get(14)?,
                    confirmations: r.get(15)?,
                    profiles: r.get(16)?,
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The runs of a forget, given as `:ids` (a JSON array).
const IDS: &str = "(SELECT value FROM json_each(:ids))";

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).expect("strings serialize")
}

/// A forget's selection as the named parameters of the clauses below.
fn selector_params<'a>(
    sel: &'a ForgetSelector,
    machines: &'a dyn rusqlite::ToSql,
) -> [(&'static str, &'a dyn rusqlite::ToSql); 5] {
    [
        (":scenario", &sel.scenario),
        (":point", &sel.point),
        (":metric", &sel.metric),
        (":commit", &sel.commit),
        (":machines", machines),
    ]
}

/// The rows of a table keyed by machine, scenario, point and two commits
/// that a forget selects; every clause names all five parameters.
fn selected_where(shas: (&str, &str), metric: &str) -> String {
    let (a, b) = shas;
    format!(
        "(:scenario IS NULL OR scenario = :scenario) AND (:point IS NULL OR point = :point)
         AND (:commit IS NULL OR {a} = :commit OR {b} = :commit)
         AND (:machines = '[]' OR machine IN (SELECT value FROM json_each(:machines)))
         AND {metric}"
    )
}

/// The rows of `related` a forget selects.
fn related_where(related: Related) -> String {
    match related {
        Related::Confirmations => selected_where(
            ("sha", "before_sha"),
            "(:metric IS NULL OR metric = :metric)",
        ),
        // A/B runs a kept confirmation cites are kept (a confirmation may
        // cite another machine's run).
        Related::AbRuns => format!(
            "{} AND id NOT IN (SELECT ab_id FROM confirmations WHERE ab_id IS NOT NULL AND NOT ({}))",
            selected_where(("a_sha", "b_sha"), "(:metric IS NULL OR metric = :metric)"),
            related_where(Related::Confirmations)
        ),
        // Profiles count instructions of a whole point: only a forget
        // without a metric removes them.
        Related::Profiles => selected_where(("base_sha", "new_sha"), ":metric IS NULL"),
    }
}

/// Runs `ids` as the `:ids` of [`IDS`].
fn ids_json(ids: &[i64]) -> String {
    serde_json::to_string(ids).expect("numbers serialize")
}

/// The SQL of a forget, on a connection (the forget's transaction, or
/// the store's for a plan).
struct ForgetIn<'a>(&'a rusqlite::Connection);

impl ForgetSql for ForgetIn<'_> {
    fn selected_runs(&mut self, sel: &ForgetSelector) -> Result<Vec<SelectedRun>, StoreError> {
        Ok(self
            .0
            .prepare(
                "SELECT r.id, m.fingerprint, r.scenario, r.point, r.commit_sha
                 FROM runs r JOIN machines m ON m.id = r.machine_id
                 WHERE (:scenario IS NULL OR r.scenario = :scenario)
                   AND (:point IS NULL OR r.point = :point)
                   AND (:commit IS NULL OR r.commit_sha = :commit)
                   AND (:machines = '[]' OR m.fingerprint IN (SELECT value FROM json_each(:machines)))
                 ORDER BY r.id",
            )?
            .query_map(
                named_params! {
                    ":scenario": sel.scenario,
                    ":point": sel.point,
                    ":commit": sel.commit,
                    ":machines": json_list(&sel.machines),
                },
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?
            .collect::<Result<_, _>>()?)
    }

    fn value_counts(
        &mut self,
        ids: &[i64],
        metric: Option<&str>,
    ) -> Result<HashMap<i64, i64>, StoreError> {
        Ok(self
            .0
            .prepare(&format!(
                "SELECT v.run_id, count(*) FROM measurements v JOIN metrics mt ON mt.id = v.metric_id
                 WHERE v.run_id IN {IDS} AND (:metric IS NULL OR mt.name = :metric)
                 GROUP BY v.run_id"
            ))?
            .query_map(
                named_params! {":ids": ids_json(ids), ":metric": metric},
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect::<Result<_, _>>()?)
    }

    fn series_count(&mut self, ids: &[i64], metric: Option<&str>) -> Result<i64, StoreError> {
        Ok(self.0.query_row(
            &format!(
                "SELECT count(*) FROM (SELECT DISTINCT r.machine_id, r.scenario, r.point, v.metric_id
                   FROM measurements v JOIN runs r ON r.id = v.run_id
                   JOIN metrics mt ON mt.id = v.metric_id
                   WHERE v.run_id IN {IDS} AND (:metric IS NULL OR mt.name = :metric))"
            ),
            named_params! {":ids": ids_json(ids), ":metric": metric},
            |r| r.get(0),
        )?)
    }

    fn commits_only_of(&mut self, ids: &[i64]) -> Result<i64, StoreError> {
        Ok(self.0.query_row(
            &format!(
                "SELECT count(*) FROM commits c
                 WHERE c.sha IN (SELECT r.commit_sha FROM runs r WHERE r.id IN {IDS})
                   AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.commit_sha = c.sha
                                     AND r.id NOT IN {IDS})"
            ),
            named_params! {":ids": ids_json(ids)},
            |r| r.get(0),
        )?)
    }

    fn count_related(&mut self, related: Related, sel: &ForgetSelector) -> Result<i64, StoreError> {
        let machines = json_list(&sel.machines);
        Ok(self.0.query_row(
            &format!(
                "SELECT count(*) FROM {} WHERE {}",
                related.table(),
                related_where(related)
            ),
            &selector_params(sel, &machines)[..],
            |r| r.get(0),
        )?)
    }

    fn remove_related(
        &mut self,
        related: Related,
        sel: &ForgetSelector,
    ) -> Result<u64, StoreError> {
        let machines = json_list(&sel.machines);
        let removed = self.0.execute(
            &format!(
                "DELETE FROM {} WHERE {}",
                related.table(),
                related_where(related)
            ),
            &selector_params(sel, &machines)[..],
        )?;
        Ok(removed as u64)
    }

    fn remove_runs(&mut self, ids: &[i64]) -> Result<(u64, u64, u64), StoreError> {
        let tx = self.0;
        let ids_json = ids_json(ids);
        let shas: Vec<String> = tx
            .prepare(&format!(
                "SELECT DISTINCT commit_sha FROM runs WHERE id IN {IDS}"
            ))?
            .query_map(named_params! {":ids": ids_json}, |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let values = tx.execute(
            &format!("DELETE FROM measurements WHERE run_id IN {IDS}"),
            named_params! {":ids": ids_json},
        )?;
        for table in ["samples", "phases"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE run_id IN {IDS}"),
                named_params! {":ids": ids_json},
            )?;
        }
        let runs = tx.execute(
            &format!("DELETE FROM runs WHERE id IN {IDS}"),
            named_params! {":ids": ids_json},
        )?;
        let commits = tx.execute(
            "DELETE FROM commits WHERE sha IN (SELECT value FROM json_each(:shas))
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.commit_sha = commits.sha)",
            named_params! {":shas": json_list(&shas)},
        )?;
        Ok((values as u64, runs as u64, commits as u64))
    }

    fn remove_values(&mut self, ids: &[i64], metric: &str) -> Result<u64, StoreError> {
        let values = self.0.execute(
            &format!(
                "DELETE FROM measurements WHERE run_id IN {IDS}
                   AND metric_id = (SELECT id FROM metrics WHERE name = :metric)"
            ),
            named_params! {":ids": ids_json(ids), ":metric": metric},
        )?;
        Ok(values as u64)
    }

    fn renumber_run(&mut self, old: i64) -> Result<(), StoreError> {
        let tx = self.0;
        tx.execute(
            &format!(
                "INSERT INTO runs ({RUN_COLUMNS}) SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"
            ),
            [old],
        )?;
        let new = tx.last_insert_rowid();
        for table in ["measurements", "samples", "phases"] {
            tx.execute(
                &format!("UPDATE {table} SET run_id = ?2 WHERE run_id = ?1"),
                [old, new],
            )?;
        }
        tx.execute("DELETE FROM runs WHERE id = ?1", [old])?;
        Ok(())
    }

    fn remove_metric_if_unused(&mut self, metric: &str) -> Result<(), StoreError> {
        self.0.execute(
            "DELETE FROM metrics WHERE name = ?1
               AND NOT EXISTS (SELECT 1 FROM measurements v WHERE v.metric_id = metrics.id)",
            [metric],
        )?;
        Ok(())
    }

    fn record_forget(
        &mut self,
        sel: &ForgetSelector,
        c: &ForgetCounts,
        who: &str,
        command_line: &str,
        created_unix: f64,
    ) -> Result<i64, StoreError> {
        self.0.execute(
            "INSERT INTO forgotten (created_unix, who, command_line, scenario, point, metric,
                 commit_sha, machines, runs, runs_changed, value_count, series, commits, ab_runs,
                 confirmations, profiles)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                created_unix,
                who,
                command_line,
                sel.scenario,
                sel.point,
                sel.metric,
                sel.commit,
                json_list(&sel.machines),
                c.runs,
                c.runs_changed,
                c.values,
                c.series,
                c.commits,
                c.ab_runs,
                c.confirmations,
                c.profiles
            ],
        )?;
        Ok(self.0.last_insert_rowid())
    }
}

/// Every column of `runs` but its id (both backends).
pub(super) const RUN_COLUMNS: &str =
    "machine_id, commit_sha, dirty, branch, scenario, point, params,
    status, error, repetitions, harness_version, toolchain, command_line, started_unix,
    finished_unix";

/// Every machine with its runs (both backends).
pub(super) const MACHINES: &str =
    "SELECT m.fingerprint, m.tag, m.cpu, m.cores, m.memory_bytes, m.os,
        count(r.id), max(r.started_unix)
    FROM machines m LEFT JOIN runs r ON r.machine_id = m.id
    GROUP BY m.id, m.fingerprint, m.tag, m.cpu, m.cores, m.memory_bytes, m.os
    ORDER BY m.fingerprint";

/// A run the store already has (see `merge_runs`).
pub(super) const SAME_RUN: &str = "SELECT 1 FROM runs r JOIN machines m ON m.id = r.machine_id
    WHERE r.commit_sha = $1 AND r.started_unix = $2 AND r.finished_unix = $3
      AND m.fingerprint = $4 AND r.dirty = $5 AND r.scenario = $6 AND r.point = $7";

const CONFIRMATION_SELECT: &str = "SELECT machine, scenario, point, metric, before_sha, sha,
    state, reason, ab_id, owner, updated_unix FROM confirmations";
const CONFIRMATION_KEY: &str = "WHERE machine = ?1 AND scenario = ?2 AND point = ?3
    AND metric = ?4 AND before_sha = ?5 AND sha = ?6";

fn confirmation_params(k: &ConfirmationKey) -> [&str; 6] {
    [
        &k.machine,
        &k.scenario,
        &k.point,
        &k.metric,
        &k.before_sha,
        &k.sha,
    ]
}

fn confirmation_of(r: &rusqlite::Row) -> rusqlite::Result<ConfirmationRow> {
    Ok(ConfirmationRow {
        key: ConfirmationKey {
            machine: r.get(0)?,
            scenario: r.get(1)?,
            point: r.get(2)?,
            metric: r.get(3)?,
            before_sha: r.get(4)?,
            sha: r.get(5)?,
        },
        state: super::stored_confirmation(&r.get::<_, String>(6)?),
        reason: r.get(7)?,
        ab_id: r.get(8)?,
        owner: r.get(9)?,
        updated_unix: r.get(10)?,
    })
}

/// A new series (no values yet) from a row whose columns 0–2 are the
/// metric's name, unit and direction (see `stored_series`).
fn metric_of(r: &rusqlite::Row) -> rusqlite::Result<Series> {
    Ok(super::stored_series(
        r.get(0)?,
        &r.get::<_, String>(1)?,
        &r.get::<_, String>(2)?,
    ))
}

fn insert_run(tx: &rusqlite::Transaction, run: &RunRecord, retag: bool) -> Result<i64, StoreError> {
    let machine = SqliteStore::machine_id(tx, &run.machine, retag)?;
    let c = &run.commit;
    tx.execute(
        "INSERT INTO commits (sha, parents, author, time_unix, subject) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (sha) DO NOTHING",
        params![
            c.sha,
            parents_text(&c.parents),
            c.author,
            c.time_unix,
            c.subject
        ],
    )?;
    tx.execute(
            "INSERT INTO runs (machine_id, commit_sha, dirty, branch, scenario, point, params, status, error,
                 repetitions, harness_version, toolchain, command_line, started_unix, finished_unix,
                 environment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                machine,
                c.sha,
                c.dirty,
                c.branch,
                run.scenario,
                run.point,
                run.params_json,
                run.status.as_str(),
                run.error,
                run.repetitions,
                run.harness_version,
                run.toolchain,
                run.command_line,
                run.started_unix,
                run.finished_unix,
                super::environment_json(&run.environment)
            ],
        )?;
    let run_id = tx.last_insert_rowid();
    for m in &run.metrics {
        tx.execute(
                "INSERT INTO metrics (name, unit, direction) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
                params![m.name, m.unit.as_str(), m.direction.as_str()],
            )?;
        let metric: i64 =
            tx.query_row("SELECT id FROM metrics WHERE name = ?1", [&m.name], |r| {
                r.get(0)
            })?;
        let mut ins = tx.prepare_cached(
                "INSERT INTO measurements (run_id, metric_id, repetition, value) VALUES (?1, ?2, ?3, ?4)",
            )?;
        for (i, v) in m.values.iter().enumerate() {
            ins.execute(params![run_id, metric, i as i64, v])?;
        }
    }
    {
        let mut ins = tx.prepare_cached(
                "INSERT INTO samples (run_id, repetition, process, t_ms, cpu_pct, rss_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
        for (rep, s) in &run.samples {
            ins.execute(params![
                run_id,
                rep,
                s.process,
                s.t_ms,
                s.cpu_pct,
                s.rss_bytes as i64
            ])?;
        }
        let mut ins = tx.prepare_cached(
                "INSERT INTO phases (run_id, repetition, name, start_ms, end_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
        for p in &run.phases {
            ins.execute(params![run_id, p.repetition, p.name, p.start_ms, p.end_ms])?;
        }
    }
    Ok(run_id)
}

impl SqliteStore {
    /// A copy of the database at `path` to read from, never writing to
    /// `path` (a CI artifact, another runner's file): checked to be ours
    /// and not newer than this build, copied into `dir` and migrated
    /// there to this build's schema.
    pub fn open_copy(path: &Path, dir: &Path) -> Result<SqliteStore, StoreError> {
        if !path.exists() {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        check_existing(path)?;
        // The file and its write-ahead log (committed runs a process that
        // was killed never checkpointed), copied as they are.
        let copy = dir.join("copy.sqlite");
        for suffix in ["", "-wal"] {
            let from = PathBuf::from(format!("{}{suffix}", path.display()));
            let to = PathBuf::from(format!("{}{suffix}", copy.display()));
            if suffix.is_empty() || from.exists() {
                std::fs::copy(&from, &to)
                    .map_err(|source| StoreError::Io { path: from, source })?;
            }
        }
        let version: i64 =
            rusqlite::Connection::open(&copy)?
                .pragma_query_value(None, "user_version", |r| r.get(0))?;
        super::not_newer(&path.display(), version, MIGRATIONS.len())?;
        SqliteStore::open(&copy)
    }
}

fn check_existing(path: &Path) -> Result<(), StoreError> {
    let mut header = [0u8; 16];
    let readable = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
        .is_ok();
    if !readable || &header != b"SQLite format 3\0" {
        return Err(StoreError::NotSqlite(path.to_owned()));
    }
    let unreadable = |e| StoreError::Unreadable {
        path: path.to_owned(),
        source: SqliteError(e),
    };
    // immutable=1: no locks, no -wal or -shm files, nothing written.
    let uri = format!("{}?immutable=1", file_uri(path));
    let conn = rusqlite::Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(unreadable)?;
    // The file may come from anywhere (`merge`): its schema runs no
    // function SQLite does not know to be harmless.
    conn.pragma_update(None, "trusted_schema", false)
        .map_err(unreadable)?;
    let app: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(unreadable)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(unreadable)?;
    if app != APPLICATION_ID && tables > 0 {
        return Err(StoreError::Foreign(path.to_owned()));
    }
    // Our schema has tables and indexes only: a trigger or a view would
    // run someone else's SQL inside our reads and migrations.
    let code: Option<String> = conn
        .query_row(
            "SELECT type || ' ' || name FROM sqlite_master WHERE type IN ('trigger', 'view') LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(unreadable)?;
    if let Some(what) = code {
        return Err(StoreError::Untrusted {
            path: path.to_owned(),
            what,
        });
    }
    // The tables that index everything else, not the whole file: a
    // quick_check of every page cost 0.4 s per command at 90 MB (the
    // samples and measurements of a long history), on every command.
    // Damage in the bulk tables surfaces as an error where it is read.
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('machines', 'commits', 'runs', 'metrics')")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(unreadable)?;
    for table in tables {
        let check: String = conn
            .query_row(&format!("PRAGMA quick_check(\"{table}\")"), [], |r| {
                r.get(0)
            })
            .map_err(unreadable)?;
        if check != "ok" {
            return Err(unreadable(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(format!("integrity check of {table}: {check}")),
            )));
        }
    }
    Ok(())
}

/// `path` as a `file:` URI that SQLite reads back as exactly that path:
/// every byte but unreserved ones percent-encoded (in a URI `?` starts the
/// query, `#` the fragment, `%` an escape, so `x#y.sqlite` would be `x`),
/// and an absolute path after an empty authority (`file:///…`).
fn file_uri(path: &Path) -> String {
    use std::fmt::Write;
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from(if path.is_absolute() {
        "file://"
    } else {
        "file:"
    });
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(b as char);
        } else {
            let _ = write!(uri, "%{b:02X}");
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite reads the URI back as the very file, whatever its name.
    #[test]
    fn file_uris_name_the_file_itself() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["x#y.sqlite", "50%?a=b#c.sqlite", "é ü.sqlite", "file:z"] {
            let path = dir.path().join(name);
            rusqlite::Connection::open_with_flags(
                &path,
                OpenFlags::default() - OpenFlags::SQLITE_OPEN_URI,
            )
            .unwrap()
            .pragma_update(None, "user_version", 7)
            .unwrap();
            let uri = file_uri(&path);
            assert!(!uri[5..].contains(['#', '?']), "{uri}");
            let conn = rusqlite::Connection::open_with_flags(
                format!("{uri}?immutable=1"),
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
            )
            .unwrap();
            let v: i64 = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(v, 7, "{name}: {uri}");
        }
        assert_eq!(file_uri(Path::new("a b")), "file:a%20b");
        assert_eq!(file_uri(Path::new("/t/x#y")), "file:///t/x%23y");
    }

    /// A file with a trigger or a view is not ours to read.
    #[test]
    fn triggers_and_views_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite");
        drop(SqliteStore::open(&path).unwrap());
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER t AFTER INSERT ON commits BEGIN DELETE FROM runs; END;
                 PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .unwrap();
        let e = SqliteStore::open(&path).unwrap_err();
        assert!(
            matches!(&e, StoreError::Untrusted { what, .. } if what == "trigger t"),
            "{e}"
        );
    }
}
