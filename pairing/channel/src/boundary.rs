//! Hibernation boundaries on a [`NoiseStream`] (PROTOCOL.md §8.1): sending one, and
//! reading up to one without reading past it.
//!
//! A boundary ends the HTTP/2 connection running inside a session while the session
//! (keys, socket) stays. The read side stops at a boundary: plaintext before it is
//! delivered, then reads report the end of the stream (what hyper needs to see its
//! connection end) until [`NoiseStream::pass_boundary`] lets reading go on after it.

use std::io;
use std::pin::Pin;

use latchkey_pairing::session::BOUNDARY_LEN;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};

use crate::NoiseStream;

/// What the read side tracks of rekey markers: a marker right after a marker is a
/// boundary, and reading stops there.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    /// The last message opened was a rekey marker.
    after_marker: bool,
    /// Stopped at a boundary not passed yet.
    held: bool,
}

impl Marks {
    /// A rekey marker was opened: a boundary if it follows another one.
    pub(crate) fn on_marker(&mut self) {
        if self.after_marker {
            self.after_marker = false;
            self.held = true;
        } else {
            self.after_marker = true;
        }
    }

    /// Data was opened.
    pub(crate) fn on_data(&mut self) {
        self.after_marker = false;
    }

    /// Whether reading stopped at a boundary.
    pub(crate) fn held(&self) -> bool {
        self.held
    }
}

/// What comes next on a stream's read side, found without consuming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Plaintext is ready to be read.
    Data,
    /// A boundary (reading stopped before it: see [`NoiseStream::pass_boundary`]).
    Boundary,
    /// The peer closed the stream.
    End,
}

impl<S> NoiseStream<S> {
    /// Whether the read side stopped at a boundary.
    pub fn at_boundary(&self) -> bool {
        self.marks.held()
    }

    /// Goes past the boundary the read side stopped at (if any): reads continue with
    /// what the peer sent after it.
    pub fn pass_boundary(&mut self) {
        self.marks = Marks::default();
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> NoiseStream<S> {
    /// Seals a boundary after everything written so far and flushes it.
    pub async fn send_boundary(&mut self) -> io::Result<()> {
        self.seal_out(BOUNDARY_LEN, |session, now, out| {
            session.seal_boundary_into(now, out)
        })?;
        self.flush().await
    }

    /// Reads and drops plaintext up to the peer's next boundary, then passes it. The
    /// stream ending first is an error.
    pub async fn discard_until_boundary(&mut self) -> io::Result<()> {
        loop {
            match self.next_input().await? {
                Next::Data => {
                    // Dropped where it lies: no copy.
                    self.plain_pos = self.plain_end;
                }
                Next::Boundary => {
                    self.pass_boundary();
                    return Ok(());
                }
                Next::End => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }

    /// Waits until plaintext is ready, a boundary arrives or the peer closes, consuming
    /// nothing. A quiet stream gives its buffers back while it waits.
    pub async fn next_input(&mut self) -> io::Result<Next> {
        // A read into no room fills nothing: it returns once there is something to read
        // (or a boundary, or the end) and leaves it for the next read.
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_read(cx, &mut ReadBuf::new(&mut [])))
            .await?;
        Ok(if self.plain_pos < self.plain_end {
            Next::Data
        } else if self.at_boundary() {
            Next::Boundary
        } else {
            Next::End
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    use super::*;
    use crate::lend;
    use crate::tests::session_pair;

    fn pair() -> (NoiseStream<DuplexStream>, NoiseStream<DuplexStream>) {
        let (a, b) = session_pair();
        let (x, y) = duplex(1 << 20);
        let origin = Instant::now();
        (
            NoiseStream::new(x, a, origin),
            NoiseStream::new(y, b, origin),
        )
    }

    #[tokio::test]
    async fn a_boundary_ends_reads_until_it_is_passed() {
        let (mut left, mut right) = pair();
        left.write_all(b"old").await.unwrap();
        left.send_boundary().await.unwrap();
        left.write_all(b"new").await.unwrap();
        left.flush().await.unwrap();
        let mut buf = [0u8; 16];
        let n = right.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"old");
        assert_eq!(right.read(&mut buf).await.unwrap(), 0, "the end, for now");
        assert!(right.at_boundary());
        assert_eq!(right.read(&mut buf).await.unwrap(), 0, "still held");
        assert_eq!(right.next_input().await.unwrap(), Next::Boundary);
        right.pass_boundary();
        assert_eq!(right.next_input().await.unwrap(), Next::Data);
        assert_eq!(
            right.next_input().await.unwrap(),
            Next::Data,
            "not consumed"
        );
        let n = right.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"new");
        drop(left);
        assert_eq!(right.next_input().await.unwrap(), Next::End);
    }

    #[tokio::test]
    async fn discarding_drops_what_came_before_the_boundary_only() {
        let (mut left, mut right) = pair();
        left.write_all(&[9u8; 70_000]).await.unwrap();
        left.send_boundary().await.unwrap();
        left.write_all(b"kept").await.unwrap();
        left.flush().await.unwrap();
        right.discard_until_boundary().await.unwrap();
        assert!(!right.at_boundary());
        let mut buf = [0u8; 4];
        right.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"kept");
        // The stream ending before a boundary is an error.
        left.write_all(b"more").await.unwrap();
        left.flush().await.unwrap();
        drop(left);
        let err = right.discard_until_boundary().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn a_single_rekey_marker_is_no_boundary_and_empty_writes_send_nothing() {
        let (a, b) = session_pair();
        let (x, mut y) = duplex(1 << 16);
        let secs = Arc::new(AtomicU64::new(0));
        let clock = secs.clone();
        let mut left = NoiseStream::with_clock(x, a, move || {
            Duration::from_secs(clock.load(Ordering::Relaxed))
        });
        left.write_all(&[]).await.unwrap();
        left.flush().await.unwrap();
        secs.store(121, Ordering::Relaxed);
        left.write_all(b"data").await.unwrap();
        left.flush().await.unwrap();
        drop(left);
        let mut wire = Vec::new();
        y.read_to_end(&mut wire).await.unwrap();
        assert_eq!(
            wire.len(),
            18 + 2 + 4 + 16,
            "one marker, one message, nothing empty"
        );
        let (p, mut q) = duplex(1 << 16);
        q.write_all(&wire).await.unwrap();
        drop(q);
        let mut right = NoiseStream::new(p, b, Instant::now());
        let mut got = Vec::new();
        right.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"data");
        assert!(!right.at_boundary());
    }

    #[tokio::test]
    async fn a_lent_stream_comes_back_when_dropped_and_shutdown_does_not_close_it() {
        let (left, mut right) = pair();
        let (mut lent, back) = lend(left);
        lent.write_all(b"via loan").await.unwrap();
        lent.shutdown().await.unwrap();
        drop(lent);
        let mut left = back.await.unwrap();
        left.write_all(b"!").await.unwrap();
        left.flush().await.unwrap();
        let mut buf = [0u8; 9];
        right.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"via loan!");
    }
}
