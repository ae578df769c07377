//! One upstream per camera, whatever the number of viewers.
//!
//! The first viewer of a camera starts its upstream task; the task connects through the
//! [`CameraOpener`], publishes every frame into the camera's [`Fanout`], reconnects with
//! exponential backoff when the camera drops, and stops once nobody has watched for the
//! grace period (so a viewer who reloads a page finds the camera still warm).
//!
//! Invariants, all kept under the camera's `slot` mutex: a camera has at most one fan-out
//! and one upstream task at a time; a viewer only subscribes to a fan-out whose task is
//! still running; the task only stops after checking, under the same lock, that no
//! viewer joined in the meantime.
//!
//! Cameras change at run time (`latchkey cameras add|edit|remove`): [`Hub::add`] appends
//! one; [`Hub::update`] renames it in place (its viewers keep watching) and, when the
//! source changed, makes the running upstream drop its connection and reconnect to the new
//! source at once (viewers stay subscribed; an fMP4 viewer whose track parameters change
//! ends, and its player reconnects); [`Hub::remove`] takes it out, stops its upstream and
//! closes its fan-out, which ends every live stream of it.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{CameraOpener, CameraSource, CameraStatus, Frame, LinkState, jpeg_dimensions};
use crate::config::CameraConfig;
use crate::fanout::{Fanout, FanoutLimits, Viewer};

/// Tunables of the hub.
#[derive(Debug, Clone, Copy)]
pub struct HubOptions {
    /// How long a camera stays connected after its last viewer left.
    pub grace: Duration,
    /// First reconnect delay; doubles per failure up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// A connected camera that sends nothing for this long is treated as gone.
    pub stall_timeout: Duration,
    /// Time allowed to connect (RTSP DESCRIBE/SETUP/PLAY, HTTP headers).
    pub connect_timeout: Duration,
    /// Memory limits per camera.
    pub limits: FanoutLimits,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(10),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            limits: FanoutLimits {
                // A few seconds of a 4 Mbit/s camera per viewer; a GOP of a chatty one.
                max_viewer_bytes: 4 << 20,
                max_gop_bytes: 8 << 20,
            },
        }
    }
}

/// How often the upstream task checks for idleness and stalls.
const TICK: Duration = Duration::from_millis(100);

/// Every configured camera and its upstream.
#[derive(Debug)]
pub struct Hub {
    cameras: RwLock<Vec<Arc<Camera>>>,
    opener: Arc<dyn CameraOpener>,
    options: HubOptions,
}

#[derive(Debug)]
struct Camera {
    /// Id and source; changed in place by [`Hub::update`].
    config: Mutex<CameraConfig>,
    /// Bumped when the source changes: the upstream reconnects to the new one.
    generation: watch::Sender<u64>,
    /// Cancelled when the camera is removed: the upstream stops.
    removed: CancellationToken,
    /// The running fan-out, if an upstream task is alive.
    slot: Mutex<Option<Fanout<Frame>>>,
    /// When a viewer last arrived: a snapshot comes and goes between two idle checks,
    /// and must still restart the grace period.
    last_watch: Mutex<Instant>,
    health: watch::Sender<Health>,
}

/// What the upstream task knows about its camera.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Connection state.
    pub state: LinkState,
    /// Last error while connecting or streaming.
    pub error: Option<String>,
    /// `h264`, `h265` or `mjpeg`.
    pub codec: Option<String>,
    /// RFC 6381 codec string.
    pub codec_string: Option<String>,
    /// Picture size.
    pub size: Option<(u32, u32)>,
    /// Incremented on every failed attempt, so a waiter can tell a fresh failure.
    pub failures: u64,
    /// True while a connection to the camera is open.
    pub connected: bool,
}

/// A viewer of one camera: its frames, and the camera's health to explain a failure.
#[derive(Debug)]
pub struct Watch {
    /// The viewer's frames (GOP cache first, then live).
    pub viewer: Viewer<Frame>,
    /// The camera's health.
    pub health: watch::Receiver<Health>,
}

