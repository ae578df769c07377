//! The state store: gateway key, devices, pairing windows, remote-access approvals,
//! cameras and the audit log, in SQLite; one file per table (`devices.rs`, `pairing.rs`,
//! `remote.rs`, `cameras.rs`, `audit.rs`, `security.rs`, `quarantine.rs`), schema versions in `schema.rs`.
//!
//! WAL mode with `synchronous=FULL`: a write is durable when its call returns, and a
//! crash leaves the old or the new state, never a torn one. Every change that must be
//! atomic (consuming a pairing secret + adding the device + its audit row) is one
//! transaction. The file is created mode 0600 inside a 0700 directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use latchkey_pairing::{Keypair, UnixTime};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

mod audit;
mod audit_kind;
pub mod cameras;
mod devices;
mod handle;
mod pairing;
pub mod quarantine;
mod remote;
pub mod schema;
mod security;

use audit::audit_in;
pub use audit::{AuditFilter, AuditPage, AuditRow};
pub use audit_kind::AuditKind;
pub use devices::DeviceRow;
pub use pairing::{Candidate, NewDevice, PairingClaim, PairingParams, PairingWindowRow};
pub use remote::RemoteApproval;
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
        what: schema::SchemaError,
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
    /// The blocking task running a store call died (a bug, or the gateway is stopping).
    #[error("the store call was interrupted; if the gateway is not stopping, try again")]
    Interrupted,
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
        schema::check(&conn).map_err(schema_err)?;
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
        schema::migrate(&mut conn, SCHEMA).map_err(schema_err)?;
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
                AuditKind::AdminPasswordSet,
                None,
                None,
                &format!("by {by}"),
            )?;
            tx.commit()?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_pairing::{
        CameraGrant, DeviceId, DeviceState, PairingSecret, PublicKey, Role, SessionPsk,
    };
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
        let id = dev.record.id;
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
            store.set_device_state(&DeviceId("nope".into()), DeviceState::Revoked, 103, "t"),
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
                    audit_in(
                        &tx,
                        1,
                        AuditKind::RequestRefused,
                        None,
                        None,
                        &format!("entry {i}"),
                    )?;
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
