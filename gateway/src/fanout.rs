//! One producer, many viewers: frame fan-out with a GOP cache for fast starts and a
//! per-viewer byte budget so a slow viewer can never stall the camera or other viewers.
//!
//! Public API:
//! - [`MediaFrame`]: what a frame must tell us (keyframe?, size). MJPEG frames are all
//!   keyframes; for H.264/H.265 only IDR/IRAP access units are.
//! - [`Fanout::new`]`(FanoutLimits)`, `publish(frame)`, `subscribe() -> Viewer`,
//!   `viewer_count()`, `close()`. `Fanout` is a cheap `Clone` handle; dropping the last
//!   handle closes the fan-out.
//! - [`Viewer::recv`]`().await -> Option<F>` (None once closed and drained),
//!   `skipped_frames()`. Dropping a `Viewer` frees its queue at once.
//!
//! Rules:
//! - `publish` is a plain synchronous call that only takes a short mutex: it never waits
//!   for a viewer, so the producer cannot be blocked by one.
//! - A new viewer first gets the cached GOP (starting at its keyframe), then live frames;
//!   with no usable cache it waits for the next keyframe. No viewer ever starts on a
//!   non-keyframe.
//! - The GOP cache restarts at every keyframe; if the GOP outgrows `max_gop_bytes` the cache
//!   is dropped until the next keyframe (a partial GOP would not decode anyway).
//! - Each viewer's queue holds at most `max_viewer_bytes`. When a frame does not fit, the
//!   queue is discarded and the viewer skips to the next keyframe, so it loses whole GOPs
//!   and never sees a broken reference chain; a keyframe that does not fit behind the
//!   backlog replaces it directly.
//!
//! Design: one `std::sync::Mutex` around all state (GOP cache and per-viewer `VecDeque`s)
//! plus one `tokio::sync::Notify` per viewer. A single lock keeps "publish to everyone" and
//! "subscribe with the cache" atomic with respect to each other, which is what makes the
//! keyframe-first guarantee easy to see. The lock is never held across an `.await`, and
//! the work under it is O(viewers) pointer-sized clones per frame (frames should be cheap
//! to clone, e.g. wrap `bytes::Bytes`). `Notify` stores a permit when nobody is waiting, so
//! a frame published between a viewer's empty check and its await is not missed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// A frame that can be fanned out.
pub trait MediaFrame: Clone + Send + Sync + 'static {
    /// True if a decoder can start at this frame (always true for MJPEG).
    fn is_keyframe(&self) -> bool;
    /// Bytes this frame accounts for in the per-viewer and GOP budgets.
    fn byte_len(&self) -> usize;
}

/// Memory limits of one fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanoutLimits {
    /// Largest backlog one viewer may have queued, in bytes.
    pub max_viewer_bytes: usize,
    /// Largest GOP kept for late joiners, in bytes.
    pub max_gop_bytes: usize,
}

/// Producer-side handle: publishes frames to every viewer.
pub struct Fanout<F: MediaFrame> {
    handle: Arc<ProducerHandle<F>>,
}