/// Why a viewer did not get a first frame.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Unavailable {
    /// The camera could not be reached or sent nothing usable.
    #[error("camera is offline: {0}")]
    Offline(String),
    /// Nothing arrived in time.
    #[error("camera sent no picture within {0} s")]
    Timeout(u64),
    /// The upstream stopped (gateway shutting down).
    #[error("camera stream ended")]
    Ended,
}

impl Watch {
    /// Waits for the first frame; fails early when the camera's next connection attempt
    /// fails, so a viewer of a dead camera hears why at once instead of at the timeout.
    pub async fn first_frame(&mut self, limit: Duration) -> Result<Frame, Unavailable> {
        let failures_at_start = self.health.borrow().failures;
        let seen_online = self.health.borrow().state == LinkState::Online;
        let health = &mut self.health;
        let failed = async {
            // An offline camera already failed before we came: wait for its next attempt.
            loop {
                if health.changed().await.is_err() {
                    return None;
                }
                let h = health.borrow();
                if h.failures > failures_at_start && h.state == LinkState::Offline {
                    return h.error.clone();
                }
            }
        };
        tokio::select! {
            frame = self.viewer.recv() => frame.ok_or(Unavailable::Ended),
            why = failed, if !seen_online => Err(Unavailable::Offline(why.unwrap_or_else(|| "unknown error".into()))),
            _ = tokio::time::sleep(limit) => Err(Unavailable::Timeout(limit.as_secs())),
        }
    }
}

impl Hub {
    /// A hub for `cameras`, connecting through `opener`. Nothing connects until watched.
    pub fn new(
        cameras: &[CameraConfig],
        opener: Arc<dyn CameraOpener>,
        options: HubOptions,
    ) -> Self {
        let cameras = cameras.iter().map(Camera::new).collect();
        Self {
            cameras: RwLock::new(cameras),
            opener,
            options,
        }
    }

    /// The configured source of camera `id`.
    pub fn source(&self, id: &str) -> Option<CameraSource> {
        self.find(id).map(|c| c.config().source)
    }

    /// Every camera's id and source, in order.
    pub fn configs(&self) -> Vec<CameraConfig> {
        self.list().iter().map(|c| c.config()).collect()
    }

    fn list(&self) -> Vec<Arc<Camera>> {
        self.cameras
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn find(&self, id: &str) -> Option<Arc<Camera>> {
        self.cameras
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|c| c.id() == id)
            .cloned()
    }

    /// Adds a camera; `false` (and nothing changes) if its id is taken.
    pub fn add(&self, config: &CameraConfig) -> bool {
        let mut cameras = self.cameras.write().unwrap_or_else(PoisonError::into_inner);
        if cameras.iter().any(|c| c.id() == config.id) {
            return false;
        }
        cameras.push(Camera::new(config));
        true
    }

    /// Renames camera `id` and/or changes its source, keeping its viewers. `false` if
    /// there is no camera `id` or the new id belongs to another camera.
    pub fn update(&self, id: &str, config: &CameraConfig) -> bool {
        let cameras = self.cameras.write().unwrap_or_else(PoisonError::into_inner);
        if config.id != id && cameras.iter().any(|c| c.id() == config.id) {
            return false;
        }
        let Some(camera) = cameras.iter().find(|c| c.id() == id) else {
            return false;
        };
        let source_changed = {
            let mut current = camera.config.lock().unwrap_or_else(PoisonError::into_inner);
            let changed = current.source != config.source;
            *current = config.clone();
            changed
        };
        if source_changed {
            camera.generation.send_modify(|g| *g = g.wrapping_add(1));
        }
        true
    }

