//! Typed answers of the camera admin requests (list, add, edit, remove, test), as the
//! admin socket, the web UI's JSON API and owner phones receive them. A listed camera is
//! the phone's [`CameraInfo`](latchkey_pairing::api_types::CameraInfo) plus where it is
//! configured; passwords never appear, only `has_password`.

use latchkey_pairing::api_types::{OnvifFound, OnvifInspection};
use serde::{Deserialize, Serialize};

use crate::camera::CameraStatus;

/// Cameras that answered ONVIF discovery (`discover`), each with the ids it was already
/// added as: the shared [`OnvifFound`].
pub type Discovered = Vec<OnvifFound>;

/// Where a camera is configured.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The config file (changed only there).
    Config,
    /// Added by the owner at run time (the store).
    Store,
}

/// One camera as the owner lists it (`cameras`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CameraListing {
    /// Its live status, as a phone sees it.
    #[serde(flatten)]
    pub status: CameraStatus,
    /// Where it is configured.
    pub origin: Origin,
    /// Its source URL without credentials.
    pub url: String,
    /// The user name, if any.
    pub username: Option<String>,
    /// Whether a password is set (the password itself is write-only).
    pub has_password: bool,
    /// What ONVIF discovery found (stored cameras only; `null` when added by URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onvif: Option<Onvif>,
}

/// The `onvif` field of a stored camera: present (maybe `null`) for stored cameras only.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Onvif(pub Option<OnvifInspection>);

/// What a test connection saw: the first picture's codec and size.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TestResult {
    /// `h264`, `h265` or `mjpeg`.
    pub codec: String,
    /// Width in pixels (0 if a JPEG's size could not be read).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A camera added or changed (`add`, `edit`, `onvif-add`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CameraSaved {
    /// Its id.
    pub id: String,
    /// Its source URL without credentials.
    pub url: String,
    /// The test connection's result; `null` when the test was skipped.
    pub test: Option<TestResult>,
    /// What ONVIF found, for a camera added with `onvif-add`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onvif: Option<OnvifInspection>,
}

/// A camera removed (`remove`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CameraRemoved {
    /// Its id.
    pub id: String,
    /// Live streams of it that ended.
    pub streams_ended: usize,
}

#[cfg(test)]
mod tests {
    use latchkey_pairing::api_types::{OnvifDevice, OnvifProfile, OnvifStream};
    use serde_json::json;

    use super::*;

    /// The typed `onvif` of an ONVIF add is the object the gateway used to build by hand,
    /// and a stored one reads back as the same type.
    #[test]
    fn an_onvif_add_answers_the_object_it_always_did() {
        let profile = OnvifProfile {
            token: "p0".into(),
            name: "Main".into(),
            encoding: "H264".into(),
            width: 1920,
            height: 1080,
        };
        let found = OnvifInspection {
            address: "http://10.0.0.5/onvif/device_service".into(),
            clock_offset_secs: -3,
            device: OnvifDevice {
                maker: Some("Acme".into()),
                ..OnvifDevice::default()
            },
            profiles: vec![profile.clone()],
            main: OnvifStream {
                profile,
                uri: "rtsp://10.0.0.5/main".into(),
            },
            sub: None,
            snapshot_uri: None,
        };
        let old = json!({
            "address": found.address,
            "device": found.device,
            "clock_offset_secs": found.clock_offset_secs,
            "main": found.main,
            "sub": found.sub,
            "snapshot_uri": found.snapshot_uri,
            "profiles": found.profiles,
        });
        let saved = CameraSaved {
            id: "front".into(),
            url: "rtsp://10.0.0.5/main".into(),
            test: None,
            onvif: Some(found.clone()),
        };
        let answer = serde_json::to_value(&saved).unwrap();
        assert_eq!(answer["onvif"].to_string(), old.to_string());
        let stored: OnvifInspection = serde_json::from_str(&old.to_string()).unwrap();
        assert_eq!(stored, found);
    }
}
