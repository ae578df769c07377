//! The records, enums and error the bindings expose, converted from the library's types.

use latchkey_client::{ClientError, ConnectionState, ErrorKind, Refusal};
use latchkey_pairing::{AuditRow, CameraInfo, DeviceInfo, DeviceState, Role};

/// Why the gateway refused this phone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum RefusalReason {
    /// Removed by the owner.
    Revoked,
    /// Waiting for the owner to confirm the short code.
    Pending,
    /// Access time ended.
    Expired,
    /// The gateway holds another session key for this phone: pair again.
    StaleKey,
    /// Refused without a reason the protocol tells.
    Unknown,
}

impl From<Refusal> for RefusalReason {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Revoked => Self::Revoked,
            Refusal::Pending => Self::Pending,
            Refusal::Expired => Self::Expired,
            Refusal::StaleKey => Self::StaleKey,
            Refusal::Unknown => Self::Unknown,
        }
    }
}

/// Where a home's connection stands (for the connection listener).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ConnectionStatus {
    /// Trying every known address.
    Connecting,
    /// Connected over `address` (`IP:port`).
    Connected {
        /// The address that answered first.
        address: String,
    },
    /// The gateway refused this phone.
    Refused {
        /// Why, as far as the protocol tells.
        reason: RefusalReason,
    },
    /// No address answered.
    Unreachable,
}

impl From<ConnectionState> for ConnectionStatus {
    fn from(s: ConnectionState) -> Self {
        match s {
            ConnectionState::Connecting => Self::Connecting,
            ConnectionState::Connected { addr } => Self::Connected {
                address: addr.to_string(),
            },
            ConnectionState::Refused { reason } => Self::Refused {
                reason: reason.into(),
            },
            ConnectionState::Unreachable => Self::Unreachable,
        }
    }
}

/// Every failure, by what the UI does about it; `message` is the sentence to show.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum LatchkeyError {
    /// Not a pairing code, no QR code in the picture, or a refused phone name.
    #[error("{message}")]
    BadInput {
        /// The sentence to show.
        message: String,
    },
    /// Pairing refused, or the gateway could not prove it is the one in the code.
    #[error("{message}")]
    PairingFailed {
        /// The sentence to show.
        message: String,
    },
    /// No such home on this phone.
    #[error("{message}")]
    NotPaired {
        /// The sentence to show.
        message: String,
    },
    /// The gateway refused this phone.
    #[error("{message}")]
    Refused {
        /// Why, as far as the protocol tells.
        reason: RefusalReason,
        /// The sentence to show.
        message: String,
    },
    /// No address of the home answered, or the connection broke.
    #[error("{message}")]
    Unreachable {
        /// The sentence to show.
        message: String,
    },
    /// The gateway answered with an error (`code` is PROTOCOL.md §7's, e.g. `no_such_camera`).
    #[error("{message}")]
    Gateway {
        /// The stable code to branch on.
        code: String,
        /// The sentence to show.
        message: String,
    },
    /// The phone's storage or key store failed.
    #[error("{message}")]
    Storage {
        /// The sentence to show.
        message: String,
    },
}

impl From<ClientError> for LatchkeyError {
    fn from(e: ClientError) -> Self {
        // The details (addresses, paths) go to the log, never a secret; the app shows the
        // sentence.
        tracing::debug!("latchkey call failed: {e}");
        let kind = e.kind();
        let message = kind.sentence().to_string();
        match (kind, &e) {
            (ErrorKind::Refused(r), _) => Self::Refused {
                reason: r.into(),
                message,
            },
            (_, ClientError::Api { code, .. }) => Self::Gateway {
                code: code.as_str().to_string(),
                message,
            },
            (ErrorKind::BadPairingCode | ErrorKind::NoQrCode | ErrorKind::BadName, _) => {
                Self::BadInput { message }
            }
            (ErrorKind::PairingRefused | ErrorKind::GatewayNotAuthentic, _) => {
                Self::PairingFailed { message }
            }
            (ErrorKind::NotPaired, _) => Self::NotPaired { message },
            (ErrorKind::Unreachable | ErrorKind::Connection, _) => Self::Unreachable { message },
            _ => Self::Storage { message },
        }
    }
}

/// A home paired on this phone.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Home {
    /// The home's id on this phone (its gateway's key).
    pub id: String,
    /// The gateway's name.
    pub name: String,
    /// This phone's id at the gateway.
    pub device_id: String,
    /// True until the owner confirmed this phone.
    pub pending: bool,
    /// Addresses tried, most recent first.
    pub addresses: Vec<String>,
    /// The short code shown at pairing.
    pub code: String,
}

