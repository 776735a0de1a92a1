//! The device's local store (`device.sqlite`): documents as ciphertext,
//! conflicting versions, the local change log and the sync state.

use crate::{ClientError, DocSummary, InitOptions};
use crypto::DocCipher;
use protocol::{Causality, DocFrame, DocId, ReplicaId, Revision, UserId};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::Path;

const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE device (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        replica TEXT NOT NULL,
        server_url TEXT NOT NULL,
        user_id TEXT NOT NULL,
        token TEXT NOT NULL,
        sealed_secret BLOB NOT NULL,
        -- What this device last saw of the server's database.
        server_replica TEXT,
        server_generation INTEGER NOT NULL DEFAULT 0,
        server_txid TEXT NOT NULL DEFAULT '',
        -- The local generation the server has recorded for this replica.
        reported_generation INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    -- Local changes (put, delete, resolve): generation and transaction id.
    CREATE TABLE log (gen INTEGER PRIMARY KEY, txid TEXT NOT NULL) STRICT;
    -- Current version of each document; content NULL = deleted.
    -- dirty = changed here and not yet accepted by the server.
    CREATE TABLE docs (
        id TEXT PRIMARY KEY,
        rev TEXT NOT NULL,
        content BLOB,
        gen INTEGER NOT NULL,
        dirty INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX docs_dirty ON docs (id) WHERE dirty = 1;
    -- Versions concurrent with the current one, kept until resolved.
    CREATE TABLE conflicts (
        id TEXT NOT NULL,
        rev TEXT NOT NULL,
        content BLOB,
        PRIMARY KEY (id, rev)
    ) STRICT;
",
    "
    -- The user's age identity for incoming mail, encrypted with the user
    -- secret (a copy of the one on the server), and how this device stores
    -- processed mail: 'blobs' (metadata document + content blob) or
    -- 'legacy' (the whole message inside the document).
    ALTER TABLE device ADD COLUMN mail_identity BLOB;
    ALTER TABLE device ADD COLUMN mail_mode TEXT NOT NULL DEFAULT 'blobs';
",
];

pub fn open(path: &Path) -> Result<Connection, ClientError> {
    Ok(sqlite_util::open(path, MIGRATIONS)?)
}

pub fn create(path: &Path, opts: &InitOptions, sealed: &[u8]) -> Result<Connection, ClientError> {
    let conn = open(path)?;
    conn.execute(
        "INSERT INTO device (one, replica, server_url, user_id, token, sealed_secret)
         VALUES (1, ?1, ?2, ?3, ?4, ?5)",
        params![
            crypto::random_hex(8)?,
            opts.server,
            opts.user.as_str(),
            opts.token,
            sealed
        ],
    )?;
    Ok(conn)
}

#[derive(Debug)]
pub struct Link {
    pub server: String,
    pub user: UserId,
    pub token: String,
}

fn corrupt(what: impl std::fmt::Display) -> ClientError {
    ClientError::Store(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(format!("local store holds an invalid {what}")),
    ))
}

fn parse_rev(s: &str) -> Result<Revision, ClientError> {
    s.parse()
        .map_err(|e| corrupt(format_args!("revision {s:?}: {e}")))
}

fn parse_id(s: String) -> Result<DocId, ClientError> {
    DocId::new(s).map_err(|e| corrupt(format_args!("document id: {e}")))
}

