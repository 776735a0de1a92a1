//! Blobs: encrypted content stored apart from documents, put and fetched
//! whole or by byte range, listed with filters, and flagged through a
//! processing life cycle (incoming mail: `PENDING` → `PROCESSING` →
//! `PROCESSED`, or `FAILED`).

use crate::{BlobId, Namespace};
use serde::{Deserialize, Serialize};

/// The namespace the mail exchanger delivers into.
pub const INCOMING: &str = "incoming";

/// Where a blob is in its processing life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BlobFlag {
    Pending,
    Processing,
    Processed,
    Failed,
}

impl BlobFlag {
    pub const ALL: [BlobFlag; 4] = [
        BlobFlag::Pending,
        BlobFlag::Processing,
        BlobFlag::Processed,
        BlobFlag::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BlobFlag::Pending => "PENDING",
            BlobFlag::Processing => "PROCESSING",
            BlobFlag::Processed => "PROCESSED",
            BlobFlag::Failed => "FAILED",
        }
    }
}

impl std::fmt::Display for BlobFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BlobFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        BlobFlag::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("{s:?} is not a flag: use PENDING, PROCESSING, PROCESSED or FAILED")
            })
    }
}

/// One stored blob as listings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    pub namespace: Namespace,
    pub id: BlobId,
    /// Stored (encrypted) size in bytes.
    pub size: u64,
    pub flag: Option<BlobFlag>,
    /// When it was stored, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When its flag last changed (or it was stored).
    pub flagged_ms: i64,
}

/// Sort order of a listing, by the time blobs were stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    #[default]
    Oldest,
    Newest,
}

/// Query string of `GET /v1/users/{user}/blobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobQuery {
    pub namespace: Option<Namespace>,
    pub flag: Option<BlobFlag>,
    #[serde(default)]
    pub order: Order,
    /// At most this many blobs (the server caps it at [`MAX_LIST`]).
    pub limit: Option<u32>,
    /// Only count the matching blobs; `blobs` comes back empty.
    #[serde(default)]
    pub count_only: bool,
}

/// Most blobs one listing returns.
pub const MAX_LIST: u32 = 10_000;

/// Answer of a listing: the matching count, and the blobs unless only the
/// count was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobList {
    pub count: u64,
    pub blobs: Vec<BlobInfo>,
}

/// Body of `POST …/blobs/{namespace}/{id}/flag`: set `flag`, only if the
/// current flag is `expect` when that is given (412 otherwise). This is
/// how a device reserves an incoming message that another device may be
/// about to take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagChange {
    pub flag: BlobFlag,
    #[serde(default)]
    pub expect: Option<BlobFlag>,
}

/// One change of a batch (`POST …/blobs/{namespace}/flags`): as
/// [`FlagChange`], for the blob `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagItem {
    pub id: BlobId,
    pub flag: BlobFlag,
    #[serde(default)]
    pub expect: Option<BlobFlag>,
}

/// Body of `POST …/blobs/{namespace}/flags`: up to
/// `Limits::max_batch_items` changes, each conditional on its own and
/// answered on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagBatch {
    pub changes: Vec<FlagItem>,
}

/// Body of `POST …/blobs/{namespace}/fetch` and `…/delete`: up to
/// `Limits::max_batch_items` blob ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdBatch {
    pub ids: Vec<BlobId>,
}

/// What became of one item of a batch: its blob as stored now, or the
/// error a request for it alone would have had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    pub id: BlobId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<BlobInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::ErrorBody>,
}

/// Answer of a batch: one result per item, in the request's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResults {
    pub results: Vec<ItemResult>,
}

/// In the body of `POST …/batch/{namespace}/store` (several small blobs
/// stored at once) and of the answer to `…/batch/{namespace}/fetch`
/// (several blobs read at once), each blob is this header as one JSON line, then exactly `size`
/// bytes of the blob. A blob the server could not read has `error` and
/// no bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobFrame {
    pub id: BlobId,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::ErrorBody>,
}

impl BlobFrame {
    /// The header line, newline included.
    pub fn line(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).expect("frames serialize");
        out.push(b'\n');
        out
    }

    /// Splits a whole body of frames (see [`BlobFrame`]) into each
    /// header and the byte range of its blob in `buf`; a header that does
    /// not parse, or a blob cut short, is an error naming its offset.
    pub fn split(buf: &[u8]) -> Result<Vec<(BlobFrame, std::ops::Range<usize>)>, String> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < buf.len() {
            let end = buf[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| at + i)
                .ok_or_else(|| format!("byte {at}: a frame header without its newline"))?;
            let frame: BlobFrame = serde_json::from_slice(&buf[at..end])
                .map_err(|e| format!("byte {at}: frame header: {e}"))?;
            let start = end + 1;
            let stop = usize::try_from(frame.size)
                .ok()
                .and_then(|n| start.checked_add(n))
                .filter(|&stop| stop <= buf.len())
                .ok_or_else(|| {
                    format!(
                        "byte {at}: blob {} of {} bytes is cut short",
                        frame.id, frame.size
                    )
                })?;
            out.push((frame, start..stop));
            at = stop;
        }
        Ok(out)
    }
}

