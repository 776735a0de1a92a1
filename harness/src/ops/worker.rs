//! A benchmark machine's worker: takes one job at a time from the queue
//! (`store::queue`), measures its commit exactly as `history` does (the
//! same reusable checkout and build cache, the parent as baseline, points
//! with a final answer skipped unless the job forces them), heartbeats
//! from a thread while it measures, and stores the runs in the
//! transaction that completes the job.
//!
//! A job's runs are held in memory until then: a worker killed mid-job
//! stores nothing, and the job is measured again after its lease, so a
//! result is never stored twice. (For the same reason a worker keeps no
//! local spool of runs the server could not take: the job is handed out
//! again instead.)

use crate::git::{Commit, GitError};
use crate::model::RunStatus;
use crate::ops::session::{Baseline, Progress, Session};
use crate::scenario::{Point, Scenario};
use crate::store::queue::{Job, Outcome, Queue, QueueError, Retry};
use crate::store::{RunRecord, StoreError};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The scenarios a job names (none: the default suite), or why not.
pub type Choose<'a> = dyn Fn(&[String]) -> Result<Vec<Scenario>, String> + 'a;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How the queue knows this worker (default: host:pid).
    pub name: String,
    /// Takes jobs for this tag, and jobs for any machine.
    pub machine_tag: Option<String>,
    /// A claim not renewed for this long is handed to another worker.
    pub lease: Duration,
    /// Stop once nothing is left this worker could take.
    pub until_empty: bool,
}

