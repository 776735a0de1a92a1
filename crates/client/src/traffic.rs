//! What this process exchanged with sync servers, by kind of request:
//! requests, body bytes each way, and requests sent again after a lost
//! connection. Counted where the requests are made (`remote.rs`), so the
//! figures are exact whatever the machine; the workload driver reports
//! them per phase, where an extra round trip per document shows as a step
//! in `requests` at the commit that added it.
//!
//! Process-wide, like a metrics registry: every device of a driver talks
//! through its own `Remote`, and the driver wants their sum.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counts of one kind of request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCounts {
    pub requests: u64,
    /// Request body bytes (headers excluded).
    pub sent_bytes: u64,
    /// Response body bytes the caller read (headers excluded).
    pub received_bytes: u64,
}

/// A snapshot of the process's traffic so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    pub by_kind: BTreeMap<&'static str, KindCounts>,
    /// Requests sent again by the retry policy (connection lost before an
    /// answer); not counted in `requests`.
    pub retries: u64,
}

impl Traffic {
    pub fn requests(&self) -> u64 {
        self.by_kind.values().map(|k| k.requests).sum()
    }

    pub fn sent_bytes(&self) -> u64 {
        self.by_kind.values().map(|k| k.sent_bytes).sum()
    }

    pub fn received_bytes(&self) -> u64 {
        self.by_kind.values().map(|k| k.received_bytes).sum()
    }

    /// What happened since `earlier` (a snapshot of the same process): every
    /// kind of request made so far, zero where none was made in between.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        let by_kind = self
            .by_kind
            .iter()
            .map(|(kind, now)| {
                let then = earlier.by_kind.get(kind).copied().unwrap_or_default();
                let d = KindCounts {
                    requests: now.requests - then.requests,
                    sent_bytes: now.sent_bytes - then.sent_bytes,
                    received_bytes: now.received_bytes - then.received_bytes,
                };
                (*kind, d)
            })
            .collect();
        Traffic {
            by_kind,
            retries: self.retries - earlier.retries,
        }
    }
}

static TRAFFIC: Mutex<Traffic> = Mutex::new(Traffic {
    by_kind: BTreeMap::new(),
    retries: 0,
});

fn with(f: impl FnOnce(&mut Traffic)) {
    // A panic while counting leaves plain numbers: still usable.
    let mut t = TRAFFIC.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut t);
}

/// The process's traffic so far.
pub fn snapshot() -> Traffic {
    TRAFFIC.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

pub(crate) fn request(kind: &'static str, body_bytes: u64) {
    with(|t| {
        let k = t.by_kind.entry(kind).or_default();
        k.requests += 1;
        k.sent_bytes += body_bytes;
    });
}

/// Body bytes of a request whose length was not known when it started.
pub(crate) fn sent(kind: &'static str, bytes: u64) {
    with(|t| t.by_kind.entry(kind).or_default().sent_bytes += bytes);
}

pub(crate) fn received(kind: &'static str, bytes: u64) {
    with(|t| t.by_kind.entry(kind).or_default().received_bytes += bytes);
}

pub(crate) fn retried() {
    with(|t| t.retries += 1);
}

/// A response body that counts what is read from it.
#[derive(Debug)]
pub struct Counted<R> {
    inner: R,
    kind: &'static str,
}

impl<R> Counted<R> {
    pub(crate) fn new(inner: R, kind: &'static str) -> Self {
        Self { inner, kind }
    }
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        received(self.kind, n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_the_difference_by_kind() {
        let mut a = Traffic::default();
        a.by_kind.insert(
            "info",
            KindCounts {
                requests: 2,
                sent_bytes: 0,
                received_bytes: 100,
            },
        );
        let mut b = a.clone();
        b.by_kind.get_mut("info").unwrap().requests = 5;
        b.by_kind.insert(
            "send",
            KindCounts {
                requests: 1,
                sent_bytes: 7,
                received_bytes: 3,
            },
        );
        b.retries = 2;
        let d = b.since(&a);
        assert_eq!(d.by_kind["info"].requests, 3);
        assert_eq!(d.by_kind["info"].received_bytes, 0);
        assert_eq!(d.requests(), 4);
        assert_eq!(d.sent_bytes(), 7);
        assert_eq!(d.received_bytes(), 3);
        assert_eq!(d.retries, 2);
        // Kinds without traffic in between are zeros.
        assert_eq!(a.since(&a).by_kind["info"], KindCounts::default());
    }
}
