//! Mail on a device. A mail exchanger delivers each message encrypted to
//! the user's age key into the `incoming` namespace; a device processes it
//! into a metadata document (`mail.{id}`: from, to, subject, date, size,
//! attachment count, flags) and the message itself as a symmetric-encrypted
//! content blob (`mail/{id}`), fetched only when the message is opened. So
//! a new device shows the inbox after syncing metadata alone.
//!
//! The legacy mode, kept to measure the difference, carries the whole
//! message inside the document, as the original design did.

use crate::{ClientError, Device, store};
use age::secrecy::ExposeSecret;
use protocol::{
    BlobFlag, BlobId, BlobInfo, BlobQuery, Content, DocId, ErrorCode, FlagChange, INCOMING,
    MailKey, Namespace,
};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, Write};
use std::time::Duration;

/// Namespace of processed messages' content blobs.
pub const MAIL_NAMESPACE: &str = "mail";
/// Prefix of the ids of mail metadata documents.
pub const MAIL_DOC_PREFIX: &str = "mail.";
/// Messages processed between two syncs.
const BATCH: u32 = 200;
/// "Document" id and revision the sealed age identity is encrypted under.
const IDENTITY_DOC: (&str, &str) = ("mail-identity", "1");

/// How a device stores the mail it processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailMode {
    /// Metadata document plus content blob (the default).
    Blobs,
    /// The whole message inside the document.
    Legacy,
}

impl std::str::FromStr for MailMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "blobs" => Ok(MailMode::Blobs),
            "legacy" => Ok(MailMode::Legacy),
            _ => Err(format!("{s:?} is not a mail mode: use blobs or legacy")),
        }
    }
}

impl MailMode {
    fn as_str(self) -> &'static str {
        match self {
            MailMode::Blobs => "blobs",
            MailMode::Legacy => "legacy",
        }
    }
}

/// Where a message's bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MailContent {
    Blob { namespace: Namespace, id: BlobId },
    Inline { data: Content },
}

/// What the inbox shows of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailHeader {
    pub id: BlobId,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    /// RFC 3339, from the Date header.
    pub date: Option<String>,
    /// Size of the raw message in bytes.
    pub size: u64,
    pub attachments: u32,
    pub flags: Vec<String>,
}

/// The metadata document of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailMeta {
    #[serde(flatten)]
    pub header: MailHeader,
    pub content: MailContent,
}

/// One line of the inbox: the header, and where the content is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailSummary {
    #[serde(flatten)]
    pub header: MailHeader,
    /// The content lives in a blob (fetched on open) rather than inline.
    pub in_blob: bool,
}

/// What one pass over the incoming namespace did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IncomingReport {
    pub processed: u64,
    /// Messages marked `FAILED` (kept on the server), with the reason.
    pub failed: Vec<(String, String)>,
    /// Messages another device reserved first.
    pub skipped: u64,
    /// Bytes of raw messages processed.
    pub bytes: u64,
}

enum Outcome {
    Done(u64),
    Failed(String),
    Skipped,
}

fn ns(s: &str) -> Namespace {
    Namespace::new(s).expect("constant namespaces are valid")
}

fn doc_id(id: &BlobId) -> DocId {
    DocId::new(format!("{MAIL_DOC_PREFIX}{id}")).expect("prefix + valid id is valid")
}

fn addresses(a: Option<&mail_parser::Address>) -> Vec<String> {
    a.map(|a| {
        a.iter()
            .map(|addr| match (addr.name(), addr.address()) {
                (Some(n), Some(e)) => format!("{n} <{e}>"),
                (None, Some(e)) => e.to_owned(),
                (Some(n), None) => n.to_owned(),
                (None, None) => String::new(),
            })
            .collect()
    })
    .unwrap_or_default()
}

impl Device {
    /// Makes sure the user has a mail key: the first device generates an
    /// age identity, publishes its recipient and stores the identity
    /// encrypted on the server; later devices fetch that. A copy is kept
    /// in the local store.
    pub(crate) fn ensure_mail_key(&mut self) -> Result<(), ClientError> {
        if store::mail_identity(&self.conn)?.is_some() {
            return Ok(());
        }
        let key = match self.remote.mail_key()? {
            Some(k) => k,
            None => {
                let identity = age::x25519::Identity::generate();
                let sealed = self.cipher()?.encrypt(
                    IDENTITY_DOC.0,
                    IDENTITY_DOC.1,
                    identity.to_string().expose_secret().as_bytes(),
                )?;
                let key = MailKey {
                    recipient: identity.to_public().to_string(),
                    sealed_identity: Content(sealed),
                };
                if self.remote.put_mail_key_if_absent(&key)? {
                    key
                } else {
                    // Another device got there first: use its key.
                    self.remote.mail_key()?.ok_or_else(|| {
                        ClientError::Protocol("mail key vanished during init".into())
                    })?
                }
            }
        };
        store::set_mail_identity(&self.conn, &key.sealed_identity.0)
    }

