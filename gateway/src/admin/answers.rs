//! The admin boundary's typed answers: what an owner action returns to every door (the
//! admin socket, the web UI's JSON API, an owner phone). Each serializes to the JSON
//! that PROTOCOL.md and the CLI's `--json` document; the CLI reads them back as these
//! types and renders them ([`crate::cli`]).
//!
//! Answers a phone also sees (device listing, confirm, revoke, audit rows) are the shared
//! types of `latchkey_pairing::api_types`, re-exported here, so each shape is defined once.
//! Device ids are the core's `DeviceId` here too: text on the wire, typed inside.

pub use latchkey_pairing::api_types::{Confirmed, DeviceInfo, ListedState, Revoked};
use latchkey_pairing::{DeviceId, UnixTime};
use serde::{Deserialize, Serialize};

use crate::store::{AuditRow, DeviceRow, PairingWindowRow};

// The web UI's answers below list their fields in alphabetical order: that is the
// order they have always had on the wire (built as JSON objects, whose keys sort).

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
    pub id: DeviceId,
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

/// The web UI's failure body, `{"error": "one line"}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebError {
    /// What went wrong and what to do.
    pub error: String,
}

/// The web UI's `{"ok": true}` (login, setup, logout).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebOk {
    /// Always `true`.
    pub ok: bool,
}

/// `GET /api/session`: what the page's script needs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebSession {
    /// The session's CSRF token.
    pub csrf: String,
    /// The admin certificate's fingerprint.
    pub fingerprint: String,
    /// The gateway's name.
    pub name: String,
}

/// `POST /api/pair`: the invitation with its QR code as an SVG element.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebPairAnswer {
    /// When the code stops working, Unix seconds.
    pub expires_at: UnixTime,
    /// Seconds the code stays valid.
    pub expires_in_secs: u64,
    /// The QR code (`null` if the URI did not fit one).
    pub svg: Option<String>,
    /// The `latchkey://pair?...` URI.
    pub uri: String,
}

/// `GET /api/audit`: one page of the audit log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebAuditPage {
    /// The page number, from 1.
    pub page: u32,
    /// Rows per page.
    pub per_page: u32,
    /// Rows, newest first.
    pub rows: Vec<AuditRow>,
    /// Rows matching the filters in all.
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each web answer writes exactly what the JSON object it replaced wrote.
    #[test]
    fn web_answers_are_the_json_they_replaced() {
        fn to<T: Serialize>(v: &T) -> String {
            serde_json::to_string(v).unwrap()
        }
        let same = |typed: String, old: serde_json::Value| assert_eq!(typed, old.to_string());
        same(to(&WebOk { ok: true }), json!({ "ok": true }));
        same(
            to(&WebError { error: "no".into() }),
            json!({ "error": "no" }),
        );
        same(
            to(&WebSession {
                csrf: "c".into(),
                fingerprint: "f".into(),
                name: "Home".into(),
            }),
            json!({ "name": "Home", "fingerprint": "f", "csrf": "c" }),
        );
        same(
            to(&WebPairAnswer {
                expires_at: 9,
                expires_in_secs: 5,
                svg: None,
                uri: "latchkey://pair".into(),
            }),
            json!({ "uri": "latchkey://pair", "svg": null, "expires_in_secs": 5, "expires_at": 9 }),
        );
        let row = AuditRow {
            id: 1,
            at: 2,
            kind: "device-paired".into(),
            device: None,
            addr: None,
            detail: "d".into(),
            camera: None,
        };
        // The page's own keys keep their order; each row is the shared `AuditRow`, in
        // its field order (as every other answer carrying rows).
        let page = WebAuditPage {
            page: 1,
            per_page: 50,
            rows: vec![row.clone()],
            total: 1,
        };
        let text = to(&page);
        assert!(text.starts_with(r#"{"page":1,"per_page":50,"rows":[{"id":1,"#));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            json!({ "rows": [row], "total": 1, "page": 1, "per_page": 50 })
        );
    }
}
