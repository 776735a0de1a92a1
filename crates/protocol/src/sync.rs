//! The messages of one sync, in the order they travel:
//!
//! 1. `GET  /v1/users/{user}/sync/info?replica=R[&generation=G]` → [`SyncInfo`]
//! 2. `POST /v1/users/{user}/sync/send` with [`SendFrame`]s → [`SendSummary`]
//!    (repeated while the client has changes; each body is a header, docs, end)
//! 3. `GET  /v1/users/{user}/sync/changes?since=G&replica=R` → [`ChangeFrame`]s
//!    (header, docs changed since generation G in generation order, end)

use crate::ids::{DocId, ReplicaId};
use crate::rev::Revision;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A random id given to every change of a database, next to its
/// generation. A replica that remembers `(generation, transaction id)` of a
/// peer notices when the peer's database was replaced by an older copy: the
/// generation is then missing or carries another transaction id.
pub type TransactionId = String;

/// Opaque ciphertext; base64 on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Content(pub Vec<u8>);

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map(Content)
            .map_err(|e| serde::de::Error::custom(format!("content is not base64: {e}")))
    }
}

/// Step 1: where the server's database stands, and what it knows of the
/// asking replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncInfo {
    /// The server database's replica id; it changes only if the database is
    /// replaced by a new one.
    pub replica: ReplicaId,
    pub generation: u64,
    pub transaction_id: TransactionId,
    /// The transaction id the server has at the generation the client asked
    /// about (`None` if the server has no such generation: it went back).
    pub transaction_at_generation: Option<TransactionId>,
    /// The last generation and transaction id of the asking replica that the
    /// server has received (`None` for a replica it has never seen).
    pub known_generation: Option<u64>,
    pub known_transaction_id: Option<TransactionId>,
}

/// One version of one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocFrame {
    pub id: DocId,
    pub rev: Revision,
    /// `None` for a deleted document (a tombstone).
    pub content: Option<Content>,
}

impl DocFrame {
    pub fn deleted(&self) -> bool {
        self.content.is_none()
    }
}

/// Step 2, the upload body. Serialized with `t` first; read by hand (see
/// the `Deserialize` impl) so that no frame is buffered whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum SendFrame {
    Header {
        replica: ReplicaId,
        /// The client's own generation and transaction id; recorded by the
        /// server when the body ends cleanly.
        generation: u64,
        transaction_id: TransactionId,
    },
    Doc(DocFrame),
    /// Closes the body; `count` documents came before it. A body without it
    /// was cut off and its generation is not recorded.
    End {
        count: u64,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderFields {
    replica: ReplicaId,
    generation: u64,
    transaction_id: TransactionId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndFields {
    count: u64,
}

/// serde's internally tagged enums buffer the whole object to find the
/// tag, into values of ~20× the JSON's size: a 32 MB frame with an
/// unknown array field peaked at 613 MB. Here `t` must come first (as
/// every writer puts it), the rest goes straight into the variant's
/// fields, and an unknown field is refused at its key, before its value
/// is read.
impl<'de> Deserialize<'de> for SendFrame {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Frame;
        impl<'de> serde::de::Visitor<'de> for Frame {
            type Value = SendFrame;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sync frame: an object whose first key is \"t\"")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SendFrame, A::Error> {
                use serde::de::Error;
                let key: Option<std::borrow::Cow<'de, str>> = map.next_key()?;
                if key.as_deref() != Some("t") {
                    return Err(A::Error::custom(
                        "the frame's type \"t\" must be its first key",
                    ));
                }
                let t: std::borrow::Cow<'de, str> = map.next_value()?;
                let rest = serde::de::value::MapAccessDeserializer::new(map);
                Ok(match t.as_ref() {
                    "header" => {
                        let h = HeaderFields::deserialize(rest)?;
                        // Stored per replica: the id syntax bounds it. Empty
                        // is a device that never wrote (`sync --repair`).
                        if !h.transaction_id.is_empty() {
                            crate::validate_id(&h.transaction_id)
                                .map_err(|e| A::Error::custom(format!("transaction_id: {e}")))?;
                        }
                        SendFrame::Header {
                            replica: h.replica,
                            generation: h.generation,
                            transaction_id: h.transaction_id,
                        }
                    }
                    "doc" => SendFrame::Doc(DocFrame::deserialize(rest)?),
                    "end" => SendFrame::End {
                        count: EndFields::deserialize(rest)?.count,
                    },
                    other => {
                        return Err(A::Error::unknown_variant(other, &["header", "doc", "end"]));
                    }
                })
            }
        }
        d.deserialize_map(Frame)
    }
}

