//! The Latchkey gateway daemon: the library behind the `latchkey` binary.
//!
//! [`run`] takes already-bound listeners (so tests can use port 0) and a shutdown
//! future, and serves until it resolves:
//!
//! ```text
//!  phones ──TCP──▶ listener (Noise handshakes, silence to strangers)
//!                    └─▶ api::router over HTTP/2 inside the channel
//!                          └─▶ live (fMP4 / MJPEG bodies) ◀── fanout ◀── camera::hub ◀── cameras
//!  owner CLI ──unix socket──▶ admin::socket ──▶ store (SQLite) + sessions (revocation)
//!  owner browser ──HTTPS──▶ admin::https
//!  portmap::PortMapper ──(only under a standing owner approval)──▶ home router (UPnP IGD)
//! ```

pub mod admin;
pub mod api;
pub mod api_cameras;
pub mod api_error;
pub mod audit_flood;
pub mod backup;
pub mod body;
pub mod camera;
pub mod clock;
pub mod config;
pub mod doctor;
pub mod fanout;
pub mod first_message;
pub mod hibernate;
pub mod limits;
pub mod listener;
pub mod live;
pub mod live_guard;
pub mod mp4;
pub mod net;
pub mod portmap;
pub mod preauth;
pub mod quarantine;
pub mod refuse;
pub mod service_cli;
pub mod sessions;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use latchkey_pairing::{Keypair, UnixTime};
use rand::rngs::OsRng;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::sessions::SessionRegistry;
use crate::store::Store;

/// Seconds since the Unix epoch, from the system clock.
pub fn unix_now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The sockets `run` serves, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// Noise (phones).
    pub noise: TcpListener,
    /// Admin HTTPS.
    pub admin: TcpListener,
}

/// State shared by every task of the daemon.
#[derive(Debug)]
pub struct Gateway {
    /// The state directory.
    pub state_dir: PathBuf,
    /// The store.
    pub store: Store,
    /// The gateway's static Noise key.
    pub keys: Keypair,
    /// Configuration.
    pub config: Config,
    /// Live sessions.
    pub sessions: SessionRegistry,
    /// The Noise listener's address.
    pub noise_addr: SocketAddr,
    /// Last accepted session hello timestamp per device (replay guard, WireGuard-style);
    /// persisted with last-seen and at shutdown, read back from the store on a miss.
    pub hello_times: Mutex<std::collections::HashMap<String, u64>>,
    /// Rate limit and aggregation of routine audit rows per device.
    pub routine_audit: audit_flood::RoutineAudit,
    /// Live camera streams per device.
    pub live_streams: limits::LiveStreams,
    /// Held while a pairing handshake is in progress: one pairing at a time.
    pub pairing_busy: tokio::sync::Mutex<()>,
    /// When and from where each device's last session start was written to the store.
    last_recorded: Mutex<std::collections::HashMap<String, (UnixTime, std::net::IpAddr)>>,
    /// Limits on unauthenticated peers.
    pub preauth_limits: preauth::Limits,
    /// The cameras: one upstream each, fanned out to viewers.
    pub cameras: camera::hub::Hub,
    /// Remote access: router mappings under the owner's approval.
    pub remote: Arc<portmap::PortMapper>,
    /// The camera port's tallies and state (`quarantine/`).
    pub quarantine: quarantine::Quarantine,
    /// Wall and monotonic time (simulated in tests).
    pub clock: clock::Clock,
}

impl Gateway {
    /// Opens the store and the gateway key.
    pub fn open(
        state_dir: PathBuf,
        config: Config,
        noise_addr: SocketAddr,
    ) -> anyhow::Result<Arc<Self>> {
        Self::open_with(state_dir, config, noise_addr, Arc::new(camera::RealOpener))
    }

    /// Like [`Gateway::open`], with cameras connected through `opener` (benchmarks and
    /// tests feed synthetic cameras this way).
    pub fn open_with(
        state_dir: PathBuf,
        config: Config,
        noise_addr: SocketAddr,
        opener: Arc<dyn camera::CameraOpener>,
    ) -> anyhow::Result<Arc<Self>> {
        Self::open_at(state_dir, config, noise_addr, opener, clock::Clock::real())
    }