pub fn link(conn: &Connection) -> Result<Link, ClientError> {
    let (server, user, token): (String, String, String) =
        conn.query_row("SELECT server_url, user_id, token FROM device", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok(Link {
        server,
        user: UserId::new(user).map_err(|e| corrupt(format_args!("user id: {e}")))?,
        token,
    })
}

pub fn sealed_secret(conn: &Connection) -> Result<Vec<u8>, ClientError> {
    Ok(conn.query_row("SELECT sealed_secret FROM device", [], |r| r.get(0))?)
}

pub fn mail_identity(conn: &Connection) -> Result<Option<Vec<u8>>, ClientError> {
    Ok(conn.query_row("SELECT mail_identity FROM device", [], |r| r.get(0))?)
}

pub fn set_mail_identity(conn: &Connection, sealed: &[u8]) -> Result<(), ClientError> {
    conn.execute("UPDATE device SET mail_identity = ?1", [sealed])?;
    Ok(())
}

pub fn mail_mode(conn: &Connection) -> Result<String, ClientError> {
    Ok(conn.query_row("SELECT mail_mode FROM device", [], |r| r.get(0))?)
}

pub fn set_mail_mode(conn: &Connection, mode: &str) -> Result<(), ClientError> {
    conn.execute("UPDATE device SET mail_mode = ?1", [mode])?;
    Ok(())
}

pub fn replica(conn: &Connection) -> Result<ReplicaId, ClientError> {
    let r: String = conn
        .prepare_cached("SELECT replica FROM device")?
        .query_row([], |r| r.get(0))?;
    ReplicaId::new(r).map_err(|e| corrupt(format_args!("replica id: {e}")))
}

/// The local generation and its transaction id.
pub fn head(conn: &Connection) -> Result<(u64, String), ClientError> {
    Ok(conn
        .prepare_cached("SELECT gen, txid FROM log ORDER BY gen DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, String::new())))
}

pub fn txid_at(conn: &Connection, generation: u64) -> Result<Option<String>, ClientError> {
    if generation == 0 {
        return Ok(Some(String::new()));
    }
    Ok(conn
        .prepare_cached("SELECT txid FROM log WHERE gen = ?1")?
        .query_row([generation], |r| r.get(0))
        .optional()?)
}

/// Records one local change; returns its generation.
fn next_generation(tx: &Transaction) -> Result<u64, ClientError> {
    let (generation, _) = head(tx)?;
    tx.prepare_cached("INSERT INTO log (gen, txid) VALUES (?1, ?2)")?
        .execute(params![generation + 1, crypto::random_hex(8)?])?;
    Ok(generation + 1)
}

/// Stored content; `None` for a deletion.
type Ciphertext = Option<Vec<u8>>;

pub fn current(
    conn: &Connection,
    id: &DocId,
) -> Result<Option<(Revision, Ciphertext)>, ClientError> {
    let row: Option<(String, Option<Vec<u8>>)> = conn
        .prepare_cached("SELECT rev, content FROM docs WHERE id = ?1")?
        .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(rev, ct)| Ok((parse_rev(&rev)?, ct))).transpose()
}

fn has_conflicts(conn: &Connection, id: &DocId) -> Result<bool, ClientError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM conflicts WHERE id = ?1")?
        .exists([id.as_str()])?)
}

fn store_doc(
    tx: &Transaction,
    id: &DocId,
    rev: &Revision,
    content: Option<&[u8]>,
    generation: u64,
    dirty: bool,
) -> Result<(), ClientError> {
    tx.prepare_cached(
        "INSERT INTO docs (id, rev, content, gen, dirty) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET rev = excluded.rev, content = excluded.content,
             gen = excluded.gen, dirty = excluded.dirty",
    )?
    .execute(params![
        id.as_str(),
        rev.to_string(),
        content,
        generation,
        dirty
    ])?;
    Ok(())
}

/// A local edit: the next revision of `id` from this replica, encrypted.
pub fn write_local(
    tx: &Transaction,
    cipher: &DocCipher,
    id: &DocId,
    plaintext: Option<&[u8]>,
) -> Result<Revision, ClientError> {
    if has_conflicts(tx, id)? {
        return Err(ClientError::HasConflicts(id.to_string()));
    }
    let current = current(tx, id)?;
    if plaintext.is_none() && !matches!(current, Some((_, Some(_)))) {
        return Err(ClientError::NotFound(id.to_string()));
    }
    let base = current.map(|(rev, _)| rev).unwrap_or_default();
    let rev = base.incremented(&replica(tx)?);
    let ct = plaintext
        .map(|p| cipher.encrypt(id.as_str(), &rev.to_string(), p))
        .transpose()?;
    let generation = next_generation(tx)?;
    store_doc(tx, id, &rev, ct.as_deref(), generation, true)?;
    Ok(rev)
}

