//! How a blob's file is written: through tokio's file writes (every
//! buffer a trip to the blocking pool, then an fsync), or, built with the
//! `io-uring` feature and where the kernel allows it, through one io_uring
//! per upload on one blocking thread, which writes a buffer while the next
//! arrives from the network and ends with the fsync. The two are a variant
//! of the benchmark (scenarios/variants.toml): the question is which waits
//! less on the disk. `blob_bytes_written{storage=…}` says which ran.

use axum::body::Bytes;
use std::path::Path;
use tokio::io::AsyncWriteExt;

/// Writes to the file are batched to this size.
pub(crate) const WRITE_BUFFER: usize = 256 * 1024;

/// An open blob file being written.
pub(crate) enum Writer {
    Tokio(tokio::io::BufWriter<tokio::fs::File>),
    #[cfg(feature = "io-uring")]
    Uring(uring::Writer),
}

impl Writer {
    /// Creates the file, for the way this server writes blobs.
    pub async fn create(path: &Path) -> std::io::Result<Writer> {
        #[cfg(feature = "io-uring")]
        if uring::available() {
            let file = std::fs::File::create(path)?;
            match uring::Writer::start(file) {
                Ok(w) => return Ok(Writer::Uring(w)),
                // No ring for this upload (e.g. locked memory used up on
                // kernels before 5.12): the blocking pool's way instead.
                Err((file, e)) => {
                    tracing::debug!("no io_uring for this upload ({e}): writing through the pool");
                    return Ok(Writer::Tokio(tokio::io::BufWriter::with_capacity(
                        WRITE_BUFFER,
                        tokio::fs::File::from_std(file),
                    )));
                }
            }
        }
        let file = tokio::fs::File::create(path).await?;
        Ok(Writer::Tokio(tokio::io::BufWriter::with_capacity(
            WRITE_BUFFER,
            file,
        )))
    }

    pub async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        match self {
            Writer::Tokio(w) => w.write_all(&chunk).await,
            #[cfg(feature = "io-uring")]
            Writer::Uring(w) => w.write(chunk).await,
        }
    }

    /// Writes what is left and fsyncs the file; the storage label of the
    /// way it was written (`file`, `file_uring`).
    pub async fn finish(self) -> std::io::Result<&'static str> {
        match self {
            Writer::Tokio(mut w) => {
                w.flush().await?;
                w.into_inner().sync_all().await?;
                Ok("file")
            }
            #[cfg(feature = "io-uring")]
            Writer::Uring(w) => {
                w.finish().await?;
                Ok("file_uring")
            }
        }
    }
}

/// What `--version` and the startup line say of blob writes.
pub fn describe() -> String {
    #[cfg(feature = "io-uring")]
    {
        match uring::probe() {
            Ok(()) => "io_uring".to_owned(),
            Err(why) => format!("blocking pool (io_uring unavailable: {why})"),
        }
    }
    #[cfg(not(feature = "io-uring"))]
    {
        "blocking pool".to_owned()
    }
}

#[cfg(feature = "io-uring")]
#[allow(unsafe_code)] // io_uring's submissions borrow buffers the kernel reads later
mod uring {
    use super::WRITE_BUFFER;
    use axum::body::Bytes;
    use io_uring::{IoUring, opcode, types};
    use std::os::fd::AsRawFd;
    use std::sync::LazyLock;

    /// Writes in flight per upload.
    const DEPTH: usize = 4;

