//! A mail exchanger for the reference system, as a library and as the
//! `sync-mx` binary: it looks up the user's age recipient on the server's
//! services listener, encrypts each RFC 5322 message to it, and delivers
//! it into the user's `incoming` namespace, where it waits as a `PENDING`
//! blob for one of the user's devices.

use protocol::{BlobId, ErrorBody, ErrorCode, Recipient, UserId};
use reqwest::blocking::Client;
use std::io::{Seek, Write};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum MxError {
    #[error("the server refused the service token (401): check --token / SYNC_SERVICE_TOKEN")]
    BadToken,
    #[error("no user {0:?} on this server (a real exchanger would bounce the message)")]
    UnknownUser(String),
    #[error(
        "user {0:?} has no mail key yet: none of their devices has run `sync-client init` (a real exchanger would defer delivery)"
    )]
    NoKey(String),
    #[error("the message is {size} bytes encrypted, over the server's limit")]
    TooLarge { size: u64 },
    #[error("not an RFC 5322 message: {0}")]
    NotAMessage(String),
    #[error("server answered {status}: {message}")]
    Http { status: u16, message: String },
    #[error("cannot reach the server: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("encrypting: {0}")]
    Encrypt(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where to deliver a user's mail: their public key and the largest
/// message the server accepts.
#[derive(Debug, Clone)]
pub struct Mailbox {
    pub recipient: age::x25519::Recipient,
    pub max_bytes: u64,
}

/// What happened to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Stored as a new `PENDING` blob of this many (encrypted) bytes.
    New { stored: u64 },
    /// The same message (same id) was delivered before: nothing changed.
    Duplicate,
}

/// A connection to one server's services listener.
#[derive(Debug, Clone)]
pub struct Exchanger {
    http: Client,
    base: String,
    token: String,
}

/// The blob id of a message: the first 128 bits of its SHA-256, so a
/// message delivered twice is recognised (409) instead of stored twice.
pub fn message_id(raw: &[u8]) -> BlobId {
    BlobId::new(crypto::hex(&crypto::sha256(raw)[..16])).expect("hex is a valid id")
}

/// Checks that `raw` parses as an RFC 5322 message with at least one of
/// From, To or Subject; returns its subject for reporting.
pub fn check_message(raw: &[u8]) -> Result<String, MxError> {
    // The headers alone: parsing a 10 MB body cost more than encrypting it.
    let msg = mail_parser::MessageParser::default()
        .parse_headers(raw)
        .ok_or_else(|| MxError::NotAMessage("does not parse".into()))?;
    if msg.from().is_none() && msg.to().is_none() && msg.subject().is_none() {
        return Err(MxError::NotAMessage("no From, To or Subject header".into()));
    }
    Ok(msg.subject().unwrap_or_default().to_owned())
}

fn error_of(resp: reqwest::blocking::Response, user: &UserId) -> MxError {
    let status = resp.status().as_u16();
    let body: Option<ErrorBody> = resp.json().ok();
    match (status, body.as_ref().map(|b| b.code)) {
        (401, _) => MxError::BadToken,
        (404, Some(ErrorCode::UserNotFound)) => MxError::UnknownUser(user.to_string()),
        (404, Some(ErrorCode::NotFound)) => MxError::NoKey(user.to_string()),
        (413, _) => MxError::TooLarge { size: 0 },
        _ => MxError::Http {
            status,
            message: body.map(|b| b.message).unwrap_or_default(),
        },
    }
}

impl Exchanger {
    /// `services_url` is the server's services listener, e.g. as printed
    /// by `sync-server serve` after `services on`.
    pub fn new(services_url: &str, token: &str) -> Result<Exchanger, MxError> {
        Ok(Exchanger {
            http: Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(600))
                .build()?,
            base: services_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    /// The user's public age recipient and the largest delivery accepted.
    pub fn recipient(&self, user: &UserId) -> Result<Mailbox, MxError> {
        let resp = self
            .http
            .get(format!("{}/v1/incoming/{user}/key", self.base))
            .bearer_auth(&self.token)
            .send()?;
        if !resp.status().is_success() {
            return Err(error_of(resp, user));
        }
        let r: Recipient = resp.json()?;
        let recipient = r.recipient.parse().map_err(|e| {
            MxError::Encrypt(format!("the user's recipient {:?}: {e}", r.recipient))
        })?;
        Ok(Mailbox {
            recipient,
            max_bytes: r.max_bytes,
        })
    }

    /// Encrypts `raw` to `recipient` and delivers it. The ciphertext is
    /// built in memory (a temporary file past `IN_MEMORY`) so that the
    /// request has a length and the server can refuse it up front, and is
    /// sent in one piece (reqwest's blocking client hands a reader's
    /// bytes to its runtime a small chunk at a time).
    pub fn deliver(
        &self,
        user: &UserId,
        mailbox: &Mailbox,
        raw: &[u8],
    ) -> Result<Delivered, MxError> {
        /// Messages up to this size are encrypted in memory.
        const IN_MEMORY: usize = 16 << 20;
        let id = message_id(raw);
        let encryptor = age::Encryptor::with_recipients(std::iter::once(
            &mailbox.recipient as &dyn age::Recipient,
        ))
        .map_err(|e| MxError::Encrypt(e.to_string()))?;
        let (body, stored) = if raw.len() <= IN_MEMORY {
            // age adds a header (~200 bytes) and 16 bytes per 64 KiB chunk.
            let mut out = Vec::with_capacity(raw.len() + raw.len() / 4096 + 1024);
            let mut writer = encryptor.wrap_output(&mut out)?;
            writer.write_all(raw)?;
            writer.finish()?;
            let n = out.len() as u64;
            (reqwest::blocking::Body::from(out), n)
        } else {
            let mut spool = tempfile::SpooledTempFile::new(1 << 20);
            let mut writer = encryptor.wrap_output(&mut spool)?;
            writer.write_all(raw)?;
            writer.finish()?;
            let n = spool.seek(std::io::SeekFrom::End(0))?;
            spool.rewind()?;
            (reqwest::blocking::Body::sized(spool, n), n)
        };
        if stored > mailbox.max_bytes {
            return Err(MxError::TooLarge { size: stored });
        }
        let resp = self
            .http
            .put(format!("{}/v1/incoming/{user}/{id}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send();
        let resp = match resp {
            Ok(r) => r,
            // A server that refuses the request from its headers (token,
            // user) answers and closes while the body is still being sent;
            // the client then sees a broken connection instead of the
            // answer. Ask again without a body to learn why.
            Err(e) => {
                return Err(match self.recipient(user) {
                    Err(why @ (MxError::BadToken | MxError::UnknownUser(_))) => why,
                    _ => MxError::Transport(e),
                });
            }
        };
        match resp.status().as_u16() {
            201 => Ok(Delivered::New { stored }),
            409 => Ok(Delivered::Duplicate),
            413 => Err(MxError::TooLarge { size: stored }),
            _ => Err(error_of(resp, user)),
        }
    }
}
