//! The admin boundary's typed answers: what an owner action returns to every door (the
//! admin socket, the web UI's JSON API, an owner phone). Each serializes to the JSON
//! that PROTOCOL.md and the CLI's `--json` document; the CLI reads them back as these
//! types and renders them ([`crate::cli`]).
//!
//! Answers a phone also sees (device listing, confirm, revoke, audit rows) are the shared
//! types of `latchkey_pairing::api_types`, re-exported here, so each shape is defined once.
//! Device ids are `String` here because this is the edge: JSON text on the wire.

use latchkey_pairing::UnixTime;
pub use latchkey_pairing::api_types::{Confirmed, DeviceInfo, ListedState, Revoked};
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
pub fn listing(row: DeviceRow, sessions: usize, now: UnixTime) -> DeviceInfo {
    DeviceInfo {
        state: ListedState::shown(row.state, row.expires_at, now),
        id: row.id,
        name: row.name,
        role: row.role,
        cameras: row.cameras,
        expires_at: row.expires_at,
        code: row.code,
        created_at: row.created_at,
        last_seen: row.last_seen,
        last_addr: row.last_addr,
        sessions: u64::try_from(sessions).unwrap_or(u64::MAX),
    }
}

/// The latest pairing window (`pairing-status`); `null` on the wire if none was opened.
pub type PairingStatus = Option<PairingWindowRow>;

/// Audit rows, newest first (`audit`).
pub type AuditRows = Vec<AuditRow>;