    fn mail_identity(&mut self) -> Result<age::x25519::Identity, ClientError> {
        self.ensure_mail_key()?;
        let sealed = store::mail_identity(&self.conn)?.expect("ensured above");
        let plain = self
            .cipher()?
            .decrypt(IDENTITY_DOC.0, IDENTITY_DOC.1, &sealed)?;
        std::str::from_utf8(&plain)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClientError::Protocol("the stored mail identity does not parse".into()))
    }

    pub fn mail_mode(&self) -> Result<MailMode, ClientError> {
        store::mail_mode(&self.conn)?
            .parse()
            .map_err(ClientError::Protocol)
    }

    pub fn set_mail_mode(&mut self, mode: MailMode) -> Result<(), ClientError> {
        store::set_mail_mode(&self.conn, mode.as_str())
    }

    /// Processes incoming mail, oldest first: reserves each message
    /// (`PROCESSING`), decrypts and parses it, writes its metadata document
    /// (and content blob), syncs, then marks it `PROCESSED` and deletes the
    /// incoming copy. A message that does not decrypt or parse is marked
    /// `FAILED` and kept. One left `PROCESSING` for longer than `lease` (a
    /// device that crashed mid-way) is taken again; every step can be
    /// repeated safely.
    pub fn process_incoming(&mut self, lease: Duration) -> Result<IncomingReport, ClientError> {
        let identity = self.mail_identity()?;
        let mode = self.mail_mode()?;
        let max = self.limits()?.max_incoming_bytes;
        let mut report = IncomingReport::default();
        let incoming = ns(INCOMING);
        loop {
            let mut todo = self
                .remote
                .list_blobs(&BlobQuery {
                    namespace: Some(incoming.clone()),
                    flag: Some(BlobFlag::Pending),
                    limit: Some(BATCH),
                    ..Default::default()
                })?
                .blobs;
            let cutoff = now_ms() - lease.as_millis() as i64;
            let stale = self.remote.list_blobs(&BlobQuery {
                namespace: Some(incoming.clone()),
                flag: Some(BlobFlag::Processing),
                limit: Some(BATCH),
                ..Default::default()
            })?;
            todo.extend(stale.blobs.into_iter().filter(|b| b.flagged_ms <= cutoff));
            if todo.is_empty() {
                break;
            }
            let mut done = Vec::new();
            for blob in todo {
                match self.process_one(&blob, &identity, mode, max)? {
                    Outcome::Done(size) => {
                        report.processed += 1;
                        report.bytes += size;
                        done.push(blob.id);
                    }
                    Outcome::Failed(why) => {
                        self.remote.flag_blob(
                            &incoming,
                            &blob.id,
                            &FlagChange {
                                flag: BlobFlag::Failed,
                                expect: Some(BlobFlag::Processing),
                            },
                        )?;
                        report.failed.push((blob.id.to_string(), why));
                    }
                    Outcome::Skipped => report.skipped += 1,
                }
            }
            // The documents reach the server before the incoming copies go.
            self.sync()?;
            for id in done {
                self.remote.flag_blob(
                    &incoming,
                    &id,
                    &FlagChange {
                        flag: BlobFlag::Processed,
                        expect: None,
                    },
                )?;
                self.remote.delete_blob(&incoming, &id)?;
            }
        }
        Ok(report)
    }

    fn process_one(
        &mut self,
        blob: &BlobInfo,
        identity: &age::x25519::Identity,
        mode: MailMode,
        max: u64,
    ) -> Result<Outcome, ClientError> {
        let incoming = ns(INCOMING);
        let reserved = self.remote.flag_blob(
            &incoming,
            &blob.id,
            &FlagChange {
                flag: BlobFlag::Processing,
                expect: blob.flag,
            },
        );
        match reserved {
            Err(e)
                if matches!(
                    e.code(),
                    Some(ErrorCode::PreconditionFailed | ErrorCode::NotFound)
                ) =>
            {
                return Ok(Outcome::Skipped);
            }
            r => r?,
        };
        // The ciphertext first, whole (memory up to 1 MiB, then a temp
        // file): a transport error is a reason to retry later, while what
        // fails after this point is the message's own fault.
        let mut spool = tempfile::SpooledTempFile::new(1 << 20);
        std::io::copy(&mut self.remote.get_blob(&incoming, &blob.id)?, &mut spool)?;
        spool.rewind()?;
        let raw = match decrypt(spool, identity, max) {
            Ok(raw) => raw,
            Err(why) => return Ok(Outcome::Failed(why)),
        };
        // mail-parser parses from a slice, so the message is in memory
        // here; its size is bounded by the server's max_incoming_bytes.
        let Some(msg) = mail_parser::MessageParser::default().parse(&raw[..]) else {
            return Ok(Outcome::Failed("not an RFC 5322 message".into()));
        };
        if msg.headers().is_empty() {
            return Ok(Outcome::Failed(
                "no headers: not an RFC 5322 message".into(),
            ));
        }
        let content = match mode {
            MailMode::Legacy => MailContent::Inline {
                data: Content(raw.clone()),
            },
            MailMode::Blobs => {
                let mail = ns(MAIL_NAMESPACE);
                let len = raw.len() as u64;
                match self.upload_blob(&mail, &blob.id, std::io::Cursor::new(raw.clone()), len) {
                    // Uploaded by an earlier attempt that crashed later on.
                    Err(e) if e.code() == Some(ErrorCode::Exists) => {}
                    r => {
                        r?;
                    }
                }
                MailContent::Blob {
                    namespace: mail,
                    id: blob.id.clone(),
                }
            }
        };
        let meta = MailMeta {
            header: MailHeader {
                id: blob.id.clone(),
                from: addresses(msg.from()).join(", "),
                to: addresses(msg.to()),
                subject: msg.subject().unwrap_or_default().to_owned(),
                date: msg.date().map(|d| d.to_rfc3339()),
                size: raw.len() as u64,
                attachments: msg.attachment_count() as u32,
                flags: Vec::new(),
            },
            content,
        };
        let json = serde_json::to_vec(&meta).expect("metadata serializes");
        self.put(&doc_id(&blob.id), &json)?;
        Ok(Outcome::Done(meta.header.size))
    }

    fn mail_meta(&self, id: &DocId) -> Result<Option<MailMeta>, ClientError> {
        let Some(json) = self.get(id)? else {
            return Ok(None);
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| ClientError::Protocol(format!("mail document {id}: {e}")))
    }

    /// The inbox, newest first, from the metadata documents alone.
    pub fn mail_list(&self) -> Result<Vec<MailSummary>, ClientError> {
        let mut out = Vec::new();
        for doc in self.list()? {
            if doc.deleted || !doc.id.as_str().starts_with(MAIL_DOC_PREFIX) {
                continue;
            }
            if let Some(m) = self.mail_meta(&doc.id)? {
                out.push(MailSummary {
                    in_blob: matches!(m.content, MailContent::Blob { .. }),
                    header: m.header,
                });
            }
        }
        out.sort_by(|a, b| {
            (b.header.date.cmp(&a.header.date)).then_with(|| a.header.id.cmp(&b.header.id))
        });
        Ok(out)
    }

    /// Writes one message's raw RFC 5322 bytes to `out`, fetching and
    /// decrypting its content blob on demand.
    pub fn mail_open(&self, id: &BlobId, out: &mut dyn Write) -> Result<u64, ClientError> {
        let meta = self
            .mail_meta(&doc_id(id))?
            .ok_or_else(|| ClientError::NotFound(format!("{MAIL_DOC_PREFIX}{id}")))?;
        match meta.content {
            MailContent::Inline { data } => {
                out.write_all(&data.0)?;
                Ok(data.0.len() as u64)
            }
            MailContent::Blob { namespace, id } => self.read_blob(&namespace, &id, out),
        }
    }
}

/// Decrypts an age file with the user's identity; at most `max` bytes.
fn decrypt(
    input: impl Read,
    identity: &age::x25519::Identity,
    max: u64,
) -> Result<Vec<u8>, String> {
    let decryptor = age::Decryptor::new_buffered(std::io::BufReader::new(input))
        .map_err(|e| format!("not an age file: {e}"))?;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|e| format!("cannot decrypt: {e}"))?;
    let mut raw = Vec::new();
    (&mut reader)
        .take(max + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("decrypting: {e}"))?;
    if raw.len() as u64 > max {
        return Err(format!("decrypted message is over {max} bytes"));
    }
    Ok(raw)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
