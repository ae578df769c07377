//! Hibernating idle sessions (PROTOCOL.md §8.1): a session whose HTTP/2 connection has
//! had no open stream for the configured delay ends that connection (GOAWAY NO_ERROR,
//! then a boundary) and keeps only its Noise session, socket and a small task until the
//! phone starts a new HTTP/2 connection in the same session.
//!
//! What counts as activity is an open stream: a request being answered or a response
//! body still being sent (a live stream keeps its session awake). Pings do not count.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkey_channel::{Lent, Next, NoiseStream, Returned, lend};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::api::DeviceContext;
use crate::clock::Clock;
use crate::first_message::FirstRead;

/// Open streams of one HTTP/2 connection, and since when it has had none.
#[derive(Clone, Debug)]
pub struct Activity {
    inner: Arc<ActivityInner>,
}

#[derive(Debug)]
struct ActivityInner {
    clock: Clock,
    /// Open streams, and when the count last fell to zero.
    state: Mutex<(usize, Instant)>,
    changed: tokio::sync::Notify,
}

/// One open stream, counted until dropped (with the response body it went into).
#[derive(Debug)]
pub struct OpenStream {
    activity: Activity,
}

impl Activity {
    /// A connection with no stream open, idle from now on `clock`.
    pub fn new(clock: Clock) -> Self {
        let now = clock.instant();
        Self {
            inner: Arc::new(ActivityInner {
                clock,
                state: Mutex::new((0, now)),
                changed: tokio::sync::Notify::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, Instant)> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a stream as open until the returned guard drops.
    pub fn open(&self) -> OpenStream {
        self.lock().0 += 1;
        self.inner.changed.notify_waiters();
        OpenStream {
            activity: self.clone(),
        }
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.lock().0
    }

    /// Returns once the connection has had no open stream for `delay` (on its clock).
    pub async fn idle_for(&self, delay: Duration) {
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (open, since) = *self.lock();
            if open > 0 {
                changed.await;
                continue;
            }
            let deadline = since.checked_add(delay).unwrap_or(since);
            tokio::select! {
                () = self.inner.clock.sleep_until(deadline) => {
                    if *self.lock() == (0, since) {
                        return;
                    }
                }
                () = &mut changed => {}
            }
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let now = self.activity.inner.clock.instant();
        let mut state = self.activity.lock();
        state.0 = state.0.saturating_sub(1);
        if state.0 == 0 {
            state.1 = now;
        }
        drop(state);
        self.activity.inner.changed.notify_waiters();
    }
}

/// TCP keepalive for a session's socket: a hibernated session sends nothing, so the
/// kernel probes for it (first after 30 s without traffic, then every 10 s, given up
/// after 3 unanswered), noticing a phone that vanished and keeping NAT mappings open.
pub(crate) fn keep_alive(stream: &TcpStream) {
    let probes = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&probes) {
        tracing::debug!("enabling TCP keepalive: {e}");
    }
}

/// How an HTTP/2 connection's future is held: boxed, so a hibernated session's task
/// keeps none of it.
type H2Future = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;

/// One HTTP/2 connection of a session, over a stream it gives back when it ends.
pub(crate) struct H2<S> {
    conn: H2Future,
    /// The connection's future completed (it must not be polled again).
    ended: bool,
    back: Returned<S>,
    activity: Activity,
    stop: CancellationToken,
}

/// How long a connection with no open stream lives, and what its requests carry.
#[derive(Clone)]
pub(crate) struct Serving {
    pub api: axum::Router,
    pub ctx: DeviceContext,
    pub clock: Clock,
    pub hibernate_after: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> H2<S> {
    /// Starts serving HTTP/2 over `io` (lent to hyper until the connection ends).
    pub(crate) fn start(io: S, serving: &Serving) -> Self {
        let (lent, back): (Lent<S>, _) = lend(io);
        let activity = Activity::new(serving.clock.clone());
        let stop = CancellationToken::new();
        let conn = Box::pin(crate::listener::serve_channel_with(
            lent,
            serving.api.clone(),
            Some(serving.ctx.clone()),
            Some(activity.clone()),
            Some(stop.clone()),
        ));
        Self {
            conn,
            ended: false,
            back,
            activity,
            stop,
        }
    }

    /// Runs the connection until it ends (to race it before the session is proven).
    pub(crate) async fn run(&mut self) {
        if !self.ended {
            if let Err(e) = self.conn.as_mut().await {
                tracing::debug!("http/2 connection ended: {e}");
            }
            self.ended = true;
        }
    }

    /// Serves until the connection ends; once it has had no open stream for `delay` the
    /// gateway ends it gracefully (GOAWAY NO_ERROR, streams in flight finish). Returns
    /// the stream, and whether the gateway ended the connection.
    pub(crate) async fn until_idle(self, delay: Duration) -> Option<(S, bool)> {
        let Self {
            mut conn,
            ended,
            back,
            activity,
            stop,
        } = self;
        // A connection that already ended was not ended by the gateway.
        let ours = !ended
            && tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("http/2 connection ended: {e}");
                    }
                    false
                }
                () = activity.idle_for(delay) => {
                    stop.cancel();
                    if let Err(e) = conn.as_mut().await {
                        tracing::debug!("http/2 connection ended while going away: {e}");
                    }
                    true
                }
            };
        drop(conn);
        back.await.ok().map(|io| (io, ours))
    }
}

