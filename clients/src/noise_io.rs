//! Noise over any async byte stream: handshake frame I/O and [`NoiseStream`].
//!
//! There is no maintained tokio adapter for snow 0.10, so this one is ours: it turns a
//! [`latchkey_pairing::Session`] plus a TCP stream into an `AsyncRead + AsyncWrite` that
//! hyper can run HTTP/2 over. The gateway uses the same code, so both ends share one
//! implementation of the framing. Buffers grow only while data flows and are released
//! when idle, so an idle session costs little memory.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use latchkey_pairing::frame::{self, HEADER_LEN, MAX_FRAME};
use latchkey_pairing::session::MAX_PLAINTEXT;
use latchkey_pairing::{Error as ProtocolError, Session};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Capacity above which an empty buffer is given back to the allocator.
const KEEP_CAPACITY: usize = 4096;

/// Reads one frame body of at most `max` bytes. The length is checked from the header
/// before anything is allocated for the body.
pub async fn read_frame<S: AsyncRead + Unpin>(io: &mut S, max: usize) -> io::Result<Vec<u8>> {
    let mut header = [0u8; HEADER_LEN];
    io.read_exact(&mut header).await?;
    let len =
        frame::body_len(header, max).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

/// Writes one frame and flushes.
pub async fn write_frame<S: AsyncWrite + Unpin>(io: &mut S, body: &[u8]) -> io::Result<()> {
    let mut wire = Vec::with_capacity(body.len() + HEADER_LEN);
    frame::encode(body, &mut wire).map_err(io::Error::other)?;
    io.write_all(&wire).await?;
    io.flush().await
}

fn protocol_error(e: ProtocolError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// An encrypted, authenticated byte stream over `S`.
#[derive(Debug)]
pub struct NoiseStream<S> {
    inner: S,
    session: Session,
    origin: Instant,
    /// Ciphertext read from `inner`, not yet a complete frame.
    cipher_in: Vec<u8>,
    /// Plaintext opened, not yet handed to the reader; `plain_pos` is how much was.
    plain_in: Vec<u8>,
    plain_pos: usize,
    /// Ciphertext sealed, not yet written to `inner`; `cipher_out_pos` is how much was.
    cipher_out: Vec<u8>,
    cipher_out_pos: usize,
    read_eof: bool,
}

impl<S> NoiseStream<S> {
    /// Wraps an established session. `origin` is the clock origin the session's `now`
    /// values were measured from at the handshake.
    pub fn new(inner: S, session: Session, origin: Instant) -> Self {
        Self {
            inner,
            session,
            origin,
            cipher_in: Vec::new(),
            plain_in: Vec::new(),
            plain_pos: 0,
            cipher_out: Vec::new(),
            cipher_out_pos: 0,
            read_eof: false,
        }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

fn release(buf: &mut Vec<u8>) {
    buf.clear();
    if buf.capacity() > KEEP_CAPACITY {
        *buf = Vec::new();
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> NoiseStream<S> {
    /// Writes out sealed ciphertext until none is pending.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.cipher_out_pos < self.cipher_out.len() {
            let pending = self
                .cipher_out
                .get(self.cipher_out_pos..)
                .unwrap_or_default();
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.cipher_out_pos += n;
        }
        self.cipher_out_pos = 0;
        release(&mut self.cipher_out);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for NoiseStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.plain_pos < this.plain_in.len() {
                let avail = this.plain_in.get(this.plain_pos..).unwrap_or_default();
                let n = avail.len().min(buf.remaining());
                buf.put_slice(avail.get(..n).unwrap_or_default());
                this.plain_pos += n;
                if this.plain_pos == this.plain_in.len() {
                    this.plain_pos = 0;
                    release(&mut this.plain_in);
                }
                return Poll::Ready(Ok(()));
            }
            // Open every complete frame buffered so far.
            let now = this.now();
            let used = latchkey_pairing::session::open_frames(
                &mut this.session,
                now,
                &this.cipher_in,
                &mut this.plain_in,
            )
            .map_err(protocol_error)?;
            if used > 0 {
                this.cipher_in.drain(..used);
                if this.cipher_in.is_empty() {
                    release(&mut this.cipher_in);
                }
                if !this.plain_in.is_empty() {
                    continue;
                }
            }
            if this.read_eof {
                if this.cipher_in.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended inside a frame",
                )));
            }
            // Read more ciphertext, up to one whole maximal frame at a time.
            let start = this.cipher_in.len();
            this.cipher_in.resize(start + MAX_FRAME + HEADER_LEN, 0);
            let mut rb = ReadBuf::new(this.cipher_in.get_mut(start..).unwrap_or_default());
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut rb);
            let filled = rb.filled().len();
            this.cipher_in.truncate(start + filled);
            match polled {
                Poll::Pending => {
                    if this.cipher_in.is_empty() {
                        release(&mut this.cipher_in);
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if filled == 0 => this.read_eof = true,
                Poll::Ready(Ok(())) => {}
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for NoiseStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let n = buf.len().min(MAX_PLAINTEXT);
        let now = this.now();
        this.session
            .seal(now, buf.get(..n).unwrap_or_default(), &mut this.cipher_out)
            .map_err(protocol_error)?;
        // Start writing now; whatever is left goes out on the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    //! Property-style tests: random write and read sizes through a real session pair.
    use super::*;
    use latchkey_pairing::handshake::split_type;
    use latchkey_pairing::{
        ClientHello, Keypair, ServerHello, SessionInitiator, SessionPsk, SessionResponder,
    };
    use rand::rngs::OsRng;
    use rand::{Rng, SeedableRng};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    fn session_pair() -> (Session, Session) {
        let gw = Keypair::generate(&mut OsRng).unwrap();
        let phone = Keypair::generate(&mut OsRng).unwrap();
        let psk = SessionPsk::generate(&mut OsRng).unwrap();
        let hello = ClientHello { timestamp_ms: 1 };
        let (init, first) =
            SessionInitiator::start(&gw.public(), &phone, &psk, &hello, &mut OsRng).unwrap();
        let (_, m1) = split_type(&first).unwrap();
        let resp = SessionResponder::read_hello(&gw, m1, &mut OsRng).unwrap();
        let sh = ServerHello {
            device_id: String::new(),
            gateway_name: String::new(),
            addresses: vec![],
            rekey_after_secs: 120,
        };
        let (m2, gw_session) = resp.accept(&psk, &sh, Duration::ZERO).unwrap();
        let (_, phone_session) = init.read_response(&m2, Duration::ZERO).unwrap();
        (phone_session, gw_session)
    }

    #[tokio::test]
    async fn random_chunking_round_trips_both_ways() {
        for seed in 0..8u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let (a, b) = session_pair();
            // A small pipe forces partial reads and writes of frames.
            let (x, y) = duplex(rng.gen_range(1..5000));
            let origin = Instant::now();
            let mut left = NoiseStream::new(x, a, origin);
            let mut right = NoiseStream::new(y, b, origin);
            let data: Vec<u8> = (0..rng.gen_range(1..300_000))
                .map(|i| (i * 31 + seed as usize) as u8)
                .collect();
            let sizes: Vec<usize> = (0..64).map(|_| rng.gen_range(1..70_000)).collect();
            let sent = data.clone();
            let writer = tokio::spawn(async move {
                let mut pos = 0;
                let mut i = 0;
                while pos < sent.len() {
                    let n = sizes[i % sizes.len()].min(sent.len() - pos);
                    left.write_all(&sent[pos..pos + n]).await.unwrap();
                    pos += n;
                    i += 1;
                }
                left.shutdown().await.unwrap();
                left
            });
            let mut got = Vec::new();
            let mut buf = vec![0u8; rng.gen_range(1..9000)];
            loop {
                let n = right.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got.len(), data.len(), "seed {seed}");
            assert!(got == data, "seed {seed}: corrupted");
            let _ = writer.await.unwrap();
        }
    }

    #[tokio::test]
    async fn tampering_and_truncation_are_errors_not_data() {
        let (a, b) = session_pair();
        let origin = Instant::now();
        let (x, mut y) = duplex(1 << 20);
        let mut left = NoiseStream::new(x, a, origin);
        left.write_all(b"hello world").await.unwrap();
        left.flush().await.unwrap();
        let mut wire = vec![0u8; 2 + 11 + 16];
        y.read_exact(&mut wire).await.unwrap();
        // Flip one ciphertext bit and feed it to the other side.
        let (p, mut q) = duplex(1 << 20);
        let mut right = NoiseStream::new(p, b, origin);
        wire[5] ^= 0x40;
        q.write_all(&wire).await.unwrap();
        let mut buf = [0u8; 64];
        let err = right.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        // A stream that ends inside a frame is an error, not a clean end.
        let (_, b2) = session_pair();
        let (p, mut q) = duplex(1 << 20);
        let mut right = NoiseStream::new(p, b2, origin);
        q.write_all(&[0x03, 0xe8, 1, 2, 3]).await.unwrap();
        drop(q);
        let err = right.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn read_frame_refuses_oversized_lengths_before_allocating() {
        let (mut p, mut q) = duplex(64);
        q.write_all(&[0xff, 0xff]).await.unwrap();
        let err = read_frame(&mut p, 1024).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
