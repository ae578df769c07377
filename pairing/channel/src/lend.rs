//! Lending a stream to an owner that only gives it back by being dropped (hyper's
//! connections own their IO): [`lend`] wraps it, and dropping the wrapper sends the
//! stream back.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// A stream on loan; dropped, it goes back to whoever holds the [`Returned`].
///
/// Shutting it down only flushes: ending the stream is the lender's decision, so an
/// HTTP/2 connection that closes leaves the session under it open.
#[derive(Debug)]
pub struct Lent<S> {
    inner: Option<S>,
    back: Option<oneshot::Sender<S>>,
}

/// Resolves to the lent stream once its [`Lent`] is dropped.
pub type Returned<S> = oneshot::Receiver<S>;

/// Lends `stream`: use the [`Lent`], and get the stream back from the [`Returned`].
pub fn lend<S>(stream: S) -> (Lent<S>, Returned<S>) {
    let (tx, rx) = oneshot::channel();
    (
        Lent {
            inner: Some(stream),
            back: Some(tx),
        },
        rx,
    )
}

impl<S> Drop for Lent<S> {
    fn drop(&mut self) {
        if let (Some(stream), Some(back)) = (self.inner.take(), self.back.take()) {
            // Nobody waiting: the stream is simply dropped (closed).
            let _ = back.send(stream);
        }
    }
}

impl<S> Lent<S> {
    fn stream(&mut self) -> io::Result<&mut S> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("stream already returned"))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Lent<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().stream()?).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Lent<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().stream()?).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().stream()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(S::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().stream()?).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().stream()?).poll_flush(cx)
    }
}
