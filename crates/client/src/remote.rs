//! The HTTP side of the client: one method per server endpoint.

use crate::ClientError;
use protocol::{
    BlobId, BlobInfo, BlobList, BlobQuery, ErrorBody, ErrorCode, FlagChange, Limits, MailKey,
    Namespace, ReplicaId, SendSummary, SyncInfo, UserId,
};
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Remote {
    http: Client,
    base: String,
    user: UserId,
    token: String,
}

impl Remote {
    pub fn new(server: &str, user: UserId, token: String) -> Result<Self, ClientError> {
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Large syncs stream for a long time; a hung server still ends.
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(ClientError::Transport)?;
        Ok(Self {
            http,
            base: server.trim_end_matches('/').to_owned(),
            user,
            token,
        })
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v1/users/{}/{tail}", self.base, self.user)
    }

    pub fn config(&self) -> Result<Limits, ClientError> {
        let resp = self.http.get(format!("{}/v1/config", self.base)).send();
        Ok(check(resp)?.json()?)
    }

    pub fn info(&self, replica: &ReplicaId, generation: u64) -> Result<SyncInfo, ClientError> {
        let resp = self
            .http
            .get(self.url("sync/info"))
            .bearer_auth(&self.token)
            .query(&[
                ("replica", replica.as_str()),
                ("generation", &generation.to_string()),
            ])
            .send();
        Ok(check(resp)?.json()?)
    }

    pub fn send(&self, body: Vec<u8>) -> Result<SendSummary, ClientError> {
        let resp = self
            .http
            .post(self.url("sync/send"))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, protocol::NDJSON)
            .body(body)
            .send();
        Ok(check(resp)?.json()?)
    }

    /// The streamed body of changes since `since`; read it with a
    /// `protocol::LineSplitter`.
    pub fn changes(&self, since: u64, replica: &ReplicaId) -> Result<Response, ClientError> {
        let resp = self
            .http
            .get(self.url("sync/changes"))
            .bearer_auth(&self.token)
            .query(&[
                ("since", since.to_string().as_str()),
                ("replica", replica.as_str()),
            ])
            .send();
        check(resp)
    }

    pub fn secret(&self) -> Result<Option<Vec<u8>>, ClientError> {
        let resp = self
            .http
            .get(self.url("secret"))
            .bearer_auth(&self.token)
            .send()?;
        if resp.status() == StatusCode::NOT_FOUND {
            let body: Option<ErrorBody> = resp.json().ok();
            if body.is_some_and(|b| b.code == protocol::ErrorCode::NotFound) {
                return Ok(None);
            }
            return Err(ClientError::Protocol(
                "GET secret: 404 without an error body".into(),
            ));
        }
        Ok(Some(check(Ok(resp))?.bytes()?.to_vec()))
    }

    /// Stores the sealed secret unless one exists; `false` if one did.
    pub fn put_secret_if_absent(&self, sealed: Vec<u8>) -> Result<bool, ClientError> {
        let resp = self
            .http
            .put(self.url("secret"))
            .bearer_auth(&self.token)
            .header(reqwest::header::IF_NONE_MATCH, "*")
            .body(sealed)
            .send()?;
        if resp.status() == StatusCode::PRECONDITION_FAILED {
            return Ok(false);
        }
        check(Ok(resp))?;
        Ok(true)
    }

    fn blob_url(&self, ns: &Namespace, id: &BlobId) -> String {
        self.url(&format!("blobs/{ns}/{id}"))
    }

    /// Uploads a blob of `len` bytes read from `body` (streamed, never
    /// held whole).
    pub fn put_blob(
        &self,
        ns: &Namespace,
        id: &BlobId,
        body: impl std::io::Read + Send + 'static,
        len: u64,
    ) -> Result<BlobInfo, ClientError> {
        let resp = self
            .http
            .put(self.blob_url(ns, id))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::blocking::Body::sized(body, len))
            .send();
        Ok(check(resp)?.json()?)
    }

    /// The blob's bytes as a streamed response (read it like a file).
    pub fn get_blob(&self, ns: &Namespace, id: &BlobId) -> Result<Response, ClientError> {
        let resp = self
            .http
            .get(self.blob_url(ns, id))
            .bearer_auth(&self.token)
            .send();
        check(resp)
    }

    pub fn list_blobs(&self, q: &BlobQuery) -> Result<BlobList, ClientError> {
        let resp = self
            .http
            .get(self.url("blobs"))
            .bearer_auth(&self.token)
            .query(q)
            .send();
        Ok(check(resp)?.json()?)
    }

    /// Sets a blob's flag; with `expect`, only if that is its flag now
    /// (otherwise an `Http` error with code `PreconditionFailed`).
    pub fn flag_blob(
        &self,
        ns: &Namespace,
        id: &BlobId,
        change: &FlagChange,
    ) -> Result<BlobInfo, ClientError> {
        let resp = self
            .http
            .post(format!("{}/flag", self.blob_url(ns, id)))
            .bearer_auth(&self.token)
            .json(change)
            .send();
        Ok(check(resp)?.json()?)
    }

    /// Deletes a blob; `false` if there was none.
    pub fn delete_blob(&self, ns: &Namespace, id: &BlobId) -> Result<bool, ClientError> {
        let resp = self
            .http
            .delete(self.blob_url(ns, id))
            .bearer_auth(&self.token)
            .send();
        match check(resp) {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn mail_key(&self) -> Result<Option<MailKey>, ClientError> {
        let resp = self
            .http
            .get(self.url("mailkey"))
            .bearer_auth(&self.token)
            .send();
        match check(resp) {
            Ok(r) => Ok(Some(r.json()?)),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores the mail key unless one exists; `false` if one did.
    pub fn put_mail_key_if_absent(&self, key: &MailKey) -> Result<bool, ClientError> {
        let resp = self
            .http
            .put(self.url("mailkey"))
            .bearer_auth(&self.token)
            .json(key)
            .send();
        match check(resp) {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some(ErrorCode::PreconditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Turns a non-success answer into `ClientError::Http` with the server's
/// error code and message.
fn check(resp: reqwest::Result<Response>) -> Result<Response, ClientError> {
    let resp = resp?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let url = resp.url().path().to_owned();
    let text = resp.text().unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(b) => (Some(b.code), b.message),
        Err(_) => (None, text),
    };
    Err(ClientError::Http {
        status: status.as_u16(),
        code,
        message,
        url,
    })
}