/// What a proven session holds for its whole life.
pub(crate) struct Live {
    pub guard: crate::sessions::SessionGuard,
    pub h2: H2<FirstRead<NoiseStream<TcpStream>>>,
    pub serving: Serving,
    /// The device's access expires here (gateway clock), if it does.
    pub deadline: Option<Instant>,
}

/// Serves a proven session until it ends, is revoked (or over its device's session
/// cap), a live stream goes unread, access expires or the gateway shuts down, whether
/// its HTTP/2 connection runs or it is hibernated.
///
/// Not an `async fn`: one would keep `live` itself in its state beside the fields taken
/// out of it, for as long as the session lasts; the block below keeps only the fields.
pub(crate) fn run(live: Live, shutdown: CancellationToken) -> impl Future<Output = ()> {
    let Live {
        guard,
        h2,
        serving,
        deadline,
    } = live;
    async move {
        // Only a device with an expiry holds a timer (most never expire).
        let expiry: Pin<Box<dyn Future<Output = ()> + Send>> = match deadline {
            Some(at) => {
                let clock = serving.clock.clone();
                Box::pin(async move { clock.sleep_until(at).await })
            }
            None => Box::pin(std::future::pending()),
        };
        let (peer, device) = (serving.ctx.peer, &serving.ctx.id);
        // One token for every cut but expiry (`DeviceContext::cut`, the registry's token,
        // a child of the gateway's shutdown); the registry knows whether it cut.
        tokio::select! {
            () = serve_session(h2, &serving) => tracing::debug!(%peer, "session ended"),
            _ = serving.ctx.cut.cancelled() => {
                if !shutdown.is_cancelled() {
                    let why = guard.cut_by_registry().unwrap_or("a live stream went unread");
                    tracing::info!(%peer, %device, "session cut: {why}");
                }
            }
            () = expiry => tracing::info!(%peer, %device, "session cut: access expired"),
        }
        drop(guard);
    }
}

/// Serves a proven session from its first HTTP/2 connection on: hibernates it whenever
/// a connection has been idle, wakes it when the phone starts a new one, and returns
/// when the session is over (the phone left, or broke the protocol). Revocation, expiry
/// and shutdown are the caller's to race against this.
pub(crate) async fn serve_session(first: H2<FirstRead<NoiseStream<TcpStream>>>, serving: &Serving) {
    let (peer, device) = (serving.ctx.peer, &serving.ctx.id);
    let Some((io, mut ours)) = Box::pin(first.until_idle(serving.hibernate_after)).await else {
        return;
    };
    let mut noise = io.into_inner();
    loop {
        if noise.at_boundary() {
            tracing::info!(%peer, %device, "session closed: the phone sent a boundary the gateway had not asked for");
            return;
        }
        if !ours {
            return;
        }
        if let Err(e) = noise.send_boundary().await {
            tracing::debug!(%peer, "session ended: {e}");
            return;
        }
        tracing::debug!(%peer, %device, "session hibernated");
        match hibernated(&mut noise).await {
            Ok(()) => tracing::debug!(%peer, %device, "session woke up"),
            Err(why) => {
                tracing::debug!(%peer, %device, "session ended while hibernated: {why}");
                return;
            }
        }
        let h2 = H2::start(noise, serving);
        let Some(back) = Box::pin(h2.until_idle(serving.hibernate_after)).await else {
            return;
        };
        (noise, ours) = back;
    }
}

/// The hibernated state: drops what is left of the old connection up to the phone's
/// boundary, then waits for the first bytes of a new one.
async fn hibernated(noise: &mut NoiseStream<TcpStream>) -> Result<(), String> {
    noise
        .discard_until_boundary()
        .await
        .map_err(|e| e.to_string())?;
    match noise.next_input().await {
        Ok(Next::Data) => Ok(()),
        Ok(Next::Boundary) => Err("a second boundary from the phone".into()),
        Ok(Next::End) => Err("the phone closed the connection".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_means_no_open_stream_for_the_whole_delay() {
        let clock = Clock::simulated(1_000_000);
        let activity = Activity::new(clock.clone());
        let delay = Duration::from_secs(15);
        let waiter = {
            let activity = activity.clone();
            tokio::spawn(async move { activity.idle_for(delay).await })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(10));
        let stream = activity.open();
        assert_eq!(activity.open_streams(), 1);
        // An open stream keeps it awake however long it stays open.
        clock.advance(Duration::from_secs(600));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "awake while a stream is open");
        drop(stream);
        assert_eq!(activity.open_streams(), 0);
        clock.advance(Duration::from_secs(14));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "14 s after the last stream closed");
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("idle at 15 s")
            .unwrap();
    }
}