impl<F: MediaFrame> Clone for Fanout<F> {
    fn clone(&self) -> Self {
        Self {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl<F: MediaFrame> std::fmt::Debug for Fanout<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("viewers", &self.viewer_count())
            .finish_non_exhaustive()
    }
}

/// Shared by all `Fanout` clones; closes the fan-out when the last one goes away so
/// viewers do not wait forever on a producer that no longer exists.
struct ProducerHandle<F: MediaFrame> {
    shared: Arc<Shared<F>>,
}

impl<F: MediaFrame> Drop for ProducerHandle<F> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

struct Shared<F> {
    inner: Mutex<Inner<F>>,
}

struct Inner<F> {
    limits: FanoutLimits,
    closed: bool,
    /// Current GOP, starting at its keyframe, while `gop_valid`.
    gop: Vec<(F, usize)>,
    gop_bytes: usize,
    /// False until the first keyframe and after the GOP overflowed its budget.
    gop_valid: bool,
    viewers: HashMap<u64, Slot<F>>,
    next_id: u64,
}

/// Per-viewer state. Frames are stored with the length they were accounted with, so the
/// budget stays exact even if `byte_len` were not stable.
struct Slot<F> {
    queue: VecDeque<(F, usize)>,
    queued_bytes: usize,
    state: ViewerState,
    skipped: u64,
    notify: Arc<Notify>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ViewerState {
    /// Receiving every frame.
    Live,
    /// Discarding frames until a keyframe; `lagged` is false for a new viewer's initial
    /// wait, which is not counted as skipping.
    AwaitingKeyframe { lagged: bool },
}

impl<F: MediaFrame> Fanout<F> {
    /// Creates an open fan-out with no viewers.
    pub fn new(limits: FanoutLimits) -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                limits,
                closed: false,
                gop: Vec::new(),
                gop_bytes: 0,
                gop_valid: false,
                viewers: HashMap::new(),
                next_id: 0,
            }),
        });
        Self {
            handle: Arc::new(ProducerHandle { shared }),
        }
    }

    /// Caches `frame` for late joiners and queues it for every viewer. Never waits.
    /// Frames published after `close` are dropped.
    pub fn publish(&self, frame: F) {
        let mut guard = self.handle.shared.lock();
        let inner = &mut *guard;
        if inner.closed {
            return;
        }
        let key = frame.is_keyframe();
        let len = frame.byte_len();
        if key {
            inner.gop.clear();
            inner.gop_bytes = 0;
            inner.gop_valid = true;
        }
        if inner.gop_valid {
            match inner.gop_bytes.checked_add(len) {
                Some(total) if total <= inner.limits.max_gop_bytes => {
                    inner.gop.push((frame.clone(), len));
                    inner.gop_bytes = total;
                }
                _ => {
                    tracing::debug!(
                        bytes = inner.gop_bytes,
                        "fanout: gop over budget, not caching"
                    );
                    inner.gop.clear();
                    inner.gop_bytes = 0;
                    inner.gop_valid = false;
                }
            }
        }
        let max = inner.limits.max_viewer_bytes;
        for slot in inner.viewers.values_mut() {
            slot.offer(&frame, key, len, max);
        }
    }

    /// Adds a viewer. It starts with the cached GOP if there is one, else at the next
    /// keyframe. After `close` the viewer immediately yields `None`.
    pub fn subscribe(&self) -> Viewer<F> {
        let shared = Arc::clone(&self.handle.shared);
        let notify = Arc::new(Notify::new());
        let mut slot = Slot {
            queue: VecDeque::new(),
            queued_bytes: 0,
            state: ViewerState::AwaitingKeyframe { lagged: false },
            skipped: 0,
            notify: Arc::clone(&notify),
        };
        let id = {
            let mut inner = shared.lock();
            let usable = inner.gop_valid
                && !inner.gop.is_empty()
                && inner.gop_bytes <= inner.limits.max_viewer_bytes;
            if usable && !inner.closed {
                slot.queue = inner.gop.iter().cloned().collect();
                slot.queued_bytes = inner.gop_bytes;
                slot.state = ViewerState::Live;
            }
            let id = inner.next_id;
            inner.next_id = inner.next_id.wrapping_add(1);
            inner.viewers.insert(id, slot);
            id
        };
        Viewer { id, shared, notify }
    }

    /// Number of live `Viewer`s.
    pub fn viewer_count(&self) -> usize {
        self.handle.shared.lock().viewers.len()
    }

    /// Stops the fan-out: viewers drain what they have queued, then get `None`.
    pub fn close(&self) {
        self.handle.shared.close();
    }

    /// Drops the cached GOP (the source changed): a viewer joining now starts at the next
    /// keyframe instead of pictures from the old source.
    pub fn forget_gop(&self) {
        let mut inner = self.handle.shared.lock();
        inner.gop.clear();
        inner.gop_bytes = 0;
        inner.gop_valid = false;
    }
}

impl<F> Shared<F> {
    /// Locks the state. A poisoned lock is recovered: every critical section leaves the
    /// state consistent between statements, and no code here panics while holding it.
    fn lock(&self) -> MutexGuard<'_, Inner<F>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.gop.clear();
        inner.gop_bytes = 0;
        inner.gop_valid = false;
        for slot in inner.viewers.values() {
            slot.notify.notify_one();
        }
    }
}

