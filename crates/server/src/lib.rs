//! `sync-server`: stores each user's encrypted documents and syncs them
//! between the user's devices. It only ever sees ciphertext.
//!
//! Entry points for tests and embedding: [`AppState::open`], [`router`],
//! and [`serve`] on a listener the caller has bound (port 0 in tests).

mod accounts;
mod api;
mod blob_api;
pub mod blob_io;
mod blobs;
mod db;
mod error;
mod group;
mod metrics;
mod request;
mod schema;
mod stall;
mod userdb;

pub use accounts::{Accounts, AddUserError, NewUser};
pub use blob_api::services_router;
pub use error::{ApiError, StoreError};
/// One user's store, public for the store benchmarks and for embedding.
pub use userdb::{Upload, UserDb};

use protocol::{Limits, UserId};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Everything a request handler needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    data_dir: PathBuf,
    limits: Limits,
    accounts: Accounts,
    users: Mutex<HashMap<UserId, Arc<UserDb>>>,
}

/// The API: the sync and blob endpoints, `/health`, and a 404 (as JSON,
/// like every error) for anything else.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .merge(api::routes())
        .merge(blob_api::routes())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(state)
}

impl AppState {
    /// Empties `tmp/` of the data directory: what an earlier run left there
    /// was never acknowledged. Only for whoever starts the serving
    /// processes, before they start: it would break uploads in flight.
    pub fn clean_tmp(data_dir: &Path) -> Result<(), StoreError> {
        let tmp = data_dir.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        Ok(std::fs::create_dir_all(&tmp)?)
    }

    /// Opens (creating if needed) the data directory: `accounts.sqlite`,
    /// `users/{user id}.sqlite`, `blobs/{user id}/{namespace}/{blob id}`,
    /// and `tmp/` for uploads in progress. Several processes may have it
    /// open at once (worker processes, `user add` next to a server).
    pub fn open(data_dir: &Path, limits: Limits) -> Result<Self, StoreError> {
        let accounts = Accounts::open(data_dir)?;
        std::fs::create_dir_all(data_dir.join("users"))?;
        std::fs::create_dir_all(data_dir.join("blobs"))?;
        std::fs::create_dir_all(data_dir.join("tmp"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_owned(),
                limits,
                accounts,
                users: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Where uploads stream to before they are renamed into place (same
    /// filesystem as `blobs/`, so the rename is atomic).
    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.inner.data_dir.join("tmp")
    }

    pub fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    /// Creates an account and its database.
    pub fn add_user(&self, name: &str) -> Result<NewUser, AddUserError> {
        let user = self.inner.accounts.add_user(name)?;
        self.user_db(&user.user_id)?;
        Ok(user)
    }

    /// The user's database if it is open already (never blocks).
    pub(crate) fn open_user_db(&self, user: &UserId) -> Option<Arc<UserDb>> {
        self.inner
            .users
            .lock()
            .expect("users lock")
            .get(user)
            .cloned()
    }

    /// The database of an existing user, opened once and then shared.
    /// Blocking: call it off the async runtime.
    pub(crate) fn user_db(&self, user: &UserId) -> Result<Arc<UserDb>, StoreError> {
        if let Some(db) = self.inner.users.lock().expect("users lock").get(user) {
            return Ok(db.clone());
        }
        // The id was validated (no path tricks) when it was parsed.
        let path = self
            .inner
            .data_dir
            .join("users")
            .join(format!("{user}.sqlite"));
        let blobs = self.inner.data_dir.join("blobs").join(user.as_str());
        let db = Arc::new(UserDb::open(path, blobs)?);
        let mut users = self.inner.users.lock().expect("users lock");
        Ok(users.entry(user.clone()).or_insert(db).clone())
    }
}

/// How long a connection may stay without a complete request head: a
/// client that connects and sends nothing, or trickles its headers, or
/// keeps an idle kept-alive connection, is disconnected after this.
pub const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Serves the user API on `listener` until `shutdown` completes, then
/// lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    idle_timeout: std::time::Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(state), idle_timeout, shutdown).await
}

/// Serves the services API (mail delivery, see [`services_router`]).
pub async fn serve_services(
    listener: tokio::net::TcpListener,
    state: AppState,
    service_token: &str,
    idle_timeout: std::time::Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(
        listener,
        services_router(state, service_token),
        idle_timeout,
        shutdown,
    )
    .await
}

/// The accept loop. Written on hyper-util rather than `axum::serve`, which
/// sets no timer and so cannot time out a connection that sends nothing.
async fn serve_router(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    idle_timeout: std::time::Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    // HTTP/1.1 only: hyper-util's auto-detecting builder reads the first
    // bytes (h1 or h2?) before any timer runs, so a silent client would
    // be waited for forever.
    let mut builder = hyper::server::conn::http1::Builder::new();
    // half_close: a client that sends its whole request and then shuts
    // down its write side still gets its answer (it was dropped unanswered).
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .half_close(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Bodies that stall end their request (see stall.rs).
    let router = router
        .layer(axum::middleware::from_fn(metrics::count_requests))
        .layer(axum::middleware::map_request(
            move |req: axum::extract::Request| async move {
                req.map(|b| axum::body::Body::new(stall::StallBody::new(b, idle_timeout)))
            },
        ));
    let service = hyper_util::service::TowerToHyperService::new(router);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_warning = None;
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors (or a connection reset
                    // before accept): not fatal. Idle connections time
                    // out and free descriptors; try again shortly, and
                    // say so once per second at most.
                    if last_warning.is_none_or(|t: std::time::Instant| t.elapsed().as_secs() >= 1) {
                        tracing::warn!("accept: {e}");
                        last_warning = Some(std::time::Instant::now());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Without TCP_NODELAY a response written in two parts waits for
        // the client's delayed ACK: 40 ms on every small request.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("TCP_NODELAY: {e}");
        }
        let tcp = stall::StallWrite::new(tcp, idle_timeout);
        let conn = builder.serve_connection(TokioIo::new(tcp), service.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