/// Why the server did not take a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The server has a revision concurrent with the one sent: the client
    /// receives it in step 3 and keeps both as a conflict.
    Conflict,
    /// The server has a newer revision: the client receives it in step 3.
    Superseded,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub id: DocId,
    pub reason: RejectReason,
}

/// Step 2, the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendSummary {
    /// Documents stored as new versions.
    pub accepted: u64,
    /// Documents the server already had at exactly that revision.
    pub unchanged: u64,
    pub rejected: Vec<Rejected>,
    pub generation: u64,
    pub transaction_id: TransactionId,
}

/// Step 3, the download body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChangeFrame {
    /// The generation the listing runs up to (a consistent snapshot).
    Header {
        generation: u64,
        transaction_id: TransactionId,
    },
    Doc {
        id: DocId,
        rev: Revision,
        content: Option<Content>,
        /// The generation of the document's latest change.
        generation: u64,
    },
    End {
        count: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{LineSplitter, write_frame};

    #[test]
    fn frames_round_trip_and_pin_the_wire_format() {
        let doc = DocFrame {
            id: DocId::new("d1").unwrap(),
            rev: "a:1".parse().unwrap(),
            content: Some(Content(b"\x00\xffhi".to_vec())),
        };
        let mut buf = Vec::new();
        write_frame(
            &mut buf,
            &SendFrame::Header {
                replica: ReplicaId::new("r1").unwrap(),
                generation: 3,
                transaction_id: "T".into(),
            },
        );
        write_frame(&mut buf, &SendFrame::Doc(doc.clone()));
        write_frame(
            &mut buf,
            &ChangeFrame::Doc {
                id: doc.id.clone(),
                rev: doc.rev.clone(),
                content: None,
                generation: 7,
            },
        );
        write_frame(&mut buf, &SendFrame::End { count: 1 });
        assert_eq!(
            String::from_utf8(buf.clone()).unwrap(),
            concat!(
                r#"{"t":"header","replica":"r1","generation":3,"transaction_id":"T"}"#,
                "\n",
                r#"{"t":"doc","id":"d1","rev":"a:1","content":"AP9oaQ=="}"#,
                "\n",
                r#"{"t":"doc","id":"d1","rev":"a:1","content":null,"generation":7}"#,
                "\n",
                r#"{"t":"end","count":1}"#,
                "\n"
            )
        );
        let mut s = LineSplitter::new(1024);
        s.push(&buf);
        let _: SendFrame = s.next_frame().unwrap().unwrap();
        assert_eq!(
            s.next_frame::<SendFrame>().unwrap(),
            Some(SendFrame::Doc(doc))
        );
        let ChangeFrame::Doc {
            content,
            generation,
            ..
        } = s.next_frame().unwrap().unwrap()
        else {
            panic!("not a doc");
        };
        assert!(content.is_none());
        assert_eq!(generation, 7);
    }

    #[test]
    fn bad_fields_are_named() {
        let e = serde_json::from_str::<SendFrame>(
            r#"{"t":"doc","id":"../x","rev":"a:1","content":null}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("'/'"), "{e}");
        let e =
            serde_json::from_str::<SendFrame>(r#"{"t":"doc","id":"x","rev":"a:1","content":"!!"}"#)
                .unwrap_err()
                .to_string();
        assert!(e.contains("not base64"), "{e}");
        let e = serde_json::from_str::<SendFrame>(r#"{"t":"end","count":1,"extra":2}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("extra"), "{e}");
    }
}