impl<F: MediaFrame> Slot<F> {
    /// Queues `frame` if this viewer can take it, applying the slow-viewer rule.
    fn offer(&mut self, frame: &F, key: bool, len: usize, max_bytes: usize) {
        if let ViewerState::AwaitingKeyframe { lagged } = self.state
            && !key
        {
            if lagged {
                self.skipped = self.skipped.saturating_add(1);
            }
            return;
        }
        let fits = |queued: usize| queued.checked_add(len).is_some_and(|t| t <= max_bytes);
        if key && !fits(self.queued_bytes) {
            // Behind by more than the budget: jump straight to this keyframe.
            self.drop_backlog();
        }
        if fits(self.queued_bytes) {
            self.queue.push_back((frame.clone(), len));
            self.queued_bytes = self.queued_bytes.saturating_add(len);
            self.state = ViewerState::Live;
            self.notify.notify_one();
        } else {
            // A non-keyframe that does not fit (or a keyframe larger than the whole
            // budget): the rest of this GOP is useless to the viewer.
            self.drop_backlog();
            self.skipped = self.skipped.saturating_add(1);
            self.state = ViewerState::AwaitingKeyframe { lagged: true };
        }
    }

    fn drop_backlog(&mut self) {
        let dropped = u64::try_from(self.queue.len()).unwrap_or(u64::MAX);
        self.skipped = self.skipped.saturating_add(dropped);
        self.queue.clear();
        self.queued_bytes = 0;
    }
}

/// Consumer-side handle of one viewer.
pub struct Viewer<F: MediaFrame> {
    id: u64,
    shared: Arc<Shared<F>>,
    notify: Arc<Notify>,
}

impl<F: MediaFrame> std::fmt::Debug for Viewer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<F: MediaFrame> Viewer<F> {
    /// Next frame for this viewer; `None` once the fan-out is closed and the queue is
    /// drained. Cancel-safe: a frame is only removed in the poll that returns it.
    pub async fn recv(&mut self) -> Option<F> {
        loop {
            {
                let mut inner = self.shared.lock();
                let closed = inner.closed;
                let slot = inner.viewers.get_mut(&self.id)?;
                if let Some((frame, len)) = slot.queue.pop_front() {
                    slot.queued_bytes = slot.queued_bytes.saturating_sub(len);
                    return Some(frame);
                }
                if closed {
                    return None;
                }
            }
            self.notify.notified().await;
        }
    }

    /// Frames this viewer lost because it fell behind (not counting the initial wait for
    /// a keyframe).
    pub fn skipped_frames(&self) -> u64 {
        self.shared
            .lock()
            .viewers
            .get(&self.id)
            .map_or(0, |slot| slot.skipped)
    }
}

impl<F: MediaFrame> Drop for Viewer<F> {
    fn drop(&mut self) {
        // Take the slot out under the lock but drop its frames after releasing it.
        let slot = self.shared.lock().viewers.remove(&self.id);
        drop(slot);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};
    use tokio::time::timeout;

    #[derive(Clone, Debug)]
    struct Frame {
        seq: u32,
        key: bool,
        len: usize,
        /// Lets tests observe when every copy of a frame has been freed.
        token: Arc<()>,
    }

    impl MediaFrame for Frame {
        fn is_keyframe(&self) -> bool {
            self.key
        }
        fn byte_len(&self) -> usize {
            self.len
        }
    }

    fn frame(seq: u32, key: bool) -> Frame {
        Frame {
            seq,
            key,
            len: 100,
            token: Arc::new(()),
        }
    }

    /// Frame `seq` of a stream with a keyframe every `gop` frames.
    fn gop_frame(seq: u32, gop: u32) -> Frame {
        frame(seq, seq.is_multiple_of(gop))
    }

    fn limits(viewer: usize, gop: usize) -> FanoutLimits {
        FanoutLimits {
            max_viewer_bytes: viewer,
            max_gop_bytes: gop,
        }
    }

