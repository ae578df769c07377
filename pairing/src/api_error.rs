//! The phone API's error answers: a stable machine-readable `code` beside the human
//! `error` text, defined once so the gateway and every client use the same strings.
//!
//! Every answer of the gateway API that is not a success is JSON
//! `{"error": "one line for people", "code": "snake_case_code"}`; the status comes from
//! the code ([`ErrorCode::status`]). PROTOCOL.md §7 lists every code.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::allowlist::Denied;

/// Why the gateway API refused a request. Clients branch on this, never on the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the body or query is not what the route takes (the text says what is wrong).
    BadRequest,
    /// 403: the session's device is no longer on the allow-list.
    DeviceUnknown,
    /// 403: the device waits for the owner's confirmation.
    DevicePending,
    /// 403: the device was revoked.
    DeviceRevoked,
    /// 403: the device's access time ran out.
    DeviceExpired,
    /// 403: the action needs the owner role (the refusal is audited).
    OwnerOnly,
    /// 404: no such camera, or one not granted to this device (the same answer).
    NoSuchCamera,
    /// 404: the camera exists and is granted but serves the other live format.
    WrongFormat,
    /// 404: `snapshot.jpg` of an H.264/H.265 camera; take a picture from `live.mp4`.
    NoSnapshot,
    /// 404: no device with that id or unique name.
    NoSuchDevice,
    /// 404: no such path in the API.
    NotFound,
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 409: the device's state forbids the action, or a name matches several devices.
    Conflict,
    /// 413: a request body over the gateway's limit.
    TooLarge,
    /// 408: a request body that did not arrive in full within the gateway's deadline.
    BodyTimeout,
    /// 429: this device already holds as many streams as the gateway allows it.
    TooManyStreams,
    /// 500: the gateway failed (store write, internal task).
    Internal,
    /// 502: the camera sends something the gateway cannot serve.
    CameraUnusable,
    /// 503: the camera is offline, did not deliver a picture in time, or went away.
    CameraOffline,
    /// 503: the gateway cannot read its store.
    StoreUnavailable,
    /// A code this client does not know (a newer gateway): go by the status.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status the gateway sends with this code.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::DeviceUnknown
            | Self::DevicePending
            | Self::DeviceRevoked
            | Self::DeviceExpired
            | Self::OwnerOnly => 403,
            Self::NoSuchCamera
            | Self::WrongFormat
            | Self::NoSnapshot
            | Self::NoSuchDevice
            | Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::TooLarge => 413,
            Self::BodyTimeout => 408,
            Self::TooManyStreams => 429,
            Self::Internal | Self::Unknown => 500,
            Self::CameraUnusable => 502,
            Self::CameraOffline | Self::StoreUnavailable => 503,
        }
    }

    /// The wire string (`no_such_camera`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::DeviceUnknown => "device_unknown",
            Self::DevicePending => "device_pending",
            Self::DeviceRevoked => "device_revoked",
            Self::DeviceExpired => "device_expired",
            Self::OwnerOnly => "owner_only",
            Self::NoSuchCamera => "no_such_camera",
            Self::WrongFormat => "wrong_format",
            Self::NoSnapshot => "no_snapshot",
            Self::NoSuchDevice => "no_such_device",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::TooLarge => "too_large",
            Self::BodyTimeout => "body_timeout",
            Self::TooManyStreams => "too_many_streams",
            Self::Internal => "internal",
            Self::CameraUnusable => "camera_unusable",
            Self::CameraOffline => "camera_offline",
            Self::StoreUnavailable => "store_unavailable",
            Self::Unknown => "unknown",
        }
    }

    /// Every code the gateway sends (not [`Self::Unknown`]), for documentation and tests.
    pub const ALL: [Self; 20] = [
        Self::BadRequest,
        Self::DeviceUnknown,
        Self::DevicePending,
        Self::DeviceRevoked,
        Self::DeviceExpired,
        Self::OwnerOnly,
        Self::NoSuchCamera,
        Self::WrongFormat,
        Self::NoSnapshot,
        Self::NoSuchDevice,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::TooLarge,
        Self::BodyTimeout,
        Self::TooManyStreams,
        Self::Internal,
        Self::CameraUnusable,
        Self::CameraOffline,
        Self::StoreUnavailable,
    ];
}

impl From<Denied> for ErrorCode {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Pending => Self::DevicePending,
            Denied::Revoked => Self::DeviceRevoked,
            Denied::Expired => Self::DeviceExpired,
            Denied::Camera => Self::NoSuchCamera,
            Denied::NotOwner => Self::OwnerOnly,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error answer of the gateway API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// One line for people; may change between releases.
    pub error: String,
    /// What went wrong, for programs; stable.
    pub code: ErrorCode,
}

impl ApiError {
    /// An error body with `code` and the human `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: message.into(),
            code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_as_their_documented_strings() {
        for code in ErrorCode::ALL {
            let wire = serde_json::to_string(&code).unwrap();
            assert_eq!(wire, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&wire).unwrap(), code);
            assert!((400..600).contains(&code.status()), "{code}");
        }
    }

    #[test]
    fn every_code_is_listed_in_protocol_md() {
        let doc = include_str!("../../PROTOCOL.md");
        for code in ErrorCode::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.status());
            assert!(doc.contains(&row), "PROTOCOL.md §7 lacks the row {row}");
        }
    }

    #[test]
    fn an_unknown_code_from_a_newer_gateway_still_parses() {
        let body: ApiError =
            serde_json::from_str(r#"{"error":"x","code":"something_new"}"#).unwrap();
        assert_eq!(body.code, ErrorCode::Unknown);
    }
}
