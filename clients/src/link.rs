//! The session's HTTP/2 connection as the phone keeps it: one at a time inside the Noise
//! session, ended and restarted around the gateway's hibernation (PROTOCOL.md §8.1).
//!
//! A driver task runs the connection. When it ends, the driver waits for the gateway's
//! boundary (reading past what is left of the old connection) and answers with its own:
//! the session is then hibernated, holding only the Noise session and the socket. The
//! next request wakes it: the driver starts a new HTTP/2 connection in the same session,
//! with no new handshake. A gateway that closes instead (revocation, restart) closes the
//! link.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http2::{Connection as H2Connection, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use latchkey_channel::{H2_MAX_FRAME, Lent, NoiseStream, Returned, lend};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

/// The IO an HTTP/2 connection runs over: the session's stream, lent.
type Io = TokioIo<Lent<NoiseStream<TcpStream>>>;

/// Where the link is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// An HTTP/2 connection is running (or ending).
    Up,
    /// No HTTP/2 connection: the next request starts one.
    Hibernated,
    /// The session is over.
    Closed,
}

/// What requests see: the newest connection's sender (kept when closed, for its error),
/// its generation and the phase.
#[derive(Clone, Debug)]
pub(crate) struct State {
    pub sender: SendRequest<Full<Bytes>>,
    pub generation: u64,
    pub phase: Phase,
}

/// The link's shared ends: its state, and the bell that wakes a hibernated session.
#[derive(Debug)]
pub(crate) struct Link {
    state: watch::Receiver<State>,
    wake: Arc<Notify>,
}

/// Starts HTTP/2 over `io` (lent), with the phone's settings.
async fn handshake(
    noise: NoiseStream<TcpStream>,
) -> Result<
    (
        SendRequest<Full<Bytes>>,
        H2Connection<Io, Full<Bytes>, TokioExecutor>,
        Returned<NoiseStream<TcpStream>>,
    ),
    hyper::Error,
> {
    let (lent, back) = lend(noise);
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .max_frame_size(H2_MAX_FRAME)
        .handshake(TokioIo::new(lent))
        .await?;
    Ok((sender, conn, back))
}

impl Link {
    /// Starts the first HTTP/2 connection over `noise` and the driver that keeps the
    /// link; the handle aborts it (closing the session) when dropped.
    pub(crate) async fn start(
        noise: NoiseStream<TcpStream>,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), hyper::Error> {
        let (sender, conn, back) = handshake(noise).await?;
        let (tx, state) = watch::channel(State {
            sender,
            generation: 0,
            phase: Phase::Up,
        });
        let wake = Arc::new(Notify::new());
        let driver = tokio::spawn(drive(conn, back, tx, wake.clone()));
        Ok((Self { state, wake }, driver))
    }

    /// The state now.
    pub(crate) fn now(&self) -> State {
        self.state.borrow().clone()
    }

    /// A sender for the next request: the running connection's, once one runs (waking a
    /// hibernated session), or the last one when the session is closed (its `ready`
    /// then says why).
    pub(crate) async fn sender(&self) -> State {
        let mut state = self.state.clone();
        loop {
            let now = state.borrow_and_update().clone();
            match now.phase {
                Phase::Up if !now.sender.is_closed() => return now,
                Phase::Closed => return now,
                Phase::Hibernated => self.wake.notify_one(),
                Phase::Up => {}
            }
            if state.changed().await.is_err() {
                return self.now();
            }
        }
    }

    /// Waits until the connection of `generation` is over; whether the session went on
    /// (hibernated or a newer connection) rather than closing.
    pub(crate) async fn went_on_after(&self, generation: u64) -> bool {
        let mut state = self.state.clone();
        loop {
            let now = state.borrow_and_update().clone();
            match now.phase {
                Phase::Closed => return false,
                Phase::Up if now.generation == generation => {}
                Phase::Up | Phase::Hibernated => return true,
            }
            if state.changed().await.is_err() {
                return false;
            }
        }
    }
}

/// Keeps the link: runs each connection, hibernates between them, and marks the link
/// closed when the session ends.
async fn drive(
    mut conn: H2Connection<Io, Full<Bytes>, TokioExecutor>,
    mut back: Returned<NoiseStream<TcpStream>>,
    tx: watch::Sender<State>,
    wake: Arc<Notify>,
) {
    let close = |tx: &watch::Sender<State>| tx.send_modify(|s| s.phase = Phase::Closed);
    loop {
        if let Err(e) = (&mut conn).await {
            tracing::debug!("http/2 connection ended: {e}");
        }
        drop(conn);
        let Ok(mut noise) = back.await else {
            return close(&tx);
        };
        // Hibernation: the gateway's boundary ends what is left of the old connection;
        // ours tells it everything before belonged to the old one. A gateway that
        // closes instead ends the session.
        if let Err(e) = noise.discard_until_boundary().await {
            tracing::debug!("channel closed: {e}");
            return close(&tx);
        }
        if let Err(e) = noise.send_boundary().await {
            tracing::debug!("channel closed: {e}");
            return close(&tx);
        }
        tracing::debug!("session hibernated");
        tx.send_modify(|s| s.phase = Phase::Hibernated);
        // The gateway sends nothing while hibernated: anything from it is the end.
        tokio::select! {
            () = wake.notified() => {}
            _ = noise.next_input() => {
                tracing::debug!("channel closed while hibernated");
                return close(&tx);
            }
        }
        let started = match handshake(noise).await {
            Ok(started) => started,
            Err(e) => {
                tracing::debug!("restarting http/2 in the channel: {e}");
                return close(&tx);
            }
        };
        let sender;
        (sender, conn, back) = started;
        tracing::debug!("session woke up");
        tx.send_modify(|s| {
            s.sender = sender;
            s.generation += 1;
            s.phase = Phase::Up;
        });
    }
}

/// Whether a request failed because the gateway ended the connection gracefully before
/// processing it (GOAWAY NO_ERROR above its last stream id, RFC 9113 §6.8), or before
/// it was sent at all: safe to send again on the next connection.
pub(crate) fn never_processed(e: &hyper::Error) -> bool {
    if e.is_canceled() || e.is_closed() {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
        }
        source = err.source();
    }
    false
}
