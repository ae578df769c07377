//! HLS for native players (AVPlayer plays live video only as HLS): one feed per camera
//! reads the gateway's live.mp4 and cuts it into fMP4 media segments of at most 2 s,
//! at keyframes where it can; the playlist lists the last few.
//!
//! ```text
//!  live.mp4 ─▶ ftyp+moov ─▶ init.mp4
//!           └▶ moof+mdat … ─▶ segment N (≤ 2 s, from a keyframe once ≥ 1 s) ─▶ N.m4s
//! ```
//!
//! A feed starts on the first playlist request and ends when its stream ends (camera
//! gone, channel cut by revocation) or when no player asked for anything for a while.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use tokio::sync::watch;

use super::boxes::{self, BoxReader};
use super::front::Front;
use crate::LiveFormat;

/// Longest media segment.
const MAX_SEGMENT: Duration = Duration::from_secs(2);
/// A segment is cut at the next keyframe once it is this long.
const MIN_SEGMENT: Duration = Duration::from_secs(1);
/// Segments kept (and listed).
const KEEP: usize = 6;
/// A feed nobody asked anything of for this long stops.
const IDLE: Duration = Duration::from_secs(20);
/// How long a playlist request waits for the first segment.
const FIRST_SEGMENT_WAIT: Duration = Duration::from_secs(12);

#[derive(Debug)]
struct Segment {
    seq: u64,
    secs: f64,
    data: Bytes,
}

#[derive(Debug, Default)]
struct FeedState {
    init: Option<Bytes>,
    segments: VecDeque<Segment>,
    ended: bool,
}

#[derive(Debug)]
struct Feed {
    state: Mutex<FeedState>,
    changed: watch::Sender<u64>,
    last_access: Mutex<Instant>,
}

