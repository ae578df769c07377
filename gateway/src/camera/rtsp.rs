//! RTSP cameras through `retina`: DESCRIBE → SETUP (video only, TCP interleaved, MP4 frame
//! format) → PLAY, then one [`Frame::Video`] per access unit.
//!
//! Only the video stream is set up, so a camera's audio never reaches us and cannot break
//! the stream. Traps handled here (DESIGN.md §8): retina refuses URLs with credentials
//! (they come in apart, see `CameraSource::Rtsp`); it does not flag H.265 CRA pictures as
//! random access, so IRAP NAL types are classified here; `FrameFormat::SIMPLE` would put
//! Annex B data into the avcC box, so MP4 framing is used. Stalls are the hub's job.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use retina::client::{
    Credentials, Demuxed, PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParameters};

use super::{Frame, FrameStream, SourceError, Track, VideoFrame};
use crate::mp4::VideoTrack;

/// Frame interval assumed until two frames have been seen (15 fps at 90 kHz).
const DEFAULT_DURATION: u32 = 6000;

fn rtsp_error(op: &'static str, e: retina::Error) -> SourceError {
    SourceError::Rtsp {
        op,
        status: e.status_code(),
        message: e.to_string(),
    }
}

/// Connects to `url` and starts playing its first H.264/H.265 video stream.
pub async fn open(
    url: &str,
    username: Option<String>,
    password: Option<String>,
) -> Result<FrameStream, SourceError> {
    let parsed = url::Url::parse(url).map_err(|e| SourceError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let creds = username.map(|username| Credentials {
        username,
        password: password.unwrap_or_default(),
    });
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("Latchkey/{}", env!("CARGO_PKG_VERSION")));
    let mut session = retina::client::Session::describe(parsed, options)
        .await
        .map_err(|e| rtsp_error("describe", e))?;
    let video = session
        .streams()
        .iter()
        .position(|s| {
            s.media() == "video"
                && (s.encoding_name().eq_ignore_ascii_case("h264")
                    || s.encoding_name().eq_ignore_ascii_case("h265"))
        })
        .ok_or_else(|| {
            let found: Vec<String> = session
                .streams()
                .iter()
                .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
                .collect();
            SourceError::bad(
                "rtsp describe",
                format!(
                    "no H.264 or H.265 video stream (the camera offers: {})",
                    found.join(", ")
                ),
            )
        })?;
    session
        .setup(
            video,
            SetupOptions::default()
                .transport(Transport::Tcp(TcpTransportOptions::default()))
                .frame_format(FrameFormat::MP4),
        )
        .await
        .map_err(|e| rtsp_error("setup", e))?;
    let playing = session
        .play(PlayOptions::default())
        .await
        .map_err(|e| rtsp_error("play", e))?;
    let demuxed = playing.demuxed().map_err(|e| rtsp_error("play", e))?;
    let state = Demux {
        demuxed,
        video,
        track: None,
        last_pts: None,
        duration: DEFAULT_DURATION,
    };
    Ok(futures_util::stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    })
    .boxed())
}

/// Turns retina's items into our frames.
struct Demux {
    demuxed: Demuxed,
    video: usize,
    track: Option<Arc<Track>>,
    last_pts: Option<i64>,
    duration: u32,
}

impl Demux {
    async fn next(&mut self) -> Option<Result<Frame, SourceError>> {
        loop {
            let item = match self.demuxed.next().await? {
                Ok(item) => item,
                Err(e) => return Some(Err(rtsp_error("stream", e))),
            };
            let CodecItem::VideoFrame(frame) = item else {
                continue; // RTCP and anything else we did not set up
            };
            if frame.stream_id() != self.video {
                continue;
            }
            if self.track.is_none() || frame.has_new_parameters() {
                match self.current_track() {
                    Ok(track) => self.track = Some(Arc::new(track)),
                    Err(e) => return Some(Err(e)),
                }
            }
            let Some(track) = self.track.clone() else {
                continue;
            };
            let pts = frame.timestamp().elapsed();
            if let Some(last) = self.last_pts
                && let Ok(delta) = u32::try_from(pts.saturating_sub(last))
                && delta > 0
            {
                self.duration = delta;
            }
            self.last_pts = Some(pts);
            let keyframe = frame.is_random_access_point();
            let data = Bytes::from(frame.into_data());
            let keyframe = keyframe || is_irap(track.codec, &data);
            return Some(Ok(Frame::Video(VideoFrame {
                track,
                pts,
                duration: self.duration,
                keyframe,
                data,
            })));
        }
    }

