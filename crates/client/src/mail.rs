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
    BlobFlag, BlobId, BlobInfo, BlobQuery, Content, DocId, ErrorCode, FlagItem, FramedBlobs,
    INCOMING, Limits, MailKey, Namespace,
};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::time::Duration;

/// Namespace of processed messages' content blobs.
pub const MAIL_NAMESPACE: &str = "mail";
/// Prefix of the ids of mail metadata documents.
pub const MAIL_DOC_PREFIX: &str = "mail.";
/// Messages listed (and processed between two syncs) at a time.
const BATCH: u32 = 1000;
/// Messages (and content blobs) larger than this travel alone, streamed
/// in one pass (see `open_large`), `IN_FLIGHT` at a time; smaller ones in
/// batch requests. Measured with `syncbench run mail --filter mode=blobs`:
/// processing 10 × 1000 KiB took 77 ms batched (download, decryption,
/// encryption and upload one after another) and 43 ms streamed 4 at a
/// time; 100 × 100 KiB is faster batched.
const STREAM_OVER: u64 = 512 << 10;
const IN_FLIGHT: usize = 4;
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

    /// Processes incoming mail, oldest first, in batches of up to the
    /// server's `max_batch_items`: reserves the batch (`PROCESSING`, each
    /// only if still as listed, so two devices never take the same
    /// message), fetches the small ones in one request, decrypts and
    /// parses them on every core, stores their content blobs in one
    /// request; streams the large ones a few at a time, each downloaded,
    /// decrypted, re-encrypted and uploaded in one pass; stores the
    /// metadata documents in one local transaction, syncs, then marks
    /// the batch `PROCESSED` and deletes the incoming copies, a request
    /// each. A message that does not decrypt or parse is marked `FAILED`
    /// and kept, alone. One left `PROCESSING` for longer than `lease` (a
    /// device that crashed mid-way) is taken again; every step can be
    /// repeated safely.
    pub fn process_incoming(&mut self, lease: Duration) -> Result<IncomingReport, ClientError> {
        let identity = self.mail_identity()?;
        let mode = self.mail_mode()?;
        let limits = self.limits()?;
        if limits.max_batch_items == 0 {
            return Err(ClientError::Protocol(
                "the server takes no batches of blobs (max_batch_items is 0): it is older than this client".into(),
            ));
        }
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
            // Less than a page pending: nothing more to list once this is
            // done (what arrives meanwhile waits for the next call).
            let last_page = todo.len() < BATCH as usize && stale.count <= stale.blobs.len() as u64;
            todo.extend(stale.blobs.into_iter().filter(|b| b.flagged_ms <= cutoff));
            if todo.is_empty() {
                break;
            }
            for chunk in todo.chunks(limits.max_batch_items as usize) {
                self.process_batch(chunk, &identity, mode, &limits, &mut report)?;
            }
            if last_page {
                break;
            }
        }
        Ok(report)
    }

    /// One batch of incoming messages, from reservation to deletion.
    fn process_batch(
        &mut self,
        batch: &[BlobInfo],
        identity: &age::x25519::Identity,
        mode: MailMode,
        limits: &Limits,
        report: &mut IncomingReport,
    ) -> Result<(), ClientError> {
        let incoming = ns(INCOMING);
        let reservations = self.remote.flag_blobs(
            &incoming,
            batch
                .iter()
                .map(|b| FlagItem {
                    id: b.id.clone(),
                    flag: BlobFlag::Processing,
                    expect: b.flag,
                })
                .collect(),
        )?;
        // Taken by another device meanwhile (or gone): not ours.
        let reserved: Vec<BlobInfo> = reservations.into_iter().filter_map(|r| r.info).collect();
        report.skipped += (batch.len() - reserved.len()) as u64;
        let max = limits.max_incoming_bytes;
        let fetched = self.fetch_incoming(&reserved, identity, limits, mode)?;
        // Decrypting is the CPU's part: on every core.
        let mut stored_already = std::collections::HashSet::new();
        for (info, f) in &fetched {
            if let Some(Fetched::Stored(_)) = f {
                stored_already.insert(info.id.clone());
            }
        }
        let decrypted = parallel_map(fetched, |(info, f)| {
            let raw = f.map(|f| match f {
                Fetched::Sealed(ct) => decrypt(&ct[..], identity, max),
                Fetched::Opened(raw) => raw,
                Fetched::Stored(raw) => Ok(raw),
            });
            (info, raw)
        });
        // The content blobs are stored while the messages are parsed: the
        // upload (network, the server's fsyncs) overlaps the parsing. A
        // message that then fails to parse has its content blob removed.
        let raws: Vec<(&BlobId, &[u8])> = decrypted
            .iter()
            .filter(|(info, _)| !stored_already.contains(&info.id))
            .filter_map(|(info, raw)| match raw {
                Some(Ok(raw)) => Some((&info.id, &raw[..])),
                _ => None,
            })
            .collect();
        let (cipher, remote) = (self.cipher()?, &self.remote);
        let (stored, parsed) = std::thread::scope(|s| {
            let store = s.spawn(|| match mode {
                MailMode::Blobs => store_contents(cipher, remote, &raws, limits),
                MailMode::Legacy => Ok(()),
            });
            let parsed = parallel_map(decrypted.iter().collect(), |(info, raw)| {
                raw.as_ref().map(|raw| match raw {
                    Ok(raw) => header(&info.id, raw),
                    Err(why) => Err(why.clone()),
                })
            });
            (store.join(), parsed)
        });
        stored.unwrap_or_else(|_| {
            Err(ClientError::Protocol(
                "the thread storing content blobs panicked".into(),
            ))
        })?;
        let mut done: Vec<(BlobId, MailMeta)> = Vec::new();
        let mut failed = Vec::new();
        for ((info, raw), header) in decrypted.into_iter().zip(parsed) {
            match (raw, header) {
                // Deleted between the reservation and the fetch.
                (None, _) | (_, None) => report.skipped += 1,
                (Some(Ok(raw)), Some(Ok(header))) => {
                    let content = match mode {
                        MailMode::Legacy => MailContent::Inline { data: Content(raw) },
                        MailMode::Blobs => MailContent::Blob {
                            namespace: ns(MAIL_NAMESPACE),
                            id: info.id.clone(),
                        },
                    };
                    done.push((info.id, MailMeta { header, content }));
                }
                (Some(Ok(_)), Some(Err(why))) => {
                    if mode == MailMode::Blobs {
                        self.remote
                            .delete_blobs(&ns(MAIL_NAMESPACE), vec![info.id.clone()])?;
                    }
                    failed.push((info.id, why));
                }
                (Some(Err(why)), _) => failed.push((info.id, why)),
            }
        }
        let docs: Vec<(DocId, Vec<u8>)> = done
            .iter()
            .map(|(id, meta)| {
                (
                    doc_id(id),
                    serde_json::to_vec(meta).expect("metadata serializes"),
                )
            })
            .collect();
        self.put_many(docs.iter().map(|(id, json)| (id, &json[..])))?;
        if !failed.is_empty() {
            self.remote.flag_blobs(
                &incoming,
                failed
                    .iter()
                    .map(|(id, _)| FlagItem {
                        id: id.clone(),
                        flag: BlobFlag::Failed,
                        expect: Some(BlobFlag::Processing),
                    })
                    .collect(),
            )?;
        }
        for (id, why) in failed {
            report.failed.push((id.to_string(), why));
        }
        // The documents reach the server before the incoming copies go.
        self.sync()?;
        if done.is_empty() {
            return Ok(());
        }
        let ids: Vec<BlobId> = done.iter().map(|(id, _)| id.clone()).collect();
        self.remote.flag_blobs(
            &incoming,
            ids.iter()
                .map(|id| FlagItem {
                    id: id.clone(),
                    flag: BlobFlag::Processed,
                    expect: None,
                })
                .collect(),
        )?;
        self.remote.delete_blobs(&incoming, ids)?;
        for (_, meta) in &done {
            report.processed += 1;
            report.bytes += meta.header.size;
        }
        Ok(())
    }

    /// Each reserved message (`None`: gone meanwhile): the small ones'
    /// ciphertext in batched requests; the large ones alone, a few at a
    /// time, each decrypted while it downloads and, in blobs mode, its
    /// content blob encrypted and uploaded from the same chunks as they
    /// come (see [`open_large`]). A transport error is an error here
    /// (retry later); what fails otherwise is the message's own fault.
    fn fetch_incoming(
        &self,
        reserved: &[BlobInfo],
        identity: &age::x25519::Identity,
        limits: &Limits,
        mode: MailMode,
    ) -> Result<Vec<(BlobInfo, Option<Fetched>)>, ClientError> {
        let incoming = ns(INCOMING);
        let small = |b: &BlobInfo| b.size <= limits.batch_blob_bytes.min(STREAM_OVER);
        let mut got: std::collections::HashMap<BlobId, bytes::Bytes> = Default::default();
        for group in groups(reserved.iter().filter(|b| small(b)), limits, |b| b.size) {
            let ids = group.iter().map(|b| b.id.clone()).collect();
            for (frame, bytes) in self.remote.fetch_blobs(&incoming, ids)? {
                if frame.error.is_none() {
                    got.insert(frame.id, bytes);
                }
            }
        }
        let cipher = match mode {
            MailMode::Blobs => Some(self.cipher()?),
            MailMode::Legacy => None,
        };
        let remote = &self.remote;
        let large: Vec<&BlobInfo> = reserved.iter().filter(|b| !small(b)).collect();
        let mut opened = parallel_map_n(large, IN_FLIGHT, |b| {
            let max = limits.max_incoming_bytes;
            Ok((
                b.id.clone(),
                open_large(remote, cipher, identity, max, &b.id)?,
            ))
        })
        .into_iter()
        .collect::<Result<std::collections::HashMap<_, _>, ClientError>>()?;
        Ok(reserved
            .iter()
            .map(|b| {
                let fetched = if small(b) {
                    got.remove(&b.id).map(Fetched::Sealed)
                } else {
                    opened.remove(&b.id).flatten()
                };
                (b.clone(), fetched)
            })
            .collect())
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

/// A reserved message as fetched.
enum Fetched {
    /// Its ciphertext, to decrypt.
    Sealed(bytes::Bytes),
    /// Decrypted while it downloaded (or why it is not a message).
    Opened(Result<Vec<u8>, String>),
    /// Decrypted while it downloaded, and its content blob stored.
    Stored(Vec<u8>),
}

/// One large incoming message in one pass: the download is decrypted as
/// it arrives and, given a `cipher` (blobs mode), each decrypted chunk is
/// also handed to a second thread that encrypts it for the content blob
/// and uploads it, so nothing waits for the whole message and no copy of
/// the ciphertext is kept. `None`: the message is gone. A message that
/// does not decrypt aborts the upload (the server keeps nothing of a body
/// that breaks off) and is `Opened(Err)`; a download or upload that fails
/// is an error (retry later).
fn open_large(
    remote: &crate::Remote,
    cipher: Option<&crypto::DocCipher>,
    identity: &age::x25519::Identity,
    max: u64,
    id: &BlobId,
) -> Result<Option<Fetched>, ClientError> {
    let stream = match remote.get_blob(&ns(INCOMING), id) {
        Ok(stream) => stream,
        Err(e) if e.code() == Some(ErrorCode::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut watched = Watched {
        inner: stream,
        failed: None,
    };
    let Some(cipher) = cipher else {
        let opened = decrypt(&mut watched, identity, max);
        return match watched.failed {
            Some(e) => Err(ClientError::Io(e)),
            None => Ok(Some(Fetched::Opened(opened))),
        };
    };
    // A few chunks ahead at most: memory stays bounded if the upload lags.
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(4);
    let sealed = cipher.encrypt_blob(MAIL_NAMESPACE, id.as_str(), ChannelReader::new(rx))?;
    std::thread::scope(|s| {
        let upload = s.spawn(|| remote.put_blob(&ns(MAIL_NAMESPACE), id, sealed, None));
        // A refused upload (the blob exists: an earlier attempt stored it)
        // closes the channel; the message is still read to its end.
        let opened = decrypt_with(&mut watched, identity, max, |chunk| {
            let _ = tx.send(Ok(chunk.to_vec()));
        });
        if let Err(why) = &opened {
            let _ = tx.send(Err(std::io::Error::other(why.clone())));
        }
        drop(tx);
        let uploaded = upload.join().unwrap_or_else(|_| {
            Err(ClientError::Protocol(
                "the thread uploading a content blob panicked".into(),
            ))
        });
        if let Some(e) = watched.failed {
            return Err(ClientError::Io(e));
        }
        match (opened, uploaded) {
            (Err(why), _) => Ok(Some(Fetched::Opened(Err(why)))),
            (Ok(raw), Ok(_)) => Ok(Some(Fetched::Stored(raw))),
            (Ok(raw), Err(e)) if e.code() == Some(ErrorCode::Exists) => {
                Ok(Some(Fetched::Stored(raw)))
            }
            (Ok(_), Err(e)) => Err(e),
        }
    })
}

/// The reading end of a channel of chunks, as a byte stream; an `Err`
/// chunk is the stream's error, a closed channel its end.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl ChannelReader {
    fn new(rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>) -> Self {
        ChannelReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A download read through the decryptor that remembers a failure of
/// the download itself, so a connection lost midway is told apart from
/// a message that does not decrypt.
struct Watched<R> {
    inner: R,
    failed: Option<std::io::Error>,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.failed = Some(std::io::Error::new(e.kind(), e.to_string()));
        })
    }
}

/// Splits `items` into groups a batch request takes: at most
/// `max_batch_items` each, and at most `max_batch_bytes` of `size` (a
/// group holds at least one item).
fn groups<'a, T>(
    items: impl Iterator<Item = &'a T>,
    limits: &Limits,
    size: impl Fn(&T) -> u64,
) -> Vec<Vec<&'a T>> {
    let mut out: Vec<Vec<&T>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let n = size(item) + 256; // the frame header, generously
        let full = out.last().is_none_or(|g| {
            g.len() >= limits.max_batch_items as usize || bytes + n > limits.max_batch_bytes
        });
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += n;
        out.last_mut().expect("pushed").push(item);
    }
    out
}

