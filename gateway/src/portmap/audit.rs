//! The router mapping audit: every mapping on the router, with the LAN host it points to,
//! marked as Latchkey's own, a configured camera's, or unknown. A camera's mapping is a
//! warning: cameras should never be reachable from the internet.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::upnp::TableEntry;
use crate::camera::CameraSource;
use crate::config::CameraConfig;

/// Who a mapping belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Owner {
    /// This gateway's own Noise mapping.
    Latchkey,
    /// A configured camera (its id).
    Camera,
    /// Some other LAN host.
    Unknown,
}

/// One audited mapping.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditedMapping {
    /// The router's entry.
    #[serde(flatten)]
    pub entry: TableEntry,
    /// Whose it is.
    pub owner: Owner,
    /// The camera id, when it is a camera's.
    pub camera: Option<String>,
    /// A warning for the owner, if any.
    pub warning: Option<String>,
}

/// The host part of a camera's source URL (`rtsp://user:pass@host:port/path`).
pub fn camera_host(source: &CameraSource) -> Option<String> {
    let url = match source {
        CameraSource::Rtsp { url, .. } => url.as_str(),
        CameraSource::Mjpeg(u) | CameraSource::Snapshot(u) => u.as_str(),
        CameraSource::Demo => return None,
    };
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Marks each entry.
pub fn classify(
    table: Vec<TableEntry>,
    own_ip: Option<Ipv4Addr>,
    noise_port: u16,
    cameras: &[CameraConfig],
) -> Vec<AuditedMapping> {
    table
        .into_iter()
        .map(|entry| {
            let client = entry.internal_client.trim().to_ascii_lowercase();
            let camera = cameras
                .iter()
                .find(|c| camera_host(&c.source).as_deref() == Some(client.as_str()))
                .map(|c| c.id.clone());
            let own = own_ip.is_some_and(|ip| ip.to_string() == client)
                && entry.internal_port == noise_port
                && entry.protocol.eq_ignore_ascii_case("TCP");
            let (owner, warning) = if own {
                (Owner::Latchkey, None)
            } else if let Some(id) = &camera {
                (
                    Owner::Camera,
                    Some(format!(
                        "camera {id} ({client}) opened {} port {} to the internet by itself; remove it (`latchkey remote audit --remove {}`) and turn UPnP off in the camera's settings",
                        entry.protocol, entry.external_port, entry.index
                    )),
                )
            } else {
                (Owner::Unknown, None)
            };
            AuditedMapping {
                entry,
                owner,
                camera,
                warning,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u32, client: &str, port: u16) -> TableEntry {
        TableEntry {
            index,
            protocol: "TCP".into(),
            external_port: 10_000 + port,
            internal_client: client.into(),
            internal_port: port,
            description: "x".into(),
            lease_secs: 0,
            enabled: true,
        }
    }

    #[test]
    fn own_camera_and_unknown_are_told_apart() {
        let cams = crate::config::cameras(
            &[],
            &[
                "front=rtsp://admin:pw@192.168.77.3:554/s".into(),
                "demo=demo:".into(),
            ],
        )
        .unwrap();
        let out = classify(
            vec![
                entry(0, "192.168.77.2", 7447),
                entry(1, "192.168.77.3", 554),
                entry(2, "192.168.77.9", 80),
            ],
            Some("192.168.77.2".parse().unwrap()),
            7447,
            &cams,
        );
        assert_eq!(out[0].owner, Owner::Latchkey);
        assert_eq!(out[1].owner, Owner::Camera);
        assert_eq!(out[1].camera.as_deref(), Some("front"));
        assert!(out[1].warning.as_deref().unwrap().contains("--remove 1"));
        assert_eq!(out[2].owner, Owner::Unknown);
    }

    #[test]
    fn camera_hosts_come_out_of_urls() {
        let p = |u: &str| camera_host(&CameraSource::parse(u).unwrap());
        assert_eq!(p("rtsp://u:p@10.0.0.5:554/x").as_deref(), Some("10.0.0.5"));
        assert_eq!(
            p("mjpeg+http://Cam.local/video").as_deref(),
            Some("cam.local")
        );
        assert_eq!(
            p("snapshot+http://[fd00::5]:80/s.jpg").as_deref(),
            Some("fd00::5")
        );
        assert_eq!(p("demo:"), None);
    }
}
