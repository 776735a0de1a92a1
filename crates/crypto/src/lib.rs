//! Client-side encryption for the reference sync system, and the few
//! primitives the server needs (random ids, token hashes).
//!
//! Formats (pinned by golden vectors in the tests):
//!
//! * Document content: `0x01 ‖ nonce(12) ‖ AES-256-GCM(ciphertext ‖ tag(16))`.
//!   The key is HKDF-SHA256 of the user secret with the document id in the
//!   info, and the associated data is `"syncbench-doc/v1" ‖ len ‖ doc id ‖
//!   len ‖ revision`: content moved to another id, or replayed under
//!   another revision, fails authentication.
//! * Sealed user secret: `"SBSK" ‖ 0x01 ‖ m_cost ‖ t_cost ‖ p_cost (u32 BE) ‖
//!   salt(16) ‖ nonce(12) ‖ AES-256-GCM(secret(32) ‖ tag)`, keyed by
//!   Argon2id of the passphrase; the header is the associated data.
//! * Blobs: streamed in authenticated 64 KiB segments, see [`stream`].

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

pub mod stream;
pub use stream::{BlobError, DecryptReader, EncryptReader};

const DOC_VERSION: u8 = 1;
const DOC_AAD_LABEL: &[u8] = b"syncbench-doc/v1";
const HKDF_SALT: &[u8] = b"syncbench key derivation v1";
const SECRET_MAGIC: &[u8; 4] = b"SBSK";
const SECRET_VERSION: u8 = 1;
const SALT_LEN: usize = 16;
const TAG_LEN: usize = 16;
const SECRET_HEADER_LEN: usize = 4 + 1 + 12 + SALT_LEN;

/// Bytes a document's ciphertext adds to its plaintext.
pub const DOC_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("wrong passphrase (or the sealed secret was altered)")]
    WrongPassphrase,
    #[error(
        "document {doc_id:?} failed authentication: wrong key, or its content, id or revision was altered"
    )]
    Tampered { doc_id: String },
    #[error("ciphertext of document {doc_id:?} is malformed: {why}")]
    Malformed { doc_id: String, why: &'static str },
    #[error("sealed secret is malformed: {0}")]
    MalformedSecret(&'static str),
    #[error("key derivation parameters rejected: {0}")]
    Kdf(String),
    #[error("the system random number generator failed")]
    Random,
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}

/// `bytes` random bytes as lowercase hex: ids and tokens.
pub fn random_hex(bytes: usize) -> Result<String, CryptoError> {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf)?;
    Ok(hex(&buf))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// SHA-256 of a bearer token: what the server stores instead of the token.
/// Tokens are 256-bit random values, so a fast hash is enough; a slow one
/// only matters for guessable secrets such as passphrases.
pub fn token_hash(token: &str) -> [u8; 32] {
    sha256(token.as_bytes())
}

/// Compares secrets without leaking, through timing, where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Argon2id cost parameters, stored in the sealed secret so they can be
/// raised later without breaking old secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// OWASP's recommended minimum for Argon2id (19 MiB, 2 passes).
    fn default() -> Self {
        Self {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// The user's 256-bit master secret. Every device of the user holds the
/// same one; the server only ever stores it sealed with the passphrase.
pub struct UserSecret([u8; 32]);

impl std::fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserSecret(..)")
    }
}

impl UserSecret {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut s = [0u8; 32];
        fill_random(&mut s)?;
        Ok(Self(s))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Seals the secret with a key derived from `passphrase`.
    pub fn seal(&self, passphrase: &str, params: KdfParams) -> Result<Vec<u8>, CryptoError> {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt)?;
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        self.seal_with(passphrase, params, salt, nonce)
    }

    fn seal_with(
        &self,
        passphrase: &str,
        params: KdfParams,
        salt: [u8; SALT_LEN],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(SECRET_HEADER_LEN + NONCE_LEN + 32 + TAG_LEN);
        out.extend_from_slice(SECRET_MAGIC);
        out.push(SECRET_VERSION);
        for v in [params.m_cost_kib, params.t_cost, params.p_cost] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&salt);
        let key = passphrase_key(passphrase, &salt, params)?;
        let mut body = self.0.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&out[..SECRET_HEADER_LEN]),
            &mut body,
        )
        .map_err(|_| CryptoError::Random)?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a sealed secret; a wrong passphrase is reported as such, never
    /// turned into a wrong key.
    pub fn unseal(sealed: &[u8], passphrase: &str) -> Result<Self, CryptoError> {
        if sealed.len() != SECRET_HEADER_LEN + NONCE_LEN + 32 + TAG_LEN {
            return Err(CryptoError::MalformedSecret("wrong length"));
        }
        if &sealed[..4] != SECRET_MAGIC {
            return Err(CryptoError::MalformedSecret(
                "not a sealed syncbench secret",
            ));
        }
        if sealed[4] != SECRET_VERSION {
            return Err(CryptoError::MalformedSecret("unknown version"));
        }
        let u32_at = |i: usize| u32::from_be_bytes(sealed[i..i + 4].try_into().expect("4 bytes"));
        let params = KdfParams {
            m_cost_kib: u32_at(5),
            t_cost: u32_at(9),
            p_cost: u32_at(13),
        };
        let salt = &sealed[17..17 + SALT_LEN];
        let nonce = &sealed[SECRET_HEADER_LEN..SECRET_HEADER_LEN + NONCE_LEN];
        let key = passphrase_key(passphrase, salt, params)?;
        let mut body = sealed[SECRET_HEADER_LEN + NONCE_LEN..].to_vec();
        let plain = key
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce)
                    .map_err(|_| CryptoError::WrongPassphrase)?,
                Aad::from(&sealed[..SECRET_HEADER_LEN]),
                &mut body,
            )
            .map_err(|_| CryptoError::WrongPassphrase)?;
        Ok(Self(plain.try_into().expect("32-byte secret")))
    }
}

