//! Latchkey for apps: the `latchkey-client` library behind a UniFFI interface, so Swift,
//! Kotlin and Python call it without knowing Noise, HTTP/2 or keys.
//!
//! ```text
//!  app ──▶ Latchkey(data_dir, SecretStore) ── pair / homes / forget / connect ──▶ Session
//!  Session ── cameras, snapshot, player_url (loopback HLS/fMP4), devices, confirm, revoke,
//!             invite, audit, close
//! ```
//!
//! Every async call runs on a tokio runtime this library owns (the app brings none); the
//! foreign side only awaits. Dropping (cancelling) a call aborts its task, which drops
//! its sockets: nothing is left half-done (see `run`).

mod store;
mod types;

use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};

use latchkey_client::player::{Connector, Player};
use latchkey_client::{Connection, ConnectionObserver, ConnectionState, FileKeyStore, Phone};

pub use store::{SecretStore, SecretStoreError};
pub use types::{
    AuditEntry, Camera, ConnectionStatus, Device, Home, Invitation, InviteRequest, LatchkeyError,
    Paired, RefusalReason,
};

uniffi::setup_scaffolding!();

/// The library's runtime: two worker threads are plenty for a phone's few connections.
static RUNTIME: LazyLock<Option<tokio::runtime::Runtime>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("latchkey")
        .enable_all()
        .build()
        .ok()
});

/// Aborts the task when the awaiting side goes away.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` on the library's runtime and waits for it from any executor. If the caller
/// drops the wait (a cancelled Swift Task, Kotlin coroutine or asyncio task), the task is
/// aborted: its sockets close and nothing it had not finished is saved.
async fn run<T: Send + 'static>(
    fut: impl Future<Output = Result<T, LatchkeyError>> + Send + 'static,
) -> Result<T, LatchkeyError> {
    let Some(rt) = RUNTIME.as_ref() else {
        return Err(LatchkeyError::Storage {
            message: "The Latchkey library could not start. Restart the app.".into(),
        });
    };
    let handle = rt.spawn(fut);
    let _guard = AbortOnDrop(handle.abort_handle());
    handle.await.unwrap_or_else(|_| {
        Err(LatchkeyError::Unreachable {
            message: "The call was interrupted. Try again.".into(),
        })
    })
}

/// Receives connection states (called on a library thread: hop to the UI thread).
#[uniffi::export(with_foreign)]
pub trait ConnectionListener: Send + Sync {
    /// The home's connection is now `status`.
    fn on_status(&self, status: ConnectionStatus);
}

struct Listener(Arc<dyn ConnectionListener>);

impl ConnectionObserver for Listener {
    fn on_state(&self, state: ConnectionState) {
        self.0.on_status(state.into());
    }
}

/// The phone: its homes, with their secrets in the app's [`SecretStore`].
#[derive(Debug, uniffi::Object)]
pub struct Latchkey {
    phone: Arc<Phone>,
}

#[uniffi::export]
impl Latchkey {
    /// Opens the phone's data in `data_dir` (the app's private directory; nothing secret
    /// is written there) with secrets in `secrets` (Keychain, Android Keystore).
    #[uniffi::constructor]
    pub fn new(
        data_dir: String,
        secrets: Arc<dyn SecretStore>,
    ) -> Result<Arc<Self>, LatchkeyError> {
        let keys = Arc::new(store::Bridge(secrets));
        let phone = Phone::open(data_dir, keys)?;
        Ok(Arc::new(Self {
            phone: Arc::new(phone),
        }))
    }

    /// Like `new`, with secrets in files of mode 0600 under `data_dir/keys` (desktops,
    /// tests; on a phone use the platform's key store).
    #[uniffi::constructor]
    pub fn with_file_store(data_dir: String) -> Result<Arc<Self>, LatchkeyError> {
        let keys = FileKeyStore::open(std::path::Path::new(&data_dir).join("keys"))
            .map_err(|e| latchkey_client::ClientError::KeyStore(e.0))?;
        let phone = Phone::open(data_dir, Arc::new(keys))?;
        Ok(Arc::new(Self {
            phone: Arc::new(phone),
        }))
    }

    /// The homes paired on this phone.
    pub fn homes(&self) -> Result<Vec<Home>, LatchkeyError> {
        Ok(self.phone.homes()?.into_iter().map(Home::from).collect())
    }

    /// Pairs with a home from its pairing code (the QR code's text), under a new device
    /// key. Show the returned short code; the owner compares it with the gateway's.
    pub async fn pair(&self, uri: String, phone_name: String) -> Result<Paired, LatchkeyError> {
        let phone = self.phone.clone();
        run(async move { Ok(paired(phone.pair(&uri, &phone_name).await?)) }).await
    }

    /// Pairs from a photo of the QR code (PNG bytes).
    pub async fn pair_qr(&self, png: Vec<u8>, phone_name: String) -> Result<Paired, LatchkeyError> {
        let phone = self.phone.clone();
        run(async move { Ok(paired(phone.pair_qr(&png, &phone_name).await?)) }).await
    }

    /// Forgets a home and its secrets on this phone.
    pub fn forget(&self, home_id: String) -> Result<(), LatchkeyError> {
        Ok(self.phone.forget(&home_id)?)
    }

