//! Revisions as vector clocks (`replica:counter|…`), as in u1db.

use crate::ids::{IdError, ReplicaId};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevError {
    #[error("revision is empty")]
    Empty,
    #[error("revision part {0:?} is not `replica:counter`")]
    BadPart(String),
    #[error("revision names replica {0:?} twice")]
    Duplicate(String),
    #[error("revision replica: {0}")]
    BadReplica(#[from] IdError),
    #[error("revision names more than {MAX_REPLICAS} replicas")]
    TooManyReplicas,
}

/// The most replicas one revision may name (a document edited on that
/// many devices): a bound on what parsing one revision may allocate.
pub const MAX_REPLICAS: usize = 1024;

/// How two revisions of one document relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    Equal,
    /// `self` has seen everything the other has, and more.
    Newer,
    /// The other has seen everything `self` has, and more.
    Older,
    /// Each has changes the other has not seen: a conflict.
    Concurrent,
}

/// A vector clock: for every replica that edited the document, how many
/// edits of it this revision includes. Counters are never zero.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Revision(BTreeMap<ReplicaId, u64>);

impl Revision {
    /// The revision after `replica` edits a document at revision `self`.
    pub fn incremented(&self, replica: &ReplicaId) -> Revision {
        let mut next = self.clone();
        *next.0.entry(replica.clone()).or_insert(0) += 1;
        next
    }

    /// The least revision that has seen both (component-wise maximum).
    pub fn merged(&self, other: &Revision) -> Revision {
        let mut out = self.clone();
        for (r, &c) in &other.0 {
            let e = out.0.entry(r.clone()).or_insert(0);
            *e = (*e).max(c);
        }
        out
    }

    pub fn compare(&self, other: &Revision) -> Causality {
        let mut self_ahead = false;
        let mut other_ahead = false;
        for (r, &c) in &self.0 {
            match c.cmp(&other.counter(r)) {
                Ordering::Greater => self_ahead = true,
                Ordering::Less => other_ahead = true,
                Ordering::Equal => {}
            }
        }
        for (r, &c) in &other.0 {
            if !self.0.contains_key(r) && c > 0 {
                other_ahead = true;
            }
        }
        match (self_ahead, other_ahead) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Newer,
            (false, true) => Causality::Older,
            (true, true) => Causality::Concurrent,
        }
    }

    pub fn counter(&self, replica: &ReplicaId) -> u64 {
        self.0.get(replica).copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::str::FromStr for Revision {
    type Err = RevError;
    fn from_str(s: &str) -> Result<Self, RevError> {
        if s.is_empty() {
            return Err(RevError::Empty);
        }
        // Counted before anything is allocated per part.
        if s.bytes().filter(|&b| b == b'|').count() >= MAX_REPLICAS {
            return Err(RevError::TooManyReplicas);
        }
        let mut map = BTreeMap::new();
        for part in s.split('|') {
            let (replica, counter) = part
                .rsplit_once(':')
                .ok_or_else(|| RevError::BadPart(part.to_owned()))?;
            let counter: u64 = counter
                .parse()
                .ok()
                .filter(|&c| c > 0)
                .ok_or_else(|| RevError::BadPart(part.to_owned()))?;
            let replica = ReplicaId::new(replica)?;
            if map.insert(replica, counter).is_some() {
                return Err(RevError::Duplicate(part.to_owned()));
            }
        }
        Ok(Revision(map))
    }
}

impl TryFrom<String> for Revision {
    type Error = RevError;
    fn try_from(s: String) -> Result<Self, RevError> {
        s.parse()
    }
}

impl From<Revision> for String {
    fn from(r: Revision) -> String {
        r.to_string()
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (r, c)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            write!(f, "{r}:{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(s: &str) -> Revision {
        s.parse().unwrap()
    }
    fn replica(s: &str) -> ReplicaId {
        ReplicaId::new(s).unwrap()
    }

    #[test]
    fn parse_and_display_are_canonical() {
        assert_eq!(rev("b:2|a:1").to_string(), "a:1|b:2");
        assert_eq!(rev("a:10").counter(&replica("a")), 10);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!("".parse::<Revision>(), Err(RevError::Empty));
        assert!(matches!("a".parse::<Revision>(), Err(RevError::BadPart(_))));
        assert!(matches!(
            "a:0".parse::<Revision>(),
            Err(RevError::BadPart(_))
        ));
        assert!(matches!(
            "a:-1".parse::<Revision>(),
            Err(RevError::BadPart(_))
        ));
        assert!(matches!(
            "a:1|a:2".parse::<Revision>(),
            Err(RevError::Duplicate(_))
        ));
        assert!(matches!(
            "a/b:1".parse::<Revision>(),
            Err(RevError::BadReplica(_))
        ));
    }

    #[test]
    fn causality() {
        assert_eq!(rev("a:1").compare(&rev("a:1")), Causality::Equal);
        assert_eq!(rev("a:2").compare(&rev("a:1")), Causality::Newer);
        assert_eq!(rev("a:1").compare(&rev("a:1|b:1")), Causality::Older);
        assert_eq!(
            rev("a:2|b:1").compare(&rev("a:1|b:2")),
            Causality::Concurrent
        );
        assert_eq!(rev("a:1").compare(&rev("b:1")), Causality::Concurrent);
        assert_eq!(Revision::default().compare(&rev("a:1")), Causality::Older);
    }

    #[test]
    fn increment_and_merge_resolve_a_conflict() {
        let (a, b) = (replica("a"), replica("b"));
        let base = Revision::default().incremented(&a);
        let on_a = base.incremented(&a);
        let on_b = base.incremented(&b);
        assert_eq!(on_a.compare(&on_b), Causality::Concurrent);
        let resolved = on_a.merged(&on_b).incremented(&a);
        assert_eq!(resolved.to_string(), "a:3|b:1");
        assert_eq!(resolved.compare(&on_a), Causality::Newer);
        assert_eq!(resolved.compare(&on_b), Causality::Newer);
    }
}
