//! A small pool of SQLite connections, shared by the accounts and user
//! databases.

use rusqlite::Connection;
use sqlite_util::open;
use std::path::PathBuf;
use std::sync::Mutex;

/// Idle connections kept per database file; more are opened on demand.
const MAX_IDLE: usize = 8;

/// A connection whose statements and commits the server's `/metrics`
/// counts.
fn open_counted(path: &std::path::Path, migrations: &[&str]) -> rusqlite::Result<Connection> {
    let mut conn = open(path, migrations)?;
    sqlite_util::count_activity(&mut conn)?;
    Ok(conn)
}

/// A few open connections to one database file, reused across requests.
#[derive(Debug)]
pub struct Pool {
    path: PathBuf,
    migrations: &'static [&'static str],
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: PathBuf, migrations: &'static [&'static str]) -> rusqlite::Result<Self> {
        let first = open_counted(&path, migrations)?;
        Ok(Self {
            path,
            migrations,
            idle: Mutex::new(vec![first]),
        })
    }

    /// Runs `f` on a connection; blocking, so call it off the async runtime.
    pub fn with<R, E: From<rusqlite::Error>>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, E>,
    ) -> Result<R, E> {
        let taken = self.idle.lock().expect("pool lock").pop();
        let mut conn = match taken {
            Some(c) => c,
            None => open_counted(&self.path, self.migrations)?,
        };
        let out = f(&mut conn);
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        out
    }
}
