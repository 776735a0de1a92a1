//! The job queue, in the PostgreSQL results database (as rustc-perf
//! coordinates its collectors): `enqueue` adds a job per commit, each
//! `worker` claims one at a time with `FOR UPDATE SKIP LOCKED`, heartbeats
//! while it measures, and stores the job's runs in the transaction that
//! completes it, only while its claim still holds. A job whose worker
//! stops heartbeating for its lease is handed out again; one that fails
//! the same way twice is `failed`, with its log.
//!
//! Workers sleep on `LISTEN syncbench_jobs`; enqueueing (and a job put
//! back) notifies them, so a job starts within a round trip of being
//! added, without polling. They also wake once per lease, to take over
//! jobs whose workers went silent.

use super::postgres::{connect, insert_run, migrate};
use super::{Location, RunRecord, StoreError};
use postgres::Client;
use std::time::Duration;
use syncbench_model::secrets::redact;

/// Migration 5 of the PostgreSQL schema.
pub const MIGRATION: &str = r#"
    -- One commit to measure: its scenarios (names separated by spaces;
    -- empty for the default suite), on a machine with this tag (NULL: any).
    CREATE TABLE jobs (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        sha TEXT COLLATE "C" NOT NULL,
        scenarios TEXT COLLATE "C" NOT NULL,
        machine_tag TEXT COLLATE "C",
        force BOOLEAN NOT NULL,
        -- pending, running, done, failed, build_failed
        state TEXT COLLATE "C" NOT NULL,
        -- Claims so far; a claim is (worker, attempt).
        attempt BIGINT NOT NULL DEFAULT 0,
        worker TEXT COLLATE "C",
        lease_seconds DOUBLE PRECISION,
        heartbeat TIMESTAMPTZ,
        enqueued_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        started_at TIMESTAMPTZ,
        finished_at TIMESTAMPTZ,
        -- The last failed attempt's error: the same one twice fails the job.
        last_error TEXT COLLATE "C",
        failures BIGINT NOT NULL DEFAULT 0,
        -- Leases that ran out (workers killed or cut off).
        lost BIGINT NOT NULL DEFAULT 0,
        log TEXT COLLATE "C",
        runs BIGINT
    );
    CREATE INDEX jobs_open ON jobs (id) WHERE state IN ('pending', 'running');
    CREATE TABLE workers (
        name TEXT COLLATE "C" PRIMARY KEY,
        machine_tag TEXT COLLATE "C",
        fingerprint TEXT COLLATE "C" NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        seen_at TIMESTAMPTZ NOT NULL,
        job_id BIGINT
    );
"#;

const CHANNEL: &str = "syncbench_jobs";

/// A job whose lease ran out this many times is failed, not handed out
/// again (it may be what kills its workers).
pub const MAX_LOST: i64 = 3;

/// A job that failed this many times is failed, even when its errors
/// differ (a port or a pid in the message).
pub const MAX_FAILURES: i64 = 3;

/// What makes two failures "the same way": the message with its numbers
/// (ports, pids, durations) left out.
pub fn failure_signature(error: &str) -> String {
    let mut out = String::with_capacity(error.len());
    let mut in_number = false;
    for c in error.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// Text as PostgreSQL stores it (no NUL characters: see `postgres::text`).
fn clean(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// A job as a worker claimed it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub sha: String,
    /// Scenario names; empty for the default suite.
    pub scenarios: Vec<String>,
    /// Variant names (`--variant`); empty for every variant.
    pub variants: Vec<String>,
    /// Measure even points that have a final answer.
    pub force: bool,
    /// This claim's number: only it may complete the job.
    pub attempt: i64,
}

/// Where a job is: `pending` until a worker claims it, `running` while
/// claimed (back to `pending` when the claim's lease runs out, `failed`
/// after too many such losses), then `done`, `failed` (refused or out of
/// retries) or `build_failed`. The strings are the `state` column's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Running,
    Done,
    Failed,
    BuildFailed,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Pending,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::BuildFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::BuildFailed => "build_failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|j| j.as_str() == s)
    }
}

/// A job as `queue` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRow {
    pub id: i64,
    pub sha: String,
    pub scenarios: Vec<String>,
    /// Empty: every variant.
    pub variants: Vec<String>,
    pub machine_tag: Option<String>,
    pub state: JobState,
    pub attempt: i64,
    pub worker: Option<String>,
    pub enqueued_unix: f64,
    pub started_unix: Option<f64>,
    pub finished_unix: Option<f64>,
    /// Seconds since the running job's last heartbeat.
    pub heartbeat_age: Option<f64>,
    pub last_error: Option<String>,
    pub failures: i64,
    pub lost: i64,
    pub runs: Option<i64>,
    pub log: Option<String>,
    /// The running claim's lease.
    pub lease_seconds: Option<f64>,
}