pub fn list(conn: &Connection) -> Result<Vec<DocSummary>, ClientError> {
    let mut stmt = conn.prepare(
        "SELECT d.id, d.rev, d.content IS NULL, coalesce(length(d.content), 0), d.dirty,
                (SELECT count(*) FROM conflicts c WHERE c.id = d.id)
         FROM docs d ORDER BY d.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, u64>(3)?,
            r.get::<_, bool>(4)?,
            r.get::<_, u32>(5)?,
        ))
    })?;
    rows.map(|row| {
        let (id, rev, deleted, size, pending, conflicts) = row?;
        Ok(DocSummary {
            id: parse_id(id)?,
            rev: parse_rev(&rev)?,
            deleted,
            size,
            pending,
            conflicts,
        })
    })
    .collect()
}

pub fn conflicted_ids(conn: &Connection) -> Result<Vec<DocId>, ClientError> {
    let mut stmt = conn.prepare("SELECT DISTINCT id FROM conflicts ORDER BY id")?;
    let ids = stmt.query_map([], |r| r.get::<_, String>(0))?;
    ids.map(|id| parse_id(id?)).collect()
}

type RawVersion = (Revision, Ciphertext, bool);

pub fn versions(conn: &Connection, id: &DocId) -> Result<Vec<RawVersion>, ClientError> {
    let Some((rev, ct)) = current(conn, id)? else {
        return Err(ClientError::NotFound(id.to_string()));
    };
    let mut out = vec![(rev, ct, true)];
    let mut stmt =
        conn.prepare_cached("SELECT rev, content FROM conflicts WHERE id = ?1 ORDER BY rev")?;
    let rows = stmt.query_map([id.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
    for row in rows {
        let (rev, ct) = row?;
        out.push((parse_rev(&rev)?, ct, false));
    }
    Ok(out)
}

pub fn resolve(
    tx: &Transaction,
    cipher: &DocCipher,
    id: &DocId,
    plaintext: Option<&[u8]>,
) -> Result<Revision, ClientError> {
    let versions = versions(tx, id)?;
    if versions.len() < 2 {
        return Err(ClientError::NoConflicts(id.to_string()));
    }
    let seen = versions
        .iter()
        .fold(Revision::default(), |acc, (rev, _, _)| acc.merged(rev));
    let rev = seen.incremented(&replica(tx)?);
    let ct = plaintext
        .map(|p| cipher.encrypt(id.as_str(), &rev.to_string(), p))
        .transpose()?;
    let generation = next_generation(tx)?;
    store_doc(tx, id, &rev, ct.as_deref(), generation, true)?;
    tx.execute("DELETE FROM conflicts WHERE id = ?1", [id.as_str()])?;
    Ok(rev)
}

/// Sync state, read at the start of a sync.
#[derive(Debug)]
pub struct SyncState {
    pub replica: ReplicaId,
    pub server_replica: Option<String>,
    pub server_generation: u64,
    pub server_txid: String,
    pub reported_generation: u64,
}

pub fn sync_state(conn: &Connection) -> Result<SyncState, ClientError> {
    let (server_replica, server_generation, server_txid, reported_generation) = conn.query_row(
        "SELECT server_replica, server_generation, server_txid, reported_generation FROM device",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    Ok(SyncState {
        replica: replica(conn)?,
        server_replica,
        server_generation,
        server_txid,
        reported_generation,
    })
}

/// This store was restored from a backup the server had seen past: continue
/// under a new replica id, so no revision counter is ever reused.
pub fn rotate_replica(conn: &Connection) -> Result<ReplicaId, ClientError> {
    let fresh = ReplicaId::new(crypto::random_hex(8)?).expect("hex is a valid id");
    conn.execute(
        "UPDATE device SET replica = ?1, reported_generation = 0",
        [fresh.as_str()],
    )?;
    Ok(fresh)
}

/// Forget what the server had and mark every document for upload.
pub fn repair(conn: &mut Connection) -> Result<(), ClientError> {
    let tx = conn.transaction()?;
    tx.execute("UPDATE docs SET dirty = 1", [])?;
    tx.execute(
        "UPDATE device SET server_replica = NULL, server_generation = 0, server_txid = '', reported_generation = 0",
        [],
    )?;
    tx.commit()?;
    Ok(())
}

/// A page of documents to upload: ids after `after`, at most `max_docs`,
/// stopping once `max_bytes` of content is reached. Returns the frames and
/// each document's local generation (to clear `dirty` only if unchanged).
pub fn dirty_page(
    conn: &Connection,
    after: &str,
    max_docs: u32,
    max_bytes: u64,
) -> Result<Vec<(DocFrame, u64)>, ClientError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, rev, content, gen FROM docs WHERE dirty = 1 AND id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![after, max_docs])?;
    let mut out = Vec::new();
    let mut bytes = 0u64;
    while let Some(row) = rows.next()? {
        let content: Option<Vec<u8>> = row.get(2)?;
        bytes += content.as_ref().map_or(0, |c| c.len() as u64);
        out.push((
            DocFrame {
                id: parse_id(row.get(0)?)?,
                rev: parse_rev(&row.get::<_, String>(1)?)?,
                content: content.map(protocol::Content),
            },
            row.get(3)?,
        ));
        if bytes >= max_bytes {
            break;
        }
    }
    Ok(out)
}

pub fn mark_sent(tx: &Transaction, id: &DocId, generation: u64) -> Result<(), ClientError> {
    tx.prepare_cached("UPDATE docs SET dirty = 0 WHERE id = ?1 AND gen = ?2")?
        .execute(params![id.as_str(), generation])?;
    Ok(())
}

/// What applying one version from the server did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Stored,
    AlreadyHad,
    KeptLocal,
    Conflict,
}

