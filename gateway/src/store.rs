//! The state store: gateway key, devices, pairing windows, remote-access approvals and
//! the audit log, in SQLite.
//!
//! WAL mode with `synchronous=FULL`: a write is durable when its call returns, and a
//! crash leaves the old or the new state, never a torn one. Every change that must be
//! atomic (consuming a pairing secret + adding the device + its audit row) is one
//! transaction. The file is created mode 0600 inside a 0700 directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use latchkey_pairing::{
    CameraGrant, DeviceId, DeviceRecord, DeviceState, Keypair, PairingSecret, PublicKey, Role,
    SessionPsk, UnixTime,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

#[path = "store_cameras.rs"]
pub mod cameras;
mod security;
pub use security::{FLOOD_CAP, ROUTINE_CAP, ROUTINE_KINDS, SECURITY_CAP};

/// Database file name inside the state directory.
pub const DB_FILE: &str = "latchkey.db";
/// Failed pairing attempts after which the pairing window closes.
pub const MAX_PAIRING_FAILURES: u32 = 20;
/// How long a used pairing secret is kept to recognise (and alarm on) its reuse.
pub const USED_SECRET_MEMORY_SECS: u64 = 24 * 3600;
/// Audit rows kept at most: routine and security rows have separate caps
/// (`store/security.rs`), so a flood of routine rows never evicts a security event.
pub const AUDIT_CAP: i64 = ROUTINE_CAP + FLOOD_CAP + SECURITY_CAP;

/// Schema version 1, the baseline of `store_schema` (later changes are its steps).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gateway (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    secret BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    public_key BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    cameras TEXT NOT NULL,
    expires_at INTEGER,
    state TEXT NOT NULL,
    session_psk BLOB NOT NULL,
    code TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen INTEGER,
    last_addr TEXT
);
CREATE TABLE IF NOT EXISTS pairing_windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    secret BLOB,
    name TEXT,
    role TEXT NOT NULL,
    cameras TEXT NOT NULL,
    device_expires_at INTEGER,
    auto_confirm INTEGER NOT NULL,
    opened_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    used_at INTEGER
);
CREATE TABLE IF NOT EXISTS remote_approvals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ipv4 INTEGER NOT NULL,
    ipv6 INTEGER NOT NULL,
    lease_secs INTEGER NOT NULL CHECK (lease_secs > 0),
    approved_at INTEGER NOT NULL,
    approved_by TEXT NOT NULL,
    ended_at INTEGER,
    ended_by TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    device TEXT,
    addr TEXT,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS admin_password (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    phc TEXT NOT NULL,
    set_at INTEGER NOT NULL
);
";

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("{op} in {path}: {source}")]
    Sqlite {
        /// What was being done.
        op: &'static str,
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The state directory could not be prepared.
    #[error("preparing state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A row holds a value this code cannot interpret: the store is corrupt.
    #[error(
        "the store {path} is corrupt ({what}); nobody is admitted until it is repaired or restored"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// The schema is newer than this code, or could not be migrated.
    #[error("the store {path} {what}")]
    Schema {
        /// The database file.
        path: PathBuf,
        /// What was wrong.
        what: crate::store_schema::SchemaError,
    },
    /// No device has that id.
    #[error("no device with id {0:?} (see `latchkey devices`)")]
    NoSuchDevice(String),
    /// The pairing secret was consumed (or closed) before this pairing finished.
    #[error("the pairing code was already used or closed")]
    SecretGone,
    /// A revoked key tried to pair again; it must never come back.
    #[error("this phone's key was revoked; it must pair with a new key")]
    KeyRevoked,
    /// The key is already paired.
    #[error("this phone is already paired as device {0}")]
    AlreadyPaired(String),
    /// The store lock was poisoned by a panic elsewhere.
    #[error("the store is unusable after an internal error")]
    Poisoned,
    /// A device name breaks the name rules (`latchkey_pairing::text`).
    #[error("{0}")]
    Name(#[from] latchkey_pairing::text::NameError),
}

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

/// A device as listed to the owner.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceRow {
    /// Device id.
    pub id: String,
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

/// The latest pairing window, as shown to the owner.
#[derive(Clone, Debug, Serialize)]
pub struct PairingWindowRow {
    /// `open`, `used`, `closed` or `expired`.
    pub state: String,
    /// Failed attempts counted against it.
    pub failures: u32,
    /// When its code stops (or stopped) working.
    pub expires_at: UnixTime,
}

/// One audit log entry.
#[derive(Clone, Debug, Serialize)]
pub struct AuditRow {
    /// Sequence number.
    pub id: i64,
    /// When, seconds since the epoch.
    pub at: UnixTime,
    /// What happened, as a stable keyword.
    pub kind: String,
    /// Device concerned, if any.
    pub device: Option<String>,
    /// Peer address, if any.
    pub addr: Option<String>,
    /// Human detail.
    pub detail: String,
    /// The camera concerned, if any.
    pub camera: Option<String>,
}

/// Which audit rows to show; `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Device id.
    pub device: Option<String>,
    /// Camera id.
    pub camera: Option<String>,
    /// Kind, e.g. `device-revoked`.
    pub kind: Option<String>,
}

