//! The gateway's configuration: a TOML file, overridden by command-line flags.
//!
//! ```toml
//! name = "Home"                       # shown on phones and in the pairing QR
//! listen = "[::]:7447"                # Noise (phones)
//! admin_listen = "[::]:8443"          # admin web UI, HTTPS, LAN only
//! camera_grace_secs = 10              # keep a camera connected this long after its last viewer
//!
//! [[camera]]
//! id = "front"
//! url = "rtsp://user:pass@192.168.1.10:554/stream1"
//!
//! [[camera]]
//! id = "garden"
//! url = "mjpeg+http://192.168.1.11/video.cgi"
//! ```

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::camera::CameraSource;

/// Default Noise port.
pub const DEFAULT_NOISE_PORT: u16 = 7447;
/// Default admin HTTPS port.
pub const DEFAULT_ADMIN_PORT: u16 = 8443;

/// The configuration file as written by a person.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Gateway name.
    pub name: Option<String>,
    /// Noise listener address.
    pub listen: Option<SocketAddr>,
    /// Admin HTTPS listener address.
    pub admin_listen: Option<SocketAddr>,
    /// Seconds a camera stays connected after its last viewer left.
    pub camera_grace_secs: Option<u64>,
    /// Cameras.
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraEntry>,
    /// The camera port (`quarantine/`): the interface the cameras live on, cut off.
    pub camera_port: Option<crate::quarantine::PortConfig>,
}

/// One `[[camera]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraEntry {
    /// Stable id used in URLs and grants.
    pub id: String,
    /// Source URL: `rtsp://`, `mjpeg+http://`, `snapshot+http://` or `demo:`.
    pub url: String,
}

/// A configured camera, validated.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    /// Stable id.
    pub id: String,
    /// Where its pictures come from.
    pub source: CameraSource,
}

/// Everything `latchkey run` needs, merged and validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Gateway name.
    pub name: String,
    /// Cameras, in configuration order; the demo camera when none is configured.
    pub cameras: Vec<CameraConfig>,
    /// How long a camera stays connected after its last viewer left.
    pub camera_grace: std::time::Duration,
    /// Seconds after which each side of a session rotates its sending key.
    pub rekey_after_secs: u64,
    /// How long a session's HTTP/2 connection may have no open stream before the
    /// session hibernates ([`crate::limits::HIBERNATE_AFTER`]; tests use a short one).
    pub hibernate_after: std::time::Duration,
}

/// Default for [`Config::rekey_after_secs`] (WireGuard's 120 s).
pub const DEFAULT_REKEY_AFTER_SECS: u64 = 120;

/// Default for [`Config::camera_grace`].
pub const DEFAULT_CAMERA_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a TOML configuration file.
pub fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
}

/// Checks a camera id: 1 to 32 of `a-z 0-9 - _`, so it is safe in URLs and file names.
pub fn valid_camera_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Builds the camera list from file entries and `--camera ID=URL` flags.
pub fn cameras(file: &[CameraEntry], flags: &[String]) -> anyhow::Result<Vec<CameraConfig>> {
    let mut entries: Vec<CameraEntry> = file.to_vec();
    for flag in flags {
        let (id, url) = flag.split_once('=').ok_or_else(|| {
            anyhow::anyhow!(
                "--camera {flag:?}: expected ID=URL, e.g. front=rtsp://192.168.1.10/stream1"
            )
        })?;
        entries.push(CameraEntry {
            id: id.to_string(),
            url: url.to_string(),
        });
    }
    if entries.is_empty() {
        entries.push(CameraEntry {
            id: "demo".into(),
            url: "demo:".into(),
        });
    }
    let mut out: Vec<CameraConfig> = Vec::new();
    for e in entries {
        if !valid_camera_id(&e.id) {
            anyhow::bail!(
                "camera id {:?}: use 1 to 32 characters from a-z, 0-9, - and _",
                e.id
            );
        }
        if out.iter().any(|c| c.id == e.id) {
            anyhow::bail!("camera id {:?} is configured twice", e.id);
        }
        let source = CameraSource::parse(&e.url)
            .map_err(|err| anyhow::anyhow!("camera {:?}: {err}", e.id))?;
        out.push(CameraConfig { id: e.id, source });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_camera_when_nothing_is_configured() {
        let cams = cameras(&[], &[]).unwrap();
        assert_eq!(cams.len(), 1);
        assert_eq!(cams[0].id, "demo");
    }

    #[test]
    fn flags_and_file_merge_and_are_checked() {
        let file: FileConfig =
            toml::from_str("[[camera]]\nid = \"front\"\nurl = \"rtsp://a:b@10.0.0.2/x\"\n")
                .unwrap();
        let cams = cameras(&file.cameras, &["demo=demo:".into()]).unwrap();
        assert_eq!(
            cams.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["front", "demo"]
        );
        assert!(cameras(&[], &["Bad Id=demo:".into()]).is_err());
        assert!(cameras(&[], &["x=demo:".into(), "x=demo:".into()]).is_err());
        assert!(cameras(&[], &["nourl".into()]).is_err());
        assert!(toml::from_str::<FileConfig>("nmae = 1").is_err());
    }
}
