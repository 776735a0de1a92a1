//! HTTP handlers for blobs and the mail key, and the services listener
//! where a mail exchanger delivers incoming mail.

use crate::AppState;
use crate::blobs::{INLINE_MAX, Stored};
use crate::error::{ApiError, StoreError};
use crate::metrics::METRICS;
use crate::request::{authorize, blocking, query};
use crate::userdb::UserDb;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use protocol::{
    BatchResults, BlobFlag, BlobFrame, BlobId, BlobInfo, BlobList, BlobQuery, FlagBatch,
    FlagChange, INCOMING, IdBatch, ItemResult, MAX_ID_LEN, MailKey, Namespace, Recipient, UserId,
};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_stream::StreamExt;

/// Up to this size a body is read even when the answer will be 409: a
/// client still sending its body when the server closes the connection
/// sees a broken pipe instead of the answer.
const READ_BEFORE_CONFLICT: u64 = 1024 * 1024;
/// Largest mail key body accepted (a real one is about 200 bytes).
const MAX_MAIL_KEY_BYTES: usize = 16 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/users/{user}/blobs", get(list))
        .route(
            "/v1/users/{user}/blobs/{namespace}/{id}",
            put(put_blob).get(get_blob).delete(delete_blob),
        )
        .route("/v1/users/{user}/blobs/{namespace}/{id}/flag", post(flag))
        // Batches: a path of their own, so no blob id is shadowed.
        .route(
            "/v1/users/{user}/batch/{namespace}/flags",
            post(batch_flags),
        )
        .route(
            "/v1/users/{user}/batch/{namespace}/fetch",
            post(batch_fetch),
        )
        .route(
            "/v1/users/{user}/batch/{namespace}/delete",
            post(batch_delete),
        )
        .route(
            "/v1/users/{user}/batch/{namespace}/store",
            post(batch_store),
        )
        .route(
            "/v1/users/{user}/mailkey",
            get(get_mail_key).put(put_mail_key),
        )
}

fn ids(ns: String, id: String) -> Result<(Namespace, BlobId), ApiError> {
    let ns = Namespace::new(ns).map_err(|e| ApiError::BadRequest(format!("namespace: {e}")))?;
    let id = BlobId::new(id).map_err(|e| ApiError::BadRequest(format!("blob id: {e}")))?;
    Ok((ns, id))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// A file under `tmp/` that is removed unless it was moved into place.
struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        // Already renamed (the common case) or never created: both fine.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where an upload goes and what it may be.
struct Target {
    ns: Namespace,
    id: BlobId,
    /// Largest size accepted.
    limit: u64,
    /// Flag of the new blob.
    flag: Option<BlobFlag>,
}

/// Streams `body` into a blob: checks what can be checked up front, writes
/// a temporary file (never more than one buffer in memory), fsyncs it, and
/// commits it with its row.
async fn store(
    state: &AppState,
    db: Arc<UserDb>,
    target: Target,
    headers: &HeaderMap,
    body: Body,
) -> Result<BlobInfo, ApiError> {
    let Target {
        ns,
        id,
        limit,
        flag,
    } = target;
    let quota = state.limits().quota_bytes;
    let declared = content_length(headers);
    // Refuses up front, before reading a byte, what would be refused at the
    // end: a declared size over the quota, and (for bodies too large to
    // read just to refuse them) an existing id. Two indexed reads, in place.
    let early_conflict = declared.is_none_or(|n| n > READ_BEFORE_CONFLICT);
    db.blob_precheck(&ns, &id, declared.unwrap_or(0), quota, early_conflict)?;
    if let Some(n) = declared.filter(|&n| n <= INLINE_MAX && n <= limit) {
        // A small body (most mail, every 10 KiB upload): read whole, and
        // stored in its row in one trip to the blocking pool.
        let bytes = axum::body::to_bytes(body, n as usize)
            .await
            .map_err(crate::error::body_error)?;
        let writer = db.clone();
        let info = blocking(move || {
            let n = bytes.len() as u64;
            let info = writer.blob_commit_inline(&ns, &id, bytes, flag, quota)?;
            METRICS.blob_written("inline", n);
            Ok(info)
        })
        .await?;
        // Small blobs fill the WAL fast: copy it back off the request path,
        // or the commit that crosses the autocheckpoint size does it while
        // every waiting writer waits too.
        db.checkpoint_soon();
        return Ok(info);
    }
    let tmp = TempFile(
        state
            .tmp_dir()
            .join(crypto::random_hex(16).map_err(StoreError::from)?),
    );
    let mut out = crate::blob_io::Writer::create(&tmp.0).await?;
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(crate::error::body_error)?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::BodyTooLarge { limit });
        }
        out.write(chunk).await?;
    }
    let storage = out.finish().await?;
    METRICS.fsync("blob");
    blocking(move || {
        let info = db.blob_commit(&ns, &id, &tmp.0, size, flag, quota)?;
        METRICS.blob_written(storage, size);
        drop(tmp);
        Ok(info)
    })
    .await
}