    /// Removes camera `id`: its upstream stops and every live stream of it ends.
    pub fn remove(&self, id: &str) -> bool {
        let camera = {
            let mut cameras = self.cameras.write().unwrap_or_else(PoisonError::into_inner);
            let Some(pos) = cameras.iter().position(|c| c.id() == id) else {
                return false;
            };
            cameras.remove(pos)
        };
        camera.removed.cancel();
        if let Some(fanout) = camera
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            fanout.close();
        }
        true
    }

    /// Starts watching camera `id`, starting its upstream if it is idle. `None` if there
    /// is no such camera. Must be called inside a tokio runtime.
    pub fn watch(&self, id: &str) -> Option<Watch> {
        let camera = self.find(id)?;
        if camera.removed.is_cancelled() {
            return None;
        }
        let mut slot = camera.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let fanout = match &*slot {
            Some(f) => f.clone(),
            None => {
                let f = Fanout::new(self.options.limits);
                *slot = Some(f.clone());
                camera
                    .health
                    .send_modify(|h| h.state = LinkState::Connecting);
                tokio::spawn(upstream(
                    camera.clone(),
                    f.clone(),
                    self.opener.clone(),
                    self.options,
                ));
                f
            }
        };
        let viewer = fanout.subscribe();
        *camera
            .last_watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        Some(Watch {
            viewer,
            health: camera.health.subscribe(),
        })
    }

    /// Live status of every camera, in configuration order.
    pub fn statuses(&self) -> Vec<CameraStatus> {
        self.list().iter().map(|c| c.status()).collect()
    }

    /// Live status of camera `id`.
    pub fn status(&self, id: &str) -> Option<CameraStatus> {
        self.find(id).map(|c| c.status())
    }
}

impl Camera {
    fn new(config: &CameraConfig) -> Arc<Self> {
        Arc::new(Self {
            config: Mutex::new(config.clone()),
            generation: watch::Sender::new(0),
            removed: CancellationToken::new(),
            slot: Mutex::new(None),
            last_watch: Mutex::new(Instant::now()),
            health: watch::Sender::new(Health::default()),
        })
    }

    fn config(&self) -> CameraConfig {
        self.config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn id(&self) -> String {
        self.config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .id
            .clone()
    }

    fn status(&self) -> CameraStatus {
        let (viewers, running) = {
            let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            (
                slot.as_ref().map_or(0, Fanout::viewer_count),
                slot.is_some(),
            )
        };
        let h = self.health.borrow().clone();
        let state = if running { h.state } else { LinkState::Idle };
        let config = self.config();
        CameraStatus {
            id: config.id,
            kind: config.source.kind().to_string(),
            online: state == LinkState::Online,
            state,
            error: h.error,
            codec: h.codec,
            codec_string: h.codec_string,
            width: h.size.map(|s| s.0),
            height: h.size.map(|s| s.1),
            viewers,
            upstream_sessions: u8::from(running && h.connected),
        }
    }

    /// Stops the upstream if nobody watches and the grace period is over. Checked under
    /// the slot lock, so a viewer joining at this very moment either keeps the task
    /// alive or finds the slot empty and starts a fresh one.
    fn should_stop(
        &self,
        fanout: &Fanout<Frame>,
        idle_since: &mut Option<Instant>,
        grace: Duration,
    ) -> bool {
        if fanout.viewer_count() > 0 {
            *idle_since = None;
            return false;
        }
        let last_watch = *self
            .last_watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let since = (*idle_since.get_or_insert_with(Instant::now)).max(last_watch);
        if since.elapsed() < grace {
            return false;
        }
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if fanout.viewer_count() > 0 {
            *idle_since = None;
            return false;
        }
        *slot = None;
        fanout.close();
        self.health.send_modify(|h| h.state = LinkState::Idle);
        true
    }
}

/// Why one connection to the camera ended.
enum Ended {
    /// Nobody watches any more: stop.
    Idle,
    /// The camera failed; reconnect after a backoff.
    Failed(String),
    /// The owner changed the source: reconnect to the new one now.
    Reconfigured,
    /// The owner removed the camera: stop.
    Removed,
}

/// The upstream task of one camera: connect, pump, reconnect, until idle.
async fn upstream(
    camera: Arc<Camera>,
    fanout: Fanout<Frame>,
    opener: Arc<dyn CameraOpener>,
    options: HubOptions,
) {
    let mut idle_since = None;
    let mut backoff = options.backoff_min;
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        camera
            .health
            .send_modify(|h| h.state = LinkState::Connecting);
        let ended = connect_and_pump(
            &camera,
            &fanout,
            &*opener,
            &options,
            &mut idle_since,
            &mut ticks,
            &mut backoff,
        )
        .await;
        camera.health.send_modify(|h| h.connected = false);
        let id = camera.id();
        let why = match ended {
            Ended::Idle => {
                tracing::debug!(camera = %id, "no viewers for the grace period; disconnected");
                return;
            }
            Ended::Removed => {
                tracing::info!(camera = %id, "camera removed; disconnected");
                fanout.close();
                return;
            }
            Ended::Reconfigured => {
                tracing::info!(camera = %id, "camera source changed; reconnecting");
                fanout.forget_gop();
                backoff = options.backoff_min;
                continue;
            }
            Ended::Failed(why) => why,
        };
        tracing::warn!(camera = %id, retry_in = ?backoff, "camera offline: {why}");
        camera.health.send_modify(|h| {
            h.state = LinkState::Offline;
            h.error = Some(why);
            h.failures = h.failures.saturating_add(1);
        });
        // Wait out the backoff, but stop at once when the last viewer's grace runs out.
        let retry_at = tokio::time::Instant::now() + backoff;
        let mut generation = camera.generation.subscribe();
        while tokio::time::Instant::now() < retry_at {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = camera.removed.cancelled() => {
                    fanout.close();
                    return;
                }
                // A new source is worth trying at once.
                _ = generation.changed() => {
                    fanout.forget_gop();
                    break;
                }
            }
            if camera.should_stop(&fanout, &mut idle_since, options.grace) {
                return;
            }
        }
        backoff = backoff.saturating_mul(2).min(options.backoff_max);
    }
}

