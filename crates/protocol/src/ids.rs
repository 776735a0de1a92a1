use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest id accepted anywhere (documents, users, replicas).
pub const MAX_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("id is empty")]
    Empty,
    #[error("id is {0} bytes long, at most {MAX_ID_LEN} are allowed")]
    TooLong(usize),
    #[error("id contains {0:?}: only A-Z a-z 0-9 . _ - are allowed")]
    BadChar(char),
    #[error("id {0:?} is reserved")]
    Reserved(String),
}

/// Checks the one id syntax the whole system uses: `[A-Za-z0-9._-]{1,128}`,
/// minus `.` and `..`, so an id can never name a parent directory even if a
/// later change uses it in a path.
pub fn validate_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(IdError::BadChar(c));
    }
    if s == "." || s == ".." {
        return Err(IdError::Reserved(s.to_owned()));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate_id(&s)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A document's id, chosen by the client.
    DocId
);
id_type!(
    /// A user's id, chosen by the server when the account is created.
    UserId
);
id_type!(
    /// A database replica (one per device, one per server database).
    ReplicaId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["a", "A-z_0.9", "x".repeat(128).as_str(), "..a", "a.."] {
            assert_eq!(validate_id(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_path_tricks_and_junk() {
        assert_eq!(validate_id(""), Err(IdError::Empty));
        assert_eq!(validate_id(&"x".repeat(129)), Err(IdError::TooLong(129)));
        assert_eq!(validate_id("a/b"), Err(IdError::BadChar('/')));
        assert_eq!(validate_id("a\\b"), Err(IdError::BadChar('\\')));
        assert_eq!(validate_id("é"), Err(IdError::BadChar('é')));
        assert_eq!(validate_id("a:1"), Err(IdError::BadChar(':')));
        assert!(matches!(validate_id(".."), Err(IdError::Reserved(_))));
        assert!(matches!(validate_id("."), Err(IdError::Reserved(_))));
    }

    #[test]
    fn serde_validates() {
        let e = serde_json::from_str::<DocId>("\"../etc\"").unwrap_err();
        assert!(e.to_string().contains("'/'"), "{e}");
        let id: DocId = serde_json::from_str("\"inbox.1\"").unwrap();
        assert_eq!(id.as_str(), "inbox.1");
    }
}
id_type!(
    /// A blob namespace of one user (e.g. `mail`, `incoming`): one
    /// directory level, so the same rules as every id apply.
    Namespace
);
id_type!(
    /// A blob's id within its namespace, chosen by whoever uploads it.
    BlobId
);
