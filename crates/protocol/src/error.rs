use serde::{Deserialize, Serialize};

/// Machine-readable error codes of the HTTP API. The server maps each to one
/// status code in exactly one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Missing, malformed or unknown bearer token (401).
    Unauthorized,
    /// A valid token used on another user's path (403).
    Forbidden,
    /// The user named in the path does not exist (404).
    UserNotFound,
    /// No such route or resource (404).
    NotFound,
    /// A query, frame or id that does not parse (400).
    BadRequest,
    /// A request body over `max_body_bytes` (413).
    BodyTooLarge,
    /// A document over `max_doc_bytes` (413).
    DocTooLarge,
    /// A conditional write whose condition failed, e.g. storing the sealed
    /// secret with `If-None-Match: *` when one exists (412).
    PreconditionFailed,
    /// A blob with this id exists already; blobs are immutable (409).
    Exists,
    /// The user's storage quota would be exceeded (507).
    QuotaExceeded,
    /// A byte range outside the blob (416).
    RangeNotSatisfiable,
    /// A request body that stopped arriving for the server's idle
    /// timeout (408).
    RequestTimeout,
    /// A fault on the server's side (500).
    Internal,
    /// A code this build does not know (a newer server's).
    #[serde(other)]
    Unknown,
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}
