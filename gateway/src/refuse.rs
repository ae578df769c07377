//! How a refused connection ends: the same way, at the same time, whatever was sent.
//!
//! A refused peer gets no byte. So that how the connection ends gives nothing away
//! either, every refusal is held until [`REFUSAL_HOLD`] after the connection was
//! accepted, everything the peer sends meanwhile is read and discarded (unread data at
//! close makes the kernel answer with a reset), and the gateway then closes cleanly (FIN),
//! lingering briefly to absorb late bytes. A held connection keeps its slot in the
//! bounded pre-auth pool, so eviction still makes room for phones; an evicted one is
//! closed the same clean way, at a time set by others' load, not by its input.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::listener::HANDSHAKE_DEADLINE;

/// When, after accept, every refused connection ends: the handshake deadline, so silence
/// and a refused handshake end alike.
pub const REFUSAL_HOLD: Duration = HANDSHAKE_DEADLINE;
/// How long the clean close waits for the peer's own close before letting go.
pub const LINGER: Duration = Duration::from_secs(1);

/// Holds a refused connection until `origin + REFUSAL_HOLD` (or eviction), discarding
/// what it sends, then closes it cleanly.
pub async fn hold_then_close(mut stream: TcpStream, origin: Instant, evicted: &CancellationToken) {
    let until = tokio::time::Instant::from_std(origin + REFUSAL_HOLD);
    let hold = async {
        let mut buf = [0u8; 512];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => {
                    // The peer closed its side; still end at the common time.
                    tokio::time::sleep_until(until).await;
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    };
    tokio::select! {
        _ = tokio::time::timeout_at(until, hold) => {}
        _ = evicted.cancelled() => {}
    }
    close_quietly(stream).await;
}

/// Closes with a FIN, never a reset: drains what is unread, shuts the write side, and
/// reads until the peer closes or [`LINGER`] passes.
pub async fn close_quietly(mut stream: TcpStream) {
    drain_now(&stream);
    let _ = stream.shutdown().await;
    let linger = async {
        let mut buf = [0u8; 512];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, linger).await;
    drain_now(&stream);
}

/// Reads and discards whatever is already buffered, without waiting.
fn drain_now(stream: &TcpStream) {
    let mut buf = [0u8; 512];
    while let Ok(n) = stream.try_read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}