async fn put_blob(
    State(state): State<AppState>,
    Path((user, ns, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<BlobInfo>), ApiError> {
    let limit = state.limits().max_blob_bytes;
    if content_length(&headers).is_some_and(|n| n > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let db = authorize(&state, &headers, user).await?;
    let (ns, id) = ids(ns, id)?;
    let target = Target {
        ns,
        id,
        limit,
        flag: None,
    };
    let info = store(&state, db, target, &headers, body).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Size of the chunks a blob is read and sent in.
const READ_CHUNK: usize = 1 << 20;

/// The byte range a `Range` header asks for, as `start..end`: `None` to
/// send the whole blob (no header, or one this server does not serve, such
/// as several ranges: RFC 9110 lets a server ignore those), `Err` when the
/// range lies outside the blob (416).
fn requested_range(headers: &HeaderMap, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = spec.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let range = match (first.trim(), last.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().ok()?, size),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            if b < a {
                return None;
            }
            (a, b.saturating_add(1).min(size))
        }
    };
    Some(if range.0 < range.1 {
        Ok(range)
    } else {
        Err(())
    })
}

/// The whole blob, or the byte range asked for (206, or 416 when it lies
/// outside the blob). Read on the blocking pool in 1 MiB chunks: tokio's
/// file reads hand every 64 KiB to another thread, which made downloads
/// half as fast (measured).
async fn get_blob(
    State(state): State<AppState>,
    Path((user, ns, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let db = authorize(&state, &headers, user).await?;
    let (ns, id) = ids(ns, id)?;
    // One indexed read, run in place (as `list`); small blobs come with it.
    let (info, stored) = db
        .blob_open(&ns, &id)?
        .ok_or_else(|| ApiError::NotFound(format!("no blob {ns}/{id}")))?;
    let size = info.size;
    let (start, end, status) = match requested_range(&headers, size) {
        None => (0, size, StatusCode::OK),
        Some(Ok((a, b))) => (a, b, StatusCode::PARTIAL_CONTENT),
        Some(Err(())) => return Err(ApiError::RangeNotSatisfiable { size }),
    };
    let body = match stored {
        Stored::Inline(data) => Body::from(Bytes::from(data).slice(start as usize..end as usize)),
        Stored::File(path) => stream_file(&path, start, end)?,
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {start}-{}/{size}", end - 1);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::try_from(range).expect("ASCII"),
        );
    }
    Ok(response)
}

/// Bytes `start..end` of a file, read on the blocking pool in 1 MiB chunks.
/// Once open, a DELETE's unlink no longer matters; a file already gone
/// (deleted between reading its row and opening it) is a 404.
fn stream_file(path: &std::path::Path, start: u64, end: u64) -> Result<Body, ApiError> {
    let mut file = match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound(
                "no such blob (deleted meanwhile)".into(),
            ));
        }
        other => other?,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek};
        let mut left = end - start;
        let seeked = file.seek(std::io::SeekFrom::Start(start));
        if let Err(e) = seeked {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        while left > 0 {
            let mut chunk = vec![0u8; READ_CHUNK.min(left as usize)];
            let item = file.read_exact(&mut chunk).map(|()| Bytes::from(chunk));
            let failed = item.is_err();
            left -= READ_CHUNK.min(left as usize) as u64;
            // A closed channel: the client went away.
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    Ok(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ))
}

async fn delete_blob(
    State(state): State<AppState>,
    Path((user, ns, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let db = authorize(&state, &headers, user).await?;
    let (ns, id) = ids(ns, id)?;
    blocking(move || {
        if db.blob_delete(&ns, &id)? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::NotFound(format!("no blob {ns}/{id}")))
        }
    })
    .await
}

async fn list(
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
    q: Result<Query<BlobQuery>, QueryRejection>,
) -> Result<Json<BlobList>, ApiError> {
    let q = query(q)?;
    let db = authorize(&state, &headers, user).await?;
    // Run in place like `sync_info`: one indexed query of at most
    // MAX_LIST rows.
    Ok(Json(db.blob_list(&q)?))
}

/// The largest flag change body read: `{"flag": …, "expect": …}` is tens
/// of bytes.
const FLAG_BODY_MAX: usize = 4096;

async fn flag(
    State(state): State<AppState>,
    Path((user, ns, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BlobInfo>, ApiError> {
    // The token first: a body is read only for its owner (a Json
    // extractor would read it before the handler runs).
    let db = authorize(&state, &headers, user).await?;
    let (ns, id) = ids(ns, id)?;
    let bytes = axum::body::to_bytes(body, FLAG_BODY_MAX)
        .await
        .map_err(|e| crate::error::small_body_error(e, FLAG_BODY_MAX))?;
    let change: FlagChange = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("JSON body: {e}")))?;
    blocking(move || db.blob_flag(&ns, &id, &change))
        .await
        .map(Json)
}

/// The largest JSON body of a batch of ids or flag changes: an id is at
/// most MAX_ID_LEN bytes, with room for a flag change's fields.
fn batch_json_limit(state: &AppState) -> usize {
    state.limits().max_batch_items as usize * (MAX_ID_LEN + 64) + 64
}

/// Refuses (413, unread) a body declared larger than `limit`.
fn refuse_large(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    match content_length(headers) {
        Some(n) if n > limit => Err(ApiError::BodyTooLarge { limit }),
        _ => Ok(()),
    }
}

/// Refuses a batch of more items than the published limit (413).
fn check_items(state: &AppState, n: usize) -> Result<(), ApiError> {
    let limit = state.limits().max_batch_items;
    if n > limit as usize {
        return Err(ApiError::TooManyItems { count: n, limit });
    }
    Ok(())
}

/// What every batch with a JSON body checks, in order: its declared size
/// (413 unread), the token, the namespace, the body, the item count.
async fn open_batch<T: serde::de::DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    user: String,
    ns: String,
    body: Body,
    items: impl Fn(&T) -> usize,
) -> Result<(Arc<UserDb>, Namespace, T), ApiError> {
    let limit = batch_json_limit(state);
    refuse_large(headers, limit as u64)?;
    let db = authorize(state, headers, user).await?;
    let ns = namespace(ns)?;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| crate::error::small_body_error(e, limit))?;
    let batch: T = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("JSON body: {e}")))?;
    check_items(state, items(&batch))?;
    Ok((db, ns, batch))
}

