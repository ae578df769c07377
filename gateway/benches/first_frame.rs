//! Time to first frame for a new viewer of a warm camera, through the real path: the
//! camera hub, the GOP-caching fan-out and the fMP4 (or MJPEG) body a viewer receives.
//!
//! A recorded-clip opener stands in for the RTSP camera (15 fps, a keyframe every 2 s,
//! 20 KB P-frames, 80 KB keyframes); the demo camera is the MJPEG case. One viewer keeps
//! each camera warm, then new viewers join at random points of the GOP; each sample is
//! the time from `Hub::watch` to the first body bytes holding a decodable picture.
//! Prints `metric first_frame_ms VALUE` (median, fMP4) and companions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use latchkey_gateway::camera::hub::{Hub, HubOptions};
use latchkey_gateway::camera::{
    CameraOpener, CameraSource, Frame, FrameStream, RealOpener, SourceError, Track, VideoFrame,
};
use latchkey_gateway::live;
use latchkey_gateway::mp4::VideoTrack;

const SAMPLES: usize = 40;

#[derive(Debug)]
struct Clip;

/// A minimal but well-formed `avc1` sample entry (86-byte visual entry + an avcC box).
fn sample_entry() -> Vec<u8> {
    // version 1, profile/compat/level, 4-byte lengths, no SPS, no PPS (not decoded here).
    let avcc: &[u8] = &[
        0, 0, 0, 15, b'a', b'v', b'c', b'C', 1, 0x42, 0xc0, 0x1e, 0xff, 0xe0, 0,
    ];
    let mut e = Vec::new();
    e.extend_from_slice(&0u32.to_be_bytes());
    e.extend_from_slice(b"avc1");
    e.extend_from_slice(&[0; 6]);
    e.extend_from_slice(&1u16.to_be_bytes());
    e.extend_from_slice(&[0; 16]);
    e.extend_from_slice(&640u16.to_be_bytes());
    e.extend_from_slice(&480u16.to_be_bytes());
    e.extend_from_slice(&0x0048_0000u32.to_be_bytes());
    e.extend_from_slice(&0x0048_0000u32.to_be_bytes());
    e.extend_from_slice(&[0; 4]);
    e.extend_from_slice(&1u16.to_be_bytes());
    e.extend_from_slice(&[0; 32]);
    e.extend_from_slice(&0x18u16.to_be_bytes());
    e.extend_from_slice(&(-1i16).to_be_bytes());
    e.extend_from_slice(avcc);
    let len = e.len() as u32;
    e[..4].copy_from_slice(&len.to_be_bytes());
    e
}

impl CameraOpener for Clip {
    fn open(&self, _: &CameraSource) -> BoxFuture<'static, Result<FrameStream, SourceError>> {
        Box::pin(async {
            let track = Arc::new(Track {
                mp4: VideoTrack {
                    sample_entry: sample_entry(),
                    width: 640,
                    height: 480,
                    timescale: 90_000,
                },
                codec: "h264",
                codec_string: "avc1.42C01E".into(),
            });
            let ticks = tokio::time::interval(Duration::from_micros(66_667));
            let frames = futures_util::stream::unfold((0u32, ticks), move |(i, mut ticks)| {
                let track = track.clone();
                async move {
                    ticks.tick().await;
                    let keyframe = i % 30 == 0;
                    let len = if keyframe { 80_000 } else { 20_000 };
                    let mut data = vec![0u8; len];
                    data[..4].copy_from_slice(&(len as u32 - 4).to_be_bytes());
                    data[4] = if keyframe { 0x65 } else { 0x41 };
                    let frame = Frame::Video(VideoFrame {
                        track,
                        pts: i64::from(i) * 6000,
                        duration: 6000,
                        keyframe,
                        data: Bytes::from(data),
                    });
                    Some((Ok(frame), (i + 1, ticks)))
                }
            });
            Ok(frames.boxed())
        })
    }
}

fn stats(name: &str, mut ms: Vec<f64>) -> f64 {
    ms.sort_by(|a, b| a.total_cmp(b));
    let median = ms[ms.len() / 2];
    let p95 = ms[(ms.len() * 95 / 100).min(ms.len() - 1)];
    println!(
        "{name}: median {median:.3} ms, p95 {p95:.3} ms, max {:.3} ms over {} viewers",
        ms[ms.len() - 1],
        ms.len()
    );
    median
}

async fn measure(hub: &Hub, id: &str, mp4: bool) -> Vec<f64> {
    // Warm the camera with one viewer that keeps reading.
    let mut warm = hub.watch(id).unwrap();
    warm.first_frame(Duration::from_secs(10)).await.unwrap();
    let keep = tokio::spawn(async move { while warm.viewer.recv().await.is_some() {} });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        // Join at varying points of the GOP.
        tokio::time::sleep(Duration::from_millis(37 + (i as u64 * 53) % 200)).await;
        let started = Instant::now();
        let mut watch = hub.watch(id).unwrap();
        let first = watch.first_frame(Duration::from_secs(10)).await.unwrap();
        let mut body = if mp4 {
            live::mp4_body(watch, first, None).unwrap()
        } else {
            live::mjpeg_body(watch, first, None).unwrap()
        };
        // fMP4: the init segment, then the first fragment (a keyframe); MJPEG: one part.
        let chunks = if mp4 { 2 } else { 1 };
        for _ in 0..chunks {
            body.next().await.unwrap().unwrap();
        }
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    keep.abort();
    samples
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cams = latchkey_gateway::config::cameras(&[], &["front=rtsp://clip/x".into()]).unwrap();
        let hub = Hub::new(&cams, Arc::new(Clip), HubOptions::default());
        let mp4 = stats("fMP4 (15 fps, GOP 30)", measure(&hub, "front", true).await);

        let cams = latchkey_gateway::config::cameras(&[], &["demo=demo:".into()]).unwrap();
        let hub = Hub::new(&cams, Arc::new(RealOpener), HubOptions::default());
        let mjpeg = stats("MJPEG (demo, 10 fps)", measure(&hub, "demo", false).await);

        println!("metric first_frame_ms {mp4:.3}");
        println!("metric first_frame_mjpeg_ms {mjpeg:.3}");
    });
}