impl Feed {
    fn touch(&self) {
        *self.last_access.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn idle(&self) -> bool {
        self.last_access
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            > IDLE
    }

    fn with<T>(&self, f: impl FnOnce(&mut FeedState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The HLS feeds of one player endpoint.
#[derive(Debug, Default)]
pub struct Hls {
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
}

impl Hls {
    /// The feed of `camera`, starting one if there is none or the last one ended.
    fn feed(&self, front: &Arc<Front>, camera: &str) -> Arc<Feed> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = feeds.get(camera)
            && !f.with(|s| s.ended)
        {
            f.touch();
            return f.clone();
        }
        let feed = Arc::new(Feed {
            state: Mutex::new(FeedState::default()),
            changed: watch::channel(0).0,
            last_access: Mutex::new(Instant::now()),
        });
        feeds.insert(camera.to_string(), feed.clone());
        let (front, camera, f) = (front.clone(), camera.to_string(), feed.clone());
        tokio::spawn(async move {
            if let Err(e) = run(&front, &camera, &f).await {
                tracing::debug!(camera, "hls feed ended: {e}");
            }
            f.with(|s| s.ended = true);
            f.changed.send_modify(|n| *n += 1);
        });
        feed
    }

    /// The playlist, once the first segment is there (or the feed ended).
    pub async fn playlist(&self, front: &Arc<Front>, camera: &str) -> Option<String> {
        let feed = self.feed(front, camera);
        let mut rx = feed.changed.subscribe();
        let _ = tokio::time::timeout(FIRST_SEGMENT_WAIT, async {
            while feed.with(|s| s.segments.is_empty() && !s.ended) {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
        feed.with(|s| playlist_text(s))
    }

    /// The init segment or media segment `file` (`init.mp4`, `N.m4s`) of a running feed.
    pub fn file(&self, camera: &str, file: &str) -> Option<Bytes> {
        let feed = self
            .feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(camera)?
            .clone();
        feed.touch();
        if file == "init.mp4" {
            return feed.with(|s| s.init.clone());
        }
        let seq: u64 = file.strip_suffix(".m4s")?.parse().ok()?;
        feed.with(|s| {
            s.segments
                .iter()
                .find(|g| g.seq == seq)
                .map(|g| g.data.clone())
        })
    }
}

fn playlist_text(s: &FeedState) -> Option<String> {
    let first = s.segments.front()?;
    let target = s
        .segments
        .iter()
        .map(|g| g.secs.ceil() as u64)
        .max()
        .unwrap_or(2)
        .max(2);
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-MAP:URI=\"hls/init.mp4\"\n",
        first.seq
    );
    for g in &s.segments {
        let _ = write!(out, "#EXTINF:{:.3},\nhls/{}.m4s\n", g.secs, g.seq);
    }
    if s.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    Some(out)
}

/// Segments being cut.
struct Cutter {
    timescale: u64,
    current: Vec<u8>,
    ticks: u64,
    next_seq: u64,
}

impl Cutter {
    fn secs(&self, ticks: u64) -> Duration {
        Duration::from_secs_f64(ticks as f64 / self.timescale.max(1) as f64)
    }

    /// Adds one fragment (moof+mdat); returns a finished segment when one is cut first.
    fn add(&mut self, fragment: &[u8], ticks: u64, keyframe: bool) -> Option<Segment> {
        let so_far = self.secs(self.ticks);
        let cut = !self.current.is_empty()
            && ((keyframe && so_far >= MIN_SEGMENT)
                || self.secs(self.ticks.saturating_add(ticks)) > MAX_SEGMENT);
        let done = cut.then(|| self.finish());
        self.current.extend_from_slice(fragment);
        self.ticks = self.ticks.saturating_add(ticks);
        done
    }

    fn finish(&mut self) -> Segment {
        let seg = Segment {
            seq: self.next_seq,
            secs: self.secs(self.ticks).as_secs_f64(),
            data: Bytes::from(std::mem::take(&mut self.current)),
        };
        self.next_seq += 1;
        self.ticks = 0;
        seg
    }
}

/// Reads the camera's live.mp4 and cuts it until it ends or nobody watches.
async fn run(front: &Arc<Front>, camera: &str, feed: &Feed) -> Result<(), String> {
    let response = front
        .live(camera, LiveFormat::Mp4)
        .await
        .map_err(|e| e.to_string())?;
    let mut body = response.into_body();
    let mut reader = BoxReader::default();
    let mut init = Vec::new();
    let mut cutter = None::<Cutter>;
    let mut moof: Option<(Bytes, u64, bool)> = None;
    loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if feed.idle() { return Ok(()); }
                continue;
            }
        };
        let Some(frame) = frame else {
            return Ok(());
        };
        let Ok(data) = frame.map_err(|e| e.to_string())?.into_data() else {
            continue;
        };
        if feed.idle() {
            return Ok(());
        }
        reader.push(&data);
        while let Some((kind, whole)) = reader.next_box().map_err(|e| e.to_string())? {
            match (&kind, cutter.as_mut()) {
                (b"ftyp", None) => init.extend_from_slice(&whole),
                (b"moov", None) => {
                    let timescale = boxes::timescale(&whole).ok_or("no timescale")?;
                    init.extend_from_slice(&whole);
                    feed.with(|s| s.init = Some(Bytes::from(std::mem::take(&mut init))));
                    cutter = Some(Cutter {
                        timescale: u64::from(timescale),
                        current: Vec::new(),
                        ticks: 0,
                        next_seq: 0,
                    });
                }
                (b"moof", Some(_)) => {
                    let (ticks, key) = boxes::fragment(&whole).ok_or("unreadable moof")?;
                    moof = Some((whole, ticks, key));
                }
                (b"mdat", Some(c)) => {
                    let (m, ticks, key) = moof.take().ok_or("mdat without moof")?;
                    let fragment = [m.as_ref(), whole.as_ref()].concat();
                    if let Some(seg) = c.add(&fragment, ticks, key) {
                        feed.with(|s| {
                            s.segments.push_back(seg);
                            while s.segments.len() > KEEP {
                                s.segments.pop_front();
                            }
                        });
                        feed.changed.send_modify(|n| *n += 1);
                    }
                }
                _ => return Err("unexpected box in live.mp4".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_cut_at_keyframes_after_a_second_and_never_exceed_two() {
        let mut c = Cutter {
            timescale: 90_000,
            current: Vec::new(),
            ticks: 0,
            next_seq: 0,
        };
        let frame = 3_000; // 30 fps
        let mut cut = Vec::new();
        // A keyframe every 15 frames (0.5 s): cut at the first keyframe at or after 1 s.
        for i in 0..120u32 {
            if let Some(s) = c.add(&[0], frame, i % 15 == 0) {
                cut.push(s);
            }
        }
        assert!(
            cut.iter().all(|s| (0.99..=2.0).contains(&s.secs)),
            "{cut:?}"
        );
        assert_eq!(cut.first().map(|s| s.secs), Some(1.0));
        // No keyframes at all: cut at 2 s.
        let mut c = Cutter {
            timescale: 90_000,
            current: Vec::new(),
            ticks: 0,
            next_seq: 0,
        };
        let cut: Vec<_> = (0..200).filter_map(|_| c.add(&[0], frame, false)).collect();
        assert!(cut.iter().all(|s| s.secs <= 2.0 && s.secs > 1.9), "{cut:?}");
        let state = FeedState {
            init: None,
            segments: cut.into_iter().take(3).collect(),
            ended: false,
        };
        let text = playlist_text(&state).unwrap();
        assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
        assert!(text.contains("#EXT-X-MAP:URI=\"hls/init.mp4\""), "{text}");
        assert!(text.contains("hls/0.m4s"), "{text}");
    }
}
