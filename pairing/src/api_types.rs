//! The JSON shapes of the phone API (PROTOCOL.md §7), defined once as serde types so the
//! gateway that writes them and every client that reads them agree field by field.
//!
//! Field order is the wire order. Readers are lenient where PROTOCOL.md says a value may
//! be missing or grow (`#[serde(default)]`, unknown enum values kept as `Unknown`);
//! writers send every field. The error body is [`crate::ApiError`].

use serde::{Deserialize, Serialize};

use crate::allowlist::{DeviceState, Role, UnixTime};
use crate::device_id::DeviceId;

/// A camera in `GET /v1/cameras`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CameraInfo {
    /// Stable id, 1 to 32 of `a-z 0-9 - _`; used in URLs.
    pub id: String,
    /// Source kind: `rtsp`, `mjpeg`, `snapshot` or `demo` (what it serves).
    pub kind: String,
    /// Frames are flowing now.
    #[serde(default)]
    pub online: bool,
    /// Where the gateway's single connection to the camera stands.
    #[serde(default)]
    pub state: CameraState,
    /// Why the camera is offline (the last connection error), if it is.
    #[serde(default)]
    pub error: Option<String>,
    /// `h264`, `h265` or `mjpeg`, once known.
    #[serde(default)]
    pub codec: Option<String>,
    /// RFC 6381 codec string for players (`avc1.42C01E`), for H.264/H.265.
    #[serde(default)]
    pub codec_string: Option<String>,
    /// Picture width in pixels, once known.
    #[serde(default)]
    pub width: Option<u32>,
    /// Picture height in pixels, once known.
    #[serde(default)]
    pub height: Option<u32>,
    /// Streams of this camera served now, all devices together.
    #[serde(default)]
    pub viewers: usize,
    /// Connections the gateway holds to the camera: 0 or 1, whatever the viewers.
    #[serde(default)]
    pub upstream_sessions: u8,
}

impl CameraInfo {
    /// The live file this camera serves (by `kind` alone, PROTOCOL.md §7 cameras table).
    pub fn live_format(&self) -> LiveFormat {
        if self.kind == "rtsp" {
            LiveFormat::Mp4
        } else {
            LiveFormat::Mjpeg
        }
    }
}

/// A live stream format the gateway serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LiveFormat {
    /// Fragmented MP4 (H.264/H.265 cameras).
    Mp4,
    /// `multipart/x-mixed-replace` JPEGs (MJPEG, snapshot and demo cameras).
    Mjpeg,
}

impl LiveFormat {
    /// The file name in the gateway's URLs.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Mp4 => "live.mp4",
            Self::Mjpeg => "live.mjpeg",
        }
    }
}

/// Where the gateway's single connection to a camera stands.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum CameraState {
    /// Not pulled: nobody watched it within the grace period.
    #[default]
    Idle,
    /// Connecting (first time or after a failure).
    Connecting,
    /// Frames are flowing.
    Online,
    /// The last attempt failed; the gateway retries with backoff while someone watches.
    Offline,
    /// A state this client does not know (a newer gateway).
    #[serde(other)]
    Unknown,
}

impl CameraState {
    /// The wire string (`online`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Unknown => "unknown",
        }
    }
}

/// The device part of `GET /v1/gateway` (the first four fields of [`DeviceInfo`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceSummary {
    /// The device id.
    pub id: DeviceId,
    /// The owner's name for it, else the phone's own.
    pub name: String,
    /// Owner, viewer or guest.
    pub role: Role,
    /// `all`, or camera ids joined by `,` sorted; `""` is no camera.
    pub cameras: String,
}

/// `GET /v1/gateway`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GatewayInfo {
    /// The gateway's name.
    pub name: String,
    /// Where phones may reach it (`IP:port`).
    pub addresses: Vec<std::net::SocketAddr>,
    /// The asking device.
    pub device: DeviceSummary,
}

/// A device's state as listed: what the allow-list does with it now.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ListedState {
    /// Paired, waiting for the owner to compare the short code and confirm.
    Pending,
    /// Admitted.
    Active,
    /// Refused for good.
    Revoked,
    /// Not revoked, but its access time ended.
    Expired,
    /// A state this client does not know (a newer gateway).
    #[serde(other)]
    Unknown,
}

impl From<DeviceState> for ListedState {
    fn from(s: DeviceState) -> Self {
        match s {
            DeviceState::Pending => Self::Pending,
            DeviceState::Active => Self::Active,
            DeviceState::Revoked => Self::Revoked,
        }
    }
}

impl ListedState {
    /// The state as listed at `now`: `expired` for a device that is not revoked but whose
    /// access ended at `expires_at` (Unix seconds), else its stored state.
    pub fn shown(state: DeviceState, expires_at: Option<UnixTime>, now: UnixTime) -> Self {
        match state {
            DeviceState::Revoked => Self::Revoked,
            _ if expires_at.is_some_and(|end| now >= end) => Self::Expired,
            other => other.into(),
        }
    }