/// `f` over `items` on every core, in order.
fn parallel_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    parallel_map_n(items, cores, f)
}

/// `f` over `items` on up to `threads` scoped threads, each taking the
/// next item when done with one (sizes vary: no thread idles while
/// another has a queue), results in order. Written here rather than
/// taken from rayon: the downloads and uploads want more threads than
/// cores (they wait on the network), and this is all of it.
fn parallel_map_n<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let n = items.len();
    if threads < 2 || n < 2 {
        return items.into_iter().map(f).collect();
    }
    let queue = std::sync::Mutex::new(items.into_iter().enumerate());
    let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).next();
    let (f, next) = (&f, &next);
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.min(n))
            .map(|_| {
                s.spawn(move || {
                    let mut out = Vec::new();
                    while let Some((i, item)) = next() {
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a mail worker thread panicked"))
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Encrypts (on every core) and stores the messages' content blobs: the
/// small ones in batched requests, a large one streamed alone. One an
/// earlier attempt stored already (it crashed later on) is fine.
fn store_contents(
    cipher: &crypto::DocCipher,
    remote: &crate::Remote,
    contents: &[(&BlobId, &[u8])],
    limits: &Limits,
) -> Result<(), ClientError> {
    let mail = ns(MAIL_NAMESPACE);
    let sealed_len = |raw: &[u8]| crypto::stream::ciphertext_len(raw.len() as u64);
    let fits = |raw: &[u8]| sealed_len(raw) <= limits.batch_blob_bytes.min(STREAM_OVER);
    let small = contents.iter().filter(|(_, raw)| fits(raw));
    for group in groups(small, limits, |(_, raw)| sealed_len(raw)) {
        // Encrypted on every core straight into the request body.
        let mut framed = FramedBlobs::with_sizes(
            group
                .iter()
                .map(|(id, raw)| ((*id).clone(), sealed_len(raw))),
        );
        let slots: Vec<_> = framed.slots_mut().into_iter().zip(&group).collect();
        parallel_map(slots, |(slot, (id, raw))| -> Result<(), ClientError> {
            let mut sealed = cipher.encrypt_blob(mail.as_str(), id.as_str(), *raw)?;
            sealed.read_exact(slot)?;
            if sealed.read(&mut [0])? != 0 {
                return Err(ClientError::Protocol(format!(
                    "content blob {id} encrypted to more than its computed length"
                )));
            }
            Ok(())
        })
        .into_iter()
        .collect::<Result<(), _>>()?;
        for r in remote.store_blobs(&mail, framed)? {
            match r.error {
                None => {}
                Some(e) if e.code == ErrorCode::Exists => {}
                Some(e) => {
                    return Err(ClientError::Http {
                        status: 0,
                        code: Some(e.code),
                        message: format!("storing content blob {}: {}", r.id, e.message),
                        url: format!("batch/{MAIL_NAMESPACE}/store"),
                    });
                }
            }
        }
    }
    let large: Vec<_> = contents.iter().filter(|(_, raw)| !fits(raw)).collect();
    parallel_map_n(large, IN_FLIGHT, |(id, raw)| -> Result<(), ClientError> {
        let len = raw.len() as u64;
        let sealed = cipher.encrypt_blob(
            mail.as_str(),
            id.as_str(),
            std::io::Cursor::new(raw.to_vec()),
        )?;
        match remote.put_blob(&mail, id, sealed, Some(crypto::stream::ciphertext_len(len))) {
            Err(e) if e.code() == Some(ErrorCode::Exists) => Ok(()),
            r => r.map(drop),
        }
    })
    .into_iter()
    .collect()
}

/// What the inbox shows of a decrypted message, or why it is not one.
fn header(id: &BlobId, raw: &[u8]) -> Result<MailHeader, String> {
    // mail-parser parses from a slice, so the message is in memory here;
    // its size is bounded by the server's max_incoming_bytes.
    let msg = mail_parser::MessageParser::default()
        .parse(raw)
        .ok_or("not an RFC 5322 message")?;
    if msg.headers().is_empty() {
        return Err("no headers: not an RFC 5322 message".into());
    }
    let header = MailHeader {
        id: id.clone(),
        from: addresses(msg.from()).join(", "),
        to: addresses(msg.to()),
        subject: msg.subject().unwrap_or_default().to_owned(),
        date: msg.date().map(|d| d.to_rfc3339()),
        size: raw.len() as u64,
        attachments: msg.attachment_count() as u32,
        flags: Vec::new(),
    };
    Ok(header)
}

/// Decrypts an age file with the user's identity; at most `max` bytes.
fn decrypt(
    input: impl Read,
    identity: &age::x25519::Identity,
    max: u64,
) -> Result<Vec<u8>, String> {
    decrypt_with(input, identity, max, |_| {})
}

/// [`decrypt`], handing each piece of plaintext (about 1 MiB) to `each`
/// as soon as it is decrypted. A message that fails to authenticate
/// later on may have handed out pieces already: `each` must not trust
/// them before the answer is `Ok`.
fn decrypt_with(
    input: impl Read,
    identity: &age::x25519::Identity,
    max: u64,
    mut each: impl FnMut(&[u8]),
) -> Result<Vec<u8>, String> {
    const PIECE: usize = 1 << 20;
    let decryptor = age::Decryptor::new_buffered(std::io::BufReader::new(input))
        .map_err(|e| format!("not an age file: {e}"))?;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|e| format!("cannot decrypt: {e}"))?
        .take(max + 1);
    let mut raw = Vec::new();
    let mut handed = 0;
    loop {
        // Read straight into the message (no copy out of a buffer); the
        // Vec grows by doubling, so the zeroing is linear overall.
        let at = raw.len();
        raw.resize(at + (64 << 10), 0);
        let n = loop {
            match reader.read(&mut raw[at..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                r => break r.map_err(|e| format!("decrypting: {e}")),
            }
        };
        raw.truncate(at + *n.as_ref().unwrap_or(&0));
        let n = n?;
        if raw.len() as u64 > max {
            return Err(format!("decrypted message is over {max} bytes"));
        }
        if n == 0 || raw.len() - handed >= PIECE {
            each(&raw[handed..]);
            handed = raw.len();
        }
        if n == 0 {
            return Ok(raw);
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