impl From<latchkey_client::Home> for Home {
    fn from(h: latchkey_client::Home) -> Self {
        Self {
            id: h.id,
            name: h.name,
            device_id: h.device_id,
            pending: h.state == DeviceState::Pending,
            addresses: h.addresses.iter().map(ToString::to_string).collect(),
            code: h.code,
        }
    }
}

/// The outcome of pairing.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Paired {
    /// The new home's id.
    pub home_id: String,
    /// The gateway's name.
    pub gateway_name: String,
    /// This phone's id at the gateway.
    pub device_id: String,
    /// The short code: show it, the owner compares it with the gateway's.
    pub code: String,
    /// True while the owner has not confirmed this phone.
    pub pending: bool,
}

/// A camera this phone may watch.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Camera {
    /// Stable id.
    pub id: String,
    /// `rtsp` (play HLS or fMP4), `mjpeg`, `snapshot` or `demo` (play MJPEG, snapshots).
    pub kind: String,
    /// Frames flowing now.
    pub online: bool,
    /// `idle`, `connecting`, `online` or `offline`.
    pub state: String,
    /// Why it is offline.
    pub error: Option<String>,
    /// `h264`, `h265` or `mjpeg`, once known.
    pub codec: Option<String>,
    /// Picture width, once known.
    pub width: Option<u32>,
    /// Picture height, once known.
    pub height: Option<u32>,
}

impl From<CameraInfo> for Camera {
    fn from(c: CameraInfo) -> Self {
        Self {
            state: c.state.as_str().to_string(),
            id: c.id,
            kind: c.kind,
            online: c.online,
            error: c.error,
            codec: c.codec,
            width: c.width,
            height: c.height,
        }
    }
}

/// A device paired with the gateway (owner only).
#[derive(Clone, Debug, uniffi::Record)]
pub struct Device {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `owner`, `viewer` or `guest`.
    pub role: String,
    /// `all` or a comma list of camera ids.
    pub cameras: String,
    /// `pending`, `active`, `revoked` or `expired`.
    pub state: String,
    /// Its short code.
    pub code: String,
    /// Unix seconds its access ends, if ever.
    pub expires_at: Option<u64>,
    /// Unix seconds of its latest session.
    pub last_seen: Option<u64>,
    /// Live sessions now.
    pub sessions: u64,
}

impl From<DeviceInfo> for Device {
    fn from(d: DeviceInfo) -> Self {
        Self {
            role: d.role.as_str().to_string(),
            state: d.state.as_str().to_string(),
            id: d.id.0,
            name: d.name,
            cameras: d.cameras,
            code: d.code,
            expires_at: d.expires_at,
            last_seen: d.last_seen,
            sessions: d.sessions,
        }
    }
}

/// Who to invite.
#[derive(Clone, Debug, uniffi::Record)]
pub struct InviteRequest {
    /// A viewer (no end) rather than a guest.
    pub viewer: bool,
    /// `all` or a comma list of camera ids.
    pub cameras: String,
    /// Access lifetime in seconds from now; `None`: no end.
    pub expires_secs: Option<u64>,
    /// The name to give the new phone.
    pub name: Option<String>,
    /// Admit it without comparing the short code.
    pub auto_confirm: bool,
}

impl From<InviteRequest> for latchkey_pairing::InvitationRequest {
    fn from(r: InviteRequest) -> Self {
        Self {
            role: if r.viewer { Role::Viewer } else { Role::Guest },
            cameras: r.cameras,
            expires_secs: r.expires_secs,
            name: r.name,
            auto_confirm: r.auto_confirm,
        }
    }
}

/// A minted invitation: show `uri` as a QR code (it is a one-time secret).
#[derive(Clone, uniffi::Record)]
pub struct Invitation {
    /// The pairing URI.
    pub uri: String,
    /// Seconds it stays valid.
    pub expires_in_secs: u64,
}

impl std::fmt::Debug for Invitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invitation")
            .field("expires_in_secs", &self.expires_in_secs)
            .finish_non_exhaustive()
    }
}

/// One audit log row.
#[derive(Clone, Debug, uniffi::Record)]
pub struct AuditEntry {
    /// Sequence number.
    pub id: i64,
    /// Unix seconds.
    pub at: u64,
    /// Kebab-case kind.
    pub kind: String,
    /// The device concerned.
    pub device: Option<String>,
    /// The camera concerned.
    pub camera: Option<String>,
    /// Text for people (data from peers: show as text, never as markup).
    pub detail: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        Self {
            id: r.id,
            at: r.at,
            kind: r.kind,
            device: r.device.map(|d| d.0),
            camera: r.camera,
            detail: r.detail,
        }
    }
}