    /// The wire string (`pending`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Unknown => "unknown",
        }
    }
}

/// A device in `GET /v1/devices`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device id.
    pub id: DeviceId,
    /// The owner's name for it, else the phone's own.
    pub name: String,
    /// Owner, viewer or guest.
    pub role: Role,
    /// `all`, or camera ids joined by `,` sorted; `""` is no camera.
    pub cameras: String,
    /// Pending, active, revoked or expired.
    pub state: ListedState,
    /// Unix seconds when its access ends; `None`: never.
    #[serde(default)]
    pub expires_at: Option<UnixTime>,
    /// The short code shown at pairing.
    pub code: String,
    /// Unix seconds, when it paired.
    pub created_at: UnixTime,
    /// Unix seconds, start of its latest session.
    #[serde(default)]
    pub last_seen: Option<UnixTime>,
    /// `IP:port` that session came from.
    #[serde(default)]
    pub last_addr: Option<String>,
    /// Its live sessions now.
    #[serde(default)]
    pub sessions: u64,
}

/// `POST /v1/devices/{id}/revoke`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Revoked {
    /// The device id.
    pub id: DeviceId,
    /// Always `revoked`.
    pub state: ListedState,
    /// Live sessions cut.
    pub sessions_closed: u64,
}

/// `POST /v1/devices/{id}/confirm`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmed {
    /// The device id.
    pub id: DeviceId,
    /// Its state now (`active`).
    pub state: ListedState,
}

/// The body of `POST /v1/invitations`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InvitationRequest {
    /// Guest or viewer (`owner` is refused).
    pub role: Role,
    /// `all` or a comma list of camera ids.
    #[serde(default = "all_cameras")]
    pub cameras: String,
    /// The device's access lifetime in seconds, counted from minting; `None`: no expiry.
    #[serde(default)]
    pub expires_secs: Option<u64>,
    /// The name the new device gets; else the phone's own.
    #[serde(default)]
    pub name: Option<String>,
    /// Admit the phone without the owner comparing the short code.
    #[serde(default)]
    pub auto_confirm: bool,
}

fn all_cameras() -> String {
    "all".into()
}

/// The answer to `POST /v1/invitations`: a one-time pairing URI.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Invitation {
    /// The `latchkey://pair?...` URI to show as a QR code (it carries a secret).
    pub uri: String,
    /// Seconds the code stays valid.
    pub expires_in_secs: u64,
    /// When the code expires, Unix seconds.
    pub expires_at: UnixTime,
}

impl std::fmt::Debug for Invitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URI holds the pairing secret: never in a Debug string.
        f.debug_struct("Invitation")
            .field("uri", &"<secret>")
            .field("expires_in_secs", &self.expires_in_secs)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// One row of the audit log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditRow {
    /// Increasing sequence number.
    pub id: i64,
    /// Unix seconds.
    pub at: UnixTime,
    /// Kebab-case kind (`device-paired`, `camera-watched`, ...); ignore unknown kinds.
    pub kind: String,
    /// The device concerned, if any.
    #[serde(default)]
    pub device: Option<DeviceId>,
    /// `IP:port`, if any.
    #[serde(default)]
    pub addr: Option<String>,
    /// Text for people.
    #[serde(default)]
    pub detail: String,
    /// The camera concerned, if any.
    #[serde(default)]
    pub camera: Option<String>,
}

/// `GET /v1/audit`: one page, newest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditPage {
    /// Rows, newest first.
    pub rows: Vec<AuditRow>,
    /// Rows matching the filters in all.
    pub total: u64,
}

/// Maker, model, firmware and serial as an ONVIF camera reports them (cleaned by the
/// gateway); part of `POST /v1/cameras/discover` and `onvif/inspect`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OnvifDevice {
    /// Manufacturer.
    #[serde(default)]
    pub maker: Option<String>,
    /// Model.
    #[serde(default)]
    pub model: Option<String>,
    /// Firmware version.
    #[serde(default)]
    pub firmware: Option<String>,
    /// Serial number.
    #[serde(default)]
    pub serial: Option<String>,
}

/// One camera that answered WS-Discovery (`POST /v1/cameras/discover`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OnvifFound {
    /// The source address of its answer.
    pub source: std::net::IpAddr,
    /// The device service address it advertises.
    #[serde(default)]
    pub xaddr: Option<String>,
    /// Its endpoint id (`urn:uuid:…`).
    pub endpoint: String,
    /// Maker, model and firmware (scopes, then `GetDeviceInformation`).
    #[serde(default)]
    pub device: OnvifDevice,
    /// Why the advertised address was not asked, or what asking it gave.
    #[serde(default)]
    pub note: Option<String>,
    /// Ids of the cameras already added from this address.
    #[serde(default)]
    pub already_added: Vec<String>,
}