fn namespace(ns: String) -> Result<Namespace, ApiError> {
    Namespace::new(ns).map_err(|e| ApiError::BadRequest(format!("namespace: {e}")))
}

fn item(id: BlobId, result: Result<Option<BlobInfo>, ApiError>) -> ItemResult {
    match result {
        Ok(info) => ItemResult {
            id,
            info,
            error: None,
        },
        Err(e) => ItemResult {
            id,
            info: None,
            error: Some(e.body()),
        },
    }
}

/// Several flag changes, each conditional and answered on its own, in
/// one transaction: how a device reserves (and later marks) a batch of
/// incoming messages in one round trip.
async fn batch_flags(
    State(state): State<AppState>,
    Path((user, ns)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchResults>, ApiError> {
    let (db, ns, batch) = open_batch(&state, &headers, user, ns, body, |b: &FlagBatch| {
        b.changes.len()
    })
    .await?;
    let ids: Vec<BlobId> = batch.changes.iter().map(|c| c.id.clone()).collect();
    let results = blocking(move || db.blob_flag_many(&ns, batch.changes)).await?;
    Ok(Json(BatchResults {
        results: ids
            .into_iter()
            .zip(results)
            .map(|(id, r)| item(id, r.map(Some)))
            .collect(),
    }))
}

/// Several blobs deleted in one transaction; a missing one is 404 on its own.
async fn batch_delete(
    State(state): State<AppState>,
    Path((user, ns)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchResults>, ApiError> {
    let (db, ns, batch) =
        open_batch(&state, &headers, user, ns, body, |b: &IdBatch| b.ids.len()).await?;
    let ids = batch.ids.clone();
    let ns2 = ns.clone();
    let deleted = blocking(move || db.blob_delete_many(&ns2, batch.ids)).await?;
    Ok(Json(BatchResults {
        results: ids
            .into_iter()
            .zip(deleted)
            .map(|(id, there)| {
                let result = if there {
                    Ok(None)
                } else {
                    Err(ApiError::NotFound(format!("no blob {ns}/{id}")))
                };
                item(id, result)
            })
            .collect(),
    }))
}

/// Several blobs in one streamed answer: each a [`BlobFrame`] line and
/// its bytes (a missing one: a frame with its error and no bytes). Read
/// on the blocking pool, a chunk at a time, as `get_blob` does.
async fn batch_fetch(
    State(state): State<AppState>,
    Path((user, ns)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (db, ns, batch) =
        open_batch(&state, &headers, user, ns, body, |b: &IdBatch| b.ids.len()).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        for id in batch.ids {
            let frame = |size, error| BlobFrame {
                id: id.clone(),
                size,
                error,
            };
            let found = match db.blob_open(&ns, &id) {
                Ok(found) => found,
                Err(e) => {
                    let e = ApiError::from(e);
                    let _ = tx.blocking_send(Ok(frame(0, Some(e.body())).line().into()));
                    continue;
                }
            };
            let sent = match found {
                None => {
                    let e = ApiError::NotFound(format!("no blob {ns}/{id}"));
                    tx.blocking_send(Ok(frame(0, Some(e.body())).line().into()))
                }
                Some((info, Stored::Inline(data))) => {
                    let mut out = frame(info.size, None).line();
                    out.extend_from_slice(&data);
                    tx.blocking_send(Ok(out.into()))
                }
                Some((info, Stored::File(path))) => {
                    // The frame is sent only once the file is open: a blob
                    // deleted meanwhile is a 404 frame, not a cut stream.
                    let file = match std::fs::File::open(&path) {
                        Ok(f) => f,
                        Err(_) => {
                            let e = ApiError::NotFound(format!(
                                "no blob {ns}/{id} (deleted meanwhile)"
                            ));
                            let _ = tx.blocking_send(Ok(frame(0, Some(e.body())).line().into()));
                            continue;
                        }
                    };
                    if tx
                        .blocking_send(Ok(frame(info.size, None).line().into()))
                        .is_err()
                    {
                        return;
                    }
                    let mut reader = file.take(info.size);
                    let mut left = info.size;
                    let mut result = Ok(());
                    while left > 0 {
                        let mut chunk = vec![0u8; READ_CHUNK.min(left as usize)];
                        if let Err(e) = reader.read_exact(&mut chunk) {
                            // Cut short: the client sees a broken frame.
                            let _ = tx.blocking_send(Err(e));
                            return;
                        }
                        left -= chunk.len() as u64;
                        result = tx.blocking_send(Ok(chunk.into()));
                        if result.is_err() {
                            break;
                        }
                    }
                    result
                }
            };
            // A closed channel: the client went away.
            if sent.is_err() {
                return;
            }
        }
    });
    let mut response = Response::new(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-syncbench-blobs"),
    );
    Ok(response)
}

/// Several small blobs stored in one request and one transaction: a body
/// of [`BlobFrame`]s and their bytes, each blob at most
/// `batch_blob_bytes` (larger ones go one by one, streamed), each stored
/// or refused (an existing id, the quota) on its own.
async fn batch_store(
    State(state): State<AppState>,
    Path((user, ns)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<BatchResults>), ApiError> {
    let limits = state.limits().clone();
    refuse_large(&headers, limits.max_batch_bytes)?;
    let db = authorize(&state, &headers, user).await?;
    let ns = namespace(ns)?;
    let bytes = axum::body::to_bytes(body, limits.max_batch_bytes as usize)
        .await
        .map_err(|e| crate::error::small_body_error(e, limits.max_batch_bytes as usize))?;
    let frames =
        BlobFrame::split(&bytes).map_err(|e| ApiError::BadRequest(format!("batch body: {e}")))?;
    check_items(&state, frames.len())?;
    let mut results: Vec<Option<ItemResult>> = vec![None; frames.len()];
    let (mut inline, mut files) = (Vec::new(), Vec::new());
    for (i, (frame, range)) in frames.into_iter().enumerate() {
        if frame.size > limits.batch_blob_bytes {
            let e = ApiError::BodyTooLarge {
                limit: limits.batch_blob_bytes,
            };
            results[i] = Some(item(frame.id, Err(e)));
        } else if frame.size <= INLINE_MAX {
            inline.push((i, frame.id, bytes.slice(range)));
        } else {
            files.push((i, frame.id, bytes.slice(range)));
        }
    }
    let quota = limits.quota_bytes;
    let tmp_dir = state.tmp_dir();
    let stored = blocking(move || {
        let mut out = Vec::new();
        // Small ones in their rows, one transaction.
        let n: u64 = inline.iter().map(|(_, _, b)| b.len() as u64).sum();
        let rows = inline
            .iter()
            .map(|(_, id, b)| (id.clone(), b.clone()))
            .collect();
        let committed = db.blob_commit_inline_many(&ns, rows, quota)?;
        METRICS.blob_written("inline", n);
        db.checkpoint_soon();
        out.extend(
            inline
                .iter()
                .map(|(i, id, _)| (*i, id.clone()))
                .zip(committed),
        );
        // Larger ones as files: written, then fsynced all at once (the
        // filesystem's journal commits concurrent fsyncs together, where
        // one after another each waits for the disk), then committed.
        let written: Vec<(usize, BlobId, Result<TempFile, ApiError>, u64)> = files
            .into_iter()
            .map(|(i, id, data)| {
                let tmp = crypto::random_hex(16)
                    .map_err(|e| ApiError::from(StoreError::from(e)))
                    .and_then(|name| {
                        let tmp = TempFile(tmp_dir.join(name));
                        std::fs::write(&tmp.0, &data)?;
                        Ok(tmp)
                    });
                (i, id, tmp, data.len() as u64)
            })
            .collect();
        let synced: Vec<Result<(), ApiError>> = std::thread::scope(|s| {
            let handles: Vec<_> = written
                .iter()
                .map(|(_, _, tmp, _)| {
                    s.spawn(move || -> Result<(), ApiError> {
                        if let Ok(t) = tmp {
                            std::fs::File::open(&t.0)?.sync_all()?;
                            METRICS.fsync("blob");
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(StoreError::Task("an fsync thread panicked".into()).into())
                    })
                })
                .collect()
        });
        for ((i, id, tmp, size), synced) in written.into_iter().zip(synced) {
            let result = tmp.and_then(|tmp| {
                synced?;
                let info = db.blob_commit(&ns, &id, &tmp.0, size, None, quota)?;
                METRICS.blob_written("file", size);
                drop(tmp);
                Ok(info)
            });
            out.push(((i, id), result));
        }
        Ok(out)
    })
    .await?;
    for ((i, id), r) in stored {
        results[i] = Some(item(id, r.map(Some)));
    }
    Ok((
        StatusCode::OK,
        Json(BatchResults {
            results: results
                .into_iter()
                .map(|r| r.expect("every item answered"))
                .collect(),
        }),
    ))
}

async fn get_mail_key(
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<Json<MailKey>, ApiError> {
    let db = authorize(&state, &headers, user).await?;
    blocking(move || {
        db.mail_key()?
            .ok_or_else(|| ApiError::NotFound("no mail key stored yet".into()))
    })
    .await
    .map(Json)
}

/// Stores the mail key once; a second one is refused with 412 (the
/// client then uses the stored one).
async fn put_mail_key(
    State(state): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let db = authorize(&state, &headers, user).await?;
    let bytes = axum::body::to_bytes(body, MAX_MAIL_KEY_BYTES)
        .await
        .map_err(|e| crate::error::small_body_error(e, MAX_MAIL_KEY_BYTES))?;
    let key: MailKey = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("mail key: {e}")))?;
    if !key.recipient.starts_with("age1") {
        return Err(ApiError::BadRequest(
            "mail key: the recipient must be an age X25519 recipient (age1…)".into(),
        ));
    }
    blocking(move || {
        if db.put_mail_key_if_absent(&key)? {
            Ok(StatusCode::CREATED)
        } else {
            Err(ApiError::PreconditionFailed(
                "a mail key is stored already".into(),
            ))
        }
    })
    .await
}

/// The services listener's state: the app and the hash of the one token
/// mail exchangers present.
#[derive(Clone)]
struct Services {
    app: AppState,
    token_hash: [u8; 32],
}

/// The services API, served on its own listener so that it can be firewalled
/// apart from the users' API: mail exchangers look up a user's public key
/// and deliver encrypted messages into the user's `incoming` namespace.
pub fn services_router(app: AppState, service_token: &str) -> Router {
    let state = Services {
        app,
        token_hash: crypto::token_hash(service_token),
    };
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(crate::metrics::render))
        .route("/v1/incoming/{user}/key", get(recipient))
        .route("/v1/incoming/{user}/{id}", put(deliver))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(state)
}

/// Checks the service token, then that the user exists: 401, 400, 404.
async fn service_user(
    s: &Services,
    headers: &HeaderMap,
    user: String,
) -> Result<Arc<UserDb>, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized(
            "missing `Authorization: Bearer <service token>` header",
        ))?;
    if !crypto::constant_time_eq(&crypto::token_hash(token), &s.token_hash) {
        return Err(ApiError::Unauthorized("unknown service token"));
    }
    let app = s.app.clone();
    blocking(move || {
        let user = UserId::new(user).map_err(|e| ApiError::BadRequest(format!("user id: {e}")))?;
        if !app.accounts().exists(&user)? {
            return Err(ApiError::UserNotFound(user.to_string()));
        }
        Ok(app.user_db(&user)?)
    })
    .await
}

async fn recipient(
    State(s): State<Services>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Recipient>, ApiError> {
    let db = service_user(&s, &headers, user).await?;
    let max_bytes = s.app.limits().max_incoming_bytes;
    blocking(move || {
        let key = db.mail_key()?.ok_or_else(|| {
            ApiError::NotFound(
                "the user has no mail key yet: no device has run `sync-client init`".into(),
            )
        })?;
        Ok(Recipient {
            recipient: key.recipient,
            max_bytes,
        })
    })
    .await
    .map(Json)
}

/// Stores an encrypted message as a `PENDING` blob in `incoming`. The
/// exchanger chooses the id; a repeated delivery of the same id is 409.
async fn deliver(
    State(s): State<Services>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<BlobInfo>), ApiError> {
    let limit = s.app.limits().max_incoming_bytes;
    if content_length(&headers).is_some_and(|n| n > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let db = service_user(&s, &headers, user).await?;
    let (ns, id) = ids(INCOMING.into(), id)?;
    let target = Target {
        ns,
        id,
        limit,
        flag: Some(BlobFlag::Pending),
    };
    let info = store(&s.app, db, target, &headers, body).await?;
    Ok((StatusCode::CREATED, Json(info)))
}