    /// Whether this kernel (and its seccomp policy) lets the process make
    /// a ring: probed once. `SYNC_BLOB_IO=threads` turns it off.
    static AVAILABLE: LazyLock<Result<(), String>> = LazyLock::new(|| {
        if std::env::var("SYNC_BLOB_IO").is_ok_and(|v| v == "threads") {
            return Err("SYNC_BLOB_IO=threads".into());
        }
        let ring = IoUring::new(2).map_err(|e| e.to_string())?;
        // A ring alone is not enough: kernels before 5.6 have no write op.
        let mut probe = io_uring::Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| format!("probing io_uring: {e}"))?;
        for (name, code) in [
            ("write", opcode::Write::CODE),
            ("fsync", opcode::Fsync::CODE),
        ] {
            if !probe.is_supported(code) {
                return Err(format!("this kernel's io_uring has no {name}"));
            }
        }
        Ok(())
    });

    pub(super) fn probe() -> Result<(), String> {
        AVAILABLE.clone()
    }

    pub(super) fn available() -> bool {
        AVAILABLE.is_ok()
    }

    pub(crate) struct Writer {
        pending: Vec<u8>,
        tx: tokio::sync::mpsc::Sender<Vec<u8>>,
        done: tokio::task::JoinHandle<std::io::Result<()>>,
    }

    impl Writer {
        /// A ring for `file`, and the thread writing through it; the file
        /// back when there is no ring.
        pub(super) fn start(
            file: std::fs::File,
        ) -> Result<Writer, (std::fs::File, std::io::Error)> {
            let ring = match IoUring::new(DEPTH as u32 * 2) {
                Ok(r) => r,
                Err(e) => return Err((file, e)),
            };
            let (tx, rx) = tokio::sync::mpsc::channel(DEPTH);
            let done = tokio::task::spawn_blocking(move || write_all(&file, ring, rx));
            Ok(Writer {
                pending: Vec::with_capacity(WRITE_BUFFER),
                tx,
                done,
            })
        }

        pub(super) async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
            self.pending.extend_from_slice(&chunk);
            if self.pending.len() >= WRITE_BUFFER {
                let full = std::mem::replace(&mut self.pending, Vec::with_capacity(WRITE_BUFFER));
                if self.tx.send(full).await.is_err() {
                    // The writer stopped early: its error is the answer.
                    return Err(self.stopped().await);
                }
            }
            Ok(())
        }

        async fn stopped(&mut self) -> std::io::Error {
            match (&mut self.done).await {
                Ok(Err(e)) => e,
                Ok(Ok(())) => std::io::Error::other("the io_uring writer stopped early"),
                Err(e) => std::io::Error::other(format!("the io_uring writer panicked: {e}")),
            }
        }

        pub(super) async fn finish(mut self) -> std::io::Result<()> {
            if !self.pending.is_empty() {
                let last = std::mem::take(&mut self.pending);
                if self.tx.send(last).await.is_err() {
                    return Err(self.stopped().await);
                }
            }
            drop(self.tx);
            self.done
                .await
                .map_err(|e| std::io::Error::other(format!("the io_uring writer panicked: {e}")))?
        }
    }

    /// One buffer being written: its bytes, where they go, how many are
    /// written.
    struct Slot {
        buf: Vec<u8>,
        offset: u64,
        done: usize,
    }

    /// Writes every buffer from `rx` at increasing offsets, up to
    /// [`DEPTH`] in flight, then fsyncs. Never returns while the kernel
    /// still holds a buffer.
    fn write_all(
        file: &std::fs::File,
        ring: IoUring,
        mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    ) -> std::io::Result<()> {
        // Declared before the ring, so dropped after it (on a panic too).
        let mut slots: Vec<Option<Slot>> = (0..DEPTH).map(|_| None).collect();
        let mut ring = ring;
        let fd = types::Fd(file.as_raw_fd());
        let mut offset = 0u64;
        let mut closed = false;
        let result = loop {
            let in_flight = slots.iter().filter(|s| s.is_some()).count();
            if !closed && in_flight < DEPTH {
                // Wait for data only when nothing is being written.
                let next = if in_flight == 0 {
                    rx.blocking_recv()
                } else {
                    rx.try_recv().ok()
                };
                match next {
                    Some(buf) => {
                        let i = slots.iter().position(Option::is_none).expect("a free slot");
                        let len = buf.len() as u64;
                        slots[i] = Some(Slot {
                            buf,
                            offset,
                            done: 0,
                        });
                        offset += len;
                        if let Err(e) = submit(&mut ring, fd, &slots, i) {
                            slots[i] = None; // never queued
                            break Err(e);
                        }
                        continue;
                    }
                    None if in_flight == 0 => closed = true,
                    None => {}
                }
            }
            if closed && slots.iter().all(Option::is_none) {
                break Ok(());
            }
            if let Err(e) = reap(&mut ring, fd, &mut slots) {
                break Err(e);
            }
        };
        // Whatever happened, the kernel gives back every buffer first.
        while slots.iter().any(Option::is_some) {
            match ring.submit_and_wait(1) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // A broken ring may still hold them: leaked, never freed
                    // under the kernel.
                    slots
                        .iter_mut()
                        .filter_map(Option::take)
                        .for_each(std::mem::forget);
                    break;
                }
                Ok(_) => {}
            }
            for cqe in ring.completion() {
                slots[cqe.user_data() as usize] = None;
            }
        }
        result?;
        let fsync = opcode::Fsync::new(fd).build().user_data(u64::MAX);
        // SAFETY: an fsync borrows no memory.
        unsafe { ring.submission().push(&fsync) }.map_err(std::io::Error::other)?;
        wait(&mut ring)?;
        match ring.completion().next().map(|c| c.result()) {
            Some(res) if res < 0 => Err(std::io::Error::from_raw_os_error(-res)),
            Some(_) => Ok(()),
            None => Err(std::io::Error::other("io_uring: no fsync completion")),
        }
    }

    /// Submits what is queued and waits for a completion, through
    /// signals (EINTR).
    fn wait(ring: &mut IoUring) -> std::io::Result<()> {
        loop {
            match ring.submit_and_wait(1) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => return other.map(|_| ()),
            }
        }
    }

    /// Queues the rest of slot `i`'s buffer and submits the queue; an
    /// error means it was not queued (a failed submit leaves it queued
    /// for the next `submit_and_wait`).
    fn submit(
        ring: &mut IoUring,
        fd: types::Fd,
        slots: &[Option<Slot>],
        i: usize,
    ) -> std::io::Result<()> {
        let s = slots[i].as_ref().expect("a filled slot");
        let rest = &s.buf[s.done..];
        let write = opcode::Write::new(fd, rest.as_ptr(), rest.len() as u32)
            .offset(s.offset + s.done as u64)
            .build()
            .user_data(i as u64);
        // SAFETY: the buffer stays in its slot, unmoved, until its
        // completion is reaped (`reap`, or the drain in `write_all` on
        // every way out).
        unsafe { ring.submission().push(&write) }.map_err(std::io::Error::other)?;
        let _ = ring.submit();
        Ok(())
    }

    /// Waits for one completion at least; frees each finished slot and
    /// submits the rest of a short write.
    fn reap(ring: &mut IoUring, fd: types::Fd, slots: &mut [Option<Slot>]) -> std::io::Result<()> {
        wait(ring)?;
        let done: Vec<(usize, i32)> = ring
            .completion()
            .map(|c| (c.user_data() as usize, c.result()))
            .collect();
        let mut failed = None;
        let mut short = Vec::new();
        // Every completion accounted for before anything is queued again.
        for (i, res) in done {
            if res < 0 {
                slots[i] = None;
                failed.get_or_insert(std::io::Error::from_raw_os_error(-res));
                continue;
            }
            let s = slots[i].as_mut().expect("a slot in flight");
            s.done += res as usize;
            if res == 0 {
                slots[i] = None;
                failed.get_or_insert(std::io::Error::from(std::io::ErrorKind::WriteZero));
            } else if s.done < s.buf.len() {
                short.push(i);
            } else {
                slots[i] = None;
            }
        }
        for i in short {
            if let Err(e) = submit(ring, fd, slots, i) {
                slots[i] = None;
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks of awkward sizes across buffer boundaries come out whole,
    /// in order, whichever way this build writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_written_in_uneven_chunks_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..3 * WRITE_BUFFER + 12_345)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let mut w = Writer::create(&path).await.unwrap();
        let mut at = 0;
        for size in [1, 70_000, WRITE_BUFFER - 1, 2, WRITE_BUFFER + 5, 999]
            .into_iter()
            .cycle()
        {
            if at == data.len() {
                break;
            }
            let end = (at + size).min(data.len());
            w.write(Bytes::copy_from_slice(&data[at..end]))
                .await
                .unwrap();
            at = end;
        }
        let storage = w.finish().await.unwrap();
        eprintln!("blob writes here: {} ({storage})", describe());
        assert_eq!(std::fs::read(&path).unwrap(), data);
        if cfg!(feature = "io-uring") && describe() == "io_uring" {
            assert_eq!(storage, "file_uring");
        } else {
            assert_eq!(storage, "file");
        }
    }
}
