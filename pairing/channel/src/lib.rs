//! Latchkey's channel over any async byte stream: handshake frame I/O and [`NoiseStream`].
//!
//! There is no maintained tokio adapter for snow 0.10, so this one is ours: it turns a
//! [`latchkey_pairing::Session`] plus a TCP stream into an `AsyncRead + AsyncWrite` that
//! hyper can run HTTP/2 over. The gateway and the phone library both depend on this small
//! crate (and neither on the other), so both ends share one implementation of the framing. Buffers are held only while bytes in
//! them are pending and are otherwise shared through a small pool, so an idle session
//! holds none.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use latchkey_pairing::frame::{self, HEADER_LEN, MAX_FRAME};
use latchkey_pairing::session::{MAX_PLAINTEXT, Opened};
use latchkey_pairing::{Error as ProtocolError, Session};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

mod boundary;
mod lend;
mod pool;
pub use boundary::Next;
pub use lend::{Lent, Returned, lend};

/// Largest HTTP/2 frame either side accepts: about 64 KiB rather than the 16 KiB default,
/// so a bulk body takes a quarter of the frames, writes and wake-ups (measured by the
/// relay benchmark; see BENCHMARKS.md), and exactly one Noise message's plaintext less
/// the frame header, so a full DATA frame's payload is sealed as one message (its 9-byte
/// header goes as its own small one) instead of a full message and a 17-byte tail.
/// Both ends configure hyper with it.
pub const H2_MAX_FRAME: u32 = (MAX_PLAINTEXT - H2_FRAME_HEADER) as u32;

/// Bytes of an HTTP/2 frame header.
const H2_FRAME_HEADER: usize = 9;

/// A read at least this big means data is flowing: the next read makes room for a
/// whole maximal frame.
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
///
/// Writes are sealed into an outgoing buffer and sent when it holds [`SEND_BATCH`]
/// bytes or on flush (hyper flushes after every batch of frames), so a small HTTP/2
/// frame header and its payload leave in one system call. Vectored writes seal each
/// slice directly, without gathering them first. Each message read is opened in place,
/// in the buffer it was read into, and its plaintext handed to the reader from there.
/// A buffer that empties goes back to a small process-wide pool (`pool.rs`), where the
/// next stream that needs one takes it, still in the cache.
#[derive(Debug)]
pub struct NoiseStream<S> {
    inner: S,
    session: Session,
    now: SessionClock,
    /// Bytes read from `inner`: `plain_pos..plain_end` is the plaintext of the last
    /// message, opened in place and not yet handed to the reader; `cipher_start..
    /// cipher_end` (after it) is ciphertext not opened yet. The vector's length is how
    /// much of it is initialised, reused without zeroing it again.
    read_buf: Vec<u8>,
    plain_pos: usize,
    plain_end: usize,
    cipher_start: usize,
    cipher_end: usize,
    /// Ciphertext sealed, not yet written to `inner`: bytes `cipher_out_pos..
    /// cipher_out_end`; initialised like `read_buf`.
    cipher_out: Vec<u8>,
    cipher_out_pos: usize,
    cipher_out_end: usize,
    /// Bytes the last read from `inner` returned: a small read means the peer is
    /// trickling (pings, window updates) and reads are sized to the frame they are in.
    last_read: usize,
    read_eof: bool,
    /// Rekey markers and hibernation boundaries seen by the read side (`boundary.rs`).
    marks: boundary::Marks,
}

/// Sealed bytes held before they are written without waiting for a flush.
pub const SEND_BATCH: usize = 256 << 10;
/// Ciphertext one read from `inner` takes at most while data flows (four maximal frames).
const READ_BATCH: usize = 4 * (MAX_FRAME + HEADER_LEN);
/// Bytes one vectored write seals at most.
const WRITE_BUDGET: usize = 4 * MAX_PLAINTEXT;
/// Slices shorter than this are gathered into one message with their neighbours.
const SMALL_SLICE: usize = 1024;

/// Where a stream's `now` (time since the handshake's origin) comes from: the system's
/// monotonic clock, or one the caller injects (the gateway's simulated clock in tests).
pub struct SessionClock(Box<dyn Fn() -> Duration + Send + Sync>);

impl std::fmt::Debug for SessionClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionClock")
    }
}

impl<S> NoiseStream<S> {
    /// Wraps an established session. `origin` is the clock origin the session's `now`
    /// values were measured from at the handshake.
    pub fn new(inner: S, session: Session, origin: Instant) -> Self {
        Self::with_clock(inner, session, move || origin.elapsed())
    }

