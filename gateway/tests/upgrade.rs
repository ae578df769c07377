//! Upgrades and backups lose nothing: the store made by the first shipped schema
//! (`test-data/store-v1.db`, see `test-data/make-store-v1.rs`) opens with every key,
//! device, grant, approval and audit row intact; a newer store is refused untouched; a
//! backup taken while the store is in use restores to a store that admits the same phone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests fail loudly

use std::path::{Path, PathBuf};

use latchkey_gateway::backup;
use latchkey_gateway::store::schema as store_schema;
use latchkey_gateway::store::{AuditKind, DB_FILE, Store, StoreError};
use latchkey_pairing::{DeviceState, Keypair, Role};

/// The clock the v1 store was made at.
const T: u64 = 1_780_000_000;

fn v1_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-data/store-v1.db");
    std::fs::copy(src, state.join(DB_FILE)).unwrap();
    (dir, state)
}

fn phone(n: u8) -> latchkey_pairing::PublicKey {
    Keypair::from_secret([n; 32]).public()
}

/// Every value `make-store-v1.rs` wrote, read back through today's store.
fn assert_v1_contents(store: &Store) {
    let key = store
        .gateway_key(|| panic!("the v1 gateway key was lost"), T)
        .unwrap();
    assert_eq!(key.public(), Keypair::from_secret([9; 32]).public());
    let devices = store.devices().unwrap();
    let summary: Vec<(String, Role, String, DeviceState)> = devices
        .iter()
        .map(|d| (d.name.clone(), d.role, d.cameras.clone(), d.state))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "owner-phone".into(),
                Role::Owner,
                "all".into(),
                DeviceState::Active
            ),
            (
                "kitchen-tablet".into(),
                Role::Viewer,
                "front,garden".into(),
                DeviceState::Active
            ),
            (
                "lost-phone".into(),
                Role::Guest,
                "front".into(),
                DeviceState::Revoked
            ),
            (
                "new-phone".into(),
                Role::Viewer,
                "all".into(),
                DeviceState::Pending
            ),
        ]
    );
    let tablet = devices.iter().find(|d| d.name == "kitchen-tablet").unwrap();
    assert_eq!(tablet.expires_at, Some(T + 86_400 * 365));
    let owner = devices.iter().find(|d| d.name == "owner-phone").unwrap();
    assert_eq!(owner.last_seen, Some(T + 40));
    assert_eq!(owner.last_addr.as_deref(), Some("198.51.100.7:40000"));
    assert_eq!(owner.code, "111111");
    // The keys still find their devices: the owner's phone is admitted as before.
    let (record, _psk) = store.device_by_key(&phone(1)).unwrap().unwrap();
    assert_eq!(
        (record.name.as_str(), record.state),
        ("owner-phone", DeviceState::Active)
    );
    let (record, _) = store.device_by_key(&phone(4)).unwrap().unwrap();
    assert_eq!(record.state, DeviceState::Pending);
    let approval = store.remote_approval().unwrap().unwrap();
    assert_eq!(
        (
            approval.ipv4,
            approval.ipv6,
            approval.lease_secs,
            approval.approved_at
        ),
        (true, true, 7200, T + 70)
    );
    assert_eq!(approval.approved_by, "owner (web)");
    assert!(
        store
            .admin_password()
            .unwrap()
            .unwrap()
            .starts_with("$argon2id$")
    );
    let audit = store.audit_log(1000).unwrap();
    let note = audit.iter().find(|a| a.kind == "test-note").unwrap();
    assert_eq!(note.addr.as_deref(), Some("192.0.2.99:1"));
    let viewed = audit.iter().find(|a| a.kind == "camera-viewed").unwrap();
    assert_eq!(viewed.camera.as_deref(), Some("front"));
    for kind in [
        "device-paired",
        "device-revoked",
        "remote-approved",
        "remote-closed",
    ] {
        assert!(
            audit.iter().any(|a| a.kind == kind),
            "no {kind} row in {audit:#?}"
        );
    }
}

#[test]
fn the_shipped_v1_store_opens_with_everything_intact() {
    let (_dir, state) = v1_copy();
    let raw = rusqlite::Connection::open(state.join(DB_FILE)).unwrap();
    assert_eq!(
        store_schema::version(&raw).unwrap(),
        0,
        "v1 predates versions"
    );
    drop(raw);
    let store = Store::open(&state).unwrap();
    assert_v1_contents(&store);
    drop(store);
    let raw = rusqlite::Connection::open(state.join(DB_FILE)).unwrap();
    assert_eq!(store_schema::version(&raw).unwrap(), store_schema::CURRENT);
    drop(raw);
    // Opening again (a restart after the upgrade) changes nothing.
    assert_v1_contents(&Store::open(&state).unwrap());
}

#[test]
fn a_store_from_a_newer_version_is_refused_untouched() {
    let (_dir, state) = v1_copy();
    let db = state.join(DB_FILE);
    let raw = rusqlite::Connection::open(&db).unwrap();
    raw.pragma_update(None, "user_version", store_schema::CURRENT + 1)
        .unwrap();
    drop(raw);
    let before = std::fs::read(&db).unwrap();
    let err = Store::open(&state).unwrap_err();
    assert!(matches!(err, StoreError::Schema { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("written by a newer Latchkey") && !text.contains('\n'),
        "{text}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file was changed");
}

#[test]
fn a_backup_taken_while_in_use_restores_a_store_that_admits_the_same_phone() {
    let (dir, state) = v1_copy();
    let live = Store::open(&state).unwrap();
    // Writes keep coming while the backup runs (the gateway's last-seen and audit rows).
    let writer = {
        let live = live.clone();
        std::thread::spawn(move || {
            for i in 0..200u64 {
                live.audit(
                    T + 1000 + i,
                    AuditKind::CameraWatched,
                    None,
                    None,
                    "a write during the backup",
                )
                .unwrap();
            }
        })
    };
    std::fs::write(state.join("admin-cert.pem"), b"CERT").unwrap();
    std::fs::write(state.join("admin-key.pem"), b"KEY").unwrap();
    let file = dir.path().join("backup.db");
    let made = backup::backup(&state, &file).unwrap();
    writer.join().unwrap();
    assert_eq!(made.devices, 4);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        backup::backup(&state, &file).is_err(),
        "an existing file was overwritten"
    );

    let fresh = dir.path().join("restored");
    let refused = backup::restore(&fresh, &file, true).unwrap_err();
    assert!(refused.to_string().contains("stop it first"), "{refused}");
    let restored = backup::restore(&fresh, &file, false).unwrap();
    assert_eq!(restored.devices, 4);
    assert_eq!(std::fs::read(fresh.join("admin-key.pem")).unwrap(), b"KEY");
    let store = Store::open(&fresh).unwrap();
    assert_v1_contents(&store);
    let (record, _) = store.device_by_key(&phone(1)).unwrap().unwrap();
    assert_eq!(record.state, DeviceState::Active);
}

#[test]
fn restore_refuses_what_is_not_a_backup_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all, just text").unwrap();
    let state = dir.path().join("state");
    assert!(backup::restore(&state, &junk, false).is_err());
    assert!(!state.join(DB_FILE).exists());
    let (_d, v1) = v1_copy();
    let raw = rusqlite::Connection::open(v1.join(DB_FILE)).unwrap();
    raw.pragma_update(None, "user_version", store_schema::CURRENT + 1)
        .unwrap();
    drop(raw);
    let err = backup::restore(&state, &v1.join(DB_FILE), false).unwrap_err();
    assert!(err.to_string().contains("newer Latchkey"), "{err}");
    assert!(!state.join(DB_FILE).exists());
}
