//! Newline-delimited JSON framing, shared by both directions of a sync.
//!
//! The splitter is fed whatever chunks the transport delivers and hands out
//! one parsed frame at a time, so neither side ever holds more than one
//! frame (bounded by `Limits::max_frame_bytes`) plus one transport chunk.

use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame {index} is longer than the limit of {limit} bytes")]
    TooLong { index: u64, limit: usize },
    #[error("frame {index} is not valid: {source}")]
    Invalid {
        index: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("the body ends in the middle of frame {index} ({len} bytes without a newline)")]
    Truncated { index: u64, len: usize },
}

/// Appends one frame (a JSON value and `\n`) to `buf`.
pub fn write_frame<T: Serialize>(buf: &mut Vec<u8>, frame: &T) {
    // Serializing our own wire types into memory cannot fail: no maps with
    // non-string keys, no IO.
    serde_json::to_writer(&mut *buf, frame).expect("wire types always serialize");
    buf.push(b'\n');
}

/// Splits a byte stream into frames. Blank lines are skipped.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte in `buf`.
    start: usize,
    /// Bytes from `start` already known to hold no newline.
    scanned: usize,
    max_frame: usize,
    index: u64,
}

impl LineSplitter {
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max_frame,
            index: 0,
        }
    }

    /// Number of frames handed out so far.
    pub fn frames(&self) -> u64 {
        self.index
    }

    pub fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete frame, parsed; `Ok(None)` when more input is needed.
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        loop {
            let pending = &self.buf[self.start..];
            let Some(nl) = pending[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = pending.len();
                if pending.len() > self.max_frame {
                    return Err(FrameError::TooLong {
                        index: self.index,
                        limit: self.max_frame,
                    });
                }
                return Ok(None);
            };
            let end = self.scanned + nl;
            if end > self.max_frame {
                return Err(FrameError::TooLong {
                    index: self.index,
                    limit: self.max_frame,
                });
            }
            let line = &pending[..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let blank = line.iter().all(u8::is_ascii_whitespace);
            let parsed = if blank {
                None
            } else {
                Some(
                    serde_json::from_slice(line).map_err(|source| FrameError::Invalid {
                        index: self.index,
                        source,
                    })?,
                )
            };
            self.start += end + 1;
            self.scanned = 0;
            if let Some(frame) = parsed {
                self.index += 1;
                return Ok(Some(frame));
            }
        }
    }

    /// Call at the end of input: an unterminated last frame is an error,
    /// never silently dropped.
    pub fn finish(&self) -> Result<(), FrameError> {
        let rest = &self.buf[self.start..];
        if rest.iter().all(u8::is_ascii_whitespace) {
            Ok(())
        } else {
            Err(FrameError::Truncated {
                index: self.index,
                len: rest.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn drain(s: &mut LineSplitter) -> Vec<Value> {
        let mut out = vec![];
        while let Some(v) = s.next_frame::<Value>().unwrap() {
            out.push(v);
        }
        out
    }

    #[test]
    fn frames_split_across_chunks_in_every_way() {
        let input = b"{\"a\":1}\n\n{\"b\":\"x\\ny\"}\r\n[3]\n";
        for cut in 0..input.len() {
            let mut s = LineSplitter::new(64);
            s.push(&input[..cut]);
            let mut got = drain(&mut s);
            s.push(&input[cut..]);
            got.extend(drain(&mut s));
            s.finish().unwrap();
            assert_eq!(got.len(), 3, "cut at {cut}");
            assert_eq!(got[1]["b"], "x\ny");
            assert_eq!(s.frames(), 3);
        }
    }

    #[test]
    fn byte_at_a_time() {
        let mut buf = Vec::new();
        for i in 0..100 {
            write_frame(&mut buf, &serde_json::json!({ "i": i }));
        }
        let mut s = LineSplitter::new(32);
        let mut n = 0;
        for b in &buf {
            s.push(std::slice::from_ref(b));
            while let Some(v) = s.next_frame::<Value>().unwrap() {
                assert_eq!(v["i"], n);
                n += 1;
            }
        }
        assert_eq!(n, 100);
    }

    #[test]
    fn too_long_is_caught_before_the_newline_arrives() {
        let mut s = LineSplitter::new(8);
        s.push(b"{\"a\":\"0123456789");
        assert!(matches!(
            s.next_frame::<Value>(),
            Err(FrameError::TooLong { index: 0, limit: 8 })
        ));
    }

    #[test]
    fn invalid_json_names_the_frame() {
        let mut s = LineSplitter::new(64);
        s.push(b"{}\n{oops}\n");
        assert!(s.next_frame::<Value>().unwrap().is_some());
        let e = s.next_frame::<Value>().unwrap_err();
        assert!(matches!(e, FrameError::Invalid { index: 1, .. }), "{e}");
        assert!(e.to_string().starts_with("frame 1 is not valid"), "{e}");
    }

    #[test]
    fn truncated_tail_is_an_error() {
        let mut s = LineSplitter::new(64);
        s.push(b"{}\n{\"a\":");
        assert!(s.next_frame::<Value>().unwrap().is_some());
        assert!(s.next_frame::<Value>().unwrap().is_none());
        assert!(matches!(
            s.finish(),
            Err(FrameError::Truncated { index: 1, len: 5 })
        ));
    }
}
