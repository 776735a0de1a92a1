//! Blobs: encrypted content stored apart from documents, put and fetched
//! whole or by byte range, listed with filters, and flagged through a
//! processing life cycle (incoming mail: `PENDING` → `PROCESSING` →
//! `PROCESSED`, or `FAILED`).

use crate::{BlobId, Namespace};
use serde::{Deserialize, Serialize};

/// The namespace the mail exchanger delivers into.
pub const INCOMING: &str = "incoming";

/// Where a blob is in its processing life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BlobFlag {
    Pending,
    Processing,
    Processed,
    Failed,
}

impl BlobFlag {
    pub const ALL: [BlobFlag; 4] = [
        BlobFlag::Pending,
        BlobFlag::Processing,
        BlobFlag::Processed,
        BlobFlag::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BlobFlag::Pending => "PENDING",
            BlobFlag::Processing => "PROCESSING",
            BlobFlag::Processed => "PROCESSED",
            BlobFlag::Failed => "FAILED",
        }
    }
}

impl std::fmt::Display for BlobFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BlobFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        BlobFlag::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("{s:?} is not a flag: use PENDING, PROCESSING, PROCESSED or FAILED")
            })
    }
}

/// One stored blob as listings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    pub namespace: Namespace,
    pub id: BlobId,
    /// Stored (encrypted) size in bytes.
    pub size: u64,
    pub flag: Option<BlobFlag>,
    /// When it was stored, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When its flag last changed (or it was stored).
    pub flagged_ms: i64,
}

/// Sort order of a listing, by the time blobs were stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    #[default]
    Oldest,
    Newest,
}

/// Query string of `GET /v1/users/{user}/blobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobQuery {
    pub namespace: Option<Namespace>,
    pub flag: Option<BlobFlag>,
    #[serde(default)]
    pub order: Order,
    /// At most this many blobs (the server caps it at [`MAX_LIST`]).
    pub limit: Option<u32>,
    /// Only count the matching blobs; `blobs` comes back empty.
    #[serde(default)]
    pub count_only: bool,
}

/// Most blobs one listing returns.
pub const MAX_LIST: u32 = 10_000;

/// Answer of a listing: the matching count, and the blobs unless only the
/// count was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobList {
    pub count: u64,
    pub blobs: Vec<BlobInfo>,
}

/// Body of `POST …/blobs/{namespace}/{id}/flag`: set `flag`, only if the
/// current flag is `expect` when that is given (412 otherwise). This is
/// how a device reserves an incoming message that another device may be
/// about to take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagChange {
    pub flag: BlobFlag,
    #[serde(default)]
    pub expect: Option<BlobFlag>,
}

/// A user's mail key as stored on the server: the public age recipient
/// the mail exchanger encrypts to, and the matching identity encrypted by
/// the client (only devices holding the user secret can open it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailKey {
    pub recipient: String,
    pub sealed_identity: crate::Content,
}

/// What the services listener tells a mail exchanger about a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub recipient: String,
    /// Largest delivery accepted (the encrypted size), so the exchanger
    /// can refuse a message before sending it, as SMTP's SIZE does.
    pub max_bytes: u64,
}
