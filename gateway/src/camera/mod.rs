//! Cameras: source URLs, the frames sources produce, the opener trait that connects to
//! them, and the hub that keeps one upstream per camera and fans it out to viewers.
//!
//! ```text
//!  camera ──rtsp.rs / http.rs / demo.rs──▶ FrameStream ──hub.rs──▶ Fanout<Frame> ──▶ viewers
//!                                              ▲                        (crate::live turns a
//!                   CameraOpener (tests inject a recorded clip)          viewer into a body)
//! ```

pub mod demo;
pub mod http;
pub mod hub;
pub mod multipart;
pub mod onvif;
pub mod rtsp;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use crate::fanout::MediaFrame;
use crate::mp4::VideoTrack;

/// Where a camera's pictures come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraSource {
    /// RTSP (H.264/H.265 over TCP); credentials are kept apart because the RTSP client
    /// refuses URLs that carry them.
    Rtsp {
        /// The URL without `user:pass@`.
        url: String,
        /// User name, if any.
        username: Option<String>,
        /// Password, if any.
        password: Option<String>,
    },
    /// HTTP `multipart/x-mixed-replace` MJPEG (the `http://` URL).
    Mjpeg(String),
    /// A JPEG snapshot polled over HTTP (the `http://` URL).
    Snapshot(String),
    /// The built-in moving test pattern.
    Demo,
}

impl CameraSource {
    /// Parses a camera URL: `rtsp://[user:pass@]host[:port]/path`, `mjpeg+http://…`,
    /// `snapshot+http://…` or `demo:`.
    pub fn parse(url: &str) -> Result<Self, String> {
        if url == "demo:" || url == "demo" {
            return Ok(Self::Demo);
        }
        if let Some(rest) = url.strip_prefix("mjpeg+") {
            return http_url(rest).map(Self::Mjpeg);
        }
        if let Some(rest) = url.strip_prefix("snapshot+") {
            return http_url(rest).map(Self::Snapshot);
        }
        if let Some(rest) = url.strip_prefix("rtsp://") {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (userinfo, host) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, authority),
            };
            if host.is_empty() {
                return Err(format!("{url:?} has no host"));
            }
            let (username, password) = match userinfo {
                Some(u) => {
                    let (name, pass) = u.split_once(':').unwrap_or((u, ""));
                    (Some(name.to_string()), Some(pass.to_string()))
                }
                None => (None, None),
            };
            return Ok(Self::Rtsp {
                url: format!("rtsp://{host}/{path}"),
                username,
                password,
            });
        }
        Err(format!(
            "unsupported camera url {url:?}: use rtsp://, mjpeg+http://, snapshot+http:// or demo:"
        ))
    }

    /// The short kind name shown in listings.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rtsp { .. } => "rtsp",
            Self::Mjpeg(_) => "mjpeg",
            Self::Snapshot(_) => "snapshot",
            Self::Demo => "demo",
        }
    }
}

fn http_url(rest: &str) -> Result<String, String> {
    if rest.starts_with("http://") && rest.len() > "http://".len() {
        Ok(rest.to_string())
    } else {
        Err(format!("expected http://host/path after the + in {rest:?}"))
    }
}

/// A camera as listed by the API and the admin CLI: the shared wire type (PROTOCOL.md §7).
pub use latchkey_pairing::api_types::CameraInfo as CameraStatus;
/// Where the gateway's single connection to a camera stands (the wire's `state`).
pub use latchkey_pairing::api_types::CameraState as LinkState;

/// What a camera source delivers: one picture.
#[derive(Debug, Clone)]
pub enum Frame {
    /// One H.264/H.265 access unit.
    Video(VideoFrame),
    /// One JPEG picture (MJPEG, snapshot and demo sources).
    Jpeg(Bytes),
}

/// One H.264/H.265 access unit, ready for fMP4.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    /// The track it belongs to; a new `Arc` with different content when the camera
    /// changes its parameters (a viewer's fMP4 stream then has to start over).
    pub track: Arc<Track>,
    /// Presentation time in `track.mp4.timescale` units since the session started.
    pub pts: i64,
    /// Duration estimate in timescale units (the previous frame interval).
    pub duration: u32,
    /// True for IDR/IRAP pictures a decoder can start from.
    pub keyframe: bool,
    /// 4-byte length-prefixed NAL units.
    pub data: Bytes,
}

/// A video track as a source describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// What the fMP4 init segment needs.
    pub mp4: VideoTrack,
    /// `h264` or `h265`.
    pub codec: &'static str,
    /// RFC 6381 codec string (for MSE in browsers).
    pub codec_string: String,
}

impl MediaFrame for Frame {
    fn is_keyframe(&self) -> bool {
        match self {
            Frame::Video(v) => v.keyframe,
            Frame::Jpeg(_) => true,
        }
    }

    fn byte_len(&self) -> usize {
        match self {
            Frame::Video(v) => v.data.len(),
            Frame::Jpeg(j) => j.len(),
        }
    }
}

/// Frames from one connection to a camera; ends (or yields an error) when it drops.
pub type FrameStream = BoxStream<'static, Result<Frame, SourceError>>;

/// Connects to cameras. The daemon uses [`RealOpener`]; tests and benchmarks inject a
/// recorded clip instead.
pub trait CameraOpener: Send + Sync + std::fmt::Debug + 'static {
    /// Opens one connection to the camera and returns its frames.
    fn open(&self, source: &CameraSource) -> BoxFuture<'static, Result<FrameStream, SourceError>>;
}

