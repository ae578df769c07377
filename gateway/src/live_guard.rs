//! A live camera body counted against its device, and ended with its session when its
//! viewer stops reading.
//!
//! HTTP/2 polls a response body only while the stream has send capacity; a viewer that
//! does not read leaves its stream's send buffer full and the body unpolled, holding its
//! buffers however long the phone likes. The body records since when it has had a chunk
//! ready (one handed out, or the camera woke it while it waited) and whether it is
//! waiting for the camera (not the viewer's fault); a watchdog
//! cuts the session once a chunk has waited unread for [`STALL_TIMEOUT`] (HTTP/2 gives
//! the server no way to end one stream whose body it cannot poll). The permit counts the
//! stream in [`MAX_LIVE_STREAMS_PER_DEVICE`] until the body is dropped.
//!
//! [`STALL_TIMEOUT`]: crate::limits::STALL_TIMEOUT
//! [`MAX_LIVE_STREAMS_PER_DEVICE`]: crate::limits::MAX_LIVE_STREAMS_PER_DEVICE

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};
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

    /// A chunk is ready to be handed out from now on.
    fn ready_now(&self) {
        self.last_yield_ms.store(self.now_ms(), Ordering::Relaxed);
        self.waiting.store(false, Ordering::Relaxed);
    }
}

/// Wraps the waker the body registers while it waits for the camera: when the camera
/// wakes it, a chunk is ready, and the time the viewer takes to ask for it counts.
struct Wakeup {
    stall: Arc<Stall>,
    inner: Waker,
}

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.stall.waiting.load(Ordering::Relaxed) {
            self.stall.ready_now();
        }
        self.inner.wake_by_ref();
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
        let waker = Waker::from(Arc::new(Wakeup {
            stall: self.stall.clone(),
            inner: cx.waker().clone(),
        }));
        self.stall.waiting.store(true, Ordering::Relaxed);
        let r = Pin::new(&mut self.inner).poll_next(&mut Context::from_waker(&waker));
        match &r {
            Poll::Pending => {}
            Poll::Ready(Some(_)) => self.stall.ready_now(),
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
    async fn a_frame_left_unasked_for_cuts_the_session() {
        let streams = LiveStreams::default();
        let cut = CancellationToken::new();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let camera = Body::from_stream(tokio_stream_like(rx));
        let body = guard(
            camera,
            streams.try_take("d", 8).unwrap(),
            cut.clone(),
            Duration::from_secs(30),
        );
        let mut s = body.into_data_stream();
        // The body waits for the camera; the camera then sends, and nobody asks again.
        assert!(
            tokio::time::timeout(Duration::from_secs(40), s.next())
                .await
                .is_err()
        );
        assert!(!cut.is_cancelled(), "waiting for a quiet camera");
        tx.send(Ok(Bytes::from_static(b"frame"))).await.unwrap();
        tokio::time::sleep(Duration::from_secs(35)).await;
        assert!(cut.is_cancelled(), "a ready frame unasked for 35 s");
    }

    fn tokio_stream_like(
        mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
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
