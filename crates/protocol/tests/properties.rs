//! Property tests of what the server parses from untrusted clients: the
//! NDJSON frame splitter and sync frames, and the revision codec.
//! Arbitrary bytes never panic; valid frames and revisions round-trip,
//! however the bytes are cut into chunks.

use proptest::prelude::*;
use protocol::{Content, DocFrame, LineSplitter, ReplicaId, Revision, SendFrame, write_frame};

fn replica() -> impl Strategy<Value = ReplicaId> {
    "[A-Za-z0-9_-][A-Za-z0-9._-]{0,15}".prop_map(|s| ReplicaId::new(s).unwrap())
}

fn revision() -> impl Strategy<Value = Revision> {
    prop::collection::btree_map(replica(), 1u64..u64::MAX, 1..8).prop_map(|m| {
        m.into_iter()
            .fold(None::<Revision>, |rev, (r, n)| {
                let mut one: Revision = format!("{r}:{n}").parse().unwrap();
                if let Some(rev) = rev {
                    one = one.merged(&rev);
                }
                Some(one)
            })
            .unwrap()
    })
}

fn frame() -> impl Strategy<Value = SendFrame> {
    prop_oneof![
        (replica(), 0..=i64::MAX as u64, "[a-z0-9]{1,20}").prop_map(|(replica, generation, t)| {
            SendFrame::Header {
                replica,
                generation,
                transaction_id: t,
            }
        }),
        (
            "[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}",
            revision(),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..200))
        )
            .prop_map(|(id, rev, content)| SendFrame::Doc(DocFrame {
                id: id.parse().unwrap(),
                rev,
                content: content.map(Content),
            })),
        any::<u64>().prop_map(|count| SendFrame::End { count }),
    ]
}

/// Feeds `bytes` in chunks of the given sizes, collecting every result.
fn split(bytes: &[u8], cuts: &[usize], max: usize) -> Vec<Result<SendFrame, String>> {
    let mut s = LineSplitter::new(max);
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut cuts = cuts.iter().cycle();
    while !rest.is_empty() {
        let n = (*cuts.next().unwrap()).clamp(1, rest.len());
        s.push(&rest[..n]);
        rest = &rest[n..];
        loop {
            match s.next_frame::<SendFrame>() {
                Ok(Some(f)) => out.push(Ok(f)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }
    if let Err(e) = s.finish() {
        out.push(Err(e.to_string()));
    }
    out
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000),
                                   cuts in prop::collection::vec(1usize..64, 1..8)) {
        let _ = split(&bytes, &cuts, 512);
    }

    #[test]
    fn json_like_garbage_never_panics(lines in prop::collection::vec(
        r#"\{("t":"(doc|header|end|x)",?)?("[a-z]{1,8}":(-?[0-9]{1,25}|"[a-z:|0-9]{0,30}"|null|\[[0-9,]{0,20}\]),?){0,5}\}"#, 0..10)) {
        let text = lines.join("\n") + "\n";
        let _ = split(text.as_bytes(), &[7, 13], 4096);
    }

    #[test]
    fn valid_frames_round_trip_however_they_are_cut(frames in prop::collection::vec(frame(), 0..12),
                                                    cuts in prop::collection::vec(1usize..100, 1..6)) {
        let mut bytes = Vec::new();
        for f in &frames {
            write_frame(&mut bytes, f);
        }
        let parsed: Vec<SendFrame> = split(&bytes, &cuts, 1 << 20).into_iter().map(|r| r.unwrap()).collect();
        prop_assert_eq!(parsed, frames);
    }

    #[test]
    fn revisions_round_trip(rev in revision()) {
        let text = rev.to_string();
        let back: Revision = text.parse().unwrap();
        prop_assert_eq!(&back, &rev);
        prop_assert_eq!(back.to_string(), text);
    }

    #[test]
    fn arbitrary_revision_text_parses_or_is_refused(text in r"[A-Za-z0-9:|._-]{0,200}") {
        if let Ok(rev) = text.parse::<Revision>() {
            // What parses prints back to an equivalent revision.
            prop_assert_eq!(rev.to_string().parse::<Revision>().unwrap(), rev);
        }
    }
}

#[test]
fn a_revision_over_the_replica_limit_is_refused_before_it_is_built() {
    let many: Vec<String> = (0..=protocol::MAX_REPLICAS)
        .map(|i| format!("r{i}:1"))
        .collect();
    let err = many.join("|").parse::<Revision>().unwrap_err();
    assert!(err.to_string().contains("more than"), "{err}");
    assert!(many[1..].join("|").parse::<Revision>().is_ok());
}

#[test]
fn an_error_code_of_a_newer_server_still_reads() {
    let body: protocol::ErrorBody =
        serde_json::from_str(r#"{"code":"something_new","message":"m"}"#).unwrap();
    assert_eq!(body.code, protocol::ErrorCode::Unknown);
}

#[test]
fn limits_of_a_newer_server_still_read() {
    let mut v = serde_json::to_value(protocol::Limits::default()).unwrap();
    v["max_something_new"] = 7.into();
    let limits: protocol::Limits = serde_json::from_value(v).unwrap();
    assert_eq!(limits, protocol::Limits::default());
}