/// A worker as `queue` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerRow {
    pub name: String,
    pub machine_tag: Option<String>,
    pub fingerprint: String,
    /// Seconds since it was last heard from.
    pub seen_age: f64,
    pub job_id: Option<i64>,
}

/// How an attempt ended, for [`Queue::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every point has a final answer: the job is `done`.
    Done,
    /// The commit does not build: `build_failed`, never retried.
    BuildFailed,
    /// The job asks for what no worker may do (a revision that is not a
    /// full sha of its repository, a scenario outside its `scenarios/`):
    /// `failed` at once, never retried, nothing run.
    Refused,
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Put back for another attempt.
    Again,
    /// The same failure twice: `failed`, its runs and log stored.
    Failed,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(
        "the job queue lives in PostgreSQL; {0} is a SQLite file: give --db postgres://… (or SYNCBENCH_DB)"
    )]
    NotPostgres(String),
    #[error(
        "job {0}: this worker's claim ran out (no heartbeat within its lease) and the job went to another worker; its results were discarded"
    )]
    LostClaim(i64),
    #[error(
        "a job in the queue is in the state {0:?}, which this build does not know: upgrade syncbench"
    )]
    UnknownState(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<postgres::Error> for QueueError {
    fn from(e: postgres::Error) -> Self {
        QueueError::Store(e.into())
    }
}

/// One connection to the queue.
pub struct Queue {
    client: Client,
    url: String,
    listening: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Queue({})", redact(&self.url))
    }
}

const JOB_COLUMNS: &str = "id, sha, scenarios, machine_tag, state, attempt, worker,
    extract(epoch FROM enqueued_at)::float8, extract(epoch FROM started_at)::float8,
    extract(epoch FROM finished_at)::float8,
    extract(epoch FROM clock_timestamp() - heartbeat)::float8,
    last_error, failures, lost, runs, log, lease_seconds, variants";

