//! The synthetic camera the in-process figures watch (a fixed GOP of keyframes and
//! P-frames at 30 fps) and a reader that finds frames and their timestamps in `live.mp4`.

use super::*;

pub(super) const FPS: u64 = 30;

pub(super) const GOP: u32 = 30;

pub(super) const KEYFRAME_BYTES: usize = 121_212;

pub(super) const PFRAME_BYTES: usize = 30_303;

#[derive(Debug)]
pub(super) struct SyntheticCamera;

pub(super) fn sample_entry() -> Vec<u8> {
    let avcc: &[u8] = &[
        0, 0, 0, 15, b'a', b'v', b'c', b'C', 1, 0x42, 0xc0, 0x1e, 0xff, 0xe0, 0,
    ];
    let mut e = Vec::new();
    e.extend_from_slice(&0u32.to_be_bytes());
    e.extend_from_slice(b"avc1");
    e.extend_from_slice(&[0; 6]);
    e.extend_from_slice(&1u16.to_be_bytes());
    e.extend_from_slice(&[0; 16]);
    e.extend_from_slice(&1280u16.to_be_bytes());
    e.extend_from_slice(&720u16.to_be_bytes());
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

impl CameraOpener for SyntheticCamera {
    fn open(&self, _: &CameraSource) -> BoxFuture<'static, Result<FrameStream, SourceError>> {
        Box::pin(async {
            let track = Arc::new(Track {
                mp4: VideoTrack {
                    sample_entry: sample_entry(),
                    width: 1280,
                    height: 720,
                    timescale: 90_000,
                },
                codec: "h264",
                codec_string: "avc1.42C01E".into(),
            });
            let ticks = tokio::time::interval(Duration::from_nanos(1_000_000_000 / FPS));
            let frames = futures_util::stream::unfold((0u32, ticks), move |(i, mut ticks)| {
                let track = track.clone();
                async move {
                    ticks.tick().await;
                    let keyframe = i % GOP == 0;
                    let len = if keyframe {
                        KEYFRAME_BYTES
                    } else {
                        PFRAME_BYTES
                    };
                    let mut data = vec![0u8; len];
                    data[..4].copy_from_slice(&(len as u32 - 4).to_be_bytes());
                    data[4] = if keyframe { 0x65 } else { 0x41 };
                    let stamp = origin().elapsed().as_nanos() as u64;
                    data[5..13].copy_from_slice(&stamp.to_be_bytes());
                    let frame = Frame::Video(VideoFrame {
                        track,
                        pts: i64::from(i) * 3000,
                        duration: 3000,
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

/// Splits an fMP4 byte stream into boxes; yields each complete `mdat`'s first bytes.
/// Only box headers and the first bytes of each `mdat` are kept, not the payload.
#[derive(Default)]
pub(super) struct Mp4Reader {
    /// Bytes of the current box header (and `mdat` head) seen so far.
    pub(super) head: Vec<u8>,
    /// Bytes of the current box still to skip after its head.
    pub(super) skip: usize,
}

/// Bytes of an `mdat` payload the reader hands out: length prefix, NAL header, stamp.
pub(super) const MDAT_HEAD: usize = 13;

impl Mp4Reader {
    pub(super) fn push(&mut self, mut data: &[u8], mut on_mdat: impl FnMut(&[u8])) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let want = if self.head.len() >= 8 && &self.head[4..8] == b"mdat" {
                8 + MDAT_HEAD
            } else {
                8
            };
            let n = (want - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.head.len() < want {
                continue;
            }
            let size = u32::from_be_bytes(self.head[..4].try_into().unwrap()) as usize;
            if &self.head[4..8] == b"mdat" && want == 8 && size >= 8 + MDAT_HEAD {
                continue; // read the mdat head too
            }
            if &self.head[4..8] == b"mdat" {
                on_mdat(&self.head[8..]);
            }
            self.skip = size.saturating_sub(self.head.len());
            self.head.clear();
        }
    }
}

/// The time a synthetic frame entered the gateway, from its `mdat` head.
pub(super) fn stamp_of(mdat: &[u8]) -> Duration {
    mdat.get(5..13)
        .and_then(|b| b.try_into().ok())
        .map_or(Duration::MAX, |b| {
            Duration::from_nanos(u64::from_be_bytes(b))
        })
}

/// Reads a live.mp4 body until its first complete `mdat` (the first keyframe) arrived.
pub(super) async fn first_mdat(mut body: hyper::body::Incoming) -> anyhow::Result<()> {
    let mut reader = Mp4Reader::default();
    let mut got = false;
    while !got {
        let frame = body.frame().await.context("stream ended")??;
        if let Ok(data) = frame.into_data() {
            reader.push(&data, |_| got = true);
        }
    }
    Ok(())
}
