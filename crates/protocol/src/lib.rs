//! Wire types and the document model of the reference sync system.
//!
//! This crate knows nothing about IO: no sockets, files, clocks or
//! randomness. The server and the client both build on it, so the two sides
//! agree on ids, revisions, frames, limits and error codes by construction.

mod blob;
pub mod driver;
mod error;
mod frame;
mod ids;
mod limits;
mod rev;
mod sync;

pub use blob::{
    BatchResults, BlobFlag, BlobFrame, BlobInfo, BlobList, BlobQuery, FlagBatch, FlagChange,
    FlagItem, FramedBlobs, INCOMING, IdBatch, ItemResult, MAX_LIST, MailKey, Order, Recipient,
};
pub use error::{ErrorBody, ErrorCode};
pub use frame::{FrameError, LineSplitter, write_frame};
pub use ids::{BlobId, DocId, IdError, MAX_ID_LEN, Namespace, ReplicaId, UserId, validate_id};
pub use limits::Limits;
pub use rev::{Causality, MAX_REPLICAS, RevError, Revision};
pub use sync::{
    ChangeFrame, Content, DocFrame, RejectReason, Rejected, SendFrame, SendSummary, SyncInfo,
    TransactionId,
};

/// Version of the HTTP protocol described here; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Content type of newline-delimited JSON bodies (sync uploads and downloads).
pub const NDJSON: &str = "application/x-ndjson";
