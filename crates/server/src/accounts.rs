//! Accounts: user names, ids and hashed bearer tokens (`accounts.sqlite`).

use crate::db::Pool;
use crate::error::StoreError;
use protocol::UserId;
use rusqlite::{OptionalExtension, params};
use std::path::Path;

#[derive(Debug)]
pub struct Accounts {
    pool: Pool,
    /// Token hashes already authenticated, and their user. Tokens are never
    /// revoked or changed (there is no command for it), so a hit stays
    /// true; whoever adds revocation must clear the entry. Saves two
    /// SQLite queries and a thread handoff on every request.
    known: std::sync::RwLock<std::collections::HashMap<Vec<u8>, UserId>>,
}

/// A new account, as `sync-server user add` reports it.
#[derive(Debug, serde::Serialize)]
pub struct NewUser {
    pub name: String,
    pub user_id: UserId,
    /// Shown once; the server keeps only its hash.
    pub token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AddUserError {
    #[error("a user named {0:?} already exists")]
    NameTaken(String),
    #[error("user name {0:?} is empty or longer than 128 bytes")]
    BadName(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Accounts {
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        Ok(Self {
            pool: Pool::open(data_dir.join("accounts.sqlite"), crate::schema::ACCOUNTS)?,
            known: Default::default(),
        })
    }

    pub fn add_user(&self, name: &str) -> Result<NewUser, AddUserError> {
        if name.trim().is_empty() || name.len() > 128 {
            return Err(AddUserError::BadName(name.to_owned()));
        }
        let user_id = UserId::new(crypto::random_hex(8).map_err(StoreError::from)?)
            .expect("hex is a valid id");
        let token = crypto::random_hex(32).map_err(StoreError::from)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let inserted = self.pool.with(|c| {
            c.execute(
                "INSERT INTO users (id, name, token_hash, created_unix) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO NOTHING",
                params![user_id.as_str(), name, crypto::token_hash(&token), now],
            )
            .map_err(StoreError::from)
        })?;
        if inserted == 0 {
            return Err(AddUserError::NameTaken(name.to_owned()));
        }
        Ok(NewUser {
            name: name.to_owned(),
            user_id,
            token,
        })
    }

    /// The user a bearer token belongs to. The lookup is by the token's
    /// hash, then the stored hash is compared in constant time.
    pub fn authenticate(&self, token: &str) -> Result<Option<UserId>, StoreError> {
        if let Some(user) = self.authenticated(token) {
            return Ok(Some(user));
        }
        let hash = crypto::token_hash(token);
        let row: Option<(String, Vec<u8>)> = self.pool.with(|c| {
            c.prepare_cached("SELECT id, token_hash FROM users WHERE token_hash = ?1")?
                .query_row([&hash[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })?;
        let user = row
            .filter(|(_, stored)| crypto::constant_time_eq(stored, &hash))
            .and_then(|(id, _)| UserId::new(id).ok());
        if let Some(u) = &user {
            let mut known = self.known.write().expect("token cache lock");
            known.insert(hash.to_vec(), u.clone());
        }
        Ok(user)
    }

    /// The user of a token authenticated before, without touching the
    /// database (so without blocking).
    pub fn authenticated(&self, token: &str) -> Option<UserId> {
        let hash = crypto::token_hash(token);
        let known = self.known.read().expect("token cache lock");
        known.get(&hash[..]).cloned()
    }

    pub fn exists(&self, user: &UserId) -> Result<bool, StoreError> {
        Ok(self.pool.with(|c| {
            c.prepare_cached("SELECT 1 FROM users WHERE id = ?1")?
                .exists([user.as_str()])
        })?)
    }
}