    /// Like [`Gateway::open_with`], on `clock` (tests pass a simulated one).
    pub fn open_at(
        state_dir: PathBuf,
        config: Config,
        noise_addr: SocketAddr,
        opener: Arc<dyn camera::CameraOpener>,
        clock: clock::Clock,
    ) -> anyhow::Result<Arc<Self>> {
        let store = Store::open(&state_dir).context("opening the state store")?;
        let keys = store
            .gateway_key(
                || {
                    Keypair::generate(&mut OsRng)
                        .unwrap_or_else(|_| Keypair::from_secret(rand::random()))
                },
                clock.unix_now(),
            )
            .context("loading the gateway key")?;
        let options = camera::hub::HubOptions {
            grace: config.camera_grace,
            ..Default::default()
        };
        let cameras = camera::hub::Hub::new(&config.cameras, opener, options);
        admin::cameras::load_stored(&store, &cameras).context("loading the stored cameras")?;
        let remote = Arc::new(portmap::PortMapper::new(
            store.clone(),
            noise_addr.port(),
            &config.name,
            cameras.configs(),
            clock.clone(),
        ));
        let quarantine = quarantine::Quarantine::new(store.clone());
        Ok(Arc::new(Self {
            quarantine,
            cameras,
            state_dir,
            remote,
            store,
            keys,
            config,
            sessions: SessionRegistry::default(),
            noise_addr,
            hello_times: Mutex::default(),
            routine_audit: audit_flood::RoutineAudit::default(),
            live_streams: limits::LiveStreams::default(),
            pairing_busy: tokio::sync::Mutex::new(()),
            last_recorded: Mutex::default(),
            preauth_limits: preauth::Limits::default(),
            clock,
        }))
    }

    /// Whether to write "last seen" for a new session: once a minute per device, or when it
    /// comes from another address. Each write is an fsync (`synchronous=FULL`), and a
    /// phone that reconnects often should not wear out a Pi's SD card or slow handshakes.
    pub fn should_record_session(&self, device: &str, peer: SocketAddr, now: UnixTime) -> bool {
        let mut seen = self.last_recorded.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(device) {
            Some((at, ip)) if now.saturating_sub(*at) < 60 && *ip == peer.ip() => false,
            _ => {
                seen.insert(device.to_string(), (now, peer.ip()));
                true
            }
        }
    }

    /// Addresses a phone can reach the gateway at: the listener's own address, or every
    /// LAN address when it listens on all of them; and, while remote access is open, the
    /// router's external IPv4 address and port and the gateway's global IPv6 address.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let mut out = net::reachable_addresses(self.noise_addr);
        for a in self.remote.published() {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }
}

/// Serves until `shutdown` is cancelled.
pub async fn run(
    listeners: Listeners,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let admin_addr = listeners
        .admin
        .local_addr()
        .context("reading admin listener address")?;
    let tls = admin::tls::load_or_create(&gateway.state_dir)
        .context("preparing the admin HTTPS certificate")?;
    let socket = admin::socket::bind(&gateway.state_dir).context("opening the admin socket")?;
    println!("listening noise {}", gateway.noise_addr);
    println!("listening admin https://{admin_addr}");
    let web = admin::web::Web::new(gateway.clone(), tls.fingerprint.clone(), admin_addr);
    if !web.has_password() {
        // First run: no default password, ever. The owner sets one through this link,
        // valid 15 minutes and once; the token rides in the fragment, never sent in logs.
        let token = web.auth.new_setup_token(gateway.clock.instant());
        let host = net::reachable_addresses(admin_addr)
            .first()
            .copied()
            .unwrap_or(admin_addr);
        println!("setup https://{host}/setup#{token}");
    }
    // Printed last: the harness (and an owner's script) know the start-up lines are
    // complete once the fingerprint is out.
    println!("admin certificate sha256 {}", tls.fingerprint);
    tracing::info!(gateway_key = %gateway.keys.public(), cipher = latchkey_pairing::CIPHER_BACKEND, "ready");
    let noise = tokio::spawn(listener::serve(
        listeners.noise,
        gateway.clone(),
        shutdown.clone(),
    ));
    let admin_https = tokio::spawn(admin::https::serve(
        listeners.admin,
        tls,
        web,
        shutdown.clone(),
    ));
    let admin_socket = tokio::spawn(admin::socket::serve(
        socket,
        gateway.clone(),
        shutdown.clone(),
    ));
    let portmap = tokio::spawn(gateway.remote.clone().run(shutdown.clone()));
    shutdown.cancelled().await;
    for task in [noise, admin_https, admin_socket, portmap] {
        if let Err(e) = task.await {
            tracing::warn!("task ended badly during shutdown: {e}");
        }
    }
    // The replay guard survives the restart: store every hello accepted since last-seen.
    let hellos: Vec<(String, u64)> = gateway
        .hello_times
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(d, t)| (d.clone(), *t))
        .collect();
    if let Err(e) = gateway.store.record_hellos(&hellos) {
        tracing::warn!("saving the session replay guard: {e}");
    }
    let _ = std::fs::remove_file(admin::access::bind_path(&gateway.state_dir));
    Ok(())
}