    /// Like [`NoiseStream::new`], with `now` giving the time since the handshake's origin.
    pub fn with_clock(
        inner: S,
        session: Session,
        now: impl Fn() -> Duration + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            session,
            now: SessionClock(Box::new(now)),
            read_buf: Vec::new(),
            plain_pos: 0,
            plain_end: 0,
            cipher_start: 0,
            cipher_end: 0,
            cipher_out: Vec::new(),
            cipher_out_pos: 0,
            cipher_out_end: 0,
            last_read: 0,
            read_eof: false,
            marks: boundary::Marks::default(),
        }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Bytes of buffer memory this stream holds now (for memory tests; the shared pool
    /// is not counted).
    pub fn buffered_capacity(&self) -> usize {
        self.read_buf.capacity() + self.cipher_out.capacity()
    }

    fn now(&self) -> Duration {
        (self.now.0)()
    }

    /// Gives the read buffer to the pool if nothing in it is pending.
    fn release_read_if_empty(&mut self) {
        if self.plain_pos == self.plain_end && self.cipher_start == self.cipher_end {
            self.plain_pos = 0;
            self.plain_end = 0;
            self.cipher_start = 0;
            self.cipher_end = 0;
            pool::POOL.give(std::mem::take(&mut self.read_buf));
        }
    }

    /// Seals `plain` into the outgoing buffer.
    fn seal(&mut self, plain: &[u8]) -> io::Result<()> {
        let need = latchkey_pairing::session::sealed_len_max(plain.len());
        self.seal_out(need, |session, now, out| session.seal_into(now, plain, out))
    }

    /// Runs `seal` (which returns the bytes it wrote) into at least `need` bytes of room
    /// after the pending output.
    fn seal_out(
        &mut self,
        need: usize,
        seal: impl FnOnce(&mut Session, Duration, &mut [u8]) -> Result<usize, ProtocolError>,
    ) -> io::Result<()> {
        let now = self.now();
        self.reserve_out(need);
        let out = self
            .cipher_out
            .get_mut(self.cipher_out_end..)
            .unwrap_or_default();
        let n = seal(&mut self.session, now, out).map_err(protocol_error)?;
        self.cipher_out_end += n;
        Ok(())
    }

    /// Makes at least `need` bytes of initialised room after the pending output (a buffer
    /// from the pool if this stream holds none), for sealing into.
    fn reserve_out(&mut self, need: usize) {
        if self.cipher_out.capacity() == 0 {
            self.cipher_out = pool::POOL.take();
        }
        make_room(
            &mut self.cipher_out,
            &mut self.cipher_out_pos,
            &mut self.cipher_out_end,
            need,
        );
    }

    /// Opens the next complete frame of `read_buf` in place; returns whether there was
    /// one. Its plaintext, if any, becomes the window `plain_pos..plain_end`; call only
    /// when that window is empty.
    fn open_next(&mut self) -> io::Result<bool> {
        if self.marks.held() {
            // Stopped at a hibernation boundary until it is passed (`boundary.rs`).
            return Ok(false);
        }
        let pending = self
            .read_buf
            .get(self.cipher_start..self.cipher_end)
            .unwrap_or_default();
        let Some(f) = frame::decode(pending, MAX_FRAME)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        else {
            return Ok(false);
        };
        let body_start = self.cipher_start + HEADER_LEN;
        let body_end = self.cipher_start + f.consumed;
        let now = self.now();
        self.cipher_start = body_end;
        let body = self
            .read_buf
            .get_mut(body_start..body_end)
            .unwrap_or_default();
        match self
            .session
            .open_in_place(now, body)
            .map_err(protocol_error)?
        {
            Opened::Data(n) => {
                self.plain_pos = body_start;
                self.plain_end = body_start + n;
                self.marks.on_data();
            }
            Opened::Rekeyed => {
                // The one place the read path sees a transport message that opened to
                // zero bytes of plaintext (a rekey marker): one message, nothing to
                // hand out.
                self.marks.on_marker();
            }
        }
        Ok(true)
    }

    /// Makes room in `read_buf` for the next read from `inner`, when no plaintext is
    /// pending: while data flows, a whole maximal frame; a quiet connection (a new one,
    /// pings, window updates) reads in small steps, sized to the frame it is in.
    fn make_read_room(&mut self) {
        let pending = self.cipher_end - self.cipher_start;
        let frame_left = match self
            .read_buf
            .get(self.cipher_start..self.cipher_start + HEADER_LEN)
        {
            Some(&[hi, lo]) => {
                (usize::from(u16::from_be_bytes([hi, lo])) + HEADER_LEN).saturating_sub(pending)
            }
            _ => HEADER_LEN,
        };
        let flowing = self.last_read >= KEEP_CAPACITY;
        let want = if flowing {
            MAX_FRAME + HEADER_LEN
        } else {
            frame_left.max(KEEP_CAPACITY / 2)
        };
        if self.read_buf.capacity() == 0 {
            self.read_buf = pool::POOL.take();
        }
        self.plain_pos = 0;
        self.plain_end = 0;
        // A partial frame left at the back moves to the front rather than the buffer
        // growing (the write side only appends until it has drained, then rewinds).
        if self.read_buf.len() - self.cipher_end < want && self.cipher_start > 0 {
            self.read_buf
                .copy_within(self.cipher_start..self.cipher_end, 0);
            self.cipher_end -= self.cipher_start;
            self.cipher_start = 0;
        }
        make_room(
            &mut self.read_buf,
            &mut self.cipher_start,
            &mut self.cipher_end,
            want,
        );
        // While data flows, one read takes up to READ_BATCH bytes: fewer system calls,
        // and a partial frame at the back is moved to the front once per several frames
        // instead of after every read.
        if flowing && self.read_buf.len() < READ_BATCH {
            self.read_buf.resize(READ_BATCH, 0);
        }
    }
}

/// Makes `need` bytes of initialised room after `end` in the window `pos..end` of `buf`:
/// rewinds an empty window, grows (zeroing only the growth) when still short.
fn make_room(buf: &mut Vec<u8>, pos: &mut usize, end: &mut usize, need: usize) {
    if *pos == *end {
        *pos = 0;
        *end = 0;
    }
    if buf.len() - *end < need {
        buf.resize(*end + need, 0);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> NoiseStream<S> {
    /// Writes out sealed ciphertext until none is pending, then gives the buffer to the
    /// pool.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.cipher_out_pos < self.cipher_out_end {
            let pending = self
                .cipher_out
                .get(self.cipher_out_pos..self.cipher_out_end)
                .unwrap_or_default();
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.cipher_out_pos += n;
        }
        self.cipher_out_pos = 0;
        self.cipher_out_end = 0;
        pool::POOL.give(std::mem::take(&mut self.cipher_out));
        Poll::Ready(Ok(()))
    }

    /// Makes room before sealing more: drains once a batch is waiting.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.cipher_out_end - self.cipher_out_pos >= SEND_BATCH {
            ready!(self.poll_drain(cx))?;
        }
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
            if this.plain_pos < this.plain_end {
                let avail = this
                    .read_buf
                    .get(this.plain_pos..this.plain_end)
                    .unwrap_or_default();
                let n = avail.len().min(buf.remaining());
                buf.put_slice(avail.get(..n).unwrap_or_default());
                this.plain_pos += n;
                this.release_read_if_empty();
                return Poll::Ready(Ok(()));
            }
            if this.open_next()? {
                continue;
            }
            if this.marks.held() {
                // Stopped at a boundary: the end, until it is passed.
                return Poll::Ready(Ok(()));
            }
            if this.read_eof {
                if this.cipher_start == this.cipher_end {
                    return Poll::Ready(Ok(()));
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended inside a frame",
                )));
            }
            this.make_read_room();
            let mut rb = ReadBuf::new(this.read_buf.get_mut(this.cipher_end..).unwrap_or_default());
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut rb);
            let filled = rb.filled().len();
            match polled {
                Poll::Pending => {
                    this.release_read_if_empty();
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if filled == 0 => this.read_eof = true,
                Poll::Ready(Ok(())) => {
                    this.cipher_end += filled;
                    this.last_read = filled;
                }
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
        // An empty write seals nothing: no message goes out for it.
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        ready!(this.poll_room(cx))?;
        let n = buf.len().min(WRITE_BUDGET);
        this.seal(buf.get(..n).unwrap_or_default())?;
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Empty slices seal nothing (`seal` of no bytes writes no message either).
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        ready!(this.poll_room(cx))?;
        let mut taken = 0;
        // Small slices (frame headers) are gathered so they do not each cost a message.
        let mut small: Vec<u8> = Vec::new();
        for slice in bufs {
            let left = WRITE_BUDGET - taken;
            if left == 0 {
                break;
            }
            let part = slice.get(..slice.len().min(left)).unwrap_or_default();
            if part.len() < SMALL_SLICE {
                small.extend_from_slice(part);
            } else {
                if !small.is_empty() {
                    this.seal(&small)?;
                    small.clear();
                }
                this.seal(part)?;
            }
            taken += part.len();
        }
        if !small.is_empty() {
            this.seal(&small)?;
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
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
    use rand::rngs::OsRng;
    use rand::{Rng, SeedableRng};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    pub(crate) fn session_pair() -> (Session, Session) {
        session_pair_rotating_every(120)
    }

    fn session_pair_rotating_every(secs: u64) -> (Session, Session) {
        latchkey_pairing::testing::session_pair(&mut OsRng, secs, Duration::ZERO).unwrap()
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

    /// Streams on both runtime threads at once, all taking and giving buffers through the
    /// one pool, with random chunking: every byte arrives, in order, on its own stream.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_streams_never_mix_or_lose_bytes() {
        let mut tasks = Vec::new();
        for seed in 0..12u64 {
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let (a, b) = session_pair();
                let (x, y) = duplex(rng.gen_range(1000..200_000));
                let origin = Instant::now();
                let mut left = NoiseStream::new(x, a, origin);
                let mut right = NoiseStream::new(y, b, origin);
                let data: Vec<u8> = (0..rng.gen_range(100_000..600_000))
                    .map(|i| (i as u64 * 7 + seed * 101) as u8)
                    .collect();
                let sizes: Vec<usize> = (0..16).map(|_| rng.gen_range(1..150_000)).collect();
                let sent = data.clone();
                let writer = tokio::spawn(async move {
                    let (mut pos, mut i) = (0, 0);
                    while pos < sent.len() {
                        let n = sizes[i % sizes.len()].min(sent.len() - pos);
                        left.write_all(&sent[pos..pos + n]).await.unwrap();
                        if i % 3 == 0 {
                            left.flush().await.unwrap();
                        }
                        pos += n;
                        i += 1;
                    }
                    left.shutdown().await.unwrap();
                });
                let mut got = Vec::new();
                right.read_to_end(&mut got).await.unwrap();
                writer.await.unwrap();
                assert!(
                    got == data,
                    "seed {seed}: {} of {} bytes",
                    got.len(),
                    data.len()
                );
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }

    /// Rekey markers between data messages in one read buffer: each is opened in place
    /// and skipped, and the data around them comes out whole.
    #[tokio::test]
    async fn rekey_markers_between_messages_are_opened_in_place() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let (a, b) = session_pair_rotating_every(1);
        let secs = Arc::new(AtomicU64::new(0));
        let clock = {
            let secs = Arc::clone(&secs);
            move || Duration::from_secs(secs.load(Ordering::Relaxed))
        };
        let (x, y) = duplex(1 << 22);
        let mut left = NoiseStream::with_clock(x, a, clock.clone());
        let mut right = NoiseStream::with_clock(y, b, clock);
        let mut expected = Vec::new();
        for round in 0..20u8 {
            // Each round is due a new key: a marker, then the data.
            secs.fetch_add(1, Ordering::Relaxed);
            let chunk = vec![round; 1000 + usize::from(round) * 3000];
            left.write_all(&chunk).await.unwrap();
            expected.extend_from_slice(&chunk);
        }
        left.flush().await.unwrap();
        let mut got = vec![0u8; expected.len()];
        right.read_exact(&mut got).await.unwrap();
        assert!(got == expected);
        assert_eq!(
            left.session.sending_nonce(),
            40,
            "20 markers and 20 messages"
        );
    }

    /// One read that finds nothing: the stream waits on its peer.
    async fn quiet_read(s: &mut NoiseStream<tokio::io::DuplexStream>) {
        let mut buf = [0u8; 16];
        let mut rb = ReadBuf::new(&mut buf);
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *s).poll_read(cx, &mut rb))).await;
        assert!(polled.is_pending(), "expected no data");
    }

    #[tokio::test]
    async fn an_idle_stream_holds_no_buffers() {
        let (a, b) = session_pair();
        let origin = Instant::now();
        let (x, y) = duplex(1 << 20);
        let mut left = NoiseStream::new(x, a, origin);
        let mut right = NoiseStream::new(y, b, origin);
        left.write_all(&[7u8; 100_000]).await.unwrap();
        left.flush().await.unwrap();
        let mut got = vec![0u8; 100_000];
        right.read_exact(&mut got).await.unwrap();
        assert!(got.iter().all(|&b| b == 7));
        quiet_read(&mut right).await;
        quiet_read(&mut right).await;
        assert_eq!(right.buffered_capacity(), 0, "reader after a quiet spell");
        // The writer gave its buffer to the pool once it was written out.
        assert_eq!(left.buffered_capacity(), 0, "writer after its flush");
        quiet_read(&mut left).await;
        assert_eq!(left.buffered_capacity(), 0, "writer after a quiet spell");
        // And it still works afterwards, both ways.
        right.write_all(b"pong").await.unwrap();
        right.flush().await.unwrap();
        let mut pong = [0u8; 4];
        left.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"pong");
    }

    #[tokio::test]
    async fn read_frame_refuses_oversized_lengths_before_allocating() {
        let (mut p, mut q) = duplex(64);
        q.write_all(&[0xff, 0xff]).await.unwrap();
        let err = read_frame(&mut p, 1024).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
