//! Pairing windows: minting a one-time secret, candidates for a handshake, failures that
//! close a window, and completing a pairing (secret consumed, device and audit row added
//! in one transaction).

use latchkey_pairing::{
    CameraGrant, DeviceRecord, DeviceState, PairingSecret, PublicKey, Role, SessionPsk, UnixTime,
};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use super::AuditKind;
use super::{
    MAX_PAIRING_FAILURES, Store, StoreError, USED_SECRET_MEMORY_SECS, WindowTerms, audit_in,
    from_ts, security, ts,
};

/// What the owner asked for when opening a pairing window.
#[derive(Clone, Debug)]
pub struct PairingParams {
    /// Name to give the device (else the phone's own suggestion).
    pub name: Option<String>,
    /// Role of the device.
    pub role: Role,
    /// Cameras granted.
    pub cameras: CameraGrant,
    /// When the device's access ends.
    pub device_expires_at: Option<UnixTime>,
    /// Admit without the owner comparing the short code.
    pub auto_confirm: bool,
    /// When the pairing secret stops working.
    pub window_expires_at: UnixTime,
}

/// A pairing secret the listener should try an incoming pairing message against.
#[derive(Debug)]
pub struct Candidate {
    /// Window id.
    pub window: i64,
    /// The secret.
    pub secret: PairingSecret,
    /// True for the open window; false for a used secret kept to detect reuse.
    pub open: bool,
}

/// The latest pairing window, as shown to the owner.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PairingWindowRow {
    /// `open`, `used`, `closed` or `expired`.
    pub state: String,
    /// Failed attempts counted against it.
    pub failures: u32,
    /// When its code stops (or stopped) working.
    pub expires_at: UnixTime,
}

/// A device newly admitted by a pairing handshake.
#[derive(Debug)]
pub struct NewDevice {
    /// Its record.
    pub record: DeviceRecord,
    /// The PSK for its sessions.
    pub psk: SessionPsk,
    /// The short code.
    pub code: String,
}

/// A phone that completed a pairing handshake, asking to be recorded.
#[derive(Debug, Clone, Copy)]
pub struct PairingClaim<'a> {
    /// The pairing window whose secret it used.
    pub window: i64,
    /// Its static key.
    pub public_key: &'a PublicKey,
    /// The name it suggested.
    pub suggested_name: &'a str,
    /// The session PSK minted for it.
    pub psk: &'a SessionPsk,
    /// The short code both sides showed.
    pub code: &'a str,
    /// Where it connected from.
    pub addr: &'a str,
}