    async fn next_seq(viewer: &mut Viewer<Frame>) -> Option<u32> {
        timeout(Duration::from_secs(5), viewer.recv())
            .await
            .expect("recv hung")
            .map(|f| f.seq)
    }

    /// Everything currently queued for `viewer`.
    async fn drain(viewer: &mut Viewer<Frame>) -> Vec<u32> {
        let mut seqs = Vec::new();
        while let Ok(Some(f)) = timeout(Duration::from_millis(20), viewer.recv()).await {
            seqs.push(f.seq);
        }
        seqs
    }

    async fn is_idle(viewer: &mut Viewer<Frame>) -> bool {
        timeout(Duration::from_millis(20), viewer.recv())
            .await
            .is_err()
    }

    #[tokio::test]
    async fn late_joiner_gets_cached_gop_then_live() {
        let fanout = Fanout::new(limits(10_000, 10_000));
        for seq in 0..7 {
            fanout.publish(gop_frame(seq, 5)); // keyframes at 0 and 5
        }
        let mut viewer = fanout.subscribe();
        fanout.publish(gop_frame(7, 5));
        for want in [5, 6, 7] {
            assert_eq!(next_seq(&mut viewer).await, Some(want));
        }
        assert!(is_idle(&mut viewer).await);
        fanout.publish(gop_frame(8, 5));
        assert_eq!(next_seq(&mut viewer).await, Some(8));
        assert_eq!(viewer.skipped_frames(), 0);
    }

    #[tokio::test]
    async fn viewer_waits_for_first_keyframe() {
        let fanout = Fanout::new(limits(10_000, 10_000));
        let mut early = fanout.subscribe();
        fanout.publish(frame(0, false));
        let mut joined_without_cache = fanout.subscribe();
        fanout.publish(frame(1, false));
        assert!(is_idle(&mut early).await);
        fanout.publish(frame(2, true));
        fanout.publish(frame(3, false));
        for viewer in [&mut early, &mut joined_without_cache] {
            assert_eq!(next_seq(viewer).await, Some(2));
            assert_eq!(next_seq(viewer).await, Some(3));
            assert_eq!(viewer.skipped_frames(), 0);
        }
    }

    #[tokio::test]
    async fn slow_viewer_loses_whole_gops_fast_viewer_gets_everything() {
        // 100-byte frames, GOP of 10, slow viewer budget of 15 frames.
        let fanout = Fanout::new(limits(1_500, 10_000));
        let mut fast = fanout.subscribe();
        let mut slow = fanout.subscribe();
        for seq in 0..50 {
            fanout.publish(gop_frame(seq, 10));
            assert_eq!(next_seq(&mut fast).await, Some(seq));
        }
        assert_eq!(fast.skipped_frames(), 0);
        // Slow viewer: GOPs 0, 20 overflowed and were dropped; it resumed at keyframe 40.
        assert_eq!(drain(&mut slow).await, (40..50).collect::<Vec<_>>());
        assert_eq!(slow.skipped_frames(), 40);
    }

    #[tokio::test]
    async fn keyframe_that_does_not_fit_replaces_backlog() {
        let fanout = Fanout::new(limits(1_000, 10_000));
        let mut viewer = fanout.subscribe();
        for seq in 0..10 {
            fanout.publish(frame(seq, seq == 0)); // exactly fills the budget
        }
        fanout.publish(frame(10, true));
        fanout.publish(frame(11, false));
        assert_eq!(next_seq(&mut viewer).await, Some(10));
        assert_eq!(next_seq(&mut viewer).await, Some(11));
        assert_eq!(viewer.skipped_frames(), 10);
    }

    #[tokio::test]
    async fn producer_never_blocks_on_stalled_viewer() {
        let fanout = Fanout::new(limits(64 * 100, 30 * 100));
        let mut stalled = fanout.subscribe();
        let started = Instant::now();
        for seq in 0..10_000 {
            fanout.publish(gop_frame(seq, 30));
        }
        let elapsed = started.elapsed();
        eprintln!("published 10000 frames with a stalled viewer in {elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        // The stalled viewer holds at most its budget, starting at a keyframe.
        let got = drain(&mut stalled).await;
        assert!(got[0].is_multiple_of(30), "must start at a keyframe");
        assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "contiguous");
        assert!(got.len() <= 64 && *got.last().unwrap() == 9_999, "{got:?}");
        assert_eq!(stalled.skipped_frames() + got.len() as u64, 10_000);
    }