/// Opens the real thing: RTSP, HTTP MJPEG, HTTP snapshots, or the built-in pattern.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealOpener;

impl CameraOpener for RealOpener {
    fn open(&self, source: &CameraSource) -> BoxFuture<'static, Result<FrameStream, SourceError>> {
        let source = source.clone();
        Box::pin(async move {
            match source {
                CameraSource::Rtsp {
                    url,
                    username,
                    password,
                } => rtsp::open(&url, username, password).await,
                CameraSource::Mjpeg(url) => http::open_mjpeg(&url).await,
                CameraSource::Snapshot(url) => http::open_snapshot(&url).await,
                CameraSource::Demo => Ok(demo::open()),
            }
        })
    }
}

/// Why a camera connection failed or ended. Shown to the owner as the camera's reason
/// for being offline, so each message says what was being done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The camera URL cannot be used.
    #[error("camera url {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A socket operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An operation took too long.
    #[error("{op}: timed out after {secs} s")]
    Timeout {
        /// What was being done.
        op: String,
        /// The limit.
        secs: u64,
    },
    /// The RTSP client failed (retina's errors are opaque text).
    #[error("rtsp {op}: {message}")]
    Rtsp {
        /// `describe`, `setup`, `play` or `stream`.
        op: &'static str,
        /// retina's explanation.
        message: String,
        /// The RTSP status code, if the camera answered with one (401: wrong credentials).
        status: Option<u16>,
    },
    /// HTTP to the camera failed.
    #[error("http {op}: {source}")]
    Http {
        /// What was being done.
        op: &'static str,
        /// The cause.
        #[source]
        source: hyper::Error,
    },
    /// The camera sent something we cannot use.
    #[error("{op}: {reason}")]
    BadMedia {
        /// What was being done.
        op: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl SourceError {
    pub(crate) fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn bad(op: &'static str, reason: impl Into<String>) -> Self {
        Self::BadMedia {
            op,
            reason: reason.into(),
        }
    }
}

/// Reads the picture size from a JPEG's start-of-frame header, checking the markers on
/// the way; `None` for anything that is not a well-formed JPEG header.
pub fn jpeg_dimensions(jpeg: &[u8]) -> Option<(u16, u16)> {
    if jpeg.get(..2)? != [0xff, 0xd8] {
        return None;
    }
    let mut pos = 2usize;
    loop {
        let marker = jpeg.get(pos..pos.checked_add(2)?)?;
        if marker.first() != Some(&0xff) {
            return None;
        }
        let kind = *marker.get(1)?;
        let len_bytes = jpeg.get(pos.checked_add(2)?..pos.checked_add(4)?)?;
        let len = usize::from(u16::from_be_bytes([
            *len_bytes.first()?,
            *len_bytes.get(1)?,
        ]));
        // SOF0..SOF15 except DHT (c4), JPG (c8) and DAC (cc).
        if (0xc0..=0xcf).contains(&kind) && !matches!(kind, 0xc4 | 0xc8 | 0xcc) {
            let sof = jpeg.get(pos.checked_add(5)?..pos.checked_add(9)?)?;
            let h = u16::from_be_bytes([*sof.first()?, *sof.get(1)?]);
            let w = u16::from_be_bytes([*sof.get(2)?, *sof.get(3)?]);
            return Some((w, h));
        }
        if kind == 0xda || len < 2 {
            return None; // scan data before any frame header
        }
        pos = pos.checked_add(2)?.checked_add(len)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_dimensions_of_demo_frame_and_garbage() {
        let jpeg = demo::DemoPattern::new(320, 240)
            .render_jpeg(1, "00:00:00")
            .unwrap();
        assert_eq!(jpeg_dimensions(&jpeg), Some((320, 240)));
        for bad in [
            &b""[..],
            b"\xff\xd8",
            b"\xff\xd8\xff\xc0\x00",
            b"garbage",
            b"\xff\xd8\xff\xe0\xff\xff",
        ] {
            assert_eq!(jpeg_dimensions(bad), None);
        }
        for cut in 0..jpeg.len().min(700) {
            let _ = jpeg_dimensions(&jpeg[..cut]);
        }
    }

    #[test]
    fn parses_each_kind() {
        assert_eq!(CameraSource::parse("demo:"), Ok(CameraSource::Demo));
        assert_eq!(
            CameraSource::parse("rtsp://admin:s3cr:t@10.0.0.5:554/live/ch0"),
            Ok(CameraSource::Rtsp {
                url: "rtsp://10.0.0.5:554/live/ch0".into(),
                username: Some("admin".into()),
                password: Some("s3cr:t".into()),
            })
        );
        assert_eq!(
            CameraSource::parse("mjpeg+http://cam/video"),
            Ok(CameraSource::Mjpeg("http://cam/video".into()))
        );
        assert_eq!(
            CameraSource::parse("snapshot+http://cam/s.jpg"),
            Ok(CameraSource::Snapshot("http://cam/s.jpg".into()))
        );
        for bad in ["http://cam", "rtsp://", "mjpeg+ftp://x", "mjpeg+http://"] {
            assert!(CameraSource::parse(bad).is_err(), "{bad}");
        }
    }
}
