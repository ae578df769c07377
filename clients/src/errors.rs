//! Errors as an app shows them: a kind to branch on, and one sentence for people per kind.
//! APP.md lists the same sentences.

use latchkey_pairing::ErrorCode;

use crate::ClientError;
use crate::status::Refusal;

/// What went wrong, in the terms a UI branches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The text is not a Latchkey pairing code.
    BadPairingCode,
    /// The photo holds no readable QR code.
    NoQrCode,
    /// The name chosen for this phone is refused.
    BadName,
    /// The gateway refused the pairing (code used, expired, or another phone pairing).
    PairingRefused,
    /// The gateway did not prove it holds the QR code's key.
    GatewayNotAuthentic,
    /// No such home on this phone.
    NotPaired,
    /// The gateway refused this phone.
    Refused(Refusal),
    /// No address of the home answered.
    Unreachable,
    /// No such camera, or not granted to this phone.
    NoSuchCamera,
    /// The camera serves the other live format.
    WrongFormat,
    /// A video camera has no JPEG snapshot.
    NoSnapshot,
    /// The action needs the owner role.
    OwnerOnly,
    /// No such device on the gateway.
    NoSuchDevice,
    /// The device's state forbids the action, or a name matches several devices.
    Conflict,
    /// This phone already holds as many streams as the gateway allows.
    TooManyStreams,
    /// The camera is offline or sent nothing in time.
    CameraOffline,
    /// The camera sends video the gateway cannot package.
    CameraUnusable,
    /// The gateway refused the request's values.
    BadRequest,
    /// The gateway failed, or answered something this phone does not know.
    Gateway,
    /// The phone's own storage or key store failed.
    Storage,
    /// The connection broke or the peer broke the protocol.
    Connection,
}

impl ErrorKind {
    /// The sentence to show.
    pub fn sentence(self) -> &'static str {
        match self {
            Self::BadPairingCode => {
                "This is not a Latchkey pairing code. Scan the code shown by your gateway again."
            }
            Self::NoQrCode => {
                "No QR code could be read in this picture. Hold the camera steady with the whole code in view."
            }
            Self::BadName => {
                "This phone name cannot be used. Choose a shorter name without special characters."
            }
            Self::PairingRefused => {
                "The gateway refused to pair. The code may be used or expired: ask the owner for a new one."
            }
            Self::GatewayNotAuthentic => {
                "This gateway could not prove it is the one in the code. Nothing was saved; ask the owner to check the gateway."
            }
            Self::NotPaired => {
                "This home is not set up on this phone. Scan its pairing code first."
            }
            Self::Refused(Refusal::Revoked) => {
                "This phone's access was removed by the owner. Ask the owner for a new invitation."
            }
            Self::Refused(Refusal::Pending) => {
                "Waiting for the owner to confirm this phone. Ask them to compare the short code and confirm."
            }
            Self::Refused(Refusal::Expired) => {
                "This phone's access has ended. Ask the owner to extend it."
            }
            Self::Refused(Refusal::StaleKey) => {
                "The gateway no longer recognises this phone. Ask the owner for a new pairing code and pair again."
            }
            Self::Refused(Refusal::Unknown) => {
                "The gateway refused this phone. It may have been removed, expired, or not confirmed yet: ask the owner."
            }
            Self::Unreachable => {
                "The home cannot be reached right now. Check your connection and try again."
            }
            Self::NoSuchCamera => "This camera is not available to you.",
            Self::WrongFormat => "This camera plays in another format. Refresh the camera list.",
            Self::NoSnapshot => "This camera has no still picture. Open its live view instead.",
            Self::OwnerOnly => "Only the home's owner can do this.",
            Self::NoSuchDevice => "That device is no longer on the list. Refresh the list.",
            Self::Conflict => {
                "That cannot be done for this device now. Refresh the list and try again."
            }
            Self::TooManyStreams => {
                "Too many videos are open on this phone. Close one and try again."
            }
            Self::CameraOffline => {
                "The camera is offline. Check its power and network, then try again."
            }
            Self::CameraUnusable => {
                "The camera sends video the gateway cannot play. Check the camera's video settings."
            }
            Self::BadRequest => "The gateway refused these settings. Check them and try again.",
            Self::Gateway => "The gateway had a problem. Try again in a moment.",
            Self::Storage => {
                "This phone could not read or save its Latchkey data. Free some space and try again."
            }
            Self::Connection => "The connection to the home broke. Try again.",
        }
    }
}

impl ClientError {
    /// The kind of this error, for the UI.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Uri(_) => ErrorKind::BadPairingCode,
            Self::Qr(_) => ErrorKind::NoQrCode,
            Self::BadName(_) => ErrorKind::BadName,
            Self::PairingRefused => ErrorKind::PairingRefused,
            Self::GatewayNotAuthentic => ErrorKind::GatewayNotAuthentic,
            Self::NotPaired => ErrorKind::NotPaired,
            Self::SessionRefused => ErrorKind::Refused(Refusal::Unknown),
            Self::Refused(reason) => ErrorKind::Refused(*reason),
            Self::SessionKeyMismatch => ErrorKind::Refused(Refusal::StaleKey),
            Self::Unreachable(_) => ErrorKind::Unreachable,
            Self::Api { code, .. } => code_kind(*code),
            Self::Io { .. } | Self::CorruptState(_) | Self::KeyStore(_) => ErrorKind::Storage,
            Self::Protocol(_) | Self::Http { .. } => ErrorKind::Connection,
        }
    }
}

fn code_kind(code: ErrorCode) -> ErrorKind {
    match code {
        ErrorCode::DeviceRevoked | ErrorCode::DeviceUnknown => ErrorKind::Refused(Refusal::Revoked),
        ErrorCode::DevicePending => ErrorKind::Refused(Refusal::Pending),
        ErrorCode::DeviceExpired => ErrorKind::Refused(Refusal::Expired),
        ErrorCode::OwnerOnly => ErrorKind::OwnerOnly,
        ErrorCode::NoSuchCamera => ErrorKind::NoSuchCamera,
        ErrorCode::WrongFormat => ErrorKind::WrongFormat,
        ErrorCode::NoSnapshot => ErrorKind::NoSnapshot,
        ErrorCode::NoSuchDevice => ErrorKind::NoSuchDevice,
        ErrorCode::Conflict => ErrorKind::Conflict,
        ErrorCode::TooManyStreams => ErrorKind::TooManyStreams,
        ErrorCode::CameraOffline => ErrorKind::CameraOffline,
        ErrorCode::CameraUnusable => ErrorKind::CameraUnusable,
        ErrorCode::BadRequest | ErrorCode::TooLarge | ErrorCode::BodyTimeout => {
            ErrorKind::BadRequest
        }
        _ => ErrorKind::Gateway,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gateway_code_maps_to_a_kind_with_a_sentence() {
        for code in ErrorCode::ALL {
            let e = ClientError::Api {
                status: code.status(),
                code,
                message: "x".into(),
            };
            assert!(e.kind().sentence().ends_with('.'), "{code:?}");
        }
        let revoked = ClientError::Api {
            status: 403,
            code: ErrorCode::DeviceRevoked,
            message: String::new(),
        };
        assert_eq!(revoked.kind(), ErrorKind::Refused(Refusal::Revoked));
    }
}