/// One connection: open, then publish frames until the camera fails or nobody watches.
async fn connect_and_pump(
    camera: &Camera,
    fanout: &Fanout<Frame>,
    opener: &dyn CameraOpener,
    options: &HubOptions,
    idle_since: &mut Option<Instant>,
    ticks: &mut tokio::time::Interval,
    backoff: &mut Duration,
) -> Ended {
    let mut generation = camera.generation.subscribe();
    generation.mark_unchanged();
    let source = camera.config().source;
    let opening = tokio::time::timeout(options.connect_timeout, opener.open(&source));
    tokio::pin!(opening);
    let mut frames = loop {
        tokio::select! {
            _ = camera.removed.cancelled() => return Ended::Removed,
            _ = generation.changed() => return Ended::Reconfigured,
            opened = &mut opening => match opened {
                Ok(Ok(frames)) => break frames,
                Ok(Err(e)) => return Ended::Failed(e.to_string()),
                Err(_) => return Ended::Failed(format!("connecting timed out after {} s", options.connect_timeout.as_secs())),
            },
            _ = ticks.tick() => if camera.should_stop(fanout, idle_since, options.grace) {
                return Ended::Idle;
            },
        }
    };
    camera.health.send_modify(|h| h.connected = true);
    tracing::info!(camera = %camera.id(), "camera connected");
    let mut last_frame = Instant::now();
    // After a (re)connect, viewers must not get pictures that reference frames from
    // before the gap: skip to the first keyframe.
    let mut awaiting_keyframe = true;
    loop {
        tokio::select! {
            _ = camera.removed.cancelled() => return Ended::Removed,
            _ = generation.changed() => return Ended::Reconfigured,
            next = frames.next() => match next {
                None => return Ended::Failed("the camera closed the stream".into()),
                Some(Err(e)) => return Ended::Failed(e.to_string()),
                Some(Ok(frame)) => {
                    last_frame = Instant::now();
                    if awaiting_keyframe && !crate::fanout::MediaFrame::is_keyframe(&frame) {
                        continue;
                    }
                    if awaiting_keyframe {
                        awaiting_keyframe = false;
                        *backoff = options.backoff_min;
                        camera.health.send_modify(|h| mark_online(h, &frame));
                    } else if let Frame::Video(v) = &frame
                        && Some(v.track.codec_string.as_str()) != camera.health.borrow().codec_string.as_deref()
                    {
                        camera.health.send_modify(|h| mark_online(h, &frame));
                    }
                    fanout.publish(frame);
                }
            },
            _ = ticks.tick() => {
                if camera.should_stop(fanout, idle_since, options.grace) {
                    return Ended::Idle;
                }
                if last_frame.elapsed() > options.stall_timeout {
                    return Ended::Failed(format!(
                        "no picture for {} s (the camera stalled)",
                        options.stall_timeout.as_secs()
                    ));
                }
            }
        }
    }
}