fn passphrase_key(
    passphrase: &str,
    salt: &[u8],
    params: KdfParams,
) -> Result<LessSafeKey, CryptoError> {
    let p = argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut key = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(aead_key(&key))
}

fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES-256 key"))
}

struct KeyLen;
impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

/// Encrypts and decrypts document contents with per-document keys.
pub struct DocCipher {
    prk: hkdf::Prk,
}

impl std::fmt::Debug for DocCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DocCipher(..)")
    }
}

impl DocCipher {
    pub fn new(secret: &UserSecret) -> Self {
        Self {
            prk: hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&secret.0),
        }
    }

    /// An AES-256-GCM key from the user secret, `info` naming its use.
    fn derive(&self, info: &[&[u8]]) -> LessSafeKey {
        let okm = self
            .prk
            .expand(info, KeyLen)
            .expect("32 bytes is a valid HKDF length");
        let mut key = [0u8; 32];
        okm.fill(&mut key).expect("length matches");
        aead_key(&key)
    }

    fn doc_key(&self, doc_id: &str) -> LessSafeKey {
        self.derive(&[b"doc-key/v1\0".as_slice(), doc_id.as_bytes()])
    }

    fn blob_key(&self, namespace: &str, blob_id: &str) -> LessSafeKey {
        self.derive(&[
            b"blob-key/v1\0".as_slice(),
            namespace.as_bytes(),
            b"\0",
            blob_id.as_bytes(),
        ])
    }

    /// Encrypts the blob `namespace/blob_id` as it is read from `plaintext`.
    pub fn encrypt_blob<R: std::io::Read>(
        &self,
        namespace: &str,
        blob_id: &str,
        plaintext: R,
    ) -> Result<EncryptReader<R>, CryptoError> {
        EncryptReader::new(self.blob_key(namespace, blob_id), plaintext)
    }

    /// Decrypts and authenticates the blob `namespace/blob_id`.
    pub fn decrypt_blob<R: std::io::Read>(
        &self,
        namespace: &str,
        blob_id: &str,
        ciphertext: R,
    ) -> DecryptReader<R> {
        DecryptReader::new(self.blob_key(namespace, blob_id), ciphertext)
    }

    pub fn encrypt(
        &self,
        doc_id: &str,
        rev: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        Ok(self.encrypt_with_nonce(doc_id, rev, plaintext, nonce))
    }

    fn encrypt_with_nonce(
        &self,
        doc_id: &str,
        rev: &str,
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + DOC_OVERHEAD);
        out.push(DOC_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .doc_key(doc_id)
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(doc_aad(doc_id, rev)),
                &mut out[1 + NONCE_LEN..],
            )
            .expect("plaintext is far below the AES-GCM length limit");
        out.extend_from_slice(tag.as_ref());
        out
    }

    pub fn decrypt(
        &self,
        doc_id: &str,
        rev: &str,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let malformed = |why| CryptoError::Malformed {
            doc_id: doc_id.to_owned(),
            why,
        };
        if ciphertext.len() < DOC_OVERHEAD {
            return Err(malformed("shorter than nonce and tag"));
        }
        if ciphertext[0] != DOC_VERSION {
            return Err(malformed("unknown format version"));
        }
        let nonce = Nonce::try_assume_unique_for_key(&ciphertext[1..1 + NONCE_LEN])
            .map_err(|_| malformed("bad nonce"))?;
        let mut buf = ciphertext[1 + NONCE_LEN..].to_vec();
        let len = self
            .doc_key(doc_id)
            .open_in_place(nonce, Aad::from(doc_aad(doc_id, rev)), &mut buf)
            .map_err(|_| CryptoError::Tampered {
                doc_id: doc_id.to_owned(),
            })?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

fn doc_aad(doc_id: &str, rev: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DOC_AAD_LABEL.len() + 8 + doc_id.len() + rev.len());
    aad.extend_from_slice(DOC_AAD_LABEL);
    for part in [doc_id, rev] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests;
