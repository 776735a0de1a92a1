//! A device of the reference sync system: a local SQLite store of
//! encrypted documents, the conflicts table, sync state, and the client
//! side of the sync protocol. Plaintext exists only inside this crate's
//! callers; everything stored or sent is ciphertext.
//!
//! Use [`Device::init`] once per device, then [`Device::open`],
//! [`Device::unlock`] with the passphrase to read and write documents, and
//! [`Device::sync`].

mod blobs;
mod mail;
mod remote;
mod store;
mod sync;
pub mod traffic;

pub use mail::{
    IncomingReport, MAIL_NAMESPACE, MailContent, MailHeader, MailMeta, MailMode, MailSummary,
};
pub use remote::{BlobDownload, Remote};
pub use sync::SyncReport;

use crypto::{CryptoError, DocCipher, KdfParams, UserSecret};
use protocol::{DocId, ErrorCode, Limits, Revision, UserId};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// File name of the local store inside a device directory.
pub const STORE_FILE: &str = "device.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("server answered {status} on {url}: {message}")]
    Http {
        status: u16,
        code: Option<ErrorCode>,
        message: String,
        url: String,
    },
    #[error("cannot reach the server: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("local store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("wrong passphrase")]
    WrongPassphrase,
    #[error(transparent)]
    Crypto(CryptoError),
    #[error("{0} holds no device; run `sync-client init` first")]
    NotInitialized(PathBuf),
    #[error("{0} holds a device already")]
    AlreadyInitialized(PathBuf),
    #[error("the device is locked: unlock it with the passphrase first")]
    Locked,
    #[error("no document {0:?}")]
    NotFound(String),
    #[error("document {0:?} has conflicts: resolve them first (`sync-client conflicts`)")]
    HasConflicts(String),
    #[error("document {0:?} has no conflicts to resolve")]
    NoConflicts(String),
    #[error(
        "the server's database went back in time (it had generation {seen} with transaction {seen_txid:?}, now {now}): it was restored from an old backup. Documents this device synced may be missing there; run `sync-client sync --repair` to upload this device's documents again"
    )]
    ServerRolledBack {
        seen: u64,
        seen_txid: String,
        now: u64,
    },
    #[error(
        "the server's database was replaced (replica {was} is now {now}); run `sync-client sync --repair` to upload this device's documents again"
    )]
    ServerReplaced { was: String, now: String },
    #[error("the server broke the sync protocol: {0}")]
    Protocol(String),
    #[error("blob {blob}: {source}")]
    Blob {
        blob: String,
        source: crypto::BlobError,
    },
    #[error("local file: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid id: {0}")]
    InvalidId(#[from] protocol::IdError),
}

impl ClientError {
    /// The server's error code, when the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Http { code, .. } => *code,
            _ => None,
        }
    }
}

impl From<CryptoError> for ClientError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::WrongPassphrase => ClientError::WrongPassphrase,
            e => ClientError::Crypto(e),
        }
    }
}

/// What `Device::init` needs to know.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub server: String,
    pub user: UserId,
    pub token: String,
    pub passphrase: String,
    pub kdf: KdfParams,
}

/// One document as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DocSummary {
    pub id: DocId,
    pub rev: Revision,
    pub deleted: bool,
    /// Encrypted size in bytes.
    pub size: u64,
    /// Changed here and not yet accepted by the server.
    pub pending: bool,
    pub conflicts: u32,
}

/// One version of a conflicted document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub rev: Revision,
    /// `None` if this version is a deletion.
    pub content: Option<Vec<u8>>,
    /// The version `get` returns; the others wait in the conflicts table.
    pub current: bool,
}

/// A device: its local store, its link to the server, and (once unlocked)
/// the key that encrypts its documents.
#[derive(Debug)]
pub struct Device {
    dir: PathBuf,
    conn: Connection,
    remote: Remote,
    cipher: Option<DocCipher>,
    limits: Option<Limits>,
}

