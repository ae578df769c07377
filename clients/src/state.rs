//! The phone's stored state: its static key and the gateway it paired with.
//!
//! One JSON file, mode 0600, replaced atomically (write a temporary file, fsync, rename),
//! so a crash mid-write leaves the old or the new record, never a torn one.

use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use latchkey_pairing::{DeviceState, Keypair, PublicKey, SessionPsk, keys};
use serde::{Deserialize, Serialize};

use crate::ClientError;

const FILE: &str = "client.json";

/// What the phone remembers about its gateway.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GatewayRecord {
    /// The gateway's name.
    pub name: String,
    /// The gateway's static key, unpadded base64url.
    pub public_key: String,
    /// The id the gateway gave this phone.
    pub device_id: String,
    /// Pending or active, as of pairing.
    pub state: DeviceState,
    /// The per-device session PSK, unpadded base64url.
    pub session_psk: String,
    /// Addresses to try, most recently learned first.
    pub addresses: Vec<SocketAddr>,
    /// The short code shown at pairing.
    pub code: String,
}

/// The whole stored state.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClientState {
    /// This phone's static secret key, unpadded base64url. Never sent anywhere.
    pub device_secret: String,
    /// The paired gateway, if any.
    pub gateway: Option<GatewayRecord>,
}

impl std::fmt::Debug for GatewayRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The session PSK is a secret: never in a Debug string.
        f.debug_struct("GatewayRecord")
            .field("name", &self.name)
            .field("public_key", &self.public_key)
            .field("device_id", &self.device_id)
            .field("state", &self.state)
            .field("addresses", &self.addresses)
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientState")
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

/// Creates `dir` if needed and makes it private (0700).
pub(crate) fn private_dir(dir: &Path) -> Result<(), ClientError> {
    fs::create_dir_all(dir)
        .map_err(|e| ClientError::io(format!("creating {}", dir.display()), e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| ClientError::io(format!("securing {}", dir.display()), e))
}

/// Replaces `path` (in `dir`) with `bytes` atomically, mode 0600: a temporary file,
/// fsync, rename, fsync of the directory. A crash leaves the old or the new file.
pub(crate) fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

/// Addresses the gateway just reported first, then the ones already known.
pub(crate) fn merge_addresses(learned: &[SocketAddr], known: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut merged = learned.to_vec();
    for a in known {
        if !merged.contains(a) {
            merged.push(*a);
        }
    }
    merged
}

impl ClientState {
    /// The phone's key pair.
    pub fn keypair(&self) -> Result<Keypair, ClientError> {
        let secret = keys::b64_key(&self.device_secret)
            .map_err(|reason| ClientError::CorruptState(format!("device_secret: {reason}")))?;
        Ok(Keypair::from_secret(secret))
    }
}

impl GatewayRecord {
    /// The gateway's key.
    pub fn gateway_key(&self) -> Result<PublicKey, ClientError> {
        PublicKey::from_b64(&self.public_key)
            .map_err(|reason| ClientError::CorruptState(format!("gateway public_key: {reason}")))
    }

    /// The session PSK.
    pub fn psk(&self) -> Result<SessionPsk, ClientError> {
        SessionPsk::from_b64(&self.session_psk)
            .map_err(|reason| ClientError::CorruptState(format!("session_psk: {reason}")))
    }
}

/// Where the phone keeps its state.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Uses `dir`, creating it with mode 0700 if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, ClientError> {
        let dir = dir.into();
        private_dir(&dir)?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// Loads the state, if any was saved.
    pub fn load(&self) -> Result<Option<ClientState>, ClientError> {
        let path = self.file();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ClientError::io(format!("reading {}", path.display()), e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ClientError::CorruptState(format!("{}: {e}", path.display())))
    }

    /// Saves the state atomically with mode 0600.
    pub fn save(&self, state: &ClientState) -> Result<(), ClientError> {
        let path = self.file();
        let text = serde_json::to_vec_pretty(state)
            .map_err(|e| ClientError::CorruptState(format!("encoding state: {e}")))?;
        write_private(&self.dir, &path, &text)
            .map_err(|e| ClientError::io(format!("writing {}", path.display()), e))
    }
}