impl Store {
    /// Opens a pairing window, closing any other: one pairing at a time.
    pub fn open_pairing(
        &self,
        p: &PairingParams,
        secret: &PairingSecret,
        now: UnixTime,
    ) -> Result<i64, StoreError> {
        self.with("opening a pairing window", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let closed = tx.execute(
                "UPDATE pairing_windows SET state = 'closed', secret = NULL WHERE state = 'open'",
                [],
            )?;
            tx.execute(
                "INSERT INTO pairing_windows (secret, name, role, cameras, device_expires_at, auto_confirm, opened_at, expires_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'open')",
                params![
                    secret.0.as_slice(),
                    p.name,
                    p.role.as_str(),
                    p.cameras.to_string(),
                    p.device_expires_at.map(ts),
                    p.auto_confirm,
                    ts(now),
                    ts(p.window_expires_at),
                ],
            )?;
            let id = tx.last_insert_rowid();
            let detail = format!(
                "role {}, cameras {}, expires in {} s{}{}",
                p.role,
                p.cameras,
                p.window_expires_at.saturating_sub(now),
                if p.auto_confirm { ", auto-confirm" } else { "" },
                if closed > 0 { "; the previous pairing code was closed" } else { "" }
            );
            audit_in(&tx, now, AuditKind::PairingOpened, None, None, &detail)?;
            tx.commit()?;
            Ok(id)
        })
    }

    /// Secrets to try an incoming pairing message against: the open window (if any and
    /// unexpired) first, then recently used ones. Expired windows are closed and their
    /// secrets erased on the way.
    pub fn pairing_candidates(&self, now: UnixTime) -> Result<Vec<Candidate>, StoreError> {
        let rows = self.with("reading pairing windows", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let expired = tx.execute(
                "UPDATE pairing_windows SET state = 'expired', secret = NULL WHERE state = 'open' AND expires_at <= ?1",
                [ts(now)],
            )?;
            if expired > 0 {
                audit_in(&tx, now, AuditKind::PairingExpired, None, None, "the pairing code expired unused and was erased")?;
            }
            tx.execute(
                "UPDATE pairing_windows SET secret = NULL WHERE state = 'used' AND used_at <= ?1",
                [ts(now.saturating_sub(USED_SECRET_MEMORY_SECS))],
            )?;
            let rows = {
                let mut st = tx.prepare(
                    "SELECT id, secret, state FROM pairing_windows WHERE secret IS NOT NULL AND state IN ('open', 'used')
                     ORDER BY state = 'open' DESC, id DESC LIMIT 8",
                )?;
                let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?)))?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            tx.commit()?;
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(window, secret, state)| {
                let secret = <[u8; 32]>::try_from(secret.as_slice())
                    .map_err(|_| self.corrupt("pairing secret has the wrong length"))?;
                Ok(Candidate {
                    window,
                    secret: PairingSecret(secret),
                    open: state == "open",
                })
            })
            .collect()
    }

    /// Counts a failed pairing attempt against the open window; closes it at the limit.
    /// Returns the failure count and whether the window is now closed.
    pub fn pairing_failed(
        &self,
        now: UnixTime,
        addr: &str,
        why: &str,
    ) -> Result<Option<(u32, bool)>, StoreError> {
        self.with("counting a failed pairing attempt", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let open: Option<(i64, u32)> = tx
                .query_row("SELECT id, failures FROM pairing_windows WHERE state = 'open'", [], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((id, failures)) = open else {
                tx.commit()?;
                return Ok(None);
            };
            let failures = failures.saturating_add(1);
            let closed = failures >= MAX_PAIRING_FAILURES;
            if closed {
                tx.execute("UPDATE pairing_windows SET failures = ?1, state = 'closed', secret = NULL WHERE id = ?2", params![failures, id])?;
                audit_in(&tx, now, AuditKind::PairingClosed, None, Some(addr), &format!("{failures} failed attempts: the pairing code is closed; open a new one with `latchkey pair`"))?;
            } else {
                tx.execute("UPDATE pairing_windows SET failures = ?1 WHERE id = ?2", params![failures, id])?;
                audit_in(&tx, now, AuditKind::PairingFailed, None, Some(addr), &format!("attempt {failures}: {why}"))?;
            }
            tx.commit()?;
            Ok(Some((failures, closed)))
        })
    }

    /// The most recent pairing window: its state (`open`, `used`, `closed`, `expired`),
    /// failed attempts and expiry, for the owner's device list.
    pub fn latest_pairing_window(&self) -> Result<Option<PairingWindowRow>, StoreError> {
        self.with("reading pairing windows", |c| {
            c.query_row(
                "SELECT state, failures, expires_at FROM pairing_windows ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(PairingWindowRow {
                        state: r.get(0)?,
                        failures: r.get(1)?,
                        expires_at: from_ts(r.get(2)?),
                    })
                },
            )
            .optional()
        })
    }

    /// Failed attempts against the open pairing window, if one is open.
    pub fn pairing_failures(&self) -> Result<Option<u32>, StoreError> {
        self.with("reading pairing windows", |c| {
            c.query_row(
                "SELECT failures FROM pairing_windows WHERE state = 'open'",
                [],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Consumes the window's secret and adds the device, in one transaction.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    pub fn complete_pairing(
        &self,
        claim: &PairingClaim<'_>,
        now: UnixTime,
    ) -> Result<NewDevice, StoreError> {
        let PairingClaim {
            window,
            public_key,
            suggested_name,
            psk,
            code,
            addr,
        } = *claim;
        let id = public_key.device_id();
        let outcome = self.with("recording a paired device", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let window_row: Option<WindowTerms> = tx
                .query_row(
                    "SELECT name, role, cameras, device_expires_at, auto_confirm FROM pairing_windows
                     WHERE id = ?1 AND state = 'open' AND expires_at > ?2",
                    params![window, ts(now)],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()?;
            let Some((name, role, cameras, expires, auto_confirm)) = window_row else {
                return Ok(Err(StoreError::SecretGone));
            };
            let existing: Option<String> = tx
                .query_row("SELECT state FROM devices WHERE public_key = ?1", [public_key.as_bytes().as_slice()], |r| r.get(0))
                .optional()?;
            match existing.as_deref() {
                Some("revoked") => return Ok(Err(StoreError::KeyRevoked)),
                Some(_) => return Ok(Err(StoreError::AlreadyPaired(id.0.clone()))),
                None => {}
            }
            let state = if auto_confirm { DeviceState::Active } else { DeviceState::Pending };
            let name = match security::choose_name(&tx, name.filter(|n| !n.is_empty()), suggested_name, &id.0)? {
                Ok(name) => name,
                Err(e) => return Ok(Err(StoreError::Name(e))),
            };
            tx.execute("UPDATE pairing_windows SET state = 'used', used_at = ?1 WHERE id = ?2", params![ts(now), window])?;
            tx.execute(
                "INSERT INTO devices (id, public_key, name, role, cameras, expires_at, state, session_psk, code, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![id.0, public_key.as_bytes().as_slice(), name, role, cameras, expires, state.as_str(), psk.0.as_slice(), code, ts(now)],
            )?;
            let detail = format!("paired {name:?} as {role} ({}) with code {code}", state.as_str());
            audit_in(&tx, now, AuditKind::DevicePaired, Some(&id.0), Some(addr), &detail)?;
            tx.commit()?;
            Ok(Ok((name, role, cameras, expires, state)))
        })??;
        let (name, role, cameras, expires, state) = outcome;
        let role: Role = role.parse().map_err(|e: String| self.corrupt(e))?;
        Ok(NewDevice {
            record: DeviceRecord {
                id,
                name,
                public_key: *public_key,
                role,
                cameras: CameraGrant::parse_list(&cameras),
                expires_at: expires.map(from_ts),
                state,
            },
            psk: psk.clone(),
            code: code.to_string(),
        })
    }
}