/// A body of frames (see [`BlobFrame`]) laid out before the blobs are
/// known: each header with room for its blob, filled in place. A sender
/// that produces the blobs (say, by encrypting) writes them straight
/// into the body, in parallel, instead of copying them in afterwards.
#[derive(Debug, Default)]
pub struct FramedBlobs {
    body: Vec<u8>,
    slots: Vec<std::ops::Range<usize>>,
}

impl FramedBlobs {
    /// Headers for blobs of these ids and sizes, each followed by `size`
    /// zero bytes to fill.
    pub fn with_sizes(items: impl IntoIterator<Item = (BlobId, u64)>) -> Self {
        let mut out = Self::default();
        for (id, size) in items {
            let line = BlobFrame {
                id,
                size,
                error: None,
            }
            .line();
            out.body.extend_from_slice(&line);
            let start = out.body.len();
            out.body.resize(start + size as usize, 0);
            out.slots.push(start..out.body.len());
        }
        out
    }

    /// These blobs, copied in.
    pub fn of(blobs: &[(BlobId, &[u8])]) -> Self {
        let mut out = Self::with_sizes(blobs.iter().map(|(id, b)| (id.clone(), b.len() as u64)));
        for (slot, (_, b)) in out.slots_mut().into_iter().zip(blobs) {
            slot.copy_from_slice(b);
        }
        out
    }

    /// Each blob's room, in order (disjoint, so each may be filled on
    /// its own thread).
    pub fn slots_mut(&mut self) -> Vec<&mut [u8]> {
        let mut out = Vec::with_capacity(self.slots.len());
        let mut rest = &mut self.body[..];
        let mut at = 0;
        for slot in &self.slots {
            let (_, tail) = rest.split_at_mut(slot.start - at);
            let (blob, tail) = tail.split_at_mut(slot.len());
            out.push(blob);
            rest = tail;
            at = slot.end;
        }
        out
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

/// A user's mail key as stored on the server: the public age recipient
/// the mail exchanger encrypts to, and the matching identity encrypted by
/// the client (only devices holding the user secret can open it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailKey {
    pub recipient: String,
    pub sealed_identity: crate::Content,
}

/// What the services listener tells a mail exchanger about a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub recipient: String,
    /// Largest delivery accepted (the encrypted size), so the exchanger
    /// can refuse a message before sending it, as SMTP's SIZE does.
    pub max_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_blobs_split_back_into_their_blobs() {
        let (a, b, c) = (
            BlobId::new("a").unwrap(),
            BlobId::new("b").unwrap(),
            BlobId::new("c").unwrap(),
        );
        let mut framed = FramedBlobs::with_sizes([(a.clone(), 3), (b.clone(), 0), (c.clone(), 5)]);
        let slots = framed.slots_mut();
        assert_eq!(slots.iter().map(|s| s.len()).collect::<Vec<_>>(), [3, 0, 5]);
        for (slot, fill) in slots.into_iter().zip([b'x', b'y', b'z']) {
            slot.fill(fill);
        }
        let body = framed.into_body();
        let split = BlobFrame::split(&body).unwrap();
        let got: Vec<(BlobId, &[u8])> = split.into_iter().map(|(f, r)| (f.id, &body[r])).collect();
        assert_eq!(got, [(a.clone(), &b"xxx"[..]), (b, b""), (c, b"zzzzz")]);
        let copied = FramedBlobs::of(&[(a.clone(), b"abc")]).into_body();
        assert_eq!(
            BlobFrame::split(&copied).unwrap()[0].1,
            copied.len() - 3..copied.len()
        );
    }

    fn frame(id: &str, data: &[u8]) -> Vec<u8> {
        let mut out = BlobFrame {
            id: BlobId::new(id).unwrap(),
            size: data.len() as u64,
            error: None,
        }
        .line();
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn frames_split_back_into_their_blobs() {
        // Blob bytes may hold newlines and anything else.
        let mut body = frame("a", b"x\ny\n");
        body.extend(frame("b", b""));
        body.extend(frame("c", &[0, 255, b'\n']));
        let parts = BlobFrame::split(&body).unwrap();
        let got: Vec<(&str, &[u8])> = parts
            .iter()
            .map(|(f, r)| (f.id.as_str(), &body[r.clone()]))
            .collect();
        assert_eq!(
            got,
            [("a", &b"x\ny\n"[..]), ("b", b""), ("c", &[0, 255, b'\n'])]
        );
        assert!(BlobFrame::split(b"").unwrap().is_empty());
    }

    #[test]
    fn broken_frames_are_errors() {
        let mut short = frame("a", b"12345");
        short.truncate(short.len() - 1);
        assert!(BlobFrame::split(&short).unwrap_err().contains("cut short"));
        assert!(
            BlobFrame::split(b"{\"id\":\"a\"")
                .unwrap_err()
                .contains("newline")
        );
        assert!(
            BlobFrame::split(b"not json\n")
                .unwrap_err()
                .contains("frame header")
        );
        let huge = b"{\"id\":\"a\",\"size\":18446744073709551615}\n";
        assert!(BlobFrame::split(huge).unwrap_err().contains("cut short"));
    }
}
