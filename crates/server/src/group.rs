//! Group commit for one database: writers hand their work to whichever of
//! them holds the turn, who runs everything waiting in one transaction
//! (each piece in a savepoint of its own, so one refused write does not
//! undo the others) and then answers each writer.
//!
//! Under 100 concurrent 10 KiB uploads, one transaction per upload spent
//! most of the server's time committing and waking threads; batched, the
//! commit is paid once per batch. Writers of this process never meet in
//! SQLite's busy handler, which sleeps between tries; other processes on
//! the same database still do.

use crate::db::Pool;
use crate::error::{ApiError, StoreError};
use crate::metrics::METRICS;
use rusqlite::{Connection, TransactionBehavior};
use std::any::Any;
use std::sync::Mutex;
use std::sync::mpsc;

type Outcome = Result<Box<dyn Any + Send>, ApiError>;

struct Job {
    run: Box<dyn FnOnce(&Connection) -> Outcome + Send>,
    reply: mpsc::Sender<Outcome>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A writer is running batches; new jobs wait for it.
    leading: bool,
}

#[derive(Default)]
pub struct GroupCommit {
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupCommit")
    }
}

/// Gives the turn back even if a job panics, so later writers are not
/// left waiting for a leader that is gone.
struct Turn<'a>(&'a Mutex<Queue>);
impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if let Ok(mut q) = self.0.lock() {
            q.leading = false;
        }
    }
}

impl GroupCommit {
    /// Runs `f` inside a write transaction, possibly together with other
    /// writers' work, and returns once that transaction has committed (or
    /// with `f`'s error, its own changes rolled back). Blocking.
    pub fn write<R: Send + 'static>(
        &self,
        pool: &Pool,
        f: impl FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let (reply, answer) = mpsc::channel();
        let job = Job {
            run: Box::new(move |c| f(c).map(|r| Box::new(r) as Box<dyn Any + Send>)),
            reply,
        };
        let lead = {
            let mut q = self.queue.lock().expect("group commit lock");
            q.jobs.push(job);
            !std::mem::replace(&mut q.leading, true)
        };
        if !lead {
            METRICS.group_commit_waits.inc();
        }
        if lead {
            let _turn = Turn(&self.queue);
            loop {
                let batch = {
                    let mut q = self.queue.lock().expect("group commit lock");
                    if q.jobs.is_empty() {
                        break;
                    }
                    std::mem::take(&mut q.jobs)
                };
                run_batch(pool, batch);
            }
        }
        match answer.recv() {
            Ok(out) => out.map(|r| *r.downcast::<R>().expect("a job answers its own type")),
            Err(_) => Err(StoreError::Task("the writer running this change failed".into()).into()),
        }
    }
}

fn run_batch(pool: &Pool, batch: Vec<Job>) {
    METRICS.group_commit_batch.observe(batch.len() as f64);
    let mut replies = Vec::with_capacity(batch.len());
    let committed = pool.with(|c| -> rusqlite::Result<()> {
        let mut tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for job in batch {
            let sp = tx.savepoint()?;
            let out = (job.run)(&sp);
            if out.is_ok() {
                sp.commit()?;
            } // else: dropping the savepoint rolls it back
            replies.push((job.reply, out));
        }
        tx.commit()
    });
    match committed {
        Ok(()) => {
            for (reply, out) in replies {
                let _ = reply.send(out);
            }
        }
        Err(e) => {
            // Nothing of the batch was kept: every writer learns why.
            for (reply, _) in replies {
                let _ = reply.send(Err(StoreError::Task(format!("commit failed: {e}")).into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_writers_all_commit_and_a_refused_one_undoes_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Arc::new(
            Pool::open(
                dir.path().join("t.sqlite"),
                &["CREATE TABLE t (k INTEGER PRIMARY KEY) STRICT;"],
            )
            .unwrap(),
        );
        let group = Arc::new(GroupCommit::default());
        let results: Vec<Result<i64, ApiError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..64i64)
                .map(|k| {
                    let (pool, group) = (pool.clone(), group.clone());
                    s.spawn(move || {
                        group.write(&pool, move |c| {
                            c.execute("INSERT INTO t VALUES (?1)", [k])?;
                            if k % 8 == 0 {
                                // Refused after writing: its row must go.
                                return Err(ApiError::Forbidden);
                            }
                            Ok(k)
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (k, r) in results.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v, k as i64),
                Err(e) => assert!(k % 8 == 0 && matches!(e, ApiError::Forbidden), "{k}: {e}"),
            }
        }
        let rows: Vec<i64> = pool
            .with(|c| {
                c.prepare("SELECT k FROM t ORDER BY k")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .unwrap();
        let expected: Vec<i64> = (0..64).filter(|k| k % 8 != 0).collect();
        assert_eq!(rows, expected);
    }
}
