//! The HTTP side of the client: one method per server endpoint.

use crate::ClientError;
use protocol::{ErrorBody, Limits, ReplicaId, SendSummary, SyncInfo, UserId};
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
