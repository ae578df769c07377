//! Devices: the allow-list rows, their grants and states (a revocation is final), and
//! last-seen.

use latchkey_pairing::{
    CameraGrant, DeviceId, DeviceRecord, DeviceState, PublicKey, Role, SessionPsk, UnixTime,
};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::AuditKind;
use super::{Store, StoreError, audit_in, from_ts, ts};

/// A device as listed to the owner.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceRow {
    /// Device id.
    pub id: DeviceId,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Cameras, `all` or a comma list.
    pub cameras: String,
    /// Pending, active or revoked.
    pub state: DeviceState,
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
}

impl Store {
    /// Changes a device's camera grant and expiry durably, with its audit row.
    pub fn set_device_grants(
        &self,
        id: &DeviceId,
        cameras: &CameraGrant,
        expires_at: Option<UnixTime>,
        now: UnixTime,
        by: &str,
    ) -> Result<(), StoreError> {
        let grant = cameras.to_string();
        let changed = self.with("changing a device's grants", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE devices SET cameras = ?1, expires_at = ?2 WHERE id = ?3",
                params![grant, expires_at.map(ts), id.as_str()],
            )?;
            if n > 0 {
                let until = expires_at.map_or_else(|| "never".to_string(), |e| e.to_string());
                audit_in(
                    &tx,
                    now,
                    AuditKind::DeviceGrantsChanged,
                    Some(id.as_str()),
                    None,
                    &format!("by {by}: cameras {grant}, expires {until}"),
                )?;
            }
            tx.commit()?;
            Ok(n > 0)
        })?;
        if changed {
            Ok(())
        } else {
            Err(StoreError::NoSuchDevice(id.to_string()))
        }
    }

    /// Looks a device up by its key, with its session PSK.
    pub fn device_by_key(
        &self,
        key: &PublicKey,
    ) -> Result<Option<(DeviceRecord, SessionPsk)>, StoreError> {
        let row = self.with("looking up a device", |c| {
            c.query_row(
                "SELECT id, name, role, cameras, expires_at, state, session_psk FROM devices WHERE public_key = ?1",
                [key.as_bytes().as_slice()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Vec<u8>>(6)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((id, name, role, cameras, expires, state, psk)) = row else {
            return Ok(None);
        };
        let record = DeviceRecord {
            id: DeviceId(id),
            name,
            public_key: *key,
            role: role.parse().map_err(|e: String| self.corrupt(e))?,
            cameras: CameraGrant::parse_list(&cameras),
            expires_at: expires.map(from_ts),
            state: state.parse().map_err(|e: String| self.corrupt(e))?,
        };
        let psk = <[u8; 32]>::try_from(psk.as_slice())
            .map_err(|_| self.corrupt("session psk has the wrong length"))?;
        Ok(Some((record, SessionPsk(psk))))
    }

    /// Looks a device up by id (for per-request checks).
    pub fn device_record(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        let key: Option<Vec<u8>> = self.with("looking up a device", |c| {
            c.query_row(
                "SELECT public_key FROM devices WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()
        })?;
        let Some(key) = key else { return Ok(None) };
        let key = PublicKey::from_slice(&key)
            .ok_or_else(|| self.corrupt("device key has the wrong length"))?;
        Ok(self.device_by_key(&key)?.map(|(record, _)| record))
    }

    /// Records a session start.
    pub fn touch(&self, id: &DeviceId, addr: &str, now: UnixTime) -> Result<(), StoreError> {
        self.with("recording a session", |c| {
            c.execute(
                "UPDATE devices SET last_seen = ?1, last_addr = ?2 WHERE id = ?3",
                params![ts(now), addr, id.as_str()],
            )
            .map(|_| ())
        })
    }

    /// All devices, oldest first.
    pub fn devices(&self) -> Result<Vec<DeviceRow>, StoreError> {
        let rows = self.with("listing devices", |c| {
            let mut st = c.prepare(
                "SELECT id, name, role, cameras, state, expires_at, code, created_at, last_seen, last_addr FROM devices ORDER BY created_at, id",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, Option<i64>>(8)?,
                    r.get::<_, Option<String>>(9)?,
                ))
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })?;
        rows.into_iter()
            .map(
                |(id, name, role, cameras, state, expires, code, created, seen, addr)| {
                    Ok(DeviceRow {
                        id: DeviceId(id),
                        name,
                        role: role.parse().map_err(|e: String| self.corrupt(e))?,
                        cameras,
                        state: state.parse().map_err(|e: String| self.corrupt(e))?,
                        expires_at: expires.map(from_ts),
                        code,
                        created_at: from_ts(created),
                        last_seen: seen.map(from_ts),
                        last_addr: addr,
                    })
                },
            )
            .collect()
    }

    /// Moves a device to `state` durably (with its audit row) before returning.
    pub fn set_device_state(
        &self,
        id: &DeviceId,
        state: DeviceState,
        now: UnixTime,
        by: &str,
    ) -> Result<DeviceState, StoreError> {
        let result = self.with("changing a device", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let old: Option<String> = tx
                .query_row(
                    "SELECT state FROM devices WHERE id = ?1",
                    [id.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(old) = old else { return Ok(None) };
            if old == "revoked" {
                // A revocation is final: nothing brings a revoked key back.
                tx.commit()?;
                return Ok(Some(old));
            }
            tx.execute(
                "UPDATE devices SET state = ?1 WHERE id = ?2",
                params![state.as_str(), id.as_str()],
            )?;
            let kind = match state {
                DeviceState::Revoked => AuditKind::DeviceRevoked,
                DeviceState::Active => AuditKind::DeviceConfirmed,
                DeviceState::Pending => AuditKind::DevicePending,
            };
            audit_in(&tx, now, kind, Some(id.as_str()), None, &format!("by {by}"))?;
            tx.commit()?;
            Ok(Some(state.as_str().to_string()))
        })?;
        match result {
            None => Err(StoreError::NoSuchDevice(id.to_string())),
            Some(s) => s.parse().map_err(|e: String| self.corrupt(e)),
        }
    }
}