    fn current_track(&self) -> Result<Track, SourceError> {
        let stream = self
            .demuxed
            .streams()
            .get(self.video)
            .ok_or_else(|| SourceError::bad("rtsp stream", "the video stream vanished"))?;
        let clock = stream.clock_rate_hz();
        match stream.parameters() {
            Some(ParametersRef::Video(params)) => track_from(params, clock),
            _ => Err(SourceError::bad(
                "rtsp stream",
                "a video frame arrived without video parameters (no SPS/PPS)",
            )),
        }
    }
}

fn track_from(params: &VideoParameters, clock_rate: u32) -> Result<Track, SourceError> {
    let sample_entry = params
        .mp4_sample_entry()
        .build()
        .map_err(|e| SourceError::bad("building the mp4 sample entry", e.to_string()))?;
    let (w, h) = params.pixel_dimensions();
    let (width, height) = match (u16::try_from(w), u16::try_from(h)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => {
            return Err(SourceError::bad(
                "rtsp stream",
                format!("picture size {w}x{h} is too large"),
            ));
        }
    };
    let codec_string = params.rfc6381_codec().to_string();
    let codec = if codec_string.starts_with("hvc1") || codec_string.starts_with("hev1") {
        "h265"
    } else {
        "h264"
    };
    Ok(Track {
        mp4: VideoTrack {
            sample_entry,
            width,
            height,
            timescale: clock_rate,
        },
        codec,
        codec_string,
    })
}

/// True if the access unit (4-byte length-prefixed NALs) holds a picture a decoder can
/// start from: an H.264 IDR slice, or any H.265 IRAP type 16–21 (BLA, IDR and CRA;
/// retina flags only IDR as random access).
pub fn is_irap(codec: &str, mut data: &[u8]) -> bool {
    while let Some(len) = data.get(..4) {
        let len = u32::from_be_bytes([
            len.first().copied().unwrap_or(0),
            len.get(1).copied().unwrap_or(0),
            len.get(2).copied().unwrap_or(0),
            len.get(3).copied().unwrap_or(0),
        ]);
        let Ok(len) = usize::try_from(len) else {
            return false;
        };
        let Some(nal) = data.get(4..4usize.saturating_add(len)) else {
            return false;
        };
        if let Some(&header) = nal.first() {
            let irap = if codec == "h265" {
                (16..=21).contains(&((header >> 1) & 0x3f))
            } else {
                header & 0x1f == 5
            };
            if irap {
                return true;
            }
        }
        data = data.get(4usize.saturating_add(len)..).unwrap_or_default();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn au(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in nals {
            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
            out.extend_from_slice(n);
        }
        out
    }

    #[test]
    fn classifies_irap_pictures() {
        // H.265: AUD (35), then CRA (21) — open-GOP keyframe retina does not flag.
        let cra = au(&[&[35 << 1, 1, 0x50], &[21 << 1, 1, 0xaf]]);
        assert!(is_irap("h265", &cra));
        let trail = au(&[&[35 << 1, 1, 0x50], &[1 << 1, 1, 0xaf]]);
        assert!(!is_irap("h265", &trail));
        assert!(is_irap("h265", &au(&[&[19 << 1, 1]])));
        assert!(!is_irap("h265", &au(&[&[22 << 1, 1]])));
        assert!(is_irap("h264", &au(&[&[0x09, 0xf0], &[0x65, 0x88]])));
        assert!(!is_irap("h264", &au(&[&[0x41, 0x9a]])));
        // Lying lengths and garbage never panic and are not keyframes.
        for bad in [
            &[0xff, 0xff, 0xff, 0xff, 0x65][..],
            &[0, 0, 0],
            &[0, 0, 0, 0, 0, 0, 0, 1],
            &[],
        ] {
            assert!(!is_irap("h264", bad));
            assert!(!is_irap("h265", bad));
        }
    }
}
