//! Made `store-v1.db` with the store code as shipped before schema versions (main at
//! dfa5d76), run once as `cargo run -p latchkey-gateway --example make_store_v1 -- DIR`.
//! Kept for the record; it is not built (later store APIs may differ). The migration
//! tests read the committed database and check every value written here.

use latchkey_gateway::store::{PairingClaim, PairingParams, Store};
use latchkey_pairing::{CameraGrant, DeviceState, Keypair, PairingSecret, Role, SessionPsk};
use rand::rngs::OsRng;

const T: u64 = 1_780_000_000;

fn pair(store: &Store, n: u8, name: &str, role: Role, cameras: CameraGrant, now: u64) -> String {
    let params = PairingParams {
        name: Some(name.to_string()),
        role,
        cameras,
        device_expires_at: None,
        auto_confirm: false,
        window_expires_at: now + 300,
    };
    let secret = PairingSecret::generate(&mut OsRng).unwrap();
    let window = store.open_pairing(&params, &secret, now).unwrap();
    let key = Keypair::from_secret([n; 32]).public();
    let psk = SessionPsk::generate(&mut OsRng).unwrap();
    let code = format!("{n}{n}{n}{n}{n}{n}");
    let claim = PairingClaim {
        window,
        public_key: &key,
        suggested_name: "suggested",
        psk: &psk,
        code: &code,
        addr: "192.0.2.10:50000",
    };
    store.complete_pairing(&claim, now + 1).unwrap().record.id.to_string()
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let store = Store::open(&dir).unwrap();
    store.gateway_key(|| Keypair::from_secret([9; 32]), T).unwrap();
    let owner = pair(&store, 1, "owner-phone", Role::Owner, CameraGrant::All, T);
    store.set_device_state(&owner, DeviceState::Active, T + 2, "owner (cli)").unwrap();
    let viewer = pair(&store, 2, "kitchen-tablet", Role::Viewer, CameraGrant::All, T + 10);
    store.set_device_state(&viewer, DeviceState::Active, T + 12, "owner (cli)").unwrap();
    let grant = CameraGrant::parse_list("front,garden");
    store.set_device_grants(&viewer, &grant, Some(T + 86_400 * 365), T + 13, "owner (cli)").unwrap();
    let gone = pair(&store, 3, "lost-phone", Role::Guest, CameraGrant::parse_list("front"), T + 20);
    store.set_device_state(&gone, DeviceState::Revoked, T + 22, "owner (cli)").unwrap();
    let _pending = pair(&store, 4, "new-phone", Role::Viewer, CameraGrant::All, T + 30);
    store.touch(&owner, "198.51.100.7:40000", T + 40).unwrap();
    store.approve_remote(true, false, 3600, T + 50, "owner (cli)").unwrap();
    store.end_remote_approval(T + 60, "owner (cli)").unwrap();
    store.approve_remote(true, true, 7200, T + 70, "owner (web)").unwrap();
    store.audit(T + 80, "test-note", None, Some("192.0.2.99:1"), "made for the migration tests").unwrap();
    store.audit_camera(T + 81, "camera-viewed", Some(&owner), "front", None, "live view").unwrap();
    store.set_admin_password("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", true, T + 90, "owner (setup link)").unwrap();
    println!("owner={owner} viewer={viewer} revoked={gone}");
}
