//! Tells when a session is proven: the phone's first transport message decrypted.
//!
//! IKpsk2 mixes the session PSK in only at message 2, so a phone with a wrong or stale
//! PSK still gets message 2, and only its first transport message shows whether it holds
//! the PSK. The listener counts a session as started (log, last-seen, replay guard) only
//! once [`Proven`] fires: the wrapped stream yielded its first decrypted byte.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// A stream of plaintext (a `NoiseStream`) that reports its first successful read.
#[derive(Debug)]
pub struct FirstRead<S> {
    inner: S,
    proven: Option<oneshot::Sender<()>>,
}

/// Resolves once the first plaintext byte was read; errors if the stream ended first.
pub type Proven = oneshot::Receiver<()>;

impl<S> FirstRead<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> (Self, Proven) {
        let (tx, rx) = oneshot::channel();
        (
            Self {
                inner,
                proven: Some(tx),
            },
            rx,
        )
    }

    /// The wrapped stream.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstRead<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(())))
            && buf.filled().len() > before
            && let Some(tx) = self.proven.take()
        {
            let _ = tx.send(());
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstRead<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn fires_on_the_first_byte_and_not_before() {
        let (a, mut b) = tokio::io::duplex(64);
        let (mut wrapped, mut proven) = FirstRead::new(a);
        assert!(proven.try_recv().is_err());
        b.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(wrapped.read(&mut buf).await.unwrap(), 1);
        assert!(proven.await.is_ok());
    }

    #[tokio::test]
    async fn an_end_without_data_never_proves() {
        let (a, b) = tokio::io::duplex(64);
        let (mut wrapped, proven) = FirstRead::new(a);
        drop(b);
        let mut buf = [0u8; 4];
        assert_eq!(wrapped.read(&mut buf).await.unwrap(), 0);
        drop(wrapped);
        assert!(proven.await.is_err());
    }
}
