//! Cameras: source URLs and the registry the API lists from.

use serde::Serialize;

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

/// A camera as listed by the API and the admin CLI.
#[derive(Debug, Clone, Serialize)]
pub struct CameraStatus {
    /// Stable id.
    pub id: String,
    /// Source kind.
    pub kind: String,
    /// Whether frames are flowing.
    pub online: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

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
