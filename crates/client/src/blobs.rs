//! Blobs on a device: encrypted as they stream to the server, verified as
//! they stream back, kept as ciphertext under `blobs/{namespace}/{id}` in
//! the device directory, decrypted only when read.

use crate::{ClientError, Device};
use crypto::BlobError;
use protocol::{BlobId, BlobInfo, Namespace};
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// Copies what is read from `inner` into `copy`: the download is verified
/// (decrypted to nowhere) and stored (as ciphertext) in one pass.
struct Tee<R, W> {
    inner: R,
    copy: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

fn blob_error(ns: &Namespace, id: &BlobId, e: io::Error) -> ClientError {
    match BlobError::of(&e) {
        Some(b) => ClientError::Blob {
            blob: format!("{ns}/{id}"),
            source: b.clone(),
        },
        None => ClientError::Io(e),
    }
}

impl Device {
    fn local_blob(&self, ns: &Namespace, id: &BlobId) -> PathBuf {
        self.dir.join("blobs").join(ns.as_str()).join(id.as_str())
    }

    /// Encrypts `plaintext` (`len` bytes) as it is read and uploads it.
    pub fn upload_blob(
        &self,
        ns: &Namespace,
        id: &BlobId,
        plaintext: impl Read + Send + 'static,
        len: u64,
    ) -> Result<BlobInfo, ClientError> {
        let encrypted = self
            .cipher()?
            .encrypt_blob(ns.as_str(), id.as_str(), plaintext)?;
        self.remote
            .put_blob(ns, id, encrypted, Some(crypto::stream::ciphertext_len(len)))
    }

    /// Makes sure the blob is in the local store, downloading it if needed;
    /// returns the path of its (encrypted) local copy. A download that is
    /// cut short or fails authentication leaves nothing behind.
    pub fn fetch_blob(&self, ns: &Namespace, id: &BlobId) -> Result<PathBuf, ClientError> {
        let path = self.local_blob(ns, id);
        if path.exists() {
            return Ok(path);
        }
        let cipher = self.cipher()?;
        let dir = path.parent().expect("blob paths have a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        let response = self.remote.get_blob(ns, id)?;
        let tee = Tee {
            inner: response,
            copy: io::BufWriter::with_capacity(256 * 1024, tmp.as_file()),
        };
        let mut check = cipher.decrypt_blob(ns.as_str(), id.as_str(), tee);
        io::copy(&mut check, &mut io::sink()).map_err(|e| blob_error(ns, id, e))?;
        let Tee { mut copy, .. } = check.into_inner();
        copy.flush()?;
        drop(copy);
        tmp.persist(&path).map_err(|e| ClientError::Io(e.error))?;
        Ok(path)
    }

    /// Writes the blob's plaintext to `out` (fetching it first if needed);
    /// returns its size.
    pub fn read_blob(
        &self,
        ns: &Namespace,
        id: &BlobId,
        out: &mut dyn Write,
    ) -> Result<u64, ClientError> {
        let path = self.fetch_blob(ns, id)?;
        let file = io::BufReader::with_capacity(256 * 1024, std::fs::File::open(&path)?);
        let mut plain = self.cipher()?.decrypt_blob(ns.as_str(), id.as_str(), file);
        io::copy(&mut plain, out).map_err(|e| blob_error(ns, id, e))
    }

    /// Deletes the blob on the server and here; `false` if the server had none.
    pub fn delete_blob(&self, ns: &Namespace, id: &BlobId) -> Result<bool, ClientError> {
        let existed = self.remote.delete_blob(ns, id)?;
        match std::fs::remove_file(self.local_blob(ns, id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        Ok(existed)
    }

    /// The server side of this device's user (blob listing and flags).
    pub fn remote(&self) -> &crate::Remote {
        &self.remote
    }
}
