//! Blob storage of one user: files under `blobs/{user}/{namespace}/{id}`,
//! their size, flag and dates in the user's database.
//!
//! A blob is either whole or absent. Blobs up to `INLINE_MAX` (64 KiB) are
//! stored in their row, written by the transaction that records them.
//! Larger uploads stream into a file under `tmp/`, which is fsynced and
//! then renamed into place, under a name of its own (`{id}@{random}`),
//! inside the transaction that records it: a crash before the rename
//! leaves only a temporary file (removed at the next start); a failed
//! commit removes the renamed file; a crash between rename and commit
//! leaves a file no row names (invisible garbage; nothing reclaims it
//! yet). Deletion removes the row first, then that version's file.

use crate::error::{ApiError, StoreError};
use crate::userdb::UserDb;
use protocol::{
    BlobFlag, BlobId, BlobInfo, BlobList, BlobQuery, FlagChange, FlagItem, MAX_LIST, MailKey,
    Namespace, Order,
};
use rusqlite::{OptionalExtension, Row, params};
use std::path::{Path, PathBuf};

/// Blobs up to this size are stored in their row, not in a file of their
/// own: a file costs an inode allocation, an fsync, a rename and two
/// directory locks (perf: 70% of the server's time under a load of 10 KiB
/// uploads, and the disk here does about 1000 fsyncs/s). In the row they
/// are written by the same transaction that records them: whole or absent,
/// as durable as the documents.
pub const INLINE_MAX: u64 = 64 * 1024;

/// Where a blob's bytes are.
#[derive(Debug)]
pub enum Stored {
    Inline(Vec<u8>),
    File(PathBuf),
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn info(r: &Row) -> rusqlite::Result<BlobInfo> {
    let bad = |i, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let flag: Option<String> = r.get(3)?;
    Ok(BlobInfo {
        namespace: Namespace::new(r.get::<_, String>(0)?).map_err(|e| bad(0, e.to_string()))?,
        id: BlobId::new(r.get::<_, String>(1)?).map_err(|e| bad(1, e.to_string()))?,
        size: r.get(2)?,
        flag: flag.map(|f| f.parse()).transpose().map_err(|e| bad(3, e))?,
        created_ms: r.get(4)?,
        flagged_ms: r.get(5)?,
    })
}

const COLUMNS: &str = "namespace, id, size, flag, created_ms, flagged_ms";

fn exists(ns: &Namespace, id: &BlobId) -> ApiError {
    ApiError::Exists(format!(
        "blob {ns}/{id} exists already; blobs are immutable: delete it first or use another id"
    ))
}

impl UserDb {
    /// Where a blob's file lives: `file` as recorded, or `{id}` for
    /// blobs stored before files had names of their own (ids and file
    /// names were validated: one path level each).
    fn blob_path(&self, ns: &Namespace, id: &BlobId, file: Option<&str>) -> PathBuf {
        self.blob_dir()
            .join(ns.as_str())
            .join(file.unwrap_or(id.as_str()))
    }

    fn usage(c: &rusqlite::Connection) -> rusqlite::Result<u64> {
        c.prepare_cached("SELECT bytes FROM blob_usage")?
            .query_row([], |r| r.get(0))
    }

    fn check_room(
        c: &rusqlite::Connection,
        ns: &Namespace,
        id: &BlobId,
        size: u64,
        quota: u64,
        check_exists: bool,
    ) -> Result<(), ApiError> {
        let found: Option<i64> = c
            .prepare_cached("SELECT 1 FROM blobs WHERE namespace = ?1 AND id = ?2")?
            .query_row(params![ns.as_str(), id.as_str()], |r| r.get(0))
            .optional()?;
        if check_exists && found.is_some() {
            return Err(exists(ns, id));
        }
        let used = Self::usage(c)?;
        if used.saturating_add(size) > quota {
            return Err(ApiError::QuotaExceeded(format!(
                "storing {size} bytes would exceed the quota of {quota} bytes ({used} in use); delete blobs first"
            )));
        }
        Ok(())
    }