fn names(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

impl Queue {
    /// Connects to the queue of the database at `location` (migrated
    /// first), which must be PostgreSQL.
    pub fn open(location: &Location) -> Result<Queue, QueueError> {
        let url = match location {
            Location::Postgres(url) => url.clone(),
            Location::Sqlite(p) => return Err(QueueError::NotPostgres(p.display().to_string())),
        };
        let mut client = connect(&url)?;
        migrate(&mut client, &redact(&url))?;
        Ok(Queue {
            client,
            url,
            listening: false,
        })
    }

    /// A second connection to the same queue (a worker's heartbeat).
    pub fn another(&self) -> Result<Queue, QueueError> {
        Ok(Queue {
            client: connect(&self.url)?,
            url: self.url.clone(),
            listening: false,
        })
    }

    /// Adds a job per commit, in order; their ids. Workers are woken
    /// when the transaction commits.
    pub fn enqueue(
        &mut self,
        shas: &[String],
        (scenarios, variants): (&[String], &[String]),
        machine_tag: Option<&str>,
        force: bool,
    ) -> Result<Vec<i64>, QueueError> {
        let mut tx = self.client.transaction()?;
        let rows = tx.query(
            "INSERT INTO jobs (sha, scenarios, variants, machine_tag, force, state)
             SELECT sha, $2, $5, $3, $4, 'pending'
             FROM unnest($1::text[]) WITH ORDINALITY AS u(sha, n)
             ORDER BY n RETURNING id",
            &[
                &shas,
                &scenarios.join(" "),
                &machine_tag,
                &force,
                &variants.join(" "),
            ],
        )?;
        tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])?;
        tx.commit()?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    /// Records that a worker is alive (and what it is doing).
    pub fn seen(
        &mut self,
        worker: &str,
        machine_tag: Option<&str>,
        fingerprint: &str,
        job: Option<i64>,
    ) -> Result<(), QueueError> {
        self.client.execute(
            "INSERT INTO workers (name, machine_tag, fingerprint, started_at, seen_at, job_id)
             VALUES ($1, $2, $3, clock_timestamp(), clock_timestamp(), $4)
             ON CONFLICT (name) DO UPDATE SET machine_tag = excluded.machine_tag,
                 fingerprint = excluded.fingerprint, seen_at = excluded.seen_at,
                 job_id = excluded.job_id",
            &[&worker, &machine_tag, &fingerprint, &job],
        )?;
        Ok(())
    }

    /// Claims the oldest job this worker may take: pending, or running
    /// under a claim whose lease ran out. Jobs that lost their lease
    /// [`MAX_LOST`] times are failed instead of handed out.
    pub fn claim(
        &mut self,
        worker: &str,
        machine_tag: Option<&str>,
        lease: Duration,
    ) -> Result<Option<Job>, QueueError> {
        let expired = "state = 'running'
            AND heartbeat + lease_seconds * interval '1 second' < clock_timestamp()";
        self.client.execute(
            &format!(
                "UPDATE jobs SET state = 'failed', finished_at = clock_timestamp(),
                     log = coalesce(log || E'\\n', '') || 'its worker stopped heartbeating ' || (lost + 1) || ' times'
                 WHERE {expired} AND lost + 1 >= $1"
            ),
            &[&MAX_LOST],
        )?;
        let row = self.client.query_opt(
            &format!(
                "UPDATE jobs SET lost = lost + (state = 'running')::int, state = 'running',
                     worker = $1, attempt = attempt + 1, lease_seconds = $3,
                     heartbeat = clock_timestamp(), started_at = clock_timestamp()
                 WHERE id = (SELECT id FROM jobs
                             WHERE (state = 'pending' OR ({expired} AND lost + 1 < $4))
                               AND (machine_tag IS NULL OR machine_tag = $2)
                             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING id, sha, scenarios, force, attempt, variants"
            ),
            &[&worker, &machine_tag, &lease.as_secs_f64(), &MAX_LOST],
        )?;
        Ok(match row {
            None => None,
            Some(r) => Some(Job {
                id: r.try_get(0)?,
                sha: r.try_get(1)?,
                scenarios: names(r.try_get(2)?),
                force: r.try_get(3)?,
                attempt: r.try_get(4)?,
                variants: names(r.try_get(5)?),
            }),
        })
    }

    /// Renews a claim's lease; false when the claim no longer holds.
    pub fn heartbeat(&mut self, job: &Job, worker: &str) -> Result<bool, QueueError> {
        let n = self.client.execute(
            "UPDATE jobs SET heartbeat = clock_timestamp()
             WHERE id = $1 AND worker = $2 AND attempt = $3 AND state = 'running'",
            &[&job.id, &worker, &job.attempt],
        )?;
        self.client.execute(
            "UPDATE workers SET seen_at = clock_timestamp(), job_id = $1 WHERE name = $2",
            &[&job.id, &worker],
        )?;
        Ok(n == 1)
    }

    /// Locks the job's row if this claim still holds it.
    fn hold(tx: &mut postgres::Transaction, job: &Job, worker: &str) -> Result<(), QueueError> {
        let held = tx
            .query_opt(
                "SELECT 1 FROM jobs WHERE id = $1 AND worker = $2 AND attempt = $3
                   AND state = 'running' FOR UPDATE",
                &[&job.id, &worker, &job.attempt],
            )?
            .is_some();
        if held {
            Ok(())
        } else {
            Err(QueueError::LostClaim(job.id))
        }
    }

    /// Completes a job and stores its runs, in one transaction, if this
    /// claim still holds it; else nothing is stored.
    pub fn finish(
        &mut self,
        job: &Job,
        worker: &str,
        outcome: Outcome,
        runs: &[RunRecord],
        log: &str,
    ) -> Result<(), QueueError> {
        let mut tx = self.client.transaction()?;
        Self::hold(&mut tx, job, worker)?;
        for run in runs {
            insert_run(&mut tx, run, true)?;
        }
        let state = match outcome {
            Outcome::Done => JobState::Done,
            Outcome::BuildFailed => JobState::BuildFailed,
            Outcome::Refused => JobState::Failed,
        };
        // A refusal's reason is its error too (`syncbench queue` shows it).
        let error = (outcome == Outcome::Refused).then(|| clean(log));
        tx.execute(
            "UPDATE jobs SET state = $2, finished_at = clock_timestamp(), runs = $3, log = $4,
                 last_error = COALESCE($5, last_error)
             WHERE id = $1",
            &[
                &job.id,
                &state.as_str(),
                &(runs.len() as i64),
                &clean(log),
                &error,
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A failed attempt: the job goes back to the queue, unless it failed
    /// the same way before (see [`failure_signature`]) or [`MAX_FAILURES`]
    /// times; then it is `failed`, with `runs` (the failed runs, so the
    /// history shows them) and `log` stored.
    pub fn fail(
        &mut self,
        job: &Job,
        worker: &str,
        error: &str,
        runs: &[RunRecord],
        log: &str,
    ) -> Result<Retry, QueueError> {
        let mut tx = self.client.transaction()?;
        Self::hold(&mut tx, job, worker)?;
        let (error, log) = (clean(error), clean(log));
        let row = tx.query_one(
            "SELECT last_error, failures FROM jobs WHERE id = $1",
            &[&job.id],
        )?;
        let (last, failures): (Option<String>, i64) = (row.try_get(0)?, row.try_get(1)?);
        let same = last.as_deref().map(failure_signature) == Some(failure_signature(&error));
        let retry = if same || failures + 1 >= MAX_FAILURES {
            for run in runs {
                insert_run(&mut tx, run, true)?;
            }
            tx.execute(
                "UPDATE jobs SET state = 'failed', finished_at = clock_timestamp(),
                     failures = failures + 1, last_error = $2, log = $3, runs = $4
                 WHERE id = $1",
                &[&job.id, &error, &log, &(runs.len() as i64)],
            )?;
            Retry::Failed
        } else {
            tx.execute(
                "UPDATE jobs SET state = 'pending', worker = NULL, failures = failures + 1,
                     last_error = $2, log = $3
                 WHERE id = $1",
                &[&job.id, &error, &log],
            )?;
            tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])?;
            Retry::Again
        };
        tx.commit()?;
        Ok(retry)
    }

    /// Puts a claimed job back untouched (the worker was asked to stop).
    pub fn release(&mut self, job: &Job, worker: &str) -> Result<(), QueueError> {
        let mut tx = self.client.transaction()?;
        Self::hold(&mut tx, job, worker)?;
        tx.execute(
            "UPDATE jobs SET state = 'pending', worker = NULL WHERE id = $1",
            &[&job.id],
        )?;
        tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])?;
        tx.commit()?;
        Ok(())
    }

    /// Subscribes to new jobs' notifications (before the first claim,
    /// so a job enqueued between a claim finding nothing and the wait is
    /// not missed).
    pub fn listen(&mut self) -> Result<(), QueueError> {
        if !self.listening {
            self.client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            self.listening = true;
        }
        Ok(())
    }

    /// A fresh connection in place of this one (after it was lost),
    /// listening again if it was.
    pub fn reconnect(&mut self) -> Result<(), QueueError> {
        let listening = self.listening;
        *self = self.another()?;
        if listening {
            self.listen()?;
        }
        Ok(())
    }

    /// Sleeps until a job may be there: a notification, or `timeout`
    /// (when leases of silent workers may have run out), or `stop` says
    /// so (checked every second, without a word to the server).
    pub fn wait(&mut self, timeout: Duration, stop: &dyn Fn() -> bool) -> Result<(), QueueError> {
        self.listen()?;
        let start = std::time::Instant::now();
        let mut notes = self.client.notifications();
        while !stop() && start.elapsed() < timeout {
            let slice = (timeout - start.elapsed()).min(Duration::from_secs(1));
            let mut iter = notes.timeout_iter(slice);
            if postgres::fallible_iterator::FallibleIterator::next(&mut iter)?.is_some() {
                break;
            }
        }
        // Several notifications at once wake the worker once.
        let mut pending = notes.iter();
        while postgres::fallible_iterator::FallibleIterator::next(&mut pending)?.is_some() {}
        Ok(())
    }

    /// Whether any job is pending or running that a worker with this tag
    /// could take (now, or after a lease).
    pub fn open_jobs(&mut self, machine_tag: Option<&str>) -> Result<i64, QueueError> {
        Ok(self
            .client
            .query_one(
                "SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')
                   AND (machine_tag IS NULL OR machine_tag = $1)",
                &[&machine_tag],
            )?
            .try_get(0)?)
    }

    /// Jobs in these states (all if empty), oldest first.
    pub fn jobs(&mut self, states: &[JobState]) -> Result<Vec<JobRow>, QueueError> {
        let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let rows = self.client.query(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs
                 WHERE cardinality($1::text[]) = 0 OR state = ANY($1) ORDER BY id"
            ),
            &[&states],
        )?;
        rows.iter()
            .map(|r| -> Result<JobRow, QueueError> {
                Ok(JobRow {
                    id: r.try_get(0)?,
                    sha: r.try_get(1)?,
                    scenarios: names(r.try_get(2)?),
                    variants: names(r.try_get(17)?),
                    machine_tag: r.try_get(3)?,
                    state: {
                        let state: String = r.try_get(4)?;
                        JobState::parse(&state).ok_or(QueueError::UnknownState(state))?
                    },
                    attempt: r.try_get(5)?,
                    worker: r.try_get(6)?,
                    enqueued_unix: r.try_get(7)?,
                    started_unix: r.try_get(8)?,
                    finished_unix: r.try_get(9)?,
                    heartbeat_age: r.try_get(10)?,
                    last_error: r.try_get(11)?,
                    failures: r.try_get(12)?,
                    lost: r.try_get(13)?,
                    runs: r.try_get(14)?,
                    log: r.try_get(15)?,
                    lease_seconds: r.try_get(16)?,
                })
            })
            .collect()
    }

    /// Every worker ever seen, the most recently seen first.
    pub fn workers(&mut self) -> Result<Vec<WorkerRow>, QueueError> {
        let rows = self.client.query(
            "SELECT name, machine_tag, fingerprint,
                    extract(epoch FROM clock_timestamp() - seen_at)::float8, job_id
             FROM workers ORDER BY seen_at DESC, name",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(WorkerRow {
                    name: r.try_get(0)?,
                    machine_tag: r.try_get(1)?,
                    fingerprint: r.try_get(2)?,
                    seen_age: r.try_get(3)?,
                    job_id: r.try_get(4)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .map_err(Into::into)
    }
}

