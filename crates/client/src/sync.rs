//! The client side of a sync: check the server's history, upload local
//! changes in bounded requests, then stream the server's changes in.

use crate::store::{self, Applied};
use crate::{ClientError, Device};
use protocol::{ChangeFrame, DocFrame, LineSplitter, RejectReason, SendFrame};
use std::collections::HashSet;
use std::io::Read;

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    /// Documents uploaded and stored by the server.
    pub sent: u64,
    /// Documents uploaded that the server had already.
    pub unchanged: u64,
    /// Uploads the server turned down because it had a concurrent version.
    pub rejected_conflicts: u64,
    /// Versions received from the server and stored.
    pub received: u64,
    /// Local versions moved to the conflicts table by this sync.
    pub new_conflicts: u64,
    pub upload_requests: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub server_generation: u64,
    /// This store was found restored from an old backup and now continues
    /// under a new replica id.
    pub replica_rotated: bool,
}

impl Device {
    /// Uploads everything again after the server lost data (see
    /// `ClientError::ServerRolledBack`), then syncs.
    pub fn sync_repair(&mut self) -> Result<SyncReport, ClientError> {
        store::repair(&mut self.conn)?;
        self.sync()
    }

    pub fn sync(&mut self) -> Result<SyncReport, ClientError> {
        let limits = self.limits()?;
        let mut report = SyncReport::default();
        let mut state = store::sync_state(&self.conn)?;

        // 1. Where does the server stand? Is its history the one we saw?
        let info = self.remote.info(&state.replica, state.server_generation)?;
        if let Some(was) = &state.server_replica {
            if *was != info.replica.as_str() {
                return Err(ClientError::ServerReplaced {
                    was: was.clone(),
                    now: info.replica.to_string(),
                });
            }
            if info.transaction_at_generation.as_deref() != Some(state.server_txid.as_str()) {
                return Err(ClientError::ServerRolledBack {
                    seen: state.server_generation,
                    seen_txid: state.server_txid.clone(),
                    now: info.generation,
                });
            }
        }
        // Has the server seen a future of ours that we no longer have?
        if let (Some(g), Some(t)) = (info.known_generation, &info.known_transaction_id)
            && store::txid_at(&self.conn, g)?.as_ref() != Some(t)
        {
            state.replica = store::rotate_replica(&self.conn)?;
            state.reported_generation = 0;
            report.replica_rotated = true;
        }

        // 2. Upload local changes, one bounded request at a time.
        let (generation, txid) = store::head(&self.conn)?;
        let mut after = String::new();
        let mut upload_needed = generation != state.reported_generation;
        loop {
            let page =
                store::dirty_page(&self.conn, &after, limits.batch_docs, limits.batch_bytes)?;
            if page.is_empty() && !upload_needed {
                break;
            }
            upload_needed = false;
            let mut body = Vec::with_capacity(
                page.iter()
                    .map(|(d, _)| d.content.as_ref().map_or(0, |c| c.0.len()) * 4 / 3 + 128)
                    .sum::<usize>()
                    + 256,
            );
            protocol::write_frame(
                &mut body,
                &SendFrame::Header {
                    replica: state.replica.clone(),
                    generation,
                    transaction_id: txid.clone(),
                },
            );
            for (doc, _) in &page {
                protocol::write_frame(&mut body, &SendFrame::Doc(doc.clone()));
            }
            protocol::write_frame(
                &mut body,
                &SendFrame::End {
                    count: page.len() as u64,
                },
            );
            report.bytes_sent += body.len() as u64;
            report.upload_requests += 1;
            let summary = self.remote.send(body)?;
            report.sent += summary.accepted;
            report.unchanged += summary.unchanged;
            let rejected: HashSet<&str> = summary.rejected.iter().map(|r| r.id.as_str()).collect();
            report.rejected_conflicts += summary
                .rejected
                .iter()
                .filter(|r| r.reason == RejectReason::Conflict)
                .count() as u64;
            let tx = self.conn.transaction()?;
            for (doc, doc_gen) in &page {
                // Rejected documents stay pending until step 3 brings the
                // server's version and turns them into conflicts.
                if !rejected.contains(doc.id.as_str()) {
                    store::mark_sent(&tx, &doc.id, *doc_gen)?;
                }
            }
            tx.commit()?;
            store::set_reported(&self.conn, generation)?;
            match page.last() {
                Some((doc, _)) => after = doc.id.to_string(),
                None => break,
            }
        }

        // 3. Stream in what changed on the server since we last looked.
        let resp = self
            .remote
            .changes(state.server_generation, &state.replica)?;
        let (snapshot_gen, snapshot_txid) = self.receive(resp, &limits, &mut report)?;
        store::set_server_state(
            &self.conn,
            info.replica.as_str(),
            snapshot_gen,
            &snapshot_txid,
        )?;
        report.server_generation = snapshot_gen;
        Ok(report)
    }

