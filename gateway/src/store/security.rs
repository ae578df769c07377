//! The persisted session-hello replay guard, the audit log's split retention (security
//! events are never pushed out by routine rows) and device-name choice. The `hello_guard`
//! table and the audit index are schema step 3 (`schema.rs`).

use latchkey_pairing::text::{NameError, check_device_name};
use rusqlite::{Connection, OptionalExtension, params};

use super::AuditKind;
use super::{Store, StoreError, ts};

/// Audit kinds that are routine: a paired device can make the gateway write them as fast
/// as it likes, so they are kept apart and never evict anything else.
pub const ROUTINE_KINDS: &[AuditKind] = &[
    AuditKind::OwnerActionRefused,
    AuditKind::CameraWatched,
    AuditKind::RequestRefused,
];
/// Routine rows kept (the newest).
pub const ROUTINE_CAP: i64 = 10_000;
/// Flood summaries (`audit-flood`, see `audit_flood.rs`) kept: a class of their own, so
/// even a flood that lasts for weeks cannot evict a security event with its summaries.
pub const FLOOD_CAP: i64 = 1_000;
/// Every other (security) row kept: pairings, alarms, revocations, approvals, floods.
pub const SECURITY_CAP: i64 = 10_000;

fn routine_list() -> String {
    ROUTINE_KINDS
        .iter()
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Keeps each class of audit rows within its own cap (called every few hundred inserts).
pub fn prune_audit(c: &Connection) -> Result<(), rusqlite::Error> {
    let list = routine_list();
    for (filter, cap) in [
        (format!("kind IN ({list})"), ROUTINE_CAP),
        ("kind = 'audit-flood'".to_string(), FLOOD_CAP),
        (
            format!("kind NOT IN ({list}) AND kind != 'audit-flood'"),
            SECURITY_CAP,
        ),
    ] {
        let edge: Option<i64> = c
            .query_row(
                &format!("SELECT id FROM audit WHERE {filter} ORDER BY id DESC LIMIT 1 OFFSET ?1"),
                [cap],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(edge) = edge {
            c.execute(
                &format!("DELETE FROM audit WHERE {filter} AND id <= ?1"),
                [edge],
            )?;
        }
    }
    Ok(())
}

/// Names and ids of the devices that a new name must not imitate (revoked devices keep
/// their ids, not their names).
pub fn taken_names(c: &Connection) -> Result<Vec<String>, rusqlite::Error> {
    let mut st = c.prepare(
        "SELECT id FROM devices UNION ALL SELECT name FROM devices WHERE state != 'revoked'",
    )?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// The name a newly paired device gets: the owner's (refused if it breaks the name
/// rules), else the phone's suggestion, else, if that breaks them (controls, bidi or
/// zero-width characters, shaped like an id, alike another name), `phone ` and the first
/// 8 digits of its id.
pub fn choose_name(
    c: &Connection,
    owners: Option<String>,
    suggested: &str,
    id: &str,
) -> Result<Result<String, NameError>, rusqlite::Error> {
    let taken = taken_names(c)?;
    let taken = || taken.iter().map(String::as_str);
    if let Some(name) = owners {
        return Ok(check_device_name(&name, taken()).map(|()| name));
    }
    if check_device_name(suggested, taken()).is_ok() {
        return Ok(Ok(suggested.to_string()));
    }
    let fallback = format!("phone {}", id.get(..8).unwrap_or(id));
    Ok(check_device_name(&fallback, taken()).map(|()| fallback))
}

impl Store {
    /// Checks a name the owner gives a future device against the name rules and every
    /// device's id and name.
    pub fn check_new_name(&self, name: &str) -> Result<Result<(), NameError>, StoreError> {
        self.with("listing device names", |c| {
            let taken = taken_names(c)?;
            Ok(check_device_name(name, taken.iter().map(String::as_str)))
        })
    }

    /// The newest session-hello timestamp stored for `device` (0 if none).
    pub fn last_hello(&self, device: &str) -> Result<u64, StoreError> {
        let v: Option<i64> = self.with("reading the replay guard", |c| {
            c.query_row(
                "SELECT last_ms FROM hello_guard WHERE device = ?1",
                [device],
                |r| r.get(0),
            )
            .optional()
        })?;
        Ok(v.map_or(0, |v| u64::try_from(v).unwrap_or(0)))
    }

    /// Raises the stored hello timestamps (never lowers one).
    pub fn record_hellos(&self, hellos: &[(String, u64)]) -> Result<(), StoreError> {
        self.with("writing the replay guard", |c| {
            let tx = c.transaction()?;
            for (device, ms) in hellos {
                tx.execute(
                    "INSERT INTO hello_guard (device, last_ms) VALUES (?1, ?2)
                     ON CONFLICT(device) DO UPDATE SET last_ms = max(last_ms, excluded.last_ms)",
                    params![device, ts(*ms)],
                )?;
            }
            tx.commit()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_floods_never_evict_security_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .audit(1, AuditKind::PairingReused, None, Some("x"), "ALARM")
            .unwrap();
        store
            .audit(
                1,
                AuditKind::DevicePaired,
                Some(&latchkey_pairing::DeviceId("d".into())),
                Some("x"),
                "paired",
            )
            .unwrap();
        for i in 0..(ROUTINE_CAP + 3000) {
            store
                .audit(
                    2,
                    AuditKind::OwnerActionRefused,
                    Some(&latchkey_pairing::DeviceId("v".into())),
                    None,
                    &format!("{i}"),
                )
                .unwrap();
        }
        let kinds: Vec<String> = store
            .audit_page(&super::super::AuditFilter::default(), 0, u32::MAX)
            .unwrap()
            .rows
            .into_iter()
            .map(|r| r.kind)
            .collect();
        assert!(kinds.iter().any(|k| k == "pairing-reused"));
        assert!(kinds.iter().any(|k| k == "device-paired"));
        let routine = kinds
            .iter()
            .filter(|k| *k == "owner-action-refused")
            .count();
        assert!(
            routine <= usize::try_from(ROUTINE_CAP).unwrap() + 256,
            "{routine}"
        );
    }

    #[test]
    fn imitating_suggestions_are_replaced_and_imitating_owner_names_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .with("t", |c| {
                c.execute(
                    "INSERT INTO devices (id, public_key, name, role, cameras, state, session_psk, code, created_at)
                     VALUES ('0123456789abcdef', x'01', 'Anna', 'owner', 'all', 'active', x'02', '1', 1)",
                    [],
                )?;
                let chosen = |owner: Option<&str>, suggested: &str| {
                    choose_name(c, owner.map(String::from), suggested, "fedcba9876543210")
                };
                assert_eq!(chosen(None, "Bob").unwrap(), Ok("Bob".into()));
                for imitation in ["0123456789abcdef", "ANNA", "An\u{200b}na", "Аnna"] {
                    assert_eq!(chosen(None, imitation).unwrap(), Ok("phone fedcba98".into()));
                }
                assert!(chosen(Some("anna"), "Bob").unwrap().is_err());
                Ok(())
            })
            .unwrap();
        assert!(store.check_new_name("Anna ").unwrap().is_err());
        assert!(store.check_new_name("Carol").unwrap().is_ok());
    }

    #[test]
    fn the_replay_guard_only_rises_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.last_hello("a").unwrap(), 0);
        store.record_hellos(&[("a".into(), 50)]).unwrap();
        store.record_hellos(&[("a".into(), 20)]).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.last_hello("a").unwrap(), 50);
    }
}
