//! A viewer's frames as an HTTP body: fragmented MP4 (init segment, then one moof+mdat
//! per frame) or MJPEG (`multipart/x-mixed-replace`).
//!
//! The body ends when the camera's fan-out closes, when the track changes (a new init
//! segment would confuse players; they reconnect), or at `deadline` (the device's access
//! expiry). Dropping the body drops the viewer, which frees its queue at once.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt as _};

use crate::camera::hub::Watch;
use crate::camera::multipart;
use crate::camera::{Frame, Track, VideoFrame};
use crate::mp4::{self, Sample};

/// Chunks of an HTTP body.
pub type BodyStream = BoxStream<'static, Result<Bytes, Infallible>>;

/// Why a viewer's stream cannot start in the asked format.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    /// The camera sends JPEGs, not H.264/H.265.
    #[error("this camera sends jpeg pictures: use live.mjpeg or snapshot.jpg")]
    NotVideo,
    /// The camera sends H.264/H.265, not JPEGs.
    #[error("this camera sends h.264/h.265 video: use live.mp4")]
    NotJpeg,
    /// A snapshot of an H.264/H.265 camera: the gateway does not decode video.
    #[error(
        "this camera sends h.264/h.265 video, which the gateway does not decode: take the picture from live.mp4 (it starts with a keyframe)"
    )]
    NoSnapshot,
    /// The init segment could not be built from the camera's parameters.
    #[error("building the mp4 init segment: {0}")]
    Mp4(#[from] mp4::Mp4Error),
}

/// fMP4 for a viewer whose first frame is `first`.
pub fn mp4_body(
    watch: Watch,
    first: Frame,
    deadline: Option<tokio::time::Instant>,
) -> Result<BodyStream, LiveError> {
    let Frame::Video(first) = first else {
        return Err(LiveError::NotVideo);
    };
    let init = Bytes::from(mp4::init_segment(&first.track.mp4)?);
    let mut muxer = Muxer {
        track: first.track.clone(),
        base: first.pts,
        sequence: 0,
    };
    let first_fragment = muxer.fragment(&first);
    let head = stream::iter(std::iter::once(init).chain(first_fragment.into_iter().flatten()));
    let rest = stream::unfold((watch, muxer), |(mut watch, mut muxer)| async move {
        let Frame::Video(frame) = watch.viewer.recv().await? else {
            return None;
        };
        if frame.track != muxer.track && *frame.track != *muxer.track {
            tracing::info!("camera parameters changed; ending the viewer's mp4 stream");
            return None;
        }
        let chunks = muxer.fragment(&frame)?;
        Some((stream::iter(chunks), (watch, muxer)))
    })
    .flatten();
    Ok(until(head.chain(rest).map(Ok).boxed(), deadline))
}

/// MJPEG for a viewer whose first frame is `first`.
pub fn mjpeg_body(
    watch: Watch,
    first: Frame,
    deadline: Option<tokio::time::Instant>,
) -> Result<BodyStream, LiveError> {
    let Frame::Jpeg(first) = first else {
        return Err(LiveError::NotJpeg);
    };
    let head = stream::once(async move { multipart::encode_part(&first) });
    let rest = stream::unfold(watch, |mut watch| async move {
        match watch.viewer.recv().await? {
            Frame::Jpeg(jpeg) => Some((multipart::encode_part(&jpeg), watch)),
            Frame::Video(_) => None,
        }
    });
    Ok(until(head.chain(rest).map(Ok).boxed(), deadline))
}

/// The JPEG of a first frame, for snapshots.
pub fn snapshot(first: Frame) -> Result<Bytes, LiveError> {
    match first {
        Frame::Jpeg(jpeg) => Ok(jpeg),
        Frame::Video(_) => Err(LiveError::NoSnapshot),
    }
}

fn until(body: BodyStream, deadline: Option<tokio::time::Instant>) -> BodyStream {
    match deadline {
        Some(at) => body.take_until(tokio::time::sleep_until(at)).boxed(),
        None => body,
    }
}

/// Per-viewer fMP4 state: decode times start at 0 for each viewer.
struct Muxer {
    track: Arc<Track>,
    base: i64,
    sequence: u32,
}

impl Muxer {
    /// One fragment as two chunks: its `moof` + `mdat` header, then the frame's bytes,
    /// shared with every other viewer (never copied per viewer).
    fn fragment(&mut self, frame: &VideoFrame) -> Option<[Bytes; 2]> {
        self.sequence = self.sequence.wrapping_add(1);
        // A camera whose clock jumps backwards gets clamped rather than wrapped.
        let decode_time = u64::try_from(frame.pts.saturating_sub(self.base)).unwrap_or(0);
        let sample = Sample {
            decode_time,
            duration: frame.duration,
            is_sync: frame.keyframe,
            data: frame.data.clone(),
        };
        match mp4::media_segment_head(self.sequence, std::slice::from_ref(&sample)) {
            Ok(head) => Some([Bytes::from(head), sample.data]),
            Err(e) => {
                tracing::warn!("ending a viewer's mp4 stream: {e}");
                None
            }
        }
    }
}