    #[tokio::test]
    async fn gop_over_budget_is_not_cached() {
        let fanout = Fanout::new(limits(10_000, 250));
        for seq in 0..3 {
            fanout.publish(gop_frame(seq, 10));
        }
        let mut late = fanout.subscribe();
        fanout.publish(gop_frame(3, 10));
        assert!(is_idle(&mut late).await);
        fanout.publish(frame(4, true));
        assert_eq!(next_seq(&mut late).await, Some(4));
    }

    #[tokio::test]
    async fn viewer_count_and_drop_frees_queue() {
        let fanout = Fanout::new(limits(10_000, 10_000));
        let a = fanout.subscribe();
        let b = fanout.subscribe();
        let c = fanout.subscribe();
        assert_eq!(fanout.viewer_count(), 3);
        let key = frame(0, true);
        let token = Arc::clone(&key.token);
        fanout.publish(key);
        // One copy in the GOP cache, one per viewer, plus ours.
        assert_eq!(Arc::strong_count(&token), 5);
        drop(b);
        assert_eq!(fanout.viewer_count(), 2);
        assert_eq!(Arc::strong_count(&token), 4);
        drop((a, c));
        assert_eq!(fanout.viewer_count(), 0);
        fanout.close(); // also clears the cache
        assert_eq!(Arc::strong_count(&token), 1);
    }

    #[tokio::test]
    async fn close_drains_then_ends_and_wakes_waiters() {
        let fanout = Fanout::new(limits(10_000, 10_000));
        let mut draining = fanout.subscribe();
        let mut waiting = fanout.subscribe();
        fanout.publish(frame(0, true));
        fanout.publish(frame(1, false));
        assert_eq!(next_seq(&mut waiting).await, Some(0));
        assert_eq!(next_seq(&mut waiting).await, Some(1));
        // A recv already parked (in another task, proving the future is Send) wakes up.
        let parked = tokio::spawn(async move { waiting.recv().await.map(|f| f.seq) });
        tokio::task::yield_now().await;
        fanout.close();
        assert_eq!(
            timeout(Duration::from_secs(5), parked)
                .await
                .unwrap()
                .unwrap(),
            None
        );
        assert_eq!(next_seq(&mut draining).await, Some(0));
        assert_eq!(next_seq(&mut draining).await, Some(1));
        assert_eq!(next_seq(&mut draining).await, None);
        fanout.publish(frame(2, true));
        assert_eq!(next_seq(&mut draining).await, None);
        let mut after = fanout.subscribe();
        assert_eq!(next_seq(&mut after).await, None);
    }

    #[tokio::test]
    async fn dropping_last_producer_handle_closes() {
        let fanout = Fanout::new(limits(10_000, 10_000));
        let second = fanout.clone();
        let mut viewer = fanout.subscribe();
        drop(fanout);
        second.publish(frame(0, true));
        assert_eq!(next_seq(&mut viewer).await, Some(0));
        drop(second);
        assert_eq!(next_seq(&mut viewer).await, None);
    }

    #[tokio::test]
    async fn concurrent_producer_and_viewers() {
        let fanout: Fanout<Frame> = Fanout::new(limits(1_000_000, 1_000_000));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let mut viewer = fanout.subscribe();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                while let Some(f) = viewer.recv().await {
                    seqs.push(f.seq);
                }
                seqs
            }));
        }
        let producer = fanout.clone();
        tokio::spawn(async move {
            for seq in 0..1_000 {
                producer.publish(gop_frame(seq, 25));
                if seq % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
        .await
        .unwrap();
        drop(fanout);
        for task in tasks {
            let seqs = timeout(Duration::from_secs(5), task)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(seqs, (0..1_000).collect::<Vec<_>>());
        }
    }
}
