//! One user's database (`users/{id}.sqlite`): the current version of every
//! document (ciphertext only), the transaction log, and what the server
//! knows of each of the user's replicas.

use crate::db::Pool;
use crate::error::StoreError;
use protocol::{
    Causality, ChangeFrame, Content, DocFrame, RejectReason, Rejected, ReplicaId, Revision,
    SendSummary, SyncInfo,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the HTTP side hands the database writer while an upload streams in.
#[derive(Debug)]
pub enum Upload {
    Docs(Vec<DocFrame>),
    /// The body ended cleanly; the client's state to record.
    End {
        generation: u64,
        transaction_id: String,
    },
}

#[derive(Debug)]
pub struct UserDb {
    pool: Pool,
    /// `blobs/{user}`: one directory per namespace below it.
    blob_dir: PathBuf,
    replica: ReplicaId,
    /// A checkpoint is queued or running: later requests need not queue one.
    checkpoint_pending: AtomicBool,
    /// Blob writes, committed in batches.
    pub(crate) writer: crate::group::GroupCommit,
}

/// Where a database's history stands.
fn head(c: &Connection) -> rusqlite::Result<(u64, String)> {
    c.prepare_cached("SELECT gen, txid FROM log ORDER BY gen DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map(|h| h.unwrap_or((0, String::new())))
}

impl UserDb {
    pub fn open(path: PathBuf, blob_dir: PathBuf) -> Result<Self, StoreError> {
        let pool = Pool::open(path, crate::schema::USER)?;
        let fresh = crypto::random_hex(8)?;
        let replica: String = pool.with(|c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('replica', ?1) ON CONFLICT DO NOTHING",
                [&fresh],
            )?;
            c.query_row("SELECT value FROM meta WHERE key = 'replica'", [], |r| {
                r.get(0)
            })
        })?;
        let replica = ReplicaId::new(replica)
            .map_err(|e| StoreError::Corrupt(format!("replica id in meta: {e}")))?;
        Ok(Self {
            pool,
            blob_dir,
            replica,
            checkpoint_pending: AtomicBool::new(false),
            writer: Default::default(),
        })
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn blob_dir(&self) -> &std::path::Path {
        &self.blob_dir
    }

    pub fn info(&self, client: &ReplicaId, at: Option<u64>) -> Result<SyncInfo, StoreError> {
        Ok(self.pool.with(|c| {
            let tx = c.transaction()?;
            let (generation, transaction_id) = head(&tx)?;
            let transaction_at_generation = match at {
                None => None,
                Some(0) => Some(String::new()),
                Some(g) => tx
                    .prepare_cached("SELECT txid FROM log WHERE gen = ?1")?
                    .query_row([g], |r| r.get(0))
                    .optional()?,
            };
            let known: Option<(u64, String)> = tx
                .prepare_cached("SELECT gen, txid FROM replicas WHERE id = ?1")?
                .query_row([client.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (known_generation, known_transaction_id) = known.unzip();
            Ok::<_, rusqlite::Error>(SyncInfo {
                replica: self.replica.clone(),
                generation,
                transaction_id,
                transaction_at_generation,
                known_generation,
                known_transaction_id,
            })
        })?)
    }

    /// Applies one upload request in one write transaction: committed only
    /// when the body ended cleanly (`Upload::End`), rolled back if it was
    /// cut off or malformed, so a request is applied whole or not at all.
    ///
    /// A version newer than the stored one replaces it under a new
    /// generation; the same version is a no-op; an older or concurrent one
    /// is rejected (the client receives the server's version and keeps its
    /// own as a conflict). Returns `None` when the upload did not end.
    pub fn apply_upload(
        &self,
        source: &ReplicaId,
        uploads: &mut tokio::sync::mpsc::Receiver<Upload>,
    ) -> Result<Option<SendSummary>, StoreError> {
        self.pool.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let (mut generation, mut txid) = head(&tx)?;
            let mut summary = SendSummary {
                accepted: 0,
                unchanged: 0,
                rejected: Vec::new(),
                generation,
                transaction_id: txid.clone(),
            };
            let mut get_rev = tx.prepare_cached("SELECT rev FROM docs WHERE id = ?1")?;
            let mut same_content =
                tx.prepare_cached("SELECT content IS ?2 FROM docs WHERE id = ?1")?;
            let mut put = tx.prepare_cached(
                "INSERT INTO docs (id, rev, content, gen, source) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET rev = excluded.rev, content = excluded.content,
                     gen = excluded.gen, source = excluded.source",
            )?;
            let mut log =
                tx.prepare_cached("INSERT INTO log (gen, txid, doc_id) VALUES (?1, ?2, ?3)")?;
            let (client_gen, client_txid) = loop {
                let docs = match uploads.blocking_recv() {
                    None => return Ok(None),
                    Some(Upload::End {
                        generation,
                        transaction_id,
                    }) => {
                        break (generation, transaction_id);
                    }
                    Some(Upload::Docs(docs)) => docs,
                };
                for doc in &docs {
                    let stored: Option<String> = get_rev
                        .query_row([doc.id.as_str()], |r| r.get(0))
                        .optional()?;
                    let causality = match stored {
                        None => Causality::Newer,
                        Some(s) => {
                            let stored: Revision = s.parse().map_err(|e| {
                                StoreError::Corrupt(format!("revision of {}: {e}", doc.id))
                            })?;
                            doc.rev.compare(&stored)
                        }
                    };
                    let reason = match causality {
                        Causality::Newer => {
                            generation += 1;
                            txid = crypto::random_hex(8)?;
                            let content = doc.content.as_ref().map(|c| &c.0[..]);
                            put.execute(params![
                                doc.id.as_str(),
                                doc.rev.to_string(),
                                content,
                                generation,
                                source.as_str()
                            ])?;
                            log.execute(params![generation, txid, doc.id.as_str()])?;
                            summary.accepted += 1;
                            continue;
                        }
                        // A re-upload of what the server has: a no-op. The
                        // same revision with other bytes is a reused
                        // revision (a replica restored from a backup), which
                        // must not be mistaken for it.
                        Causality::Equal
                            if same_content.query_row(
                                params![doc.id.as_str(), doc.content.as_ref().map(|c| &c.0[..])],
                                |r| r.get::<_, bool>(0),
                            )? =>
                        {
                            summary.unchanged += 1;
                            continue;
                        }
                        Causality::Equal => RejectReason::Conflict,
                        Causality::Older => RejectReason::Superseded,
                        Causality::Concurrent => RejectReason::Conflict,
                    };
                    summary.rejected.push(Rejected {
                        id: doc.id.clone(),
                        reason,
                    });
                }
            };
            tx.execute(
                "INSERT INTO replicas (id, gen, txid) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET gen = excluded.gen, txid = excluded.txid",
                params![source.as_str(), client_gen, client_txid],
            )?;
            drop((get_rev, same_content, put, log));
            tx.commit()?;
            summary.generation = generation;
            summary.transaction_id = txid;
            Ok(Some(summary))
        })
    }

    /// Streams the documents changed after generation `since` (skipping
    /// those whose latest version came from `exclude`, which has them) from
    /// one consistent snapshot, in generation order. `emit` returns false to
    /// stop early (the reader went away).
    pub fn changes(
        &self,
        since: u64,
        exclude: Option<&ReplicaId>,
        mut emit: impl FnMut(ChangeFrame) -> bool,
    ) -> Result<(), StoreError> {
        self.pool.with(|c| {
            // A read transaction pins one snapshot for the whole listing.
            let tx = c.transaction()?;
            let (generation, transaction_id) = head(&tx)?;
            if !emit(ChangeFrame::Header {
                generation,
                transaction_id: transaction_id.clone(),
            }) {
                return Ok(());
            }
            let mut stmt = tx.prepare_cached(
                "SELECT id, rev, content, gen FROM docs
                 WHERE gen > ?1 AND gen <= ?2 AND source IS NOT ?3 ORDER BY gen",
            )?;
            let mut rows = stmt.query(params![since, generation, exclude.map(|r| r.as_str())])?;
            let mut count = 0;
            while let Some(row) = rows.next()? {
                let id: String = row.get(0)?;
                let rev: String = row.get(1)?;
                let corrupt = |e: &dyn std::fmt::Display| {
                    StoreError::Corrupt(format!("document {id:?}: {e}"))
                };
                let frame = ChangeFrame::Doc {
                    id: id.parse().map_err(|e| corrupt(&e))?,
                    rev: rev.parse().map_err(|e| corrupt(&e))?,
                    content: row.get::<_, Option<Vec<u8>>>(2)?.map(Content),
                    generation: row.get(3)?,
                };
                count += 1;
                if !emit(frame) {
                    return Ok(());
                }
            }
            emit(ChangeFrame::End { count });
            Ok(())
        })
    }

    /// Checkpoints the WAL on the blocking pool, after the request that
    /// wrote it has been answered; at most one is queued per database.
    pub fn checkpoint_soon(self: &Arc<Self>) {
        if self.checkpoint_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            db.checkpoint_pending.store(false, Ordering::Release);
            if let Err(e) = db.pool.with(|c| sqlite_util::checkpoint(c)) {
                tracing::warn!("checkpoint: {e}");
            }
        });
    }

    pub fn secret(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.pool.with(|c| {
            c.query_row("SELECT sealed FROM secret WHERE one = 1", [], |r| r.get(0))
                .optional()
        })?)
    }

    /// Stores the sealed secret; with `only_if_absent`, returns false
    /// instead of replacing an existing one (two devices initialising at
    /// once must end up with the same secret).
    pub fn put_secret(&self, sealed: &[u8], only_if_absent: bool) -> Result<bool, StoreError> {
        let sql = if only_if_absent {
            "INSERT INTO secret (one, sealed) VALUES (1, ?1) ON CONFLICT (one) DO NOTHING"
        } else {
            "INSERT INTO secret (one, sealed) VALUES (1, ?1)
             ON CONFLICT (one) DO UPDATE SET sealed = excluded.sealed"
        };
        Ok(self.pool.with(|c| c.execute(sql, [sealed]))? == 1)
    }
}