fn mark_online(h: &mut Health, frame: &Frame) {
    h.state = LinkState::Online;
    h.error = None;
    match frame {
        Frame::Video(v) => {
            h.codec = Some(v.track.codec.to_string());
            h.codec_string = Some(v.track.codec_string.clone());
            h.size = Some((u32::from(v.track.mp4.width), u32::from(v.track.mp4.height)));
        }
        Frame::Jpeg(j) => {
            h.codec = Some("mjpeg".into());
            h.codec_string = None;
            h.size = jpeg_dimensions(j).map(|(w, h)| (u32::from(w), u32::from(h)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use futures_util::future::BoxFuture;

    use super::*;
    use crate::camera::{FrameStream, SourceError, Track, VideoFrame};
    use crate::mp4::VideoTrack;

    /// A recorded clip: `gop`-frame GOPs at `interval`, numbered in the first data byte
    /// pair. Counts opens and live connections; fails the first `fail_first` opens.
    #[derive(Debug)]
    struct Clip {
        gop: u32,
        interval: Duration,
        fail_first: usize,
        stall_after: Option<u32>,
        end_after: Option<u32>,
        opens: AtomicUsize,
        live: Arc<AtomicUsize>,
    }

    impl Clip {
        fn new(gop: u32, interval: Duration) -> Arc<Self> {
            Arc::new(Self {
                gop,
                interval,
                fail_first: 0,
                stall_after: None,
                end_after: None,
                opens: AtomicUsize::new(0),
                live: Arc::new(AtomicUsize::new(0)),
            })
        }
    }

    struct LiveGuard(Arc<AtomicUsize>);
    impl Drop for LiveGuard {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn track() -> Arc<Track> {
        Arc::new(Track {
            mp4: VideoTrack {
                sample_entry: vec![0; 8],
                width: 640,
                height: 480,
                timescale: 90_000,
            },
            codec: "h264",
            codec_string: "avc1.42C01E".into(),
        })
    }

    impl CameraOpener for Clip {
        fn open(&self, _: &CameraSource) -> BoxFuture<'static, Result<FrameStream, SourceError>> {
            let n = self.opens.fetch_add(1, Ordering::SeqCst);
            let fail = n < self.fail_first;
            let (gop, interval, stall_after, end_after) =
                (self.gop, self.interval, self.stall_after, self.end_after);
            self.live.fetch_add(1, Ordering::SeqCst);
            let guard = LiveGuard(self.live.clone());
            Box::pin(async move {
                if fail {
                    drop(guard);
                    return Err(SourceError::bad("test clip", "connection refused"));
                }
                let track = track();
                let frames = futures_util::stream::unfold((0u32, guard), move |(i, g)| {
                    let track = track.clone();
                    async move {
                        if stall_after.is_some_and(|s| i >= s) {
                            std::future::pending::<()>().await;
                        }
                        if end_after.is_some_and(|e| i >= e) {
                            return None; // the camera hung up
                        }
                        tokio::time::sleep(interval).await;
                        let frame = Frame::Video(VideoFrame {
                            track,
                            pts: i64::from(i) * 3000,
                            duration: 3000,
                            keyframe: i % gop == 0,
                            data: Bytes::from(i.to_be_bytes().to_vec()),
                        });
                        Some((Ok(frame), (i + 1, g)))
                    }
                });
                Ok(frames.boxed())
            })
        }
    }

    fn seq(frame: &Frame) -> u32 {
        match frame {
            Frame::Video(v) => u32::from_be_bytes(v.data[..4].try_into().unwrap()),
            Frame::Jpeg(_) => u32::MAX,
        }
    }

    fn hub(clip: Arc<Clip>, grace: Duration) -> Hub {
        let cams = crate::config::cameras(&[], &["front=rtsp://cam/x".into()]).unwrap();
        let options = HubOptions {
            grace,
            backoff_min: Duration::from_millis(20),
            stall_timeout: Duration::from_millis(400),
            ..Default::default()
        };
        Hub::new(&cams, clip, options)
    }

    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn one_upstream_for_many_viewers_and_late_joiner_starts_at_keyframe() {
        let clip = Clip::new(10, Duration::from_millis(5));
        let hub = hub(clip.clone(), Duration::from_secs(5));
        assert_eq!(hub.status("front").unwrap().state, LinkState::Idle);
        let mut a = hub.watch("front").unwrap();
        let first = a.first_frame(Duration::from_secs(5)).await.unwrap();
        assert_eq!(seq(&first), 0);
        // Let the camera run into the middle of a GOP, then join late.
        while seq(&a.viewer.recv().await.unwrap()) < 14 {}
        let mut b = hub.watch("front").unwrap();
        let mut c = hub.watch("front").unwrap();
        let started = Instant::now();
        let fb = b.first_frame(Duration::from_secs(5)).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(5),
            "gop cache is immediate"
        );
        assert!(fb.is_keyframe_for_test() && seq(&fb).is_multiple_of(10) && seq(&fb) >= 10);
        let fc = c.first_frame(Duration::from_secs(5)).await.unwrap();
        assert_eq!(seq(&fc), seq(&fb));
        // In order after the cached GOP.
        let next = seq(&b.viewer.recv().await.unwrap());
        assert_eq!(next, seq(&fb) + 1);
        let status = hub.status("front").unwrap();
        assert_eq!(status.viewers, 3);
        assert_eq!(status.upstream_sessions, 1);
        assert_eq!(status.state, LinkState::Online);
        assert_eq!(status.codec.as_deref(), Some("h264"));
        assert_eq!((status.width, status.height), (Some(640), Some(480)));
        assert_eq!(clip.opens.load(Ordering::SeqCst), 1, "exactly one upstream");
        assert!(hub.watch("nope").is_none());
    }

    #[tokio::test]
    async fn upstream_stops_after_grace_and_restarts_on_demand() {
        let clip = Clip::new(5, Duration::from_millis(5));
        let hub = hub(clip.clone(), Duration::from_millis(300));
        let mut a = hub.watch("front").unwrap();
        a.first_frame(Duration::from_secs(5)).await.unwrap();
        drop(a);
        // Still warm within the grace period: a returning viewer reuses it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut b = hub.watch("front").unwrap();
        b.first_frame(Duration::from_secs(5)).await.unwrap();
        assert_eq!(clip.opens.load(Ordering::SeqCst), 1);
        drop(b);
        eventually("disconnect after grace", || {
            clip.live.load(Ordering::SeqCst) == 0
        })
        .await;
        let s = hub.status("front").unwrap();
        assert_eq!(
            (s.state, s.upstream_sessions, s.viewers),
            (LinkState::Idle, 0, 0)
        );
        let mut c = hub.watch("front").unwrap();
        c.first_frame(Duration::from_secs(5)).await.unwrap();
        assert_eq!(clip.opens.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failing_camera_is_offline_with_reason_then_recovers() {
        let mut clip = Clip::new(5, Duration::from_millis(5));
        Arc::get_mut(&mut clip).unwrap().fail_first = 3;
        let hub = hub(clip.clone(), Duration::from_secs(5));
        let mut a = hub.watch("front").unwrap();
        let err = a.first_frame(Duration::from_secs(5)).await.unwrap_err();
        assert!(
            matches!(&err, Unavailable::Offline(why) if why.contains("connection refused")),
            "{err:?}"
        );
        let s = hub.status("front").unwrap();
        assert_eq!(s.state, LinkState::Offline);
        assert!(s.error.unwrap().contains("connection refused"));
        // Backoff retries until the camera answers; the same viewer then gets frames.
        let frame = tokio::time::timeout(Duration::from_secs(5), a.viewer.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seq(&frame), 0);
        assert_eq!(clip.opens.load(Ordering::SeqCst), 4);
        let s = hub.status("front").unwrap();
        assert_eq!((s.state, s.error), (LinkState::Online, None));
    }

    /// ATTACKS 29: a camera that drops a thousand times is reconnected each time, and
    /// connections and tasks stay flat (virtual time, so the backoffs cost nothing).
    #[tokio::test(start_paused = true)]
    async fn a_thousand_camera_drops_leak_no_connection_or_task() {
        let mut clip = Clip::new(2, Duration::from_millis(5));
        Arc::get_mut(&mut clip).unwrap().end_after = Some(2);
        let hub = hub(clip.clone(), Duration::from_secs(3600));
        let mut viewer = hub.watch("front").unwrap();
        viewer.first_frame(Duration::from_secs(5)).await.unwrap();
        let metrics = tokio::runtime::Handle::current().metrics();
        let tasks_before = metrics.num_alive_tasks();
        let mut drops = 0;
        while clip.opens.load(Ordering::SeqCst) < 1001 {
            // Keep reading so the viewer stays live; frames resume after each reconnect.
            if tokio::time::timeout(Duration::from_secs(60), viewer.viewer.recv())
                .await
                .is_err()
            {
                panic!("no frame for a minute of virtual time after {drops} drops");
            }
            drops = clip.opens.load(Ordering::SeqCst) - 1;
        }
        assert!(drops >= 1000, "{drops} drops");
        assert!(
            clip.live.load(Ordering::SeqCst) <= 1,
            "camera connections leaked"
        );
        assert!(
            metrics.num_alive_tasks() <= tasks_before + 1,
            "tasks {tasks_before} -> {}",
            metrics.num_alive_tasks()
        );
    }

    #[tokio::test]
    async fn stalled_camera_is_dropped_and_reconnected() {
        let mut clip = Clip::new(5, Duration::from_millis(5));
        Arc::get_mut(&mut clip).unwrap().stall_after = Some(3);
        let hub = hub(clip.clone(), Duration::from_secs(5));
        let mut a = hub.watch("front").unwrap();
        a.first_frame(Duration::from_secs(5)).await.unwrap();
        let mut health = a.health.clone();
        tokio::time::timeout(
            Duration::from_secs(5),
            health.wait_for(|h| h.state == LinkState::Offline),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(
            hub.status("front")
                .unwrap()
                .error
                .unwrap()
                .contains("stalled")
        );
        eventually("reconnect", || clip.opens.load(Ordering::SeqCst) >= 2).await;
        // The stalled connection was dropped, not leaked.
        eventually("one live connection", || {
            clip.live.load(Ordering::SeqCst) <= 1
        })
        .await;
    }

    #[tokio::test]
    async fn a_new_source_reconnects_viewers_and_removal_ends_them() {
        let clip = Clip::new(5, Duration::from_millis(5));
        let hub = hub(clip.clone(), Duration::from_secs(5));
        let mut a = hub.watch("front").unwrap();
        a.first_frame(Duration::from_secs(5)).await.unwrap();
        // A rename keeps the viewer; the same source does not reconnect.
        let renamed = CameraConfig {
            id: "porch".into(),
            source: CameraSource::parse("rtsp://cam/x").unwrap(),
        };
        assert!(hub.update("front", &renamed));
        assert!(hub.status("front").is_none());
        assert_eq!(hub.status("porch").unwrap().viewers, 1);
        assert_eq!(clip.opens.load(Ordering::SeqCst), 1);
        // A new source: the upstream reconnects and the same viewer gets its frames.
        let moved = CameraConfig {
            id: "porch".into(),
            source: CameraSource::parse("rtsp://cam/y").unwrap(),
        };
        assert!(hub.update("porch", &moved));
        eventually("reconnect to the new source", || {
            clip.opens.load(Ordering::SeqCst) == 2
        })
        .await;
        let frame = tokio::time::timeout(Duration::from_secs(5), a.viewer.recv()).await;
        assert!(matches!(frame, Ok(Some(_))));
        assert_eq!(hub.source("porch"), Some(moved.source.clone()));
        assert!(!hub.add(&moved), "ids stay unique");
        // Removal ends the viewer's stream and the upstream.
        assert!(hub.remove("porch"));
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            while a.viewer.recv().await.is_some() {}
        })
        .await;
        assert!(end.is_ok(), "the viewer's stream did not end");
        eventually("upstream closed", || clip.live.load(Ordering::SeqCst) == 0).await;
        assert!(hub.watch("porch").is_none() && !hub.remove("porch"));
        assert!(hub.add(&moved));
    }

    impl Frame {
        fn is_keyframe_for_test(&self) -> bool {
            crate::fanout::MediaFrame::is_keyframe(self)
        }
    }
}
