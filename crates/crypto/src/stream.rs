//! Streamed blob encryption: the STREAM construction (Hoang, Reyhanitabar,
//! Rogaway, Vizár 2015) over AES-256-GCM, in 64 KiB segments, so a blob of
//! any size is encrypted and checked with constant memory.
//!
//! Format: `"SBB" ‖ 0x01 ‖ nonce prefix(7)`, then segments of
//! `AES-256-GCM(plaintext(≤ 64 KiB) ‖ tag(16))`. Segment `i` uses the nonce
//! `prefix ‖ i (u32 BE) ‖ last (0x00 or 0x01)`; every segment but the last
//! holds exactly 64 KiB of plaintext, the last holds 0..=64 KiB. The key is
//! derived from the user secret with the blob's namespace and id, so a blob
//! moved to another id fails; reordered segments fail (counter), a stream
//! cut at a segment boundary fails (no segment carries the last flag), and
//! bytes appended after the last segment fail (the last flag is then on the
//! wrong segment).
//!
//! Written here rather than taken from a crate because ring, our AEAD, has
//! no STREAM, and age's STREAM is ChaCha20-Poly1305 and private to age.

use crate::{CryptoError, TAG_LEN, fill_random};
use ring::aead::{Aad, LessSafeKey, Nonce};
use std::io::{self, Read};

/// Plaintext bytes per segment.
pub const SEGMENT: usize = 64 * 1024;
const MAGIC: &[u8; 4] = b"SBB\x01";
const PREFIX_LEN: usize = 7;
/// Bytes before the first segment.
pub const BLOB_HEADER_LEN: usize = MAGIC.len() + PREFIX_LEN;

/// Size of the ciphertext of a `plaintext_len`-byte blob.
pub fn ciphertext_len(plaintext_len: u64) -> u64 {
    let segments = plaintext_len.div_ceil(SEGMENT as u64).max(1);
    BLOB_HEADER_LEN as u64 + plaintext_len + segments * TAG_LEN as u64
}

fn nonce(prefix: &[u8; PREFIX_LEN], counter: u32, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    n[PREFIX_LEN..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = last as u8;
    Nonce::assume_unique_for_key(n)
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Copies what is left of the current segment's output into `buf`.
fn hand_out(out: &[u8], pos: &mut usize, buf: &mut [u8]) -> usize {
    let n = buf.len().min(out.len() - *pos);
    buf[..n].copy_from_slice(&out[*pos..*pos + n]);
    *pos += n;
    n
}

/// Reads `size` bytes of input one ahead of what a segment needs, so the
/// reader knows whether the segment it hands out is the last one.
#[derive(Debug)]
struct Segmenter {
    buf: Vec<u8>,
    /// Valid bytes in `buf`.
    len: usize,
    size: usize,
    eof: bool,
}

impl Segmenter {
    fn new(size: usize) -> Self {
        Self {
            buf: vec![0; size + 1],
            len: 0,
            size,
            eof: false,
        }
    }

    /// The next segment's bytes in `buf[..n]` and whether it is the last.
    fn next(&mut self, r: &mut impl Read) -> io::Result<(usize, bool)> {
        if !self.eof {
            let got = read_full(r, &mut self.buf[self.len..])?;
            self.len += got;
            self.eof = self.len <= self.size;
        }
        Ok(if self.eof {
            (self.len, true)
        } else {
            (self.size, false)
        })
    }

    /// Drops the segment just handed out, keeping the byte read ahead.
    fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

/// Encrypts a plaintext reader into the blob format, as a reader: hand it
/// to an HTTP body or `io::copy` it to a file.
#[derive(Debug)]
pub struct EncryptReader<R> {
    inner: R,
    key: KeyBox,
    prefix: [u8; PREFIX_LEN],
    counter: u32,
    input: Segmenter,
    out: Vec<u8>,
    pos: usize,
    done: bool,
}

/// The AEAD key, without Debug output.
struct KeyBox(LessSafeKey);
impl std::fmt::Debug for KeyBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl<R: Read> EncryptReader<R> {
    pub(crate) fn new(key: LessSafeKey, inner: R) -> Result<Self, CryptoError> {
        let mut prefix = [0u8; PREFIX_LEN];
        fill_random(&mut prefix)?;
        let mut out = Vec::with_capacity(SEGMENT + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&prefix);
        Ok(Self {
            inner,
            key: KeyBox(key),
            prefix,
            counter: 0,
            input: Segmenter::new(SEGMENT),
            out,
            pos: 0,
            done: false,
        })
    }

    fn fill(&mut self) -> io::Result<()> {
        let (n, last) = self.input.next(&mut self.inner)?;
        self.out.clear();
        self.out.extend_from_slice(&self.input.buf[..n]);
        self.input.consume(n);
        let tag = self
            .key
            .0
            .seal_in_place_separate_tag(
                nonce(&self.prefix, self.counter, last),
                Aad::empty(),
                &mut self.out,
            )
            .map_err(|_| io::Error::other("AES-GCM seal failed"))?;
        self.out.extend_from_slice(tag.as_ref());
        self.pos = 0;
        self.done = last;
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("blob over 256 TiB"))?;
        Ok(())
    }
}

impl<R: Read> Read for EncryptReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.fill()?;
        }
        Ok(hand_out(&self.out, &mut self.pos, buf))
    }
}