/// One ONVIF media profile.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OnvifProfile {
    /// Its token (what `--main-profile` names).
    pub token: String,
    /// Its name.
    pub name: String,
    /// `H264`, `H265`, `JPEG`, …
    pub encoding: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A chosen ONVIF stream: its profile and RTSP URI (without credentials).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OnvifStream {
    /// The profile.
    pub profile: OnvifProfile,
    /// The RTSP URI the camera gave for it.
    pub uri: String,
}

/// What asking an ONVIF camera learned (`POST /v1/cameras/onvif/inspect`, and the
/// `onvif` field of a camera added from ONVIF).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OnvifInspection {
    /// The device service address.
    pub address: String,
    /// The camera's clock minus ours, in seconds.
    pub clock_offset_secs: i64,
    /// Maker, model, firmware.
    #[serde(default)]
    pub device: OnvifDevice,
    /// Every profile.
    #[serde(default)]
    pub profiles: Vec<OnvifProfile>,
    /// The main stream.
    pub main: OnvifStream,
    /// The sub-stream, if the camera has another video profile.
    #[serde(default)]
    pub sub: Option<OnvifStream>,
    /// The snapshot URI of the main profile, if the camera has one.
    #[serde(default)]
    pub snapshot_uri: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_examples_read_and_write_back_unchanged() {
        let camera = r#"{"id":"front","kind":"rtsp","online":true,"state":"online","error":null,"codec":"h264","codec_string":"avc1.42C01E","width":640,"height":480,"viewers":1,"upstream_sessions":1}"#;
        let parsed: CameraInfo = serde_json::from_str(camera).unwrap();
        assert_eq!(parsed.live_format(), LiveFormat::Mp4);
        assert_eq!(serde_json::to_string(&parsed).unwrap(), camera);
        let device = r#"{"id":"d1","name":"Ann","role":"guest","cameras":"front","state":"expired","expires_at":5,"code":"123456","created_at":1,"last_seen":null,"last_addr":null,"sessions":0}"#;
        let parsed: DeviceInfo = serde_json::from_str(device).unwrap();
        assert_eq!(parsed.state, ListedState::Expired);
        assert_eq!(serde_json::to_string(&parsed).unwrap(), device);
    }

    #[test]
    fn a_device_past_its_expiry_is_listed_as_expired() {
        let at = Some(100);
        let shown = |s, at, now| ListedState::shown(s, at, now).as_str();
        assert_eq!(shown(DeviceState::Active, at, 99), "active");
        assert_eq!(shown(DeviceState::Active, at, 100), "expired");
        assert_eq!(shown(DeviceState::Pending, at, 101), "expired");
        assert_eq!(shown(DeviceState::Pending, None, 101), "pending");
        assert_eq!(shown(DeviceState::Revoked, at, 101), "revoked");
        assert_eq!(shown(DeviceState::Active, None, u64::MAX), "active");
    }

    #[test]
    fn unknown_states_from_a_newer_gateway_are_kept_as_unknown() {
        let c: CameraInfo =
            serde_json::from_str(r#"{"id":"x","kind":"new","state":"sleeping"}"#).unwrap();
        assert_eq!(c.state, CameraState::Unknown);
        assert_eq!(c.live_format(), LiveFormat::Mjpeg);
    }

    #[test]
    fn an_invitation_hides_its_uri_from_debug() {
        let i = Invitation {
            uri: "latchkey://pair?v=1&s=SECRET".into(),
            expires_in_secs: 300,
            expires_at: 9,
        };
        assert!(!format!("{i:?}").contains("SECRET"));
    }

    #[test]
    fn onvif_answers_read_and_write_back_unchanged() {
        let found = r#"{"source":"192.168.2.30","xaddr":"http://192.168.2.30/onvif/device_service","endpoint":"urn:uuid:1","device":{"maker":"Acme","model":"C1","firmware":null,"serial":null},"note":null,"already_added":["front"]}"#;
        let parsed: OnvifFound = serde_json::from_str(found).unwrap();
        assert_eq!(parsed.already_added, ["front"]);
        assert_eq!(serde_json::to_string(&parsed).unwrap(), found);
        let p = r#"{"token":"p0","name":"Main","encoding":"H264","width":1920,"height":1080}"#;
        let inspection = format!(
            r#"{{"address":"http://10.0.0.5/onvif/device_service","clock_offset_secs":-3,"device":{{"maker":"Acme","model":null,"firmware":"1.0","serial":"9"}},"profiles":[{p}],"main":{{"profile":{p},"uri":"rtsp://10.0.0.5/main"}},"sub":null,"snapshot_uri":null}}"#
        );
        let parsed: OnvifInspection = serde_json::from_str(&inspection).unwrap();
        assert_eq!(parsed.main.profile.width, 1920);
        assert_eq!(serde_json::to_string(&parsed).unwrap(), inspection);
    }
}
