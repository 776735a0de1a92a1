//! HTTP handlers. Database work runs on the blocking pool, never on the
//! async runtime's threads.

use crate::AppState;
use crate::error::{ApiError, StoreError};
use crate::request::{authorize, blocking, query};
use crate::userdb::Upload;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use protocol::{FrameError, Limits, LineSplitter, ReplicaId, SendFrame, SendSummary, SyncInfo};
use serde::Deserialize;
use tokio_stream::StreamExt;

/// Largest sealed secret accepted (the real one is 81 bytes).
const MAX_SECRET_BYTES: usize = 4096;
/// Documents handed to the database writer at a time while parsing goes on.
const WRITER_CHUNK_DOCS: usize = 256;
/// Size of the chunks a download is sent in.
const DOWNLOAD_CHUNK_BYTES: usize = 256 * 1024;

/// The sync endpoints (the blob endpoints are `blob_api::routes`).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/config", get(config))
        .route("/v1/users/{user}/sync/info", get(sync_info))
        .route("/v1/users/{user}/sync/send", axum::routing::post(sync_send))
        .route("/v1/users/{user}/sync/changes", get(sync_changes))
        .route("/v1/users/{user}/secret", get(get_secret).put(put_secret))
}

async fn config(State(state): State<AppState>) -> Json<Limits> {
    Json(state.limits().clone())
}