    /// Connects to a home (every known address at once), telling `listener` how it goes.
    pub async fn connect(
        &self,
        home_id: String,
        listener: Option<Arc<dyn ConnectionListener>>,
    ) -> Result<Arc<Session>, LatchkeyError> {
        let phone = self.phone.clone();
        run(async move {
            let observer = listener.map(|l| Arc::new(Listener(l)) as Arc<dyn ConnectionObserver>);
            let conn = phone.connect(&home_id, observer).await?;
            Ok(Arc::new(Session {
                conn: Arc::new(conn),
                phone,
                home_id,
                player: Mutex::new(None),
            }))
        })
        .await
    }
}

fn paired(o: latchkey_client::PairOutcome) -> Paired {
    Paired {
        home_id: o.gateway_key,
        gateway_name: o.gateway_name,
        device_id: o.device_id,
        code: o.code,
        pending: o.state == latchkey_pairing::DeviceState::Pending,
    }
}

/// An open connection to one home. After the app was in the background, check
/// `is_closed` and connect again.
#[derive(Debug, uniffi::Object)]
pub struct Session {
    conn: Arc<Connection>,
    phone: Arc<Phone>,
    home_id: String,
    player: Mutex<Option<Player>>,
}

#[uniffi::export]
impl Session {
    /// The gateway address this session runs over.
    pub fn address(&self) -> String {
        self.conn.peer_addr().to_string()
    }

    /// True once the channel is gone (revoked, network change, gateway restart).
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// The cameras this phone may watch.
    pub async fn cameras(&self) -> Result<Vec<Camera>, LatchkeyError> {
        let conn = self.conn.clone();
        run(async move {
            Ok(conn
                .cameras()
                .await?
                .into_iter()
                .map(Camera::from)
                .collect())
        })
        .await
    }

    /// A camera's latest picture as JPEG bytes (MJPEG, snapshot and demo cameras).
    pub async fn snapshot(&self, camera: String) -> Result<Vec<u8>, LatchkeyError> {
        let conn = self.conn.clone();
        run(async move { Ok(conn.snapshot(&camera).await?.to_vec()) }).await
    }

    /// The local player endpoint's base URL, `http://127.0.0.1:PORT/TOKEN` (started on
    /// first use, stopped with the session). Play `BASE/cameras/ID/live.m3u8` (HLS, for
    /// AVPlayer and ExoPlayer), `BASE/cameras/ID/live.mp4` or `BASE/cameras/ID/live.mjpeg`.
    /// The URL is a secret of this launch: never log or share it.
    pub async fn player_url(&self) -> Result<String, LatchkeyError> {
        if let Some(p) = self
            .player
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(p.base_url().to_string());
        }
        let (phone, home) = (self.phone.clone(), self.home_id.clone());
        let connector: Connector = Arc::new(move || {
            let (phone, home) = (phone.clone(), home.clone());
            Box::pin(async move { phone.connect(&home, None).await })
        });
        let player = run(async move {
            Player::start(connector)
                .await
                .map_err(|e| latchkey_client::ClientError::Io {
                    op: "starting the local player".into(),
                    source: e,
                })
                .map_err(LatchkeyError::from)
        })
        .await?;
        let mut slot = self.player.lock().unwrap_or_else(|p| p.into_inner());
        let url = slot.get_or_insert(player).base_url().to_string();
        Ok(url)
    }

    /// Every device paired with the gateway (owner only).
    pub async fn devices(&self) -> Result<Vec<Device>, LatchkeyError> {
        let conn = self.conn.clone();
        run(async move {
            Ok(conn
                .devices()
                .await?
                .into_iter()
                .map(Device::from)
                .collect())
        })
        .await
    }

    /// Confirms a pending device after the owner compared its short code (owner only).
    pub async fn confirm(&self, device: String) -> Result<(), LatchkeyError> {
        let conn = self.conn.clone();
        run(async move { Ok(conn.confirm(&device).await.map(|_| ())?) }).await
    }

    /// Revokes a device (id or unique name); its streams end at once. Returns the number
    /// of live sessions cut (owner only).
    pub async fn revoke(&self, device: String) -> Result<u64, LatchkeyError> {
        let conn = self.conn.clone();
        run(async move { Ok(conn.revoke(&device).await?.sessions_closed) }).await
    }

    /// Mints a one-time invitation for a guest or viewer (owner only).
    pub async fn invite(&self, request: InviteRequest) -> Result<Invitation, LatchkeyError> {
        let conn = self.conn.clone();
        run(async move {
            let i = conn.invite(&request.into()).await?;
            Ok(Invitation {
                uri: i.uri,
                expires_in_secs: i.expires_in_secs,
            })
        })
        .await
    }

    /// The newest `limit` audit rows (owner only).
    pub async fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, LatchkeyError> {
        let conn = self.conn.clone();
        run(async move {
            Ok(conn
                .audit(limit)
                .await?
                .rows
                .into_iter()
                .map(AuditEntry::from)
                .collect())
        })
        .await
    }

    /// Stops the player endpoint; the connection closes when the app drops the session.
    pub fn close(&self) {
        self.player.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}
