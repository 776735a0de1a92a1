//! The HTTP side of the client: one method per server endpoint.

use crate::{ClientError, traffic};
use protocol::{
    BatchResults, BlobFrame, BlobId, BlobInfo, BlobList, BlobQuery, ErrorBody, ErrorCode,
    FlagBatch, FlagChange, FlagItem, FramedBlobs, IdBatch, ItemResult, Limits, MailKey, Namespace,
    ReplicaId, SendSummary, SyncInfo, UserId,
};
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Remote {
    http: Client,
    /// Blob uploads only, created on first use: see [`Remote::put_blob`].
    streaming: std::sync::Arc<std::sync::OnceLock<Streaming>>,
    base: String,
    user: UserId,
    token: String,
}

/// An async client on a runtime of its own, for request bodies streamed
/// in large chunks.
#[derive(Debug)]
struct Streaming {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

/// A blob being downloaded, as a reader.
pub struct BlobDownload<'a> {
    runtime: &'a tokio::runtime::Runtime,
    stream: std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'a>,
    >,
    chunk: bytes::Bytes,
}

impl std::fmt::Debug for BlobDownload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobDownload(..)")
    }
}

impl std::io::Read for BlobDownload<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use tokio_stream::StreamExt;
        while self.chunk.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                Some(Ok(c)) => {
                    traffic::received("blob_get", c.len() as u64);
                    self.chunk = c;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// Size of the chunks a blob upload is sent in.
const UPLOAD_CHUNK: usize = 1 << 20;

/// Reads until `buf` is full or the reader ends.
fn read_full(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Remote {
    pub fn new(server: &str, user: UserId, token: String) -> Result<Self, ClientError> {
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Large syncs stream for a long time; a hung server still ends.
            .timeout(Duration::from_secs(600))
            .retry(retry_policy(server))
            .build()
            .map_err(ClientError::Transport)?;
        Ok(Self {
            http,
            streaming: Default::default(),
            base: server.trim_end_matches('/').to_owned(),
            user,
            token,
        })
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v1/users/{}/{tail}", self.base, self.user)
    }

    pub fn config(&self) -> Result<Limits, ClientError> {
        traffic::request("config", 0);
        let resp = self.http.get(format!("{}/v1/config", self.base)).send();
        json("config", check("config", resp)?)
    }

    pub fn info(&self, replica: &ReplicaId, generation: u64) -> Result<SyncInfo, ClientError> {
        traffic::request("info", 0);
        let resp = self
            .http
            .get(self.url("sync/info"))
            .bearer_auth(&self.token)
            .query(&[
                ("replica", replica.as_str()),
                ("generation", &generation.to_string()),
            ])
            .send();
        json("info", check("info", resp)?)
    }

    pub fn send(&self, body: Vec<u8>) -> Result<SendSummary, ClientError> {
        traffic::request("send", body.len() as u64);
        let resp = self
            .http
            .post(self.url("sync/send"))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, protocol::NDJSON)
            .body(body)
            .send();
        json("send", check("send", resp)?)
    }

    /// The streamed body of changes since `since`; read it with a
    /// `protocol::LineSplitter`.
    pub fn changes(
        &self,
        since: u64,
        replica: &ReplicaId,
    ) -> Result<traffic::Counted<Response>, ClientError> {
        traffic::request("changes", 0);
        let resp = self
            .http
            .get(self.url("sync/changes"))
            .bearer_auth(&self.token)
            .query(&[
                ("since", since.to_string().as_str()),
                ("replica", replica.as_str()),
            ])
            .send();
        Ok(traffic::Counted::new(check("changes", resp)?, "changes"))
    }

    pub fn secret(&self) -> Result<Option<Vec<u8>>, ClientError> {
        traffic::request("secret_get", 0);
        let resp = self
            .http
            .get(self.url("secret"))
            .bearer_auth(&self.token)
            .send()?;
        if resp.status() == StatusCode::NOT_FOUND {
            let text = resp.bytes().unwrap_or_default();
            traffic::received("secret_get", text.len() as u64);
            let body: Option<ErrorBody> = serde_json::from_slice(&text).ok();
            if body.is_some_and(|b| b.code == protocol::ErrorCode::NotFound) {
                return Ok(None);
            }
            return Err(ClientError::Protocol(
                "GET secret: 404 without an error body".into(),
            ));
        }
        let body = check("secret_get", Ok(resp))?.bytes()?;
        traffic::received("secret_get", body.len() as u64);
        Ok(Some(body.to_vec()))
    }

    /// Stores the sealed secret unless one exists; `false` if one did.
    pub fn put_secret_if_absent(&self, sealed: Vec<u8>) -> Result<bool, ClientError> {
        traffic::request("secret_put", sealed.len() as u64);
        let resp = self
            .http
            .put(self.url("secret"))
            .bearer_auth(&self.token)
            .header(reqwest::header::IF_NONE_MATCH, "*")
            .body(sealed)
            .send()?;
        if resp.status() == StatusCode::PRECONDITION_FAILED {
            drain("secret_put", resp);
            return Ok(false);
        }
        drain("secret_put", check("secret_put", Ok(resp))?);
        Ok(true)
    }

    fn blob_url(&self, ns: &Namespace, id: &BlobId) -> String {
        self.url(&format!("blobs/{ns}/{id}"))
    }

    fn streaming(&self) -> Result<&Streaming, ClientError> {
        if let Some(s) = self.streaming.get() {
            return Ok(s);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClientError::Io)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(3600))
            .retry(retry_policy(&self.base))
            .build()?;
        Ok(self.streaming.get_or_init(|| Streaming { runtime, http }))
    }

    /// Uploads a blob of `len` bytes read from `body`, streamed: a thread
    /// reads (and so encrypts) the next 1 MiB chunk while the previous one
    /// is sent. The blocking client's own body pump moves 8 KiB at a time
    /// with a thread handoff each, which cost 10x the CPU (measured with
    /// `syncbench run blobs`).
    pub fn put_blob(
        &self,
        ns: &Namespace,
        id: &BlobId,
        body: impl std::io::Read + Send + 'static,
        len: Option<u64>,
    ) -> Result<BlobInfo, ClientError> {
        let streaming = self.streaming()?;
        traffic::request("blob_put", len.unwrap_or(0));
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(2);
        let producer = std::thread::spawn(move || {
            let mut body = body;
            loop {
                let mut chunk = vec![0u8; UPLOAD_CHUNK];
                let item = match read_full(&mut body, &mut chunk) {
                    Ok(0) => return,
                    Ok(n) => {
                        if len.is_none() {
                            traffic::sent("blob_put", n as u64);
                        }
                        chunk.truncate(n);
                        Ok(chunk)
                    }
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
            }
        });
        let mut request = streaming
            .http
            .put(self.blob_url(ns, id))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream");
        // Without a length (a body produced as it goes) the body is sent
        // chunked, and the server enforces its limit as it reads.
        if let Some(len) = len {
            request = request.header(reqwest::header::CONTENT_LENGTH, len);
        }
        let request = request.body(reqwest::Body::wrap_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        let result = streaming.runtime.block_on(async {
            let resp = request.send().await?;
            let status = resp.status();
            let url = resp.url().path().to_owned();
            let body = resp.bytes().await?;
            traffic::received("blob_put", body.len() as u64);
            if status.is_success() {
                Ok(serde_json::from_slice::<BlobInfo>(&body).map_err(bad_json)?)
            } else {
                Err(http_error(
                    status,
                    url,
                    String::from_utf8_lossy(&body).into(),
                ))
            }
        });
        // The producer ends once its channel closes, whatever happened.
        let _ = producer.join();
        result
    }

    /// The blob's bytes, streamed: read them like a file. Chunks are
    /// pulled on the calling thread (no handoff to another thread per
    /// chunk, unlike the blocking client's response).
    pub fn get_blob(&self, ns: &Namespace, id: &BlobId) -> Result<BlobDownload<'_>, ClientError> {
        let streaming = self.streaming()?;
        traffic::request("blob_get", 0);
        let request = streaming
            .http
            .get(self.blob_url(ns, id))
            .bearer_auth(&self.token);
        let stream = streaming.runtime.block_on(async {
            let resp = request.send().await?;
            let status = resp.status();
            if !status.is_success() {
                let url = resp.url().path().to_owned();
                let text = resp.text().await.unwrap_or_default();
                traffic::received("blob_get", text.len() as u64);
                return Err(http_error(status, url, text));
            }
            Ok(resp.bytes_stream())
        })?;
        Ok(BlobDownload {
            runtime: &streaming.runtime,
            stream: Box::pin(stream),
            chunk: Default::default(),
        })
    }

    pub fn list_blobs(&self, q: &BlobQuery) -> Result<BlobList, ClientError> {
        traffic::request("blob_list", 0);
        let resp = self
            .http
            .get(self.url("blobs"))
            .bearer_auth(&self.token)
            .query(q)
            .send();
        json("blob_list", check("blob_list", resp)?)
    }

    /// Sets a blob's flag; with `expect`, only if that is its flag now
    /// (otherwise an `Http` error with code `PreconditionFailed`).
    pub fn flag_blob(
        &self,
        ns: &Namespace,
        id: &BlobId,
        change: &FlagChange,
    ) -> Result<BlobInfo, ClientError> {
        let body = serde_json::to_vec(change).map_err(bad_json)?;
        traffic::request("blob_flag", body.len() as u64);
        let resp = self
            .http
            .post(format!("{}/flag", self.blob_url(ns, id)))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send();
        json("blob_flag", check("blob_flag", resp)?)
    }

    /// Deletes a blob; `false` if there was none.
    pub fn delete_blob(&self, ns: &Namespace, id: &BlobId) -> Result<bool, ClientError> {
        traffic::request("blob_delete", 0);
        let resp = self
            .http
            .delete(self.blob_url(ns, id))
            .bearer_auth(&self.token)
            .send();
        match check("blob_delete", resp) {
            Ok(r) => {
                drain("blob_delete", r);
                Ok(true)
            }
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn batch_url(&self, ns: &Namespace, op: &str) -> String {
        self.url(&format!("batch/{ns}/{op}"))
    }

    /// A batch request with a JSON body; the per-item results, in order.
    fn batch_json(
        &self,
        kind: &'static str,
        url: String,
        body: Vec<u8>,
    ) -> Result<Vec<ItemResult>, ClientError> {
        traffic::request(kind, body.len() as u64);
        let resp = self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send();
        let answer: BatchResults = json(kind, check(kind, resp)?)?;
        Ok(answer.results)
    }

    /// Several flag changes in one request (at most
    /// `Limits::max_batch_items`), each conditional and answered on its own.
    pub fn flag_blobs(
        &self,
        ns: &Namespace,
        changes: Vec<FlagItem>,
    ) -> Result<Vec<ItemResult>, ClientError> {
        let body = serde_json::to_vec(&FlagBatch { changes }).map_err(bad_json)?;
        self.batch_json("blob_flags", self.batch_url(ns, "flags"), body)
    }

    /// Several blobs deleted in one request; a missing one has a
    /// `NotFound` error.
    pub fn delete_blobs(
        &self,
        ns: &Namespace,
        ids: Vec<BlobId>,
    ) -> Result<Vec<ItemResult>, ClientError> {
        let body = serde_json::to_vec(&IdBatch { ids }).map_err(bad_json)?;
        self.batch_json("blob_deletes", self.batch_url(ns, "delete"), body)
    }

    /// Several (small) blobs in one answer, whole: each its frame and
    /// bytes (a missing one: its frame's error and no bytes).
    pub fn fetch_blobs(
        &self,
        ns: &Namespace,
        ids: Vec<BlobId>,
    ) -> Result<Vec<(BlobFrame, bytes::Bytes)>, ClientError> {
        let body = serde_json::to_vec(&IdBatch { ids }).map_err(bad_json)?;
        traffic::request("blob_fetch", body.len() as u64);
        let resp = self
            .http
            .post(self.batch_url(ns, "fetch"))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send();
        let bytes = check("blob_fetch", resp)?.bytes()?;
        traffic::received("blob_fetch", bytes.len() as u64);
        let frames = BlobFrame::split(&bytes).map_err(|e| {
            ClientError::Protocol(format!("the server's batch of blobs is broken: {e}"))
        })?;
        // Views into the one body, not copies.
        Ok(frames
            .into_iter()
            .map(|(f, r)| (f, bytes.slice(r)))
            .collect())
    }

    /// Several small blobs (each at most `Limits::batch_blob_bytes`, in
    /// all at most `max_batch_bytes`) stored in one request, each stored
    /// or refused on its own.
    pub fn store_blobs(
        &self,
        ns: &Namespace,
        blobs: FramedBlobs,
    ) -> Result<Vec<ItemResult>, ClientError> {
        let body = blobs.into_body();
        traffic::request("blob_store", body.len() as u64);
        let resp = self
            .http
            .post(self.batch_url(ns, "store"))
            .bearer_auth(&self.token)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-syncbench-blobs",
            )
            .body(body)
            .send();
        let answer: BatchResults = json("blob_store", check("blob_store", resp)?)?;
        Ok(answer.results)
    }

    pub fn mail_key(&self) -> Result<Option<MailKey>, ClientError> {
        traffic::request("mailkey_get", 0);
        let resp = self
            .http
            .get(self.url("mailkey"))
            .bearer_auth(&self.token)
            .send();
        match check("mailkey_get", resp) {
            Ok(r) => Ok(Some(json("mailkey_get", r)?)),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores the mail key unless one exists; `false` if one did.
    pub fn put_mail_key_if_absent(&self, key: &MailKey) -> Result<bool, ClientError> {
        let body = serde_json::to_vec(key).map_err(bad_json)?;
        traffic::request("mailkey_put", body.len() as u64);
        let resp = self
            .http
            .put(self.url("mailkey"))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send();
        match check("mailkey_put", resp) {
            Ok(r) => {
                drain("mailkey_put", r);
                Ok(true)
            }
            Err(e) if e.code() == Some(ErrorCode::PreconditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Requests to our server that died on the connection before any answer
/// are sent again (at most twice, within reqwest's budget of 20% extra
/// requests): a worker process that was killed, or a kept-alive connection
/// the server closed just as it was reused. Every endpoint is safe to
/// repeat: an upload already applied is a no-op, a blob stored is a 409, a
/// secret or key stored is a 412. Streamed bodies cannot be replayed and are
/// never retried (reqwest cannot clone them).
fn retry_policy(server: &str) -> reqwest::retry::Builder {
    let host = reqwest::Url::parse(server)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    reqwest::retry::for_host(host).classify_fn(|rr| {
        if rr.error().is_some_and(is_connection_lost) {
            traffic::retried();
            rr.retryable()
        } else {
            rr.success()
        }
    })
}

/// True when `e` (or what caused it) says the connection failed or was
/// closed without an answer, as opposed to a timeout or a bad answer.
pub fn is_connection_lost(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::*;
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | BrokenPipe
                    | UnexpectedEof
            )
        {
            return true;
        }
        if c.downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_incomplete_message() || h.is_canceled())
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Turns a non-success answer into `ClientError::Http` with the server's
/// error code and message.
fn check(kind: &'static str, resp: reqwest::Result<Response>) -> Result<Response, ClientError> {
    let resp = resp?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let url = resp.url().path().to_owned();
    let text = resp.text().unwrap_or_default();
    traffic::received(kind, text.len() as u64);
    Err(http_error(status, url, text))
}

/// A JSON answer's body, counted, then parsed.
fn json<T: serde::de::DeserializeOwned>(
    kind: &'static str,
    resp: Response,
) -> Result<T, ClientError> {
    let body = resp.bytes()?;
    traffic::received(kind, body.len() as u64);
    serde_json::from_slice(&body).map_err(bad_json)
}

/// Reads (and counts) an answer whose body the caller does not need, so
/// its bytes are in the traffic and its connection can be reused.
fn drain(kind: &'static str, resp: Response) {
    if let Ok(body) = resp.bytes() {
        traffic::received(kind, body.len() as u64);
    }
}

fn bad_json(e: serde_json::Error) -> ClientError {
    ClientError::Protocol(format!("the server's answer is not the expected JSON: {e}"))
}

/// `ClientError::Http` from an error answer's status and body.
fn http_error(status: StatusCode, url: String, text: String) -> ClientError {
    let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(b) => (Some(b.code), b.message),
        Err(_) => (None, text),
    };
    ClientError::Http {
        status: status.as_u16(),
        code,
        message,
        url,
    }
}