    /// Refuses early what would be refused at the end (a declared size over
    /// the quota; with `check_exists`, an existing id), before any byte is
    /// read.
    pub fn blob_precheck(
        &self,
        ns: &Namespace,
        id: &BlobId,
        declared: u64,
        quota: u64,
        check_exists: bool,
    ) -> Result<(), ApiError> {
        self.pool()
            .with(|c| Self::check_room(c, ns, id, declared, quota, check_exists))
    }

    /// Moves a fully written and synced temporary file into place and
    /// records it, in one transaction.
    pub fn blob_commit(
        &self,
        ns: &Namespace,
        id: &BlobId,
        tmp: &Path,
        size: u64,
        flag: Option<BlobFlag>,
        quota: u64,
    ) -> Result<BlobInfo, ApiError> {
        let file = format!("{id}@{}", crypto::random_hex(8).map_err(StoreError::from)?);
        let dest = self.blob_path(ns, id, Some(&file));
        let (ns, id, tmp, renamed) = (ns.clone(), id.clone(), tmp.to_owned(), dest.clone());
        let written = self.write(move |c| {
            Self::check_room(c, &ns, &id, size, quota, true)?;
            let parent = dest.parent().expect("blob paths have a parent");
            std::fs::create_dir_all(parent).map_err(StoreError::from)?;
            std::fs::rename(&tmp, &dest).map_err(StoreError::from)?;
            Self::insert(c, &ns, &id, size, flag, (None, Some(&file)))
        });
        if written.is_err() {
            // Renamed, but the transaction did not commit: no row will
            // ever name this file (its name is new), so it goes now.
            let _ = std::fs::remove_file(&renamed);
        }
        written
    }

    /// Records a small blob with its bytes in the row (see [`INLINE_MAX`]).
    pub fn blob_commit_inline(
        &self,
        ns: &Namespace,
        id: &BlobId,
        data: axum::body::Bytes,
        flag: Option<BlobFlag>,
        quota: u64,
    ) -> Result<BlobInfo, ApiError> {
        let (ns, id) = (ns.clone(), id.clone());
        self.write(move |c| {
            Self::check_room(c, &ns, &id, data.len() as u64, quota, true)?;
            Self::insert(c, &ns, &id, data.len() as u64, flag, (Some(&data), None))
        })
    }

    /// Runs `f` in a write transaction, batched with other writers of this
    /// database (see `group.rs`).
    fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        self.writer.write(self.pool(), f)
    }

    fn insert(
        tx: &rusqlite::Connection,
        ns: &Namespace,
        id: &BlobId,
        size: u64,
        flag: Option<BlobFlag>,
        (data, file): (Option<&[u8]>, Option<&str>),
    ) -> Result<BlobInfo, ApiError> {
        let now = now_ms();
        tx.prepare_cached(&format!(
            "INSERT INTO blobs ({COLUMNS}, data, file) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))?
        .execute(params![
            ns.as_str(),
            id.as_str(),
            size,
            flag.map(BlobFlag::as_str),
            now,
            now,
            data,
            file
        ])?;
        Ok(BlobInfo {
            namespace: ns.clone(),
            id: id.clone(),
            size,
            flag,
            created_ms: now,
            flagged_ms: now,
        })
    }

    /// A blob's record and where its bytes are (for a file: its path).
    pub fn blob_open(
        &self,
        ns: &Namespace,
        id: &BlobId,
    ) -> Result<Option<(BlobInfo, Stored)>, StoreError> {
        let found = self.pool().with(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS}, data, file FROM blobs WHERE namespace = ?1 AND id = ?2"
            ))?
            .query_row(params![ns.as_str(), id.as_str()], |r| {
                Ok((
                    info(r)?,
                    r.get::<_, Option<Vec<u8>>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })
            .optional()
        })?;
        Ok(found.map(|(info, data, file)| {
            let stored = match data {
                Some(d) => Stored::Inline(d),
                None => Stored::File(self.blob_path(ns, id, file.as_deref())),
            };
            (info, stored)
        }))
    }

