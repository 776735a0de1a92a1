//! The one place where errors become HTTP statuses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::{ErrorBody, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("this token belongs to another user")]
    Forbidden,
    #[error("no user {0:?}")]
    UserNotFound(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is larger than the limit of {limit} bytes (see GET /v1/config)")]
    BodyTooLarge { limit: u64 },
    #[error(
        "a batch of {count} items is over the limit of {limit} (max_batch_items, see GET /v1/config)"
    )]
    TooManyItems { count: usize, limit: u32 },
    #[error("{0}")]
    DocTooLarge(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}; nothing was stored")]
    BodyTimeout(String),
    #[error("the range asked for lies outside the blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error(transparent)]
    Internal(#[from] StoreError),
}

/// A request body that could not be read: stalled (408) or broken (400).
pub(crate) fn body_error(e: axum::Error) -> ApiError {
    if crate::stall::caused_by::<crate::stall::BodyStalled>(&e) {
        ApiError::BodyTimeout(format!("reading the body: {e}"))
    } else {
        ApiError::BadRequest(format!("reading the body: {e}; nothing was stored"))
    }
}

/// A small body read whole with a `limit`: over it 413, else as
/// [`body_error`].
pub(crate) fn small_body_error(e: axum::Error, limit: usize) -> ApiError {
    if crate::stall::caused_by::<http_body_util::LengthLimitError>(&e) {
        ApiError::BodyTooLarge {
            limit: limit as u64,
        }
    } else {
        body_error(e)
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

/// Failures of the storage layer: never the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("filesystem: {0}")]
    Io(#[from] std::io::Error),
    #[error("random number generator: {0}")]
    Crypto(#[from] crypto::CryptoError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("worker task failed: {0}")]
    Task(String),
}

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden => ErrorCode::Forbidden,
            ApiError::UserNotFound(_) => ErrorCode::UserNotFound,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::BodyTimeout(_) => ErrorCode::RequestTimeout,
            ApiError::BodyTooLarge { .. } | ApiError::TooManyItems { .. } => {
                ErrorCode::BodyTooLarge
            }
            ApiError::DocTooLarge(_) => ErrorCode::DocTooLarge,
            ApiError::PreconditionFailed(_) => ErrorCode::PreconditionFailed,
            ApiError::Exists(_) => ErrorCode::Exists,
            ApiError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            ApiError::RangeNotSatisfiable { .. } => ErrorCode::RangeNotSatisfiable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self.code() {
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::UserNotFound | ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::BodyTooLarge | ErrorCode::DocTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ErrorCode::Exists => StatusCode::CONFLICT,
            ErrorCode::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::Internal | ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ApiError {
    /// What the client is told: the code and message (an internal
    /// error's details go to the log only). Whole responses and each item
    /// of a batch answer alike.
    pub fn body(&self) -> ErrorBody {
        let message = match self {
            ApiError::Internal(e) => {
                tracing::error!("internal error: {e}");
                "internal server error; the server log has the details".to_owned()
            }
            other => other.to_string(),
        };
        ErrorBody {
            code: self.code(),
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if let ApiError::RangeNotSatisfiable { size } = self {
            let range = format!("bytes */{size}");
            if let Ok(v) = axum::http::HeaderValue::try_from(range) {
                response
                    .headers_mut()
                    .insert(axum::http::header::CONTENT_RANGE, v);
            }
        }
        response
    }
}
