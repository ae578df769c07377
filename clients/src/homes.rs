//! Several homes on one phone, each with its own device key (so two gateways cannot link
//! the phone), secrets in the app's [`KeyStore`], everything else in a small private file.
//!
//! ```text
//!  homes.json (0600, data dir)            KeyStore (Keychain / Keystore / files)
//!  [{id = gateway key, name, device_id,   latchkey.<id>.device_key   32-byte secret
//!    state, addresses, code}]             latchkey.<id>.session_psk  32-byte secret
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use latchkey_pairing::{DeviceState, Keypair, PairingUri, keys};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};

use crate::connect::{connect_to, learn, pair_with};
use crate::keystore::{KeyStore, Secret};
use crate::state::{GatewayRecord, private_dir, write_private};
use crate::status::ConnectionObserver;
use crate::{ClientError, Connection, PairOutcome};

const HOMES_FILE: &str = "homes.json";

/// A home as the phone remembers it (no secrets here).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Home {
    /// The home's id on this phone: its gateway's key, unpadded base64url.
    pub id: String,
    /// The gateway's name.
    pub name: String,
    /// The id the gateway gave this phone.
    pub device_id: String,
    /// Pending until the first session is admitted, then active.
    pub state: DeviceState,
    /// Addresses to try, most recently learned first.
    pub addresses: Vec<SocketAddr>,
    /// The short code shown at pairing.
    pub code: String,
}

/// The phone: its homes and where it keeps their secrets.
#[derive(Debug)]
pub struct Phone {
    dir: PathBuf,
    keys: Arc<dyn KeyStore>,
    /// Serialises read-modify-write of `homes.json` within this process.
    file: Mutex<()>,
}

fn key_name(home: &str, what: &str) -> String {
    format!("latchkey.{home}.{what}")
}

impl Phone {
    /// Opens the phone's data in `dir` (created 0700) with secrets in `keys`.
    pub fn open(dir: impl Into<PathBuf>, keys: Arc<dyn KeyStore>) -> Result<Self, ClientError> {
        let dir = dir.into();
        private_dir(&dir)?;
        Ok(Self {
            dir,
            keys,
            file: Mutex::new(()),
        })
    }

    /// Every paired home.
    pub fn homes(&self) -> Result<Vec<Home>, ClientError> {
        let path = self.dir.join(HOMES_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::CorruptState(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(ClientError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// One home by id.
    pub fn home(&self, id: &str) -> Result<Home, ClientError> {
        self.homes()?
            .into_iter()
            .find(|h| h.id == id)
            .ok_or(ClientError::NotPaired)
    }

    /// Changes the homes file under the lock (atomic replace).
    fn update(&self, change: impl FnOnce(&mut Vec<Home>)) -> Result<(), ClientError> {
        let _held = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let mut homes = self.homes()?;
        change(&mut homes);
        let path = self.dir.join(HOMES_FILE);
        let bytes = serde_json::to_vec_pretty(&homes)
            .map_err(|e| ClientError::CorruptState(format!("encoding homes: {e}")))?;
        write_private(&self.dir, &path, &bytes)
            .map_err(|e| ClientError::io(format!("writing {}", path.display()), e))
    }

    /// Pairs with the gateway in the pairing URI `uri` (the QR code's text) under a fresh
    /// device key, so this home cannot be linked with another. Pairing the same gateway
    /// again replaces the home. Returns the short code to compare with the gateway.
    pub async fn pair(&self, uri: &str, name: &str) -> Result<PairOutcome, ClientError> {
        let uri = PairingUri::parse(uri)?;
        let keypair = Keypair::generate(&mut OsRng)?;
        let paired = pair_with(&uri, &keypair, name).await?;
        // No await below: a cancelled pairing stores nothing, a finished one everything.
        let id = paired.record.public_key.clone();
        let psk = keys::b64_key(&paired.record.session_psk)
            .map_err(|e| ClientError::CorruptState(format!("session key: {e}")))?;
        self.put(&id, "device_key", keypair.secret_bytes())?;
        self.put(&id, "session_psk", &psk)?;
        let r = paired.record;
        let home = Home {
            id: id.clone(),
            name: r.name,
            device_id: r.device_id,
            state: r.state,
            addresses: r.addresses,
            code: r.code,
        };
        self.update(|homes| {
            homes.retain(|h| h.id != id);
            homes.push(home);
        })?;
        Ok(paired.outcome)
    }

    /// Pairs from a photo of the QR code (PNG bytes).
    #[cfg(feature = "qr")]
    pub async fn pair_qr(&self, picture: &[u8], name: &str) -> Result<PairOutcome, ClientError> {
        let uri = crate::qr::decode(picture)?;
        self.pair(&uri, name).await
    }

    /// Forgets a home: its record and both its secrets. The gateway still lists the
    /// device until the owner revokes it.
    pub fn forget(&self, id: &str) -> Result<(), ClientError> {
        self.update(|homes| homes.retain(|h| h.id != id))?;
        for what in ["device_key", "session_psk"] {
            self.keys.delete(&key_name(id, what)).map_err(keystore)?;
        }
        Ok(())
    }

    fn put(&self, home: &str, what: &str, bytes: &[u8]) -> Result<(), ClientError> {
        self.keys
            .put(&key_name(home, what), &Secret::new(bytes.to_vec()))
            .map_err(keystore)
    }

    fn secret(&self, home: &str, what: &str) -> Result<Secret, ClientError> {
        self.keys
            .get(&key_name(home, what))
            .map_err(keystore)?
            .ok_or_else(|| {
                ClientError::CorruptState(format!(
                    "the {what} of this home is missing from the key store"
                ))
            })
    }

    /// Connects to a home (happy eyeballs over its addresses), telling `observer` how it
    /// goes; what the gateway's hello says about its addresses is saved. Dropping the
    /// future mid-way drops every attempt and saves nothing.
    pub async fn connect(
        &self,
        id: &str,
        observer: Option<Arc<dyn ConnectionObserver>>,
    ) -> Result<Connection, ClientError> {
        let home = self.home(id)?;
        let device_key = self.secret(id, "device_key")?;
        let psk = self.secret(id, "session_psk")?;
        let secret: [u8; 32] = device_key
            .expose()
            .try_into()
            .map_err(|_| ClientError::CorruptState("the device key has the wrong length".into()))?;
        let mut record = GatewayRecord {
            name: home.name.clone(),
            public_key: home.id.clone(),
            device_id: home.device_id.clone(),
            state: home.state,
            session_psk: keys::b64(psk.expose()),
            addresses: home.addresses.clone(),
            code: home.code.clone(),
        };
        let keypair = Keypair::from_secret(secret);
        let conn = connect_to(&record, &keypair, observer.as_deref()).await?;
        if learn(&mut record, conn.server_hello()) {
            self.update(|homes| {
                if let Some(h) = homes.iter_mut().find(|h| h.id == record.public_key) {
                    h.addresses = record.addresses.clone();
                    h.state = record.state;
                }
            })?;
        }
        Ok(conn)
    }
}

fn keystore(e: crate::keystore::KeyStoreError) -> ClientError {
    ClientError::KeyStore(e.0)
}
