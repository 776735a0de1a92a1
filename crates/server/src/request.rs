//! What every handler does first: authenticate and authorize the caller,
//! read the query string, and run database work off the async threads.

use crate::AppState;
use crate::error::{ApiError, StoreError};
use crate::userdb::UserDb;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderMap, header};
use protocol::UserId;
use std::sync::Arc;

/// Runs blocking work (SQLite) on tokio's blocking pool.
pub(crate) async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, ApiError> + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

/// Authenticates the bearer token and checks it may act on `user`:
/// 401 without a valid token, 400 for a malformed user id, 404 for an
/// unknown user, 403 for another user's path.
pub(crate) async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    user: String,
) -> Result<Arc<UserDb>, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .ok_or(ApiError::Unauthorized(
            "missing `Authorization: Bearer <token>` header",
        ))?;
    // The usual case, without a thread handoff: a token seen before, on
    // its own user's path, whose database is open.
    if let Some(owner) = state.accounts().authenticated(&token)
        && owner.as_str() == user
        && let Some(db) = state.open_user_db(&owner)
    {
        return Ok(db);
    }
    let state = state.clone();
    blocking(move || {
        let owner = state
            .accounts()
            .authenticate(&token)?
            .ok_or(ApiError::Unauthorized("unknown token"))?;
        let user = UserId::new(user).map_err(|e| ApiError::BadRequest(format!("user id: {e}")))?;
        if !state.accounts().exists(&user)? {
            return Err(ApiError::UserNotFound(user.to_string()));
        }
        if owner != user {
            return Err(ApiError::Forbidden);
        }
        Ok(state.user_db(&user)?)
    })
    .await
}

/// The query string, or a 400 naming what is wrong with it.
pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::BadRequest(format!("query string: {}", e.body_text())))
}