/// A generation a client sent: the log counts in SQLite's signed 64-bit
/// integers, so anything above that is no generation this server can
/// have: a 400 here, not a failed conversion (500) deeper down.
fn generation(n: u64, what: &str) -> Result<u64, ApiError> {
    if n > i64::MAX as u64 {
        return Err(ApiError::BadRequest(format!(
            "{what} {n} is beyond any generation (at most {})",
            i64::MAX
        )));
    }
    Ok(n)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InfoQuery {
    replica: ReplicaId,
    generation: Option<u64>,
}

async fn sync_info(
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
    q: Result<Query<InfoQuery>, QueryRejection>,
) -> Result<Json<SyncInfo>, ApiError> {
    let q = query(q)?;
    let db = authorize(&state, &headers, user).await?;
    let seen = q
        .generation
        .map(|g| generation(g, "generation"))
        .transpose()?;
    // A few indexed reads, run in place: under load, handing them to the
    // blocking pool cost more (two thread wakeups) than the queries.
    // WAL readers do not wait for writers.
    Ok(Json(db.info(&q.replica, seen)?))
}

async fn sync_send(
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SendSummary>, ApiError> {
    let limits = state.limits().clone();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body_bytes) {
        return Err(ApiError::BodyTooLarge {
            limit: limits.max_body_bytes,
        });
    }
    let db = authorize(&state, &headers, user).await?;
    let mut body = UploadBody::new(body, &limits);

    let (replica, generation, transaction_id) = match body.next().await? {
        Some(SendFrame::Header {
            replica,
            generation,
            transaction_id,
        }) => (
            replica,
            self::generation(generation, "header generation")?,
            transaction_id,
        ),
        Some(_) => return Err(ApiError::BadRequest("frame 0 must be the header".into())),
        None => {
            return Err(ApiError::BadRequest(
                "empty body: expected header, docs, end".into(),
            ));
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let writer_db = db.clone();
    let writer = tokio::task::spawn_blocking(move || writer_db.apply_upload(&replica, &mut rx));
    let read = forward_docs(&mut body, &limits, &tx, generation, transaction_id).await;
    drop(tx);
    let written = writer.await.map_err(|e| StoreError::Task(e.to_string()))?;
    // A body error explains an unfinished upload better than the writer can.
    read?;
    let summary = written?
        .ok_or_else(|| StoreError::Task("upload writer stopped before the end frame".into()))?;
    if summary.accepted > 0 {
        db.checkpoint_soon();
    }
    Ok(Json(summary))
}

/// Reads document frames up to the end frame and hands them to the writer.
async fn forward_docs(
    body: &mut UploadBody,
    limits: &Limits,
    tx: &tokio::sync::mpsc::Sender<Upload>,
    generation: u64,
    transaction_id: String,
) -> Result<(), ApiError> {
    let writer_gone = || StoreError::Task("upload writer stopped".into());
    let mut docs = Vec::with_capacity(WRITER_CHUNK_DOCS);
    let mut count = 0u64;
    loop {
        match body.next().await? {
            Some(SendFrame::Doc(doc)) => {
                let len = doc.content.as_ref().map_or(0, |c| c.0.len()) as u64;
                if len > limits.max_doc_bytes {
                    return Err(ApiError::DocTooLarge(format!(
                        "document {} is {len} bytes, the limit is {} (see GET /v1/config)",
                        doc.id, limits.max_doc_bytes
                    )));
                }
                count += 1;
                docs.push(doc);
                if docs.len() >= WRITER_CHUNK_DOCS {
                    let full = std::mem::replace(&mut docs, Vec::with_capacity(WRITER_CHUNK_DOCS));
                    tx.send(Upload::Docs(full))
                        .await
                        .map_err(|_| writer_gone())?;
                }
            }
            Some(SendFrame::End { count: declared }) => {
                if declared != count {
                    return Err(ApiError::BadRequest(format!(
                        "end frame counts {declared} documents but the body had {count}"
                    )));
                }
                if body.next().await?.is_some() {
                    return Err(ApiError::BadRequest("frames after the end frame".into()));
                }
                tx.send(Upload::Docs(docs))
                    .await
                    .map_err(|_| writer_gone())?;
                tx.send(Upload::End {
                    generation,
                    transaction_id,
                })
                .await
                .map_err(|_| writer_gone())?;
                return Ok(());
            }
            Some(SendFrame::Header { .. }) => {
                return Err(ApiError::BadRequest(format!(
                    "frame {} is a second header",
                    count + 1
                )));
            }
            None => {
                return Err(ApiError::BadRequest(format!(
                    "body ended after {count} documents without an end frame; nothing was stored"
                )));
            }
        }
    }
}

/// An upload body read frame by frame, with the size limit enforced as the
/// bytes arrive (a chunked body has no Content-Length to check up front).
struct UploadBody {
    stream: axum::body::BodyDataStream,
    splitter: LineSplitter,
    received: u64,
    limit: u64,
    done: bool,
}

impl UploadBody {
    fn new(body: Body, limits: &Limits) -> Self {
        Self {
            stream: body.into_data_stream(),
            splitter: LineSplitter::new(limits.max_frame_bytes as usize),
            received: 0,
            limit: limits.max_body_bytes,
            done: false,
        }
    }

    async fn next(&mut self) -> Result<Option<SendFrame>, ApiError> {
        loop {
            if let Some(frame) = self.splitter.next_frame().map_err(frame_error)? {
                return Ok(Some(frame));
            }
            if self.done {
                self.splitter.finish().map_err(frame_error)?;
                return Ok(None);
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => {
                    self.received += chunk.len() as u64;
                    if self.received > self.limit {
                        return Err(ApiError::BodyTooLarge { limit: self.limit });
                    }
                    self.splitter.push(&chunk);
                }
                Some(Err(e)) => return Err(crate::error::body_error(e)),
                None => self.done = true,
            }
        }
    }
}

fn frame_error(e: FrameError) -> ApiError {
    match e {
        FrameError::TooLong { .. } => ApiError::DocTooLarge(format!("{e} (see GET /v1/config)")),
        e => ApiError::BadRequest(e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    since: u64,
    /// The asking replica: documents it wrote itself are not sent back.
    replica: Option<ReplicaId>,
}

async fn sync_changes(
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
    q: Result<Query<ChangesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let db = authorize(&state, &headers, user).await?;
    let since = generation(q.since, "since")?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut buf = Vec::with_capacity(DOWNLOAD_CHUNK_BYTES * 2);
        let listed = db.changes(since, q.replica.as_ref(), |frame| {
            protocol::write_frame(&mut buf, &frame);
            // Each chunk gets a buffer of full capacity: with `take`, the
            // next one grew from nothing by reallocs whose copies (13M
            // instructions of the download of 10 MB) came and went with
            // the heap's layout, making instruction counts bimodal.
            buf.len() < DOWNLOAD_CHUNK_BYTES
                || tx
                    .blocking_send(Ok(Bytes::from(std::mem::replace(
                        &mut buf,
                        Vec::with_capacity(DOWNLOAD_CHUNK_BYTES * 2),
                    ))))
                    .is_ok()
        });
        let last = match listed {
            Ok(()) => Ok(Bytes::from(buf)),
            // The status line is gone already: end the body with an error so
            // the client sees a cut-off stream (no end frame), not success.
            Err(e) => {
                tracing::error!("listing changes: {e}");
                Err(std::io::Error::other(e.to_string()))
            }
        };
        let _ = tx.blocking_send(last);
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, protocol::NDJSON)], body).into_response())
}

async fn get_secret(
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<Vec<u8>, ApiError> {
    let db = authorize(&state, &headers, user).await?;
    blocking(move || {
        db.secret()?
            .ok_or_else(|| ApiError::NotFound("no secret stored yet".into()))
    })
    .await
}

async fn put_secret(
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(), ApiError> {
    let db = authorize(&state, &headers, user).await?;
    let only_if_absent = headers.get(header::IF_NONE_MATCH).is_some_and(|v| v == "*");
    let sealed = axum::body::to_bytes(body, MAX_SECRET_BYTES)
        .await
        .map_err(|e| crate::error::small_body_error(e, MAX_SECRET_BYTES))?;
    blocking(move || {
        if db.put_secret(&sealed, only_if_absent)? {
            Ok(())
        } else {
            Err(ApiError::PreconditionFailed(
                "a secret is stored already".into(),
            ))
        }
    })
    .await
}