    pub fn blob_info(&self, ns: &Namespace, id: &BlobId) -> Result<Option<BlobInfo>, StoreError> {
        Ok(self.pool().with(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM blobs WHERE namespace = ?1 AND id = ?2"
            ))?
            .query_row(params![ns.as_str(), id.as_str()], info)
            .optional()
        })?)
    }

    /// Deletes a blob; `false` if there was none. The row goes first, then
    /// the file of the version deleted (if it had one): a crash in between
    /// leaves an orphan file, never a row without its bytes, and an upload
    /// of the same id committed in between has a file of its own.
    pub fn blob_delete(&self, ns: &Namespace, id: &BlobId) -> Result<bool, ApiError> {
        let (n, i) = (ns.to_string(), id.to_string());
        let deleted: Option<(bool, Option<String>)> = self.write(move |tx| {
            Ok(tx
                .prepare_cached(
                    "DELETE FROM blobs WHERE namespace = ?1 AND id = ?2 RETURNING data IS NULL, file",
                )?
                .query_row(params![n, i], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?)
        })?;
        if let Some((true, file)) = &deleted {
            match std::fs::remove_file(self.blob_path(ns, id, file.as_deref())) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(StoreError::from(e).into());
                }
                _ => {}
            }
        }
        Ok(deleted.is_some())
    }

    pub fn blob_list(&self, q: &BlobQuery) -> Result<BlobList, StoreError> {
        let mut filter = String::from("WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        if let Some(ns) = &q.namespace {
            args.push(ns.to_string());
            filter += &format!(" AND namespace = ?{}", args.len());
        }
        if let Some(flag) = q.flag {
            args.push(flag.to_string());
            filter += &format!(" AND flag = ?{}", args.len());
        }
        let order = match q.order {
            Order::Oldest => "ASC",
            Order::Newest => "DESC",
        };
        let limit = q.limit.unwrap_or(MAX_LIST).min(MAX_LIST);
        Ok(self.pool().with(|c| {
            let count: u64 = c
                .prepare_cached(&format!("SELECT COUNT(*) FROM blobs {filter}"))?
                .query_row(rusqlite::params_from_iter(&args), |r| r.get(0))?;
            let blobs = if q.count_only {
                Vec::new()
            } else {
                c.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM blobs {filter}
                     ORDER BY created_ms {order}, rowid {order} LIMIT {limit}"
                ))?
                .query_map(rusqlite::params_from_iter(&args), info)?
                .collect::<rusqlite::Result<_>>()?
            };
            Ok::<_, rusqlite::Error>(BlobList { count, blobs })
        })?)
    }

    /// Sets a blob's flag, atomically checking the expected current flag.
    pub fn blob_flag(
        &self,
        ns: &Namespace,
        id: &BlobId,
        change: &FlagChange,
    ) -> Result<BlobInfo, ApiError> {
        let (ns, id, change) = (ns.clone(), id.clone(), change.clone());
        self.write(move |tx| flag_in(tx, &ns, &id, &change))
    }

    /// Several flag changes in one transaction, each checked and answered
    /// on its own (one that fails changes nothing and stops no other).
    pub fn blob_flag_many(
        &self,
        ns: &Namespace,
        items: Vec<FlagItem>,
    ) -> Result<Vec<Result<BlobInfo, ApiError>>, ApiError> {
        let ns = ns.clone();
        self.write(move |tx| {
            Ok(items
                .iter()
                .map(|i| {
                    let change = FlagChange {
                        flag: i.flag,
                        expect: i.expect,
                    };
                    flag_in(tx, &ns, &i.id, &change)
                })
                .collect())
        })
    }

    /// Several blobs deleted in one transaction (then their files); for
    /// each, whether it was there.
    pub fn blob_delete_many(
        &self,
        ns: &Namespace,
        ids: Vec<BlobId>,
    ) -> Result<Vec<bool>, ApiError> {
        let n = ns.to_string();
        let ids2 = ids.clone();
        let deleted: Vec<Option<(bool, Option<String>)>> = self.write(move |tx| {
            let mut stmt = tx.prepare_cached(
                "DELETE FROM blobs WHERE namespace = ?1 AND id = ?2 RETURNING data IS NULL, file",
            )?;
            Ok(ids2
                .iter()
                .map(|i| {
                    stmt.query_row(params![n, i.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .collect::<rusqlite::Result<_>>()?)
        })?;
        for (id, d) in ids.iter().zip(&deleted) {
            if let Some((true, file)) = d {
                match std::fs::remove_file(self.blob_path(ns, id, file.as_deref())) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(StoreError::from(e).into());
                    }
                    _ => {}
                }
            }
        }
        Ok(deleted.iter().map(Option::is_some).collect())
    }

    /// Several small blobs stored in their rows in one transaction, each
    /// refused on its own (an existing id, the quota).
    pub fn blob_commit_inline_many(
        &self,
        ns: &Namespace,
        items: Vec<(BlobId, axum::body::Bytes)>,
        quota: u64,
    ) -> Result<Vec<Result<BlobInfo, ApiError>>, ApiError> {
        let ns = ns.clone();
        self.write(move |c| {
            Ok(items
                .iter()
                .map(|(id, data)| {
                    Self::check_room(c, &ns, id, data.len() as u64, quota, true)?;
                    Self::insert(c, &ns, id, data.len() as u64, None, (Some(data), None))
                })
                .collect())
        })
    }

    pub fn mail_key(&self) -> Result<Option<MailKey>, StoreError> {
        Ok(self.pool().with(|c| {
            c.query_row(
                "SELECT recipient, sealed_identity FROM mail_key WHERE one = 1",
                [],
                |r| {
                    Ok(MailKey {
                        recipient: r.get(0)?,
                        sealed_identity: protocol::Content(r.get(1)?),
                    })
                },
            )
            .optional()
        })?)
    }

    /// Stores the mail key unless one exists; `false` if one did (two
    /// devices initialising at once must agree on one key).
    pub fn put_mail_key_if_absent(&self, key: &MailKey) -> Result<bool, StoreError> {
        Ok(self.pool().with(|c| {
            c.execute(
                "INSERT INTO mail_key (one, recipient, sealed_identity) VALUES (1, ?1, ?2)
                 ON CONFLICT (one) DO NOTHING",
                params![key.recipient, key.sealed_identity.0],
            )
        })? == 1)
    }
}

/// Sets a blob's flag in `tx` if its current flag is the one expected.
fn flag_in(
    tx: &rusqlite::Connection,
    ns: &Namespace,
    id: &BlobId,
    change: &FlagChange,
) -> Result<BlobInfo, ApiError> {
    let current = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM blobs WHERE namespace = ?1 AND id = ?2"
        ))?
        .query_row(params![ns.as_str(), id.as_str()], info)
        .optional()?
        .ok_or_else(|| ApiError::NotFound(format!("no blob {ns}/{id}")))?;
    if let Some(expect) = change.expect
        && current.flag != Some(expect)
    {
        return Err(ApiError::PreconditionFailed(format!(
            "blob {ns}/{id} is {}, not {expect}",
            current.flag.map_or("unflagged", BlobFlag::as_str)
        )));
    }
    let now = now_ms();
    tx.prepare_cached(
        "UPDATE blobs SET flag = ?3, flagged_ms = ?4 WHERE namespace = ?1 AND id = ?2",
    )?
    .execute(params![ns.as_str(), id.as_str(), change.flag.as_str(), now])?;
    Ok(BlobInfo {
        flag: Some(change.flag),
        flagged_ms: now,
        ..current
    })
}
