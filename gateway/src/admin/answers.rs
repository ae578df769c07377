//! The admin boundary's typed answers: what an owner action returns to every door (the
//! admin socket, the web UI's JSON API, an owner phone). Each serializes to the JSON
//! that PROTOCOL.md and the CLI's `--json` document; the CLI reads them back as these
//! types and renders them ([`crate::cli`]).
//!
//! Device ids are `String` here because this is the edge: JSON text on the wire.

use latchkey_pairing::{DeviceState, Role, UnixTime};
use serde::{Deserialize, Serialize};

use crate::store::{AuditRow, DeviceRow, PairingWindowRow};

/// A minted pairing code, as the socket answers `pair`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PairAnswer {
    /// The `latchkey://pair?...` URI for the QR code.
    pub uri: String,
    /// Seconds the code stays valid.
    pub expires_in_secs: u64,
}

/// A device confirmed (`confirm`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Confirmed {
    /// The device.
    pub id: String,
    /// Its state now.
    pub state: DeviceState,
}

/// A device revoked (`revoke`, `reject`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Revoked {
    /// The device.
    pub id: String,
    /// Always `revoked`.
    pub state: DeviceState,
    /// Live sessions cut.
    pub sessions_closed: usize,
}

/// A device's grants changed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GrantsChanged {
    /// The device.
    pub id: String,
    /// `all` or a comma list.
    pub cameras: String,
    /// Access end, seconds since the epoch; `None` = never.
    pub expires_at: Option<UnixTime>,
}

/// One device as listed (`devices`): its row, `state` as the allow-list treats it now
/// (`expired` past `expires_at`), and its live session count.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceListing {
    /// Device id.
    pub id: String,
    /// Name (data from the phone or the owner: escape it at every output).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Cameras, `all` or a comma list.
    pub cameras: String,
    /// `pending`, `active`, `revoked` or `expired`.
    pub state: String,
    /// Access end, seconds since the epoch.
    pub expires_at: Option<UnixTime>,
    /// The short code shown at pairing.
    pub code: String,
    /// Paired at.
    pub created_at: UnixTime,
    /// Last session start.
    pub last_seen: Option<UnixTime>,
    /// Address of the last session.
    pub last_addr: Option<String>,
    /// Live sessions now.
    pub sessions: usize,
}

impl DeviceListing {
    /// `row` as listed at `now` with `sessions` live.
    pub fn new(row: DeviceRow, sessions: usize, now: UnixTime) -> Self {
        Self {
            state: crate::admin::actions::shown_state(row.state, row.expires_at, now).into(),
            id: row.id,
            name: row.name,
            role: row.role,
            cameras: row.cameras,
            expires_at: row.expires_at,
            code: row.code,
            created_at: row.created_at,
            last_seen: row.last_seen,
            last_addr: row.last_addr,
            sessions,
        }
    }
}

/// The latest pairing window (`pairing-status`); `null` on the wire if none was opened.
pub type PairingStatus = Option<PairingWindowRow>;

/// Audit rows, newest first (`audit`).
pub type AuditRows = Vec<AuditRow>;