    /// Applies a changes stream in transactions of `batch_docs` documents.
    /// Returns the snapshot's generation and transaction id, only if the
    /// stream was complete (ended with a matching end frame).
    fn receive(
        &mut self,
        mut resp: impl Read,
        limits: &protocol::Limits,
        report: &mut SyncReport,
    ) -> Result<(u64, String), ClientError> {
        let mut splitter = LineSplitter::new(limits.max_frame_bytes as usize);
        let mut chunk = vec![0u8; 256 * 1024];
        let mut header = None;
        let mut batch: Vec<DocFrame> = Vec::new();
        let mut count = 0u64;
        let bad = |why: String| ClientError::Protocol(why);
        loop {
            let frame = match splitter.next_frame::<ChangeFrame>() {
                Ok(Some(f)) => f,
                Ok(None) => {
                    let n = resp.read(&mut chunk).map_err(|e| {
                        bad(format!(
                            "download cut off after {count} documents ({e}); sync again to continue"
                        ))
                    })?;
                    if n == 0 {
                        splitter.finish().map_err(|e| bad(e.to_string()))?;
                        self.apply_batch(&mut batch, report)?;
                        return Err(bad(format!(
                            "download ended after {count} documents without an end frame; sync again to continue"
                        )));
                    }
                    report.bytes_received += n as u64;
                    splitter.push(&chunk[..n]);
                    continue;
                }
                Err(e) => return Err(bad(e.to_string())),
            };
            match (frame, &header) {
                (
                    ChangeFrame::Header {
                        generation,
                        transaction_id,
                    },
                    None,
                ) => {
                    header = Some((generation, transaction_id));
                }
                (
                    ChangeFrame::Doc {
                        id, rev, content, ..
                    },
                    Some(_),
                ) => {
                    count += 1;
                    batch.push(DocFrame { id, rev, content });
                    if batch.len() >= limits.batch_docs as usize {
                        self.apply_batch(&mut batch, report)?;
                    }
                }
                (ChangeFrame::End { count: declared }, Some(_)) => {
                    if declared != count {
                        return Err(bad(format!(
                            "end frame counts {declared} documents, stream had {count}"
                        )));
                    }
                    self.apply_batch(&mut batch, report)?;
                    return Ok(header.expect("matched Some"));
                }
                (frame, _) => return Err(bad(format!("unexpected frame {frame:?}"))),
            }
        }
    }

    fn apply_batch(
        &mut self,
        batch: &mut Vec<DocFrame>,
        report: &mut SyncReport,
    ) -> Result<(), ClientError> {
        let tx = self.conn.transaction()?;
        for doc in batch.drain(..) {
            match store::apply_remote(&tx, &doc)? {
                Applied::Stored => report.received += 1,
                Applied::Conflict => {
                    report.received += 1;
                    report.new_conflicts += 1;
                }
                Applied::AlreadyHad | Applied::KeptLocal => {}
            }
        }
        tx.commit()?;
        Ok(())
    }
}