/// One page of the audit log.
#[derive(Clone, Debug, Serialize)]
pub struct AuditPage {
    /// Rows, newest first.
    pub rows: Vec<AuditRow>,
    /// Rows matching the filter in all.
    pub total: u64,
}

/// The owner's approval for remote access: what the gateway may ask of the router, and
/// for how long each lease runs. At most one stands (has no `ended_at`) at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RemoteApproval {
    /// Row id.
    pub id: i64,
    /// An IPv4 port mapping is approved.
    pub ipv4: bool,
    /// An IPv6 pinhole is approved.
    pub ipv6: bool,
    /// Lease asked of the router, renewed at half-life; never 0.
    pub lease_secs: u32,
    /// When the owner approved.
    pub approved_at: UnixTime,
    /// Who approved (`owner (cli)`, ...).
    pub approved_by: String,
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

/// Name, role, cameras, device expiry and auto-confirm of a pairing window.
type WindowTerms = (Option<String>, String, String, Option<i64>, bool);

/// Handle to the store; cheap to clone. Calls block briefly on disk I/O.
#[derive(Clone, Debug)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

fn ts(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_ts(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, checking that it is intact.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let dir_err = |source| StoreError::Dir {
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(dir_err)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(dir_err)?;
        let path = dir.join(DB_FILE);
        let sq = |op| {
            let path = path.clone();
            move |source| StoreError::Sqlite { op, path, source }
        };
        let mut conn = Connection::open(&path).map_err(sq("opening"))?;
        // A store from a newer version is refused before anything else touches it.
        let schema_err = |what| StoreError::Schema {
            path: path.clone(),
            what,
        };
        crate::store_schema::check(&conn).map_err(schema_err)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(dir_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sq("configuring"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sq("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sq("configuring"))?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(sq("checking integrity"))?;
        if check != "ok" {
            return Err(StoreError::Corrupt { path, what: check });
        }
        crate::store_schema::migrate(&mut conn, SCHEMA).map_err(schema_err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&mut conn).map_err(|source| StoreError::Sqlite {
            op,
            path: self.path.clone(),
            source,
        })
    }

    fn corrupt(&self, what: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    /// The gateway's static key, generated and stored on first use.
    pub fn gateway_key(
        &self,
        fresh: impl FnOnce() -> Keypair,
        now: UnixTime,
    ) -> Result<Keypair, StoreError> {
        let stored: Option<Vec<u8>> = self.with("reading gateway key", |c| {
            c.query_row("SELECT secret FROM gateway WHERE id = 1", [], |r| r.get(0))
                .optional()
        })?;
        if let Some(bytes) = stored {
            let secret = <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| self.corrupt("gateway key has the wrong length"))?;
            return Ok(Keypair::from_secret(secret));
        }
        let key = fresh();
        self.with("storing gateway key", |c| {
            c.execute(
                "INSERT INTO gateway (id, secret, created_at) VALUES (1, ?1, ?2)",
                params![key.secret_bytes().as_slice(), ts(now)],
            )
        })?;
        Ok(key)
    }

    /// Appends to the audit log, keeping it bounded.
    pub fn audit(
        &self,
        now: UnixTime,
        kind: &str,
        device: Option<&str>,
        addr: Option<&str>,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.with("writing audit log", |c| {
            audit_in(c, now, kind, device, addr, detail)
        })
    }

    /// Appends an audit row that names the camera concerned.
    pub fn audit_camera(
        &self,
        now: UnixTime,
        kind: &str,
        device: Option<&str>,
        camera: &str,
        addr: Option<&str>,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.with("writing audit log", |c| {
            audit_in(c, now, kind, device, addr, detail)?;
            c.execute(
                "UPDATE audit SET camera = ?1 WHERE id = ?2",
                params![camera, c.last_insert_rowid()],
            )
            .map(|_| ())
        })
    }

    /// The audit log, newest first.
    pub fn audit_log(&self, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        self.audit_page(&AuditFilter::default(), 0, limit)
            .map(|p| p.rows)
    }

    /// One page of the audit log matching `filter`, newest first, with the number of
    /// matching rows.
    pub fn audit_page(
        &self,
        filter: &AuditFilter,
        offset: u32,
        limit: u32,
    ) -> Result<AuditPage, StoreError> {
        // Empty filters match everything; values are bound, never spliced into SQL.
        const WHERE: &str = "WHERE (?1 IS NULL OR device = ?1) AND (?2 IS NULL OR camera = ?2) AND (?3 IS NULL OR kind = ?3)";
        self.with("reading audit log", |c| {
            let args = params![filter.device, filter.camera, filter.kind];
            let total: i64 =
                c.query_row(&format!("SELECT COUNT(*) FROM audit {WHERE}"), args, |r| {
                    r.get(0)
                })?;
            let mut st = c.prepare(&format!(
                "SELECT id, at, kind, device, addr, detail, camera FROM audit {WHERE} ORDER BY id DESC LIMIT ?4 OFFSET ?5"
            ))?;
            let rows = st.query_map(
                params![filter.device, filter.camera, filter.kind, limit, offset],
                |r| {
                    Ok(AuditRow {
                        id: r.get(0)?,
                        at: from_ts(r.get(1)?),
                        kind: r.get(2)?,
                        device: r.get(3)?,
                        addr: r.get(4)?,
                        detail: r.get(5)?,
                        camera: r.get(6)?,
                    })
                },
            )?;
            Ok(AuditPage {
                rows: rows.collect::<Result<_, _>>()?,
                total: u64::try_from(total).unwrap_or(0),
            })
        })
    }

    /// The admin UI password as a PHC string (argon2id), if the owner has set one.
    pub fn admin_password(&self) -> Result<Option<String>, StoreError> {
        self.with("reading the admin password", |c| {
            c.query_row("SELECT phc FROM admin_password WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    /// Stores the admin UI password (a PHC string) with its audit row. With
    /// `first_only`, refuses (returns false) when one is already set: the one-time setup
    /// link must never overwrite a password.
    pub fn set_admin_password(
        &self,
        phc: &str,
        first_only: bool,
        now: UnixTime,
        by: &str,
    ) -> Result<bool, StoreError> {
        self.with("storing the admin password", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let exists: bool = tx.query_row("SELECT COUNT(*) FROM admin_password", [], |r| {
                r.get::<_, i64>(0)
            })? > 0;
            if exists && first_only {
                return Ok(false);
            }
            tx.execute(
                "INSERT OR REPLACE INTO admin_password (id, phc, set_at) VALUES (1, ?1, ?2)",
                params![phc, ts(now)],
            )?;
            audit_in(
                &tx,
                now,
                "admin-password-set",
                None,
                None,
                &format!("by {by}"),
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// Changes a device's camera grant and expiry durably, with its audit row.
    pub fn set_device_grants(
        &self,
        id: &str,
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
                params![grant, expires_at.map(ts), id],
            )?;
            if n > 0 {
                let until = expires_at.map_or_else(|| "never".to_string(), |e| e.to_string());
                audit_in(
                    &tx,
                    now,
                    "device-grants-changed",
                    Some(id),
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
            audit_in(&tx, now, "pairing-opened", None, None, &detail)?;
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
                audit_in(&tx, now, "pairing-expired", None, None, "the pairing code expired unused and was erased")?;
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
                audit_in(&tx, now, "pairing-closed", None, Some(addr), &format!("{failures} failed attempts: the pairing code is closed; open a new one with `latchkey pair`"))?;
            } else {
                tx.execute("UPDATE pairing_windows SET failures = ?1 WHERE id = ?2", params![failures, id])?;
                audit_in(&tx, now, "pairing-failed", None, Some(addr), &format!("attempt {failures}: {why}"))?;
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
            audit_in(&tx, now, "device-paired", Some(&id.0), Some(addr), &detail)?;
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
    pub fn device_record(&self, id: &str) -> Result<Option<DeviceRecord>, StoreError> {
        let key: Option<Vec<u8>> = self.with("looking up a device", |c| {
            c.query_row("SELECT public_key FROM devices WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
        })?;
        let Some(key) = key else { return Ok(None) };
        let key = PublicKey::from_slice(&key)
            .ok_or_else(|| self.corrupt("device key has the wrong length"))?;
        Ok(self.device_by_key(&key)?.map(|(record, _)| record))
    }

    /// Records a session start.
    pub fn touch(&self, id: &str, addr: &str, now: UnixTime) -> Result<(), StoreError> {
        self.with("recording a session", |c| {
            c.execute(
                "UPDATE devices SET last_seen = ?1, last_addr = ?2 WHERE id = ?3",
                params![ts(now), addr, id],
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
                        id,
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
        id: &str,
        state: DeviceState,
        now: UnixTime,
        by: &str,
    ) -> Result<DeviceState, StoreError> {
        let result = self.with("changing a device", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let old: Option<String> = tx
                .query_row("SELECT state FROM devices WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            let Some(old) = old else { return Ok(None) };
            if old == "revoked" {
                // A revocation is final: nothing brings a revoked key back.
                tx.commit()?;
                return Ok(Some(old));
            }
            tx.execute(
                "UPDATE devices SET state = ?1 WHERE id = ?2",
                params![state.as_str(), id],
            )?;
            let kind = match state {
                DeviceState::Revoked => "device-revoked",
                DeviceState::Active => "device-confirmed",
                DeviceState::Pending => "device-pending",
            };
            audit_in(&tx, now, kind, Some(id), None, &format!("by {by}"))?;
            tx.commit()?;
            Ok(Some(state.as_str().to_string()))
        })?;
        match result {
            None => Err(StoreError::NoSuchDevice(id.to_string())),
            Some(s) => s.parse().map_err(|e: String| self.corrupt(e)),
        }
    }
}

impl Store {
    /// Records the owner's approval for remote access, ending any earlier one, with its
    /// audit row, durably, before returning.
    pub fn approve_remote(
        &self,
        ipv4: bool,
        ipv6: bool,
        lease_secs: u32,
        now: UnixTime,
        by: &str,
    ) -> Result<RemoteApproval, StoreError> {
        // A lease of 0 means "forever" to a router: refuse it at the lowest layer too.
        let lease_secs = lease_secs.max(1);
        let id = self.with("recording a remote-access approval", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE remote_approvals SET ended_at = ?1, ended_by = 'replaced' WHERE ended_at IS NULL",
                [ts(now)],
            )?;
            tx.execute(
                "INSERT INTO remote_approvals (ipv4, ipv6, lease_secs, approved_at, approved_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![ipv4, ipv6, lease_secs, ts(now), by],
            )?;
            let id = tx.last_insert_rowid();
            let detail = format!(
                "remote access approved by {by}: ipv4 {}, ipv6 {}, lease {lease_secs} s",
                if ipv4 { "yes" } else { "no" },
                if ipv6 { "yes" } else { "no" }
            );
            audit_in(&tx, now, "remote-approved", None, None, &detail)?;
            tx.commit()?;
            Ok(id)
        })?;
        Ok(RemoteApproval {
            id,
            ipv4,
            ipv6,
            lease_secs,
            approved_at: now,
            approved_by: by.to_string(),
        })
    }

    /// The standing remote-access approval, if any.
    pub fn remote_approval(&self) -> Result<Option<RemoteApproval>, StoreError> {
        let row = self.with("reading the remote-access approval", |c| {
            c.query_row(
                "SELECT id, ipv4, ipv6, lease_secs, approved_at, approved_by FROM remote_approvals
                 WHERE ended_at IS NULL ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, bool>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((id, ipv4, ipv6, lease, at, by)) = row else {
            return Ok(None);
        };
        let lease_secs = u32::try_from(lease)
            .ok()
            .filter(|l| *l > 0)
            .ok_or_else(|| self.corrupt("remote approval lease is out of range"))?;
        Ok(Some(RemoteApproval {
            id,
            ipv4,
            ipv6,
            lease_secs,
            approved_at: from_ts(at),
            approved_by: by,
        }))
    }

    /// Ends the standing remote-access approval durably (with its audit row); returns
    /// whether one stood.
    pub fn end_remote_approval(&self, now: UnixTime, by: &str) -> Result<bool, StoreError> {
        self.with("ending the remote-access approval", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE remote_approvals SET ended_at = ?1, ended_by = ?2 WHERE ended_at IS NULL",
                params![ts(now), by],
            )?;
            if n > 0 {
                audit_in(
                    &tx,
                    now,
                    "remote-closed",
                    None,
                    None,
                    &format!("remote access withdrawn by {by}"),
                )?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }
}

fn audit_in(
    c: &Connection,
    now: UnixTime,
    kind: &str,
    device: Option<&str>,
    addr: Option<&str>,
    detail: &str,
) -> Result<(), rusqlite::Error> {
    // Every audit string is data: controls, bidi and invisible characters are escaped.
    use latchkey_pairing::text::escape;
    let (device, addr) = (device.map(escape), addr.map(escape));
    c.execute(
        "INSERT INTO audit (at, kind, device, addr, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![ts(now), kind, device, addr, escape(detail)],
    )?;
    if c.last_insert_rowid() % 256 == 0 {
        security::prune_audit(c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    fn claim<'a>(window: i64, public_key: &'a PublicKey, psk: &'a SessionPsk) -> PairingClaim<'a> {
        PairingClaim {
            window,
            public_key,
            suggested_name: "x",
            psk,
            code: "123456",
            addr: "lo",
        }
    }

    fn params(now: u64) -> PairingParams {
        PairingParams {
            name: Some("phone".into()),
            role: Role::Viewer,
            cameras: CameraGrant::All,
            device_expires_at: None,
            auto_confirm: false,
            window_expires_at: now + 300,
        }
    }

    #[test]
    fn pairing_consumes_the_secret_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let secret = PairingSecret::generate(&mut OsRng).unwrap();
        let window = store.open_pairing(&params(100), &secret, 100).unwrap();
        let cands = store.pairing_candidates(101).unwrap();
        assert_eq!(cands.len(), 1);
        assert!(cands[0].open);
        let key = Keypair::generate(&mut OsRng).unwrap().public();
        let psk = SessionPsk::generate(&mut OsRng).unwrap();
        let dev = store
            .complete_pairing(&claim(window, &key, &psk), 102)
            .unwrap();
        assert_eq!(dev.record.state, DeviceState::Pending);
        assert_eq!(dev.record.name, "phone");
        let other = Keypair::generate(&mut OsRng).unwrap().public();
        assert!(matches!(
            store.complete_pairing(&claim(window, &other, &psk), 103),
            Err(StoreError::SecretGone)
        ));
        // The used secret is still recognised (to alarm on reuse), but not as open.
        let cands = store.pairing_candidates(104).unwrap();
        assert_eq!(cands.len(), 1);
        assert!(!cands[0].open);
    }

    #[test]
    fn expired_secrets_are_erased() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let secret = PairingSecret::generate(&mut OsRng).unwrap();
        store.open_pairing(&params(100), &secret, 100).unwrap();
        assert!(store.pairing_candidates(400).unwrap().is_empty());
        let raw: Vec<Option<Vec<u8>>> = store
            .with("t", |c| {
                c.prepare("SELECT secret FROM pairing_windows")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .unwrap();
        assert_eq!(raw, vec![None]);
    }

    #[test]
    fn failures_close_the_window_and_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let secret = PairingSecret::generate(&mut OsRng).unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.open_pairing(&params(100), &secret, 100).unwrap();
            for _ in 0..5 {
                store.pairing_failed(101, "lo", "wrong code").unwrap();
            }
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.pairing_failures().unwrap(), Some(5));
        for _ in 5..MAX_PAIRING_FAILURES {
            store.pairing_failed(101, "lo", "wrong code").unwrap();
        }
        assert_eq!(store.pairing_failures().unwrap(), None);
        assert!(store.pairing_candidates(102).unwrap().is_empty());
    }

    #[test]
    fn revocation_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let secret = PairingSecret::generate(&mut OsRng).unwrap();
        let window = store.open_pairing(&params(100), &secret, 100).unwrap();
        let key = Keypair::generate(&mut OsRng).unwrap().public();
        let psk = SessionPsk::generate(&mut OsRng).unwrap();
        let dev = store
            .complete_pairing(&claim(window, &key, &psk), 101)
            .unwrap();
        let id = dev.record.id.0;
        assert_eq!(
            store
                .set_device_state(&id, DeviceState::Revoked, 102, "test")
                .unwrap(),
            DeviceState::Revoked
        );
        assert_eq!(
            store
                .set_device_state(&id, DeviceState::Active, 103, "test")
                .unwrap(),
            DeviceState::Revoked
        );
        assert!(matches!(
            store.set_device_state("nope", DeviceState::Revoked, 103, "t"),
            Err(StoreError::NoSuchDevice(_))
        ));
        let window = store.open_pairing(&params(104), &secret, 104).unwrap();
        assert!(matches!(
            store.complete_pairing(&claim(window, &key, &psk), 105),
            Err(StoreError::KeyRevoked)
        ));
    }

    #[test]
    fn remote_approval_stands_until_ended_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.remote_approval().unwrap(), None);
            store.approve_remote(true, false, 0, 100, "test").unwrap();
            let a = store.approve_remote(true, true, 3600, 101, "test").unwrap();
            assert_eq!(store.remote_approval().unwrap(), Some(a));
        }
        let store = Store::open(dir.path()).unwrap();
        let a = store.remote_approval().unwrap().unwrap();
        assert!(a.ipv4 && a.ipv6);
        assert_eq!(a.lease_secs, 3600);
        assert!(store.end_remote_approval(102, "test").unwrap());
        assert!(!store.end_remote_approval(103, "test").unwrap());
        assert_eq!(store.remote_approval().unwrap(), None);
        let kinds: Vec<String> = store
            .audit_log(10)
            .unwrap()
            .into_iter()
            .map(|a| a.kind)
            .collect();
        assert_eq!(
            kinds,
            ["remote-closed", "remote-approved", "remote-approved"]
        );
    }

    #[test]
    fn the_audit_log_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .with("t", |c| {
                let tx = c.transaction()?;
                for i in 0..(AUDIT_CAP + 600) {
                    audit_in(&tx, 1, "test", None, None, &format!("entry {i}"))?;
                }
                tx.commit()
            })
            .unwrap();
        let count: i64 = store
            .with("t", |c| {
                c.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
            })
            .unwrap();
        assert!(count <= AUDIT_CAP + 256, "{count} rows");
        assert_eq!(
            store.audit_log(1).unwrap()[0].detail,
            format!("entry {}", AUDIT_CAP + 599)
        );
    }

    #[test]
    fn a_corrupt_file_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), vec![0x42u8; 8192]).unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("latchkey.db"), "{err}");
    }
}
