//! A live camera body counted against its device, and ended with its session when its
//! viewer stops reading.
//!
//! HTTP/2 polls a response body only while the stream has send capacity; a viewer that
//! does not read leaves its stream's send buffer full and the body unpolled, holding its
//! buffers however long the phone likes. The body records when it last handed out a
//! chunk and whether it is waiting for the camera (not the viewer's fault); a watchdog
//! cuts the session once a chunk has waited unread for [`STALL_TIMEOUT`] (HTTP/2 gives
//! the server no way to end one stream whose body it cannot poll). The permit counts the
//! stream in [`MAX_LIVE_STREAMS_PER_DEVICE`] until the body is dropped.
//!
//! [`STALL_TIMEOUT`]: crate::limits::STALL_TIMEOUT
//! [`MAX_LIVE_STREAMS_PER_DEVICE`]: crate::limits::MAX_LIVE_STREAMS_PER_DEVICE

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use futures_util::Stream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::limits::StreamPermit;

/// How often the watchdog looks.
const CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Stall {
    origin: Instant,
    /// Milliseconds after `origin` when a chunk was last handed out.
    last_yield_ms: AtomicU64,
    /// True while the body waits for the camera.
    waiting: AtomicBool,
    done: AtomicBool,
}

impl Stall {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

struct Guarded<S> {
    inner: S,
    stall: Arc<Stall>,
    _permit: StreamPermit,
}

impl<S: Stream + Unpin> Stream for Guarded<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let r = Pin::new(&mut self.inner).poll_next(cx);
        match &r {
            Poll::Pending => self.stall.waiting.store(true, Ordering::Relaxed),
            Poll::Ready(Some(_)) => {
                self.stall
                    .last_yield_ms
                    .store(self.stall.now_ms(), Ordering::Relaxed);
                self.stall.waiting.store(false, Ordering::Relaxed);
            }
            Poll::Ready(None) => self.stall.done.store(true, Ordering::Relaxed),
        }
        r
    }
}

impl<S> Drop for Guarded<S> {
    fn drop(&mut self) {
        self.stall.done.store(true, Ordering::Relaxed);
    }
}

/// `body` holding `permit`, cutting `session` if its viewer leaves a chunk unread for
/// `stall_timeout`.
pub fn guard(
    body: Body,
    permit: StreamPermit,
    session: CancellationToken,
    stall_timeout: Duration,
) -> Body {
    let stall = Arc::new(Stall {
        origin: Instant::now(),
        last_yield_ms: AtomicU64::new(0),
        waiting: AtomicBool::new(false),
        done: AtomicBool::new(false),
    });
    let watched = stall.clone();
    tokio::spawn(async move {
        let limit = u64::try_from(stall_timeout.as_millis()).unwrap_or(u64::MAX);
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            if watched.done.load(Ordering::Relaxed) || session.is_cancelled() {
                return;
            }
            let idle = watched
                .now_ms()
                .saturating_sub(watched.last_yield_ms.load(Ordering::Relaxed));
            if !watched.waiting.load(Ordering::Relaxed) && idle > limit {
                tracing::info!(
                    "a live stream went unread for {} s; ending its session",
                    stall_timeout.as_secs()
                );
                session.cancel();
                return;
            }
        }
    });
    Body::from_stream(Guarded {
        inner: body.into_data_stream(),
        stall,
        _permit: permit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::LiveStreams;
    use bytes::Bytes;
    use futures_util::StreamExt as _;

    fn chunks(n: usize) -> Body {
        Body::from_stream(futures_util::stream::iter(
            (0..n).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(b"chunk"))),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn an_unread_stream_cuts_its_session_and_frees_its_permit() {
        let streams = LiveStreams::default();
        let cut = CancellationToken::new();
        let unread = guard(
            chunks(100),
            streams.try_take("d", 8).unwrap(),
            cut.clone(),
            Duration::from_secs(30),
        );
        let mut s = unread.into_data_stream();
        assert!(s.next().await.is_some());
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(!cut.is_cancelled());
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert!(cut.is_cancelled(), "unread for 35 s");
        drop(s);
        assert_eq!(streams.count("d"), 0, "the permit went with the body");
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_quiet_camera_is_not_a_stall() {
        let streams = LiveStreams::default();
        let cut = CancellationToken::new();
        let quiet =
            Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>());
        let body = guard(
            quiet,
            streams.try_take("d", 8).unwrap(),
            cut.clone(),
            Duration::from_secs(30),
        );
        let mut s = body.into_data_stream();
        let waited = tokio::time::timeout(Duration::from_secs(60), s.next()).await;
        assert!(waited.is_err());
        assert!(!cut.is_cancelled());
    }
}
