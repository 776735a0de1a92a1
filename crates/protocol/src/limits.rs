use serde::{Deserialize, Serialize};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Every limit of the server, in one place: published at `GET /v1/config`
/// so clients size their requests to fit, and enforced by the server before
/// anything reaches the database. Fixed limits of the protocol itself
/// (ids of at most `MAX_ID_LEN` bytes, revisions of at most
/// `MAX_REPLICAS` replicas) are constants of this crate, not fields here:
/// clients built before a field existed refused a config that had it.
/// Unknown fields are ignored from now on, so a later field is safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub protocol_version: u32,
    /// Largest request body; larger ones are answered 413 unread.
    pub max_body_bytes: u64,
    /// Largest encrypted document content.
    pub max_doc_bytes: u64,
    /// Longest frame (one JSON line) in a sync body.
    pub max_frame_bytes: u64,
    /// What a client should aim for per upload request.
    pub batch_bytes: u64,
    /// Documents per upload request and per database transaction.
    pub batch_docs: u32,
    /// Largest blob (its encrypted size).
    pub max_blob_bytes: u64,
    /// Largest message a mail exchanger may deliver.
    pub max_incoming_bytes: u64,
    /// Total size of one user's blobs.
    pub quota_bytes: u64,
    /// Most items of one batch request (flags, fetch, delete, store);
    /// absent from servers before batches (0: none accepted).
    #[serde(default)]
    pub max_batch_items: u32,
    /// Largest body of a batch of blobs stored at once; each blob in it
    /// at most `batch_blob_bytes`.
    #[serde(default)]
    pub max_batch_bytes: u64,
    /// Largest blob a batch fetches or stores (larger ones go one by one,
    /// streamed).
    #[serde(default)]
    pub batch_blob_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        // Large enough for a 10 MB message inside a document (the legacy
        // mail design), base64 in JSON.
        let max_doc_bytes = 32 * MIB;
        Self {
            protocol_version: crate::PROTOCOL_VERSION,
            max_body_bytes: 64 * MIB,
            max_doc_bytes,
            max_frame_bytes: Self::frame_bytes_for(max_doc_bytes),
            batch_bytes: 4 * MIB,
            batch_docs: 1000,
            max_blob_bytes: 16 * 1024 * MIB,
            max_incoming_bytes: 64 * MIB,
            quota_bytes: 64 * 1024 * MIB,
            max_batch_items: 256,
            max_batch_bytes: 16 * MIB,
            batch_blob_bytes: 4 * MIB,
        }
    }
}

impl Limits {
    /// A frame carrying a document of `doc_bytes` (base64, plus id and
    /// revision) fits in this many bytes.
    pub fn frame_bytes_for(doc_bytes: u64) -> u64 {
        doc_bytes.div_ceil(3) * 4 + 16 * KIB
    }
}