impl QueueError {
    /// The server went away.
    pub fn is_connection(&self) -> bool {
        matches!(self, QueueError::Store(e) if e.is_connection())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Option<(syncbench_test_support::pgtest::PgServer, Queue)> {
        let server = syncbench_test_support::pgtest::start_or_skip()?;
        let q = Queue::open(&Location::Postgres(server.url_of("postgres"))).unwrap();
        Some((server, q))
    }

    /// A claim whose lease ran out goes to the next worker; the first
    /// can then neither heartbeat nor complete it. A lease of zero has
    /// always run out, so nothing here waits on a clock.
    #[test]
    fn an_expired_claim_is_taken_over_and_its_first_worker_stores_nothing() {
        let Some((_server, mut q)) = queue() else {
            return;
        };
        q.enqueue(&["a".repeat(40)], (&[], &[]), None, false)
            .unwrap();
        let first = q.claim("w1", None, Duration::ZERO).unwrap().unwrap();
        let second = q
            .claim("w2", None, Duration::from_secs(60))
            .unwrap()
            .unwrap();
        assert_eq!((first.id, first.attempt, second.attempt), (second.id, 1, 2));
        assert!(
            q.claim("w3", None, Duration::from_secs(60))
                .unwrap()
                .is_none()
        );
        assert!(!q.heartbeat(&first, "w1").unwrap());
        assert!(matches!(
            q.finish(&first, "w1", Outcome::Done, &[], ""),
            Err(QueueError::LostClaim(_))
        ));
        assert!(q.heartbeat(&second, "w2").unwrap());
        q.finish(&second, "w2", Outcome::Done, &[], "").unwrap();
        let jobs = q.jobs(&[]).unwrap();
        assert_eq!((jobs[0].state, jobs[0].lost), (JobState::Done, 1));
    }

    /// Failures: the same one twice fails the job; different ones, the
    /// third; leases lost MAX_LOST times fail it too.
    #[test]
    fn jobs_are_not_retried_forever() {
        let Some((_server, mut q)) = queue() else {
            return;
        };
        let sha = ["b".repeat(40)];
        q.enqueue(&sha, (&[], &[]), None, false).unwrap();
        let mut retries = vec![];
        for error in ["out of memory", "disk full", "segfault"] {
            let job = q
                .claim("w", None, Duration::from_secs(60))
                .unwrap()
                .unwrap();
            retries.push(q.fail(&job, "w", error, &[], error).unwrap());
        }
        assert_eq!(retries, [Retry::Again, Retry::Again, Retry::Failed]);
        q.enqueue(&sha, (&[], &[]), None, false).unwrap();
        // Claimed, and each time its worker goes silent (a lease of zero):
        // the third lost lease fails it.
        for _ in 0..MAX_LOST {
            assert!(q.claim("w", None, Duration::ZERO).unwrap().is_some());
        }
        assert!(q.claim("w", None, Duration::ZERO).unwrap().is_none());
        let jobs = q.jobs(&[]).unwrap();
        assert_eq!(jobs[1].state, JobState::Failed, "{:?}", jobs[1]);
        assert!(
            jobs[1]
                .log
                .as_deref()
                .unwrap_or("")
                .contains("stopped heartbeating")
        );
    }

    #[test]
    fn failures_differing_only_in_numbers_are_the_same() {
        assert_eq!(
            failure_signature("nginx did not listen on 127.0.0.1:41023 in 10 s"),
            failure_signature("nginx did not listen on 127.0.0.1:39877 in 10 s")
        );
        assert_ne!(
            failure_signature("out of memory"),
            failure_signature("disk full")
        );
    }
}
