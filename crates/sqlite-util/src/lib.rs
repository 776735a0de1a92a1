//! How every SQLite database of the project is opened: WAL, foreign keys,
//! lock waits in short steps, and schema migrations numbered by `user_version`.

use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// What the connections opened here did, process-wide (statements and
/// commits of those given to [`count_activity`]): exact counts a
/// server exposes (its `/metrics`), so an extra statement or transaction
/// per request shows at the commit that added it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// Statements started (each run of a prepared statement counts).
    pub statements: u64,
    /// Write transactions committed.
    pub commits: u64,
    /// Times a connection found the database locked by another
    /// connection and waited.
    pub lock_waits: u64,
}

static STATEMENTS: AtomicU64 = AtomicU64::new(0);
static COMMITS: AtomicU64 = AtomicU64::new(0);
static LOCK_WAITS: AtomicU64 = AtomicU64::new(0);

/// Counts `conn`'s statements and commits in the process's [`Activity`]
/// (lock waits are counted on every connection). Opt-in: each statement
/// then costs a callback that also converts its SQL text.
pub fn count_activity(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.trace_v2(
        rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
        Some(|_: rusqlite::trace::TraceEvent<'_>| {
            STATEMENTS.fetch_add(1, Relaxed);
        }),
    )?;
    conn.commit_hook(Some(|| {
        COMMITS.fetch_add(1, Relaxed);
        false // true would turn the commit into a rollback
    }))
}

/// The process's [`Activity`] so far.
pub fn activity() -> Activity {
    Activity {
        statements: STATEMENTS.load(Relaxed),
        commits: COMMITS.load(Relaxed),
        lock_waits: LOCK_WAITS.load(Relaxed),
    }
}

/// Opens `path` (creating it) and brings its schema up to date.
/// `migrations[i]` moves `user_version` from i to i+1; a database newer
/// than the migrations known here is refused rather than misread.
pub fn open(path: &Path, migrations: &[&str]) -> rusqlite::Result<Connection> {
    // A path, never read as a URI: a file named `file:…` is that file.
    let flags = rusqlite::OpenFlags::default() - rusqlite::OpenFlags::SQLITE_OPEN_URI;
    let mut conn = Connection::open_with_flags(path, flags)?;
    // Only functions SQLite knows to be harmless in a schema's triggers,
    // views and expressions: a database file may come from elsewhere
    // (SQLite's advice for every application).
    conn.pragma_update(None, "trusted_schema", false)?;
    // WAL: readers never block the writer. synchronous=NORMAL in WAL mode
    // loses no committed transaction when the process is killed; only a
    // power cut can take the last ones back.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The default 2 MB page cache spills a multi-megabyte transaction into
    // the WAL before it commits, writing pages twice; 64 MiB is the most
    // one connection may use, allocated only as needed.
    conn.pragma_update(None, "cache_size", -64 * 1024)?;
    // Checkpoints copy the WAL into the database and fsync both: at the
    // default 4 MB they land inside every large transaction. At 64 MiB they
    // are rare on the request path; servers call `checkpoint` off it, and
    // closing the last connection checkpoints too.
    conn.pragma_update(None, "wal_autocheckpoint", 16 * 1024)?;
    conn.busy_handler(Some(wait_for_lock))?;

    // The bundled SQLite is built with STAT4, which recompiles a cached
    // statement whenever a parameter compared with an indexed column is
    // rebound, in case its value changes the plan: that is nearly every
    // query here, and it was a quarter of the server's CPU under load
    // (perf). Plans are kept; we collect no statistics for them anyway.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    migrate(&mut conn, migrations)?;
    Ok(conn)
}

/// How long a connection waits for another process's lock: about 10 s in
/// all, first in short steps. SQLite's own busy timeout sleeps 1, 2, 5,
/// 10 … up to 100 ms between tries, so a writer that just missed a lock
/// held for a millisecond waited 1–5 ms or more; with several server
/// processes writing one database that was the tail of the upload
/// latency.
fn wait_for_lock(tries: i32) -> bool {
    if tries == 0 {
        LOCK_WAITS.fetch_add(1, Relaxed);
    }
    match lock_wait_step(tries) {
        Some(step) => {
            std::thread::sleep(step);
            true
        }
        None => false,
    }
}

/// The pause before try `tries + 1`, or `None` once 10 s were spent.
fn lock_wait_step(tries: i32) -> Option<Duration> {
    const TOTAL: Duration = Duration::from_secs(10);
    let t = tries.max(0) as u32;
    // Steps double from 50 µs up to 3.2 ms (the seventh), then stay there.
    let step = Duration::from_micros(50 << t.min(6));
    let waited = Duration::from_micros(50 * ((1 << t.min(7)) - 1))
        + Duration::from_micros(3200) * t.saturating_sub(7);
    (waited < TOTAL).then_some(step)
}

/// Copies what it can of the WAL into the database without waiting for
/// readers or writers (`PRAGMA wal_checkpoint(PASSIVE)`).
pub fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

fn migrate(conn: &mut Connection, migrations: &[&str]) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == migrations.len() as i64 {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Re-read under the write lock: another connection may have migrated.
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > migrations.len() as i64 {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "database schema version {version} is newer than this program knows ({}); use a newer build",
                migrations.len()
            )),
        ));
    }
    for (i, sql) in migrations.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_waits_start_short_and_end_after_ten_seconds() {
        assert_eq!(lock_wait_step(0), Some(Duration::from_micros(50)));
        assert_eq!(lock_wait_step(3), Some(Duration::from_micros(400)));
        assert_eq!(lock_wait_step(100), Some(Duration::from_micros(3200)));
        let steps: Vec<Duration> = (0..).map_while(lock_wait_step).collect();
        let total: Duration = steps.iter().sum();
        assert!(
            total >= Duration::from_secs(10) && total < Duration::from_millis(10_010),
            "{total:?} over {} tries",
            steps.len()
        );
    }

    #[test]
    fn a_writer_waits_for_another_connections_lock_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let m = ["CREATE TABLE a (x INTEGER) STRICT;"];
        let mut holder = open(&path, &m).unwrap();
        let other = open(&path, &m).unwrap();
        let tx = holder
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        tx.execute("INSERT INTO a VALUES (1)", []).unwrap();
        let (started, go) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || {
            started.send(()).unwrap();
            other.execute("INSERT INTO a VALUES (2)", [])
        });
        go.recv().unwrap();
        tx.commit().unwrap();
        assert_eq!(writer.join().unwrap().unwrap(), 1);
        let n: i64 = holder
            .query_row("SELECT count(*) FROM a", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn migrations_run_once_in_order_and_newer_schemas_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let v1 = ["CREATE TABLE a (x INTEGER) STRICT;"];
        let v2 = [
            v1[0],
            "ALTER TABLE a ADD COLUMN y TEXT; INSERT INTO a VALUES (1, 'one');",
        ];
        open(&path, &v1).unwrap();
        let conn = open(&path, &v2).unwrap();
        let row: (i64, String) = conn
            .query_row("SELECT x, y FROM a", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(row, (1, "one".into()));
        drop(conn);
        // Reopening applies nothing twice (the INSERT would duplicate).
        let conn = open(&path, &v2).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM a", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let e = open(&path, &v1).unwrap_err().to_string();
        assert!(e.contains("newer than this program knows"), "{e}");
    }
}