/// Applies a version received from the server. A concurrent local version
/// is moved to the conflicts table, never dropped; the server's becomes
/// current so this device agrees with the others until the user resolves.
pub fn apply_remote(tx: &Transaction, doc: &DocFrame) -> Result<Applied, ClientError> {
    let content = doc.content.as_ref().map(|c| &c.0[..]);
    let row: Option<(String, Option<Vec<u8>>, u64)> = tx
        .prepare_cached("SELECT rev, content, gen FROM docs WHERE id = ?1")?
        .query_row([doc.id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((local_rev, local_content, local_gen)) = row else {
        store_doc(tx, &doc.id, &doc.rev, content, 0, false)?;
        return Ok(Applied::Stored);
    };
    let local_rev = parse_rev(&local_rev)?;
    match doc.rev.compare(&local_rev) {
        Causality::Equal if local_content.as_deref() == content => {
            mark_sent(tx, &doc.id, local_gen)?;
            Ok(Applied::AlreadyHad)
        }
        Causality::Older => Ok(Applied::KeptLocal),
        Causality::Newer => {
            store_doc(tx, &doc.id, &doc.rev, content, local_gen, false)?;
            // Conflicting versions the new one has seen are resolved.
            let mut stmt = tx.prepare_cached("SELECT rev FROM conflicts WHERE id = ?1")?;
            let revs: Vec<String> = stmt
                .query_map([doc.id.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for rev in revs {
                if matches!(doc.rev.compare(&parse_rev(&rev)?), Causality::Newer) {
                    tx.prepare_cached("DELETE FROM conflicts WHERE id = ?1 AND rev = ?2")?
                        .execute([doc.id.as_str(), &rev])?;
                }
            }
            Ok(Applied::Stored)
        }
        // Concurrent, or the same revision with other content (a revision
        // reused by a store restored from a backup): keep both.
        Causality::Concurrent | Causality::Equal => {
            tx.prepare_cached(
                "INSERT INTO conflicts (id, rev, content) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            )?
            .execute(params![doc.id.as_str(), local_rev.to_string(), local_content])?;
            store_doc(tx, &doc.id, &doc.rev, content, local_gen, false)?;
            Ok(Applied::Conflict)
        }
    }
}

pub fn set_server_state(
    conn: &Connection,
    replica: &str,
    generation: u64,
    txid: &str,
) -> Result<(), ClientError> {
    conn.execute(
        "UPDATE device SET server_replica = ?1, server_generation = ?2, server_txid = ?3",
        params![replica, generation, txid],
    )?;
    Ok(())
}

pub fn set_reported(conn: &Connection, generation: u64) -> Result<(), ClientError> {
    conn.execute("UPDATE device SET reported_generation = ?1", [generation])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::Content;

    fn store() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("t.sqlite")).unwrap();
        conn.execute(
            "INSERT INTO device (one, replica, server_url, user_id, token, sealed_secret)
             VALUES (1, 'me', 'http://x', 'u', 't', x'00')",
            [],
        )
        .unwrap();
        (dir, conn)
    }

    fn frame(rev: &str, content: Option<&[u8]>) -> DocFrame {
        DocFrame {
            id: DocId::new("d").unwrap(),
            rev: rev.parse().unwrap(),
            content: content.map(|c| Content(c.to_vec())),
        }
    }

    fn local(conn: &mut Connection, rev: &str, content: &[u8], dirty: bool) {
        let tx = conn.transaction().unwrap();
        let d = frame(rev, Some(content));
        store_doc(&tx, &d.id, &d.rev, Some(content), 7, dirty).unwrap();
        tx.commit().unwrap();
    }

    fn apply(conn: &mut Connection, d: &DocFrame) -> Applied {
        let tx = conn.transaction().unwrap();
        let a = apply_remote(&tx, d).unwrap();
        tx.commit().unwrap();
        a
    }

    fn state(conn: &Connection) -> (String, Vec<u8>, bool, Vec<String>) {
        let (rev, content, dirty) = conn
            .query_row(
                "SELECT rev, content, dirty FROM docs WHERE id = 'd'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        let mut stmt = conn
            .prepare("SELECT rev FROM conflicts ORDER BY rev")
            .unwrap();
        let conflicts = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        (rev, content, dirty, conflicts)
    }

    #[test]
    fn newer_remote_replaces_and_clears_pending() {
        let (_d, mut c) = store();
        local(&mut c, "me:1", b"old", true);
        assert_eq!(
            apply(&mut c, &frame("me:1|o:1", Some(b"new"))),
            Applied::Stored
        );
        assert_eq!(
            state(&c),
            ("me:1|o:1".into(), b"new".to_vec(), false, vec![])
        );
    }

    #[test]
    fn same_version_is_a_no_op_that_confirms_the_upload() {
        let (_d, mut c) = store();
        local(&mut c, "me:1", b"same", true);
        assert_eq!(
            apply(&mut c, &frame("me:1", Some(b"same"))),
            Applied::AlreadyHad
        );
        assert_eq!(state(&c), ("me:1".into(), b"same".to_vec(), false, vec![]));
    }

    #[test]
    fn reused_revision_with_other_bytes_is_a_conflict() {
        let (_d, mut c) = store();
        local(&mut c, "me:1", b"mine", true);
        assert_eq!(
            apply(&mut c, &frame("me:1", Some(b"theirs"))),
            Applied::Conflict
        );
        assert_eq!(
            state(&c),
            (
                "me:1".into(),
                b"theirs".to_vec(),
                false,
                vec!["me:1".into()]
            )
        );
    }

    #[test]
    fn concurrent_remote_becomes_current_and_local_is_kept() {
        let (_d, mut c) = store();
        local(&mut c, "me:2|o:1", b"mine", true);
        assert_eq!(
            apply(&mut c, &frame("me:1|o:2", Some(b"theirs"))),
            Applied::Conflict
        );
        assert_eq!(
            state(&c),
            (
                "me:1|o:2".into(),
                b"theirs".to_vec(),
                false,
                vec!["me:2|o:1".into()]
            )
        );
    }

    #[test]
    fn older_remote_leaves_the_local_edit_pending() {
        let (_d, mut c) = store();
        local(&mut c, "me:2", b"mine", true);
        assert_eq!(
            apply(&mut c, &frame("me:1", Some(b"old"))),
            Applied::KeptLocal
        );
        assert_eq!(state(&c), ("me:2".into(), b"mine".to_vec(), true, vec![]));
    }

    #[test]
    fn a_remote_resolution_clears_the_conflicts_it_has_seen() {
        let (_d, mut c) = store();
        local(&mut c, "me:2|o:1", b"mine", true);
        apply(&mut c, &frame("me:1|o:2", Some(b"theirs")));
        assert_eq!(
            apply(&mut c, &frame("me:2|o:3", Some(b"merged"))),
            Applied::Stored
        );
        assert_eq!(
            state(&c),
            ("me:2|o:3".into(), b"merged".to_vec(), false, vec![])
        );
    }
}