impl Device {
    /// Sets up a new device in `dir`: fetches the user's sealed secret from
    /// the server and opens it with the passphrase, or, for the user's first
    /// device, creates the secret and stores it sealed on the server.
    /// A wrong passphrase leaves nothing behind.
    pub fn init(dir: &Path, opts: InitOptions) -> Result<Device, ClientError> {
        let path = dir.join(STORE_FILE);
        if path.exists() {
            return Err(ClientError::AlreadyInitialized(dir.to_owned()));
        }
        let remote = Remote::new(&opts.server, opts.user.clone(), opts.token.clone())?;
        let (secret, sealed) = match remote.secret()? {
            Some(sealed) => (UserSecret::unseal(&sealed, &opts.passphrase)?, sealed),
            None => {
                let secret = UserSecret::generate()?;
                let sealed = secret.seal(&opts.passphrase, opts.kdf)?;
                if remote.put_secret_if_absent(sealed.clone())? {
                    (secret, sealed)
                } else {
                    // Another device got there first: use its secret.
                    let sealed = remote.secret()?.ok_or_else(|| {
                        ClientError::Protocol("secret vanished during init".into())
                    })?;
                    (UserSecret::unseal(&sealed, &opts.passphrase)?, sealed)
                }
            }
        };
        std::fs::create_dir_all(dir).map_err(|e| {
            ClientError::Store(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("creating {}: {e}", dir.display())),
            ))
        })?;
        let conn = store::create(&path, &opts, &sealed)?;
        let mut device = Device {
            dir: dir.to_owned(),
            conn,
            remote,
            cipher: Some(DocCipher::new(&secret)),
            limits: None,
        };
        if let Err(e) = device.ensure_mail_key() {
            // Leave nothing half set up: a retried init starts afresh.
            drop(device);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(dir.join(format!("{STORE_FILE}{suffix}")));
            }
            return Err(e);
        }
        Ok(device)
    }

    /// Opens an initialised device, locked.
    pub fn open(dir: &Path) -> Result<Device, ClientError> {
        let path = dir.join(STORE_FILE);
        if !path.exists() {
            return Err(ClientError::NotInitialized(dir.to_owned()));
        }
        let conn = store::open(&path)?;
        let link = store::link(&conn)?;
        Ok(Device {
            dir: dir.to_owned(),
            remote: Remote::new(&link.server, link.user, link.token)?,
            conn,
            cipher: None,
            limits: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens the locally stored sealed secret with the passphrase.
    pub fn unlock(&mut self, passphrase: &str) -> Result<(), ClientError> {
        let sealed = store::sealed_secret(&self.conn)?;
        self.cipher = Some(DocCipher::new(&UserSecret::unseal(&sealed, passphrase)?));
        Ok(())
    }

    fn cipher(&self) -> Result<&DocCipher, ClientError> {
        self.cipher.as_ref().ok_or(ClientError::Locked)
    }

    /// Stores a new version of a document (encrypted); returns its revision.
    pub fn put(&mut self, id: &DocId, plaintext: &[u8]) -> Result<Revision, ClientError> {
        self.write(id, Some(plaintext))
    }

    /// Marks a document deleted (a tombstone that syncs like any version).
    pub fn delete(&mut self, id: &DocId) -> Result<Revision, ClientError> {
        self.write(id, None)
    }

    fn write(&mut self, id: &DocId, plaintext: Option<&[u8]>) -> Result<Revision, ClientError> {
        let cipher = self.cipher.as_ref().ok_or(ClientError::Locked)?;
        let tx = self.conn.transaction()?;
        let rev = store::write_local(&tx, cipher, id, plaintext)?;
        tx.commit()?;
        Ok(rev)
    }

    /// Stores many documents in one transaction (much faster than one
    /// `put` each).
    pub fn put_many<'a>(
        &mut self,
        docs: impl IntoIterator<Item = (&'a DocId, &'a [u8])>,
    ) -> Result<(), ClientError> {
        let cipher = self.cipher.as_ref().ok_or(ClientError::Locked)?;
        let tx = self.conn.transaction()?;
        for (id, plaintext) in docs {
            store::write_local(&tx, cipher, id, Some(plaintext))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The plaintext of the current version; `None` if unknown or deleted.
    pub fn get(&self, id: &DocId) -> Result<Option<Vec<u8>>, ClientError> {
        let cipher = self.cipher()?;
        match store::current(&self.conn, id)? {
            Some((rev, Some(ct))) => {
                Ok(Some(cipher.decrypt(id.as_str(), &rev.to_string(), &ct)?))
            }
            _ => Ok(None),
        }
    }

    pub fn list(&self) -> Result<Vec<DocSummary>, ClientError> {
        store::list(&self.conn)
    }

    /// Ids of the documents that have conflicting versions.
    pub fn conflicts(&self) -> Result<Vec<DocId>, ClientError> {
        store::conflicted_ids(&self.conn)
    }

    /// Every version of a document, current first, decrypted.
    pub fn versions(&self, id: &DocId) -> Result<Vec<Version>, ClientError> {
        let cipher = self.cipher()?;
        store::versions(&self.conn, id)?
            .into_iter()
            .map(|(rev, ct, current)| {
                let content = ct
                    .map(|ct| cipher.decrypt(id.as_str(), &rev.to_string(), &ct))
                    .transpose()?;
                Ok(Version {
                    rev,
                    content,
                    current,
                })
            })
            .collect()
    }

    /// Resolves a conflict with the given content (`None` deletes): the new
    /// revision has seen every conflicting version, so it supersedes them
    /// all here, on the server and on the other devices.
    pub fn resolve(
        &mut self,
        id: &DocId,
        plaintext: Option<&[u8]>,
    ) -> Result<Revision, ClientError> {
        let cipher = self.cipher.as_ref().ok_or(ClientError::Locked)?;
        let tx = self.conn.transaction()?;
        let rev = store::resolve(&tx, cipher, id, plaintext)?;
        tx.commit()?;
        Ok(rev)
    }

    /// The server's limits, fetched once per `Device`.
    fn limits(&mut self) -> Result<Limits, ClientError> {
        if self.limits.is_none() {
            self.limits = Some(self.remote.config()?);
        }
        Ok(self.limits.clone().expect("just set"))
    }
}

/// Default Argon2id parameters, re-exported for callers of `init`.
pub fn default_kdf() -> KdfParams {
    KdfParams::default()
}