/// Why a blob's ciphertext was refused. Reaches callers inside an
/// `io::Error` of kind `InvalidData`; get it back with [`BlobError::of`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("not a blob ciphertext (bad header)")]
    BadHeader,
    #[error(
        "blob segment {segment} failed authentication: the blob is truncated, reordered or altered, or the key is wrong"
    )]
    Tampered { segment: u32 },
}

impl BlobError {
    /// The blob error inside an I/O error from [`DecryptReader`], if any.
    pub fn of(e: &io::Error) -> Option<&BlobError> {
        e.get_ref().and_then(|e| e.downcast_ref())
    }
}

/// Decrypts and authenticates a blob ciphertext reader, as a reader of
/// plaintext. Only authenticated segments come out, but a stream cut short
/// is found at its end: write the output somewhere temporary and keep it
/// only once the reader has returned 0.
#[derive(Debug)]
pub struct DecryptReader<R> {
    inner: R,
    key: KeyBox,
    prefix: Option<[u8; PREFIX_LEN]>,
    counter: u32,
    input: Segmenter,
    out: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R> DecryptReader<R> {
    /// The ciphertext reader back (e.g. to finish what it was writing).
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> DecryptReader<R> {
    pub(crate) fn new(key: LessSafeKey, inner: R) -> Self {
        Self {
            inner,
            key: KeyBox(key),
            prefix: None,
            counter: 0,
            input: Segmenter::new(SEGMENT + TAG_LEN),
            out: Vec::with_capacity(SEGMENT + TAG_LEN),
            pos: 0,
            done: false,
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        let bad = |e: BlobError| io::Error::new(io::ErrorKind::InvalidData, e);
        let prefix = match self.prefix {
            Some(p) => p,
            None => {
                let mut header = [0u8; BLOB_HEADER_LEN];
                if read_full(&mut self.inner, &mut header)? < BLOB_HEADER_LEN
                    || &header[..MAGIC.len()] != MAGIC
                {
                    return Err(bad(BlobError::BadHeader));
                }
                let p: [u8; PREFIX_LEN] = header[MAGIC.len()..].try_into().expect("length");
                *self.prefix.insert(p)
            }
        };
        let (n, last) = self.input.next(&mut self.inner)?;
        let tampered = BlobError::Tampered {
            segment: self.counter,
        };
        self.out.clear();
        self.out.extend_from_slice(&self.input.buf[..n]);
        self.input.consume(n);
        let plain = self
            .key
            .0
            .open_in_place(
                nonce(&prefix, self.counter, last),
                Aad::empty(),
                &mut self.out,
            )
            .map_err(|_| bad(tampered))?
            .len();
        self.out.truncate(plain);
        self.pos = 0;
        self.done = last;
        self.counter = self.counter.wrapping_add(1);
        Ok(())
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if self.done {
                return Ok(0);
            }
            // An empty non-final segment never occurs in a valid stream,
            // but the loop keeps `Ok(0)` meaning the end and nothing else.
            self.fill()?;
        }
        Ok(hand_out(&self.out, &mut self.pos, buf))
    }
}