/// What happened, for the caller to show.
#[derive(Debug)]
pub enum Event<'a> {
    Waiting,
    Started(&'a Job, &'a Commit),
    Done(&'a Job, usize),
    BuildFailed(&'a Job),
    /// Failed, and put back for another try.
    Retry(&'a Job, &'a str),
    /// Failed the same way twice: not tried again.
    Failed(&'a Job, &'a str),
    /// Its claim ran out while measuring; another worker has it.
    LostClaim(&'a Job),
    /// Put back untouched (the worker was asked to stop, or the database
    /// went away while it measured).
    Released(&'a Job),
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(
        "lost the database while finishing job #{job}: nothing of it was stored, and it is measured again (by any worker) once its lease runs out"
    )]
    LostDatabase {
        job: i64,
        #[source]
        source: QueueError,
    },
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Renews a claim every `every` from its own connection until stopped;
/// says whether the claim was lost meanwhile.
struct Heartbeat {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<bool>,
}

impl Heartbeat {
    fn start(mut queue: Queue, job: Job, worker: String, every: Duration) -> Heartbeat {
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            loop {
                match stopped.recv_timeout(every) {
                    Err(mpsc::RecvTimeoutError::Timeout) => match queue.heartbeat(&job, &worker) {
                        Ok(true) => {}
                        Ok(false) => return true,
                        // A blip, or the server restarted: the lease outlasts
                        // a few missed beats; a fresh connection for the next.
                        Err(_) => {
                            let _ = queue.reconnect();
                        }
                    },
                    _ => return false,
                }
            }
        });
        Heartbeat { stop, handle }
    }

    fn stop(self) -> bool {
        let _ = self.stop.send(());
        self.handle.join().unwrap_or(false)
    }
}

/// Takes and measures jobs until interrupted (or, with `until_empty`,
/// until none is left); how many it completed.
/// No job to claim: whether the worker is done (`until_empty` and no job
/// open for it); otherwise it has waited for one (or for the connection
/// to come back).
fn idle(
    session: &mut Session,
    queue: &mut Queue,
    settings: &WorkerSettings,
    events: &mut dyn FnMut(Event),
) -> Result<bool, WorkerError> {
    let tag = settings.machine_tag.as_deref();
    // How long the database may be gone before the worker gives up: its
    // own claims outlive that long.
    let patience = settings.lease;
    let waited = if settings.until_empty {
        queue.open_jobs(tag).map(|n| n == 0)
    } else {
        Ok(false)
    };
    match waited {
        Ok(true) => return Ok(true),
        Ok(false) => {
            events(Event::Waiting);
            let interrupted = || session.interrupted();
            match queue.wait(settings.lease.min(Duration::from_secs(30)), &interrupted) {
                Err(e) if e.is_connection() => recover(queue, session, patience, None)?,
                other => other?,
            }
        }
        Err(e) if e.is_connection() => recover(queue, session, patience, None)?,
        Err(e) => return Err(e.into()),
    }
    Ok(false)
}

pub fn work(
    session: &mut Session,
    queue: &mut Queue,
    root: &Path,
    settings: &WorkerSettings,
    choose: &Choose<'_>,
    progress: &mut dyn Progress,
    events: &mut dyn FnMut(Event),
) -> Result<usize, WorkerError> {
    let name = settings.name.as_str();
    let tag = settings.machine_tag.as_deref();
    let fingerprint = session.machine().fingerprint();
    let mut completed = 0;
    queue.listen()?;
    // How long the database may be gone before the worker gives up: its
    // own claims outlive that long.
    let patience = settings.lease;
    while !session.interrupted() {
        let claimed = queue
            .seen(name, tag, &fingerprint, None)
            .and_then(|()| queue.claim(name, tag, settings.lease));
        let job = match claimed {
            Ok(Some(job)) => job,
            Ok(None) if idle(session, queue, settings, events)? => break,
            Ok(None) => continue,
            Err(e) if e.is_connection() => {
                recover(queue, session, patience, None)?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let beat = Heartbeat::start(
            queue.another()?,
            job.clone(),
            name.to_owned(),
            settings.lease / 4,
        );
        let measured = measure(session, root, &job, choose, progress, events);
        let lost = beat.stop();
        // The answer is tried again after the connections come back (the
        // connection sat idle while the job was measured, or the server
        // restarted): the claim outlives that.
        let mut result = answer(
            queue,
            &job,
            name,
            &measured,
            session.interrupted(),
            lost,
            events,
        );
        if matches!(&result, Err(e) if e.is_connection()) {
            recover(queue, session, patience, Some(job.id))?;
            result = answer(
                queue,
                &job,
                name,
                &measured,
                session.interrupted(),
                lost,
                events,
            );
        }
        match result {
            Ok(done) => completed += usize::from(done),
            Err(QueueError::LostClaim(_)) => events(Event::LostClaim(&job)),
            Err(e) if e.is_connection() => {
                return Err(WorkerError::LostDatabase {
                    job: job.id,
                    source: e,
                });
            }
            // The database refused the answer (a value it cannot store, a
            // deadlock): the attempt failed, and says why; the worker goes on.
            Err(e) => {
                let error = format!("storing the results: {}", chain(&e));
                let retry = queue.fail(&job, name, &error, &[], &error)?;
                report_failure(&job, retry, &error, events);
            }
        }
    }
    Ok(completed)
}

/// Waits for the database to come back (a restart, a network blip):
/// reconnects the queue and the session's store, backing off from 100 ms
/// to 5 s, for at most `patience`; then it is an error (about `job`, when
/// one was being answered).
fn recover(
    queue: &mut Queue,
    session: &mut Session,
    patience: Duration,
    job: Option<i64>,
) -> Result<(), WorkerError> {
    let deadline = std::time::Instant::now() + patience;
    let mut pause = Duration::from_millis(100);
    loop {
        let tried = queue
            .reconnect()
            .and_then(|()| session.store.reconnect().map_err(QueueError::from));
        match tried {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() + pause > deadline || session.interrupted() => {
                return Err(match job {
                    Some(job) => WorkerError::LostDatabase { job, source: e },
                    None => WorkerError::Queue(e),
                });
            }
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Tells the queue how a job's attempt ended; whether the job is done.
fn answer(
    queue: &mut Queue,
    job: &Job,
    worker: &str,
    measured: &Result<Vec<RunRecord>, Measured>,
    interrupted: bool,
    lost: bool,
    events: &mut dyn FnMut(Event),
) -> Result<bool, QueueError> {
    match measured {
        // Not the job's fault: back in the queue, untouched.
        _ if interrupted => queue.release(job, worker).map(|()| {
            events(Event::Released(job));
            false
        }),
        Err(Measured::Database) => queue.release(job, worker).map(|()| {
            events(Event::Released(job));
            false
        }),
        _ if lost => Err(QueueError::LostClaim(job.id)),
        Err(Measured::Job(error)) => queue.fail(job, worker, error, &[], error).map(|retry| {
            report_failure(job, retry, error, events);
            false
        }),
        Err(Measured::Refused(error)) => queue
            .finish(job, worker, Outcome::Refused, &[], error)
            .map(|()| {
                report_failure(job, Retry::Failed, error, events);
                false
            }),
        Ok(runs) => settle(queue, job, worker, runs, events),
    }
}

fn report_failure(job: &Job, retry: Retry, error: &str, events: &mut dyn FnMut(Event)) {
    events(match retry {
        Retry::Again => Event::Retry(job, error),
        Retry::Failed => Event::Failed(job, error),
    });
}

/// Completes the job with its runs, or records the failed attempt;
/// whether the job is done.
fn settle(
    queue: &mut Queue,
    job: &Job,
    worker: &str,
    runs: &[RunRecord],
    events: &mut dyn FnMut(Event),
) -> Result<bool, QueueError> {
    let log: String = runs
        .iter()
        .map(|r| {
            format!(
                "{} {}: {}{}\n",
                r.scenario,
                r.point,
                r.status,
                r.error.as_ref().map_or(String::new(), |e| format!(": {e}"))
            )
        })
        .collect();
    if runs.iter().any(|r| r.status == RunStatus::BuildFailed) {
        queue.finish(job, worker, Outcome::BuildFailed, runs, &log)?;
        events(Event::BuildFailed(job));
        return Ok(false);
    }
    // The first failure names the attempt's failure: the same one twice
    // fails the job.
    if let Some(bad) = runs.iter().find(|r| !r.status.is_final()) {
        let first_line = bad
            .error
            .as_deref()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        let error = format!(
            "{} {}: {}: {first_line}",
            bad.scenario, bad.point, bad.status
        );
        let retry = queue.fail(job, worker, &error, runs, &log)?;
        report_failure(job, retry, &error, events);
        return Ok(false);
    }
    queue.finish(job, worker, Outcome::Done, runs, &log)?;
    events(Event::Done(job, runs.len()));
    Ok(true)
}

/// Measures a job's commit as `history` does; its runs, or why it could
/// not (the commit is unknown here, a scenario is missing, the checkout
/// failed).
fn measure(
    session: &mut Session,
    root: &Path,
    job: &Job,
    choose: &Choose<'_>,
    progress: &mut dyn Progress,
    events: &mut dyn FnMut(Event),
) -> Result<Vec<RunRecord>, Measured> {
    // The queue is a code-execution boundary: whoever can write a job
    // makes every worker build and run what it names. So a job names a
    // commit only by its full sha (as `enqueue` stores it), never a ref
    // or an expression to resolve, and scenarios only by name, looked up
    // in this worker's own `scenarios/` (the chooser's rule).
    if !crate::model::is_full_sha(&job.sha) {
        return Err(Measured::Refused(format!(
            "job #{} names the revision {:?}, not a full commit sha: a worker measures only \
             commits named by their full sha (as `syncbench enqueue` stores them); nothing was run",
            job.id, job.sha
        )));
    }
    let find = || {
        crate::checkout::resolve(root, std::slice::from_ref(&job.sha), None)
            .ok()
            .and_then(|c| c.into_iter().next())
            .filter(|c| c.sha == job.sha)
    };
    let commit = match find() {
        Some(c) => c,
        None => {
            // Enqueued from another clone: fetch from the origin once (the
            // git CLI, for the credentials the machine has set up for it).
            let _ = crate::secrets::command("git")
                .args(["fetch", "--quiet", "origin"])
                .current_dir(root)
                .status();
            find().ok_or_else(|| {
                Measured::Job(format!(
                    "commit {} is not in {} (nor in its origin): push it, or fetch it there",
                    job.sha,
                    root.display()
                ))
            })?
        }
    };
    let scenarios = choose(&job.scenarios)
        .and_then(|s| crate::scenario::select_variants(s, &job.variants))
        .map_err(Measured::Refused)?;
    events(Event::Started(job, &commit));
    let (checkout, runner) = session
        .checkout(root)
        .map_err(|e: GitError| Measured::Job(chain(&e)))?;
    let todo = session
        .unmeasured(&scenarios, &commit.sha, job.force)
        .map_err(Measured::from)?;
    if todo.scenarios.is_empty() {
        return Ok(vec![]);
    }
    checkout
        .switch(&commit.sha)
        .map_err(|e| Measured::Job(chain(&e)))?;
    let baseline = Baseline {
        name: "parent".into(),
        commits: commit.parents.iter().take(1).cloned().collect(),
    };
    session.held = Some(Vec::new());
    let skip = |s: &Scenario, p: &Point| todo.skip(s, p);
    let measured = session.measure(
        &runner,
        &commit,
        &todo.scenarios,
        &baseline,
        &skip,
        progress,
    );
    let runs = session.held.take().unwrap_or_default();
    measured.map_err(Measured::from)?;
    Ok(runs)
}

/// Why a job's attempt did not measure: the job's own fault (counted
/// against it), or the database gone meanwhile (the job is put back).
#[derive(Debug)]
enum Measured {
    Job(String),
    /// The job asks for what no worker does: failed at once, not retried.
    Refused(String),
    /// The store lost its server (the worker reconnects before answering).
    Database,
}

impl From<StoreError> for Measured {
    fn from(e: StoreError) -> Self {
        if e.is_connection() {
            Measured::Database
        } else {
            Measured::Job(chain(&e))
        }
    }
}

/// An error with its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
