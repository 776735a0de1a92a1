//! Time limits once a request head is in: a body that sends less than
//! `MIN_PROGRESS` bytes within an idle timeout ends its request (408; a
//! body trickled a byte a second once held its connection forever), and
//! a response its client does not read for an idle timeout ends the
//! connection (which drops the response body, so a `sync/changes`
//! reader's snapshot is released). hyper has a timer for request heads
//! only; these are the rest.

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How much of a body must arrive within each idle timeout (the last
/// part of a body may be shorter: it ends the body).
pub const MIN_PROGRESS: u64 = 64 * 1024;

/// What a body that stalled reports, for the handler to answer 408.
#[derive(Debug, thiserror::Error)]
#[error("less than 64 KiB of the body arrived within {0:?}")]
pub struct BodyStalled(pub Duration);

/// A request body that fails once no frame came for `limit`.
#[derive(Debug)]
pub struct StallBody<B> {
    inner: B,
    limit: Duration,
    /// Reset each time `MIN_PROGRESS` more bytes arrived, and moved on
    /// by the time the handler spent between reads (only waiting for the
    /// client counts).
    deadline: Pin<Box<Sleep>>,
    /// Bytes since the last reset.
    progress: u64,
    /// When a frame was last handed to the handler.
    handed: Option<Instant>,
}

impl<B> StallBody<B> {
    pub fn new(inner: B, limit: Duration) -> Self {
        StallBody {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            progress: 0,
            handed: None,
        }
    }
}

impl<B> Body for StallBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(at) = this.handed.take() {
            // The handler was busy (a slow write, a full queue): not the
            // client's time.
            let later = this.deadline.deadline() + at.elapsed();
            this.deadline.as_mut().reset(later);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.handed = Some(Instant::now());
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                    this.progress += data.map_or(0, |d| d.len() as u64);
                }
                if this.progress >= MIN_PROGRESS {
                    this.progress = 0;
                    let next = Instant::now() + this.limit;
                    this.deadline.as_mut().reset(next);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending if this.deadline.is_elapsed() => {
                Poll::Ready(Some(Err(Box::new(BodyStalled(this.limit)))))
            }
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                Poll::Ready(Some(Err(Box::new(BodyStalled(this.limit)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a body error was caused by a `T` (e.g. [`BodyStalled`]).
pub fn caused_by<T: std::error::Error + 'static>(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<T>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A connection whose writes fail once one made no progress for `limit`
/// (a client that stopped reading); reads pass through.
#[derive(Debug)]
pub struct StallWrite<T> {
    inner: T,
    limit: Duration,
    /// Armed when a write could not proceed; cleared by progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> StallWrite<T> {
    pub fn new(inner: T, limit: Duration) -> Self {
        StallWrite {
            inner,
            limit,
            stalled: None,
        }
    }

    /// `Pending` from the inner write: pending still, or an error once
    /// the stall lasted `limit`.
    fn waiting<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {limit:?}"),
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallWrite<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallWrite<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.waiting(cx),
            done => {
                self.stalled = None;
                done
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.waiting(cx),
            done => {
                self.stalled = None;
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.waiting(cx),
            done => {
                self.stalled = None;
                done
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
