//! The admin socket: how `latchkey pair|confirm|devices|revoke|...` reach the daemon.
//!
//! A Unix socket in the state directory, mode 0600 inside a 0700 directory, and the
//! peer's uid must own the state directory (or be root). One JSON request per line, one
//! JSON answer per line: `{"ok":true,"result":...}` or `{"ok":false,"error":"..."}`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use latchkey_pairing::{CameraGrant, DeviceState, PairingSecret, PairingUri, Role};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::store::{PairingParams, StoreError};
use crate::{Gateway, unix_now};

/// Socket file in the state directory.
pub const SOCKET_FILE: &str = "admin.sock";
/// Longest pairing window the owner may ask for (HomeKit's 5 minutes).
pub const MAX_PAIRING_TTL_SECS: u64 = 300;
/// Largest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;

/// One admin command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum AdminRequest {
    /// Open a pairing window and return the URI.
    Pair {
        /// Device name.
        name: Option<String>,
        /// Role.
        role: Role,
        /// Cameras (`all` or a comma list).
        cameras: String,
        /// Device access lifetime in seconds.
        expires_secs: Option<u64>,
        /// Skip the owner's confirmation.
        auto_confirm: bool,
        /// Pairing code lifetime in seconds (at most 300).
        ttl_secs: u64,
    },
    /// Confirm a pending device.
    Confirm {
        /// Id or unique name.
        device: String,
    },
    /// Revoke a device and cut its sessions.
    Revoke {
        /// Id or unique name.
        device: String,
    },
    /// List devices.
    Devices,
    /// The latest pairing window and its failed attempts.
    PairingStatus,
    /// List cameras.
    Cameras,
    /// Read the audit log.
    Audit {
        /// Most rows.
        limit: u32,
    },
    /// Remote access: router, external address, approval, mappings, diagnosis.
    RemoteStatus,
    /// What `remote-open` would ask the router (asks it nothing but discovery).
    RemotePlan {
        /// An IPv4 port mapping.
        ipv4: bool,
        /// An IPv6 pinhole.
        ipv6: bool,
        /// Lease in seconds.
        lease_secs: u32,
    },
    /// Record the owner's approval and open remote access.
    RemoteOpen {
        /// An IPv4 port mapping.
        ipv4: bool,
        /// An IPv6 pinhole.
        ipv6: bool,
        /// Lease in seconds.
        lease_secs: u32,
    },
    /// End the approval and remove every mapping, verified on the router.
    RemoteClose,
    /// List every mapping on the router; optionally remove one by index.
    RemoteAudit {
        /// Index to remove.
        remove: Option<u32>,
    },
}

/// Binds the socket, replacing a stale one left by a crash.
pub fn bind(dir: &Path) -> anyhow::Result<UnixListener> {
    let path = dir.join(SOCKET_FILE);
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            anyhow::bail!(
                "another gateway is already running with state directory {}",
                dir.display()
            );
        }
        fs::remove_file(&path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("securing {}", path.display()))?;
    Ok(listener)
}

/// Serves admin requests until `shutdown` is cancelled.
pub async fn serve(listener: UnixListener, gw: Arc<Gateway>, shutdown: CancellationToken) {
    let owner = fs::metadata(&gw.state_dir).map(|m| m.uid()).ok();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let uid = stream.peer_cred().map(|c| c.uid()).ok();
        if uid.is_none() || (uid != owner && uid != Some(0)) {
            tracing::warn!(
                ?uid,
                "admin socket: refused a user who does not own the state directory"
            );
            continue;
        }
        let gw = gw.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, gw).await {
                tracing::debug!("admin connection: {e}");
            }
        });
    }
}

async fn connection(stream: UnixStream, gw: Arc<Gateway>) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_REQUEST as u64)).lines();
    while let Some(line) = lines.next_line().await? {
        let answer = match serde_json::from_str::<AdminRequest>(&line) {
            Ok(req) => {
                let gw = gw.clone();
                match handle(req, gw).await {
                    Ok(result) => json!({ "ok": true, "result": result }),
                    Err(e) => json!({ "ok": false, "error": format!("{e:#}") }),
                }
            }
            Err(e) => json!({ "ok": false, "error": format!("bad request: {e}") }),
        };
        let mut text = answer.to_string();
        text.push('\n');
        write.write_all(text.as_bytes()).await?;
    }
    Ok(())
}

use tokio::io::AsyncReadExt as _;

async fn handle(req: AdminRequest, gw: Arc<Gateway>) -> anyhow::Result<Value> {
    let now = unix_now();
    match req {
        AdminRequest::Pair {
            name,
            role,
            cameras,
            expires_secs,
            auto_confirm,
            ttl_secs,
        } => {
            let ttl = ttl_secs.clamp(1, MAX_PAIRING_TTL_SECS);
            let grant = CameraGrant::parse_list(&cameras);
            let params = PairingParams {
                name: name.filter(|n| !n.trim().is_empty()),
                role,
                cameras: grant,
                device_expires_at: expires_secs.map(|s| now.saturating_add(s)),
                auto_confirm,
                window_expires_at: now + ttl,
            };
            let uri = open_pairing(&gw, params).await?;
            Ok(json!({ "uri": uri.encode(), "expires_in_secs": ttl }))
        }
        AdminRequest::Confirm { device } => {
            let id = resolve(&gw, &device).await?;
            let store = gw.store.clone();
            let id2 = id.clone();
            let state = tokio::task::spawn_blocking(move || {
                store.set_device_state(&id2, DeviceState::Active, now, "owner (cli)")
            })
            .await??;
            if state == DeviceState::Revoked {
                anyhow::bail!(
                    "device {id} is revoked; a revocation cannot be undone (pair the phone again with a new key)"
                );
            }
            Ok(json!({ "id": id, "state": state }))
        }
        AdminRequest::Revoke { device } => {
            let id = resolve(&gw, &device).await?;
            let store = gw.store.clone();
            let id2 = id.clone();
            // Durable first: the answer is only sent once the revocation is on disk.
            let persisted = tokio::task::spawn_blocking(move || {
                store.set_device_state(&id2, DeviceState::Revoked, now, "owner (cli)")
            })
            .await?;
            let cut = gw.sessions.cut(&id);
            match persisted {
                Ok(_) => Ok(json!({ "id": id, "state": "revoked", "sessions_closed": cut })),
                Err(e) => Err(anyhow::anyhow!(
                    "device {id}: {cut} live sessions were cut, but the revocation is NOT yet saved: {e}"
                )),
            }
        }
        AdminRequest::PairingStatus => {
            let store = gw.store.clone();
            let row = tokio::task::spawn_blocking(move || store.latest_pairing_window()).await??;
            Ok(serde_json::to_value(row)?)
        }
        AdminRequest::Devices => {
            let store = gw.store.clone();
            let rows = tokio::task::spawn_blocking(move || store.devices()).await??;
            let rows: Vec<Value> = rows
                .into_iter()
                .map(|d| {
                    let live = gw.sessions.count(&d.id);
                    let mut v = serde_json::to_value(&d).unwrap_or(Value::Null);
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert("sessions".into(), json!(live));
                    }
                    v
                })
                .collect();
            Ok(Value::Array(rows))
        }
        AdminRequest::Cameras => Ok(serde_json::to_value(gw.cameras.statuses())?),
        AdminRequest::RemoteStatus => gw.remote.status().await,
        AdminRequest::RemotePlan {
            ipv4,
            ipv6,
            lease_secs,
        } => gw.remote.plan(ipv4, ipv6, lease_secs).await,
        AdminRequest::RemoteOpen {
            ipv4,
            ipv6,
            lease_secs,
        } => {
            if lease_secs == 0 {
                anyhow::bail!(
                    "a lease of 0 means forever to a router; Latchkey never asks for one"
                );
            }
            gw.remote.open(ipv4, ipv6, lease_secs, "owner (cli)").await
        }
        AdminRequest::RemoteClose => gw.remote.close("owner (cli)").await,
        AdminRequest::RemoteAudit { remove } => gw.remote.audit(remove).await,
        AdminRequest::Audit { limit } => {
            let store = gw.store.clone();
            let rows = tokio::task::spawn_blocking(move || store.audit_log(limit.clamp(1, 10_000)))
                .await??;
            Ok(serde_json::to_value(rows)?)
        }
    }
}

/// Opens a pairing window (closing any other) and returns the URI for the QR code.
pub async fn open_pairing(gw: &Arc<Gateway>, params: PairingParams) -> anyhow::Result<PairingUri> {
    if let CameraGrant::Only(ids) = &params.cameras {
        for id in ids {
            if !gw.config.cameras.iter().any(|c| &c.id == id) {
                anyhow::bail!("no camera {id:?} (see `latchkey cameras`)");
            }
        }
    }
    let secret = PairingSecret::generate(&mut OsRng)?;
    let store = gw.store.clone();
    let stored = secret.clone();
    tokio::task::spawn_blocking(move || store.open_pairing(&params, &stored, unix_now())).await??;
    Ok(PairingUri {
        gateway_key: gw.keys.public(),
        secret,
        name: gw.config.name.clone(),
        addresses: gw.addresses(),
    })
}

/// Finds a device by exact id, else by unique name.
async fn resolve(gw: &Arc<Gateway>, what: &str) -> anyhow::Result<String> {
    let store = gw.store.clone();
    let devices = tokio::task::spawn_blocking(move || store.devices()).await??;
    if devices.iter().any(|d| d.id == what) {
        return Ok(what.to_string());
    }
    let named: Vec<_> = devices.iter().filter(|d| d.name == what).collect();
    match named.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(StoreError::NoSuchDevice(what.to_string()).into()),
        _ => anyhow::bail!(
            "{} devices are named {what:?}; use the id (see `latchkey devices`)",
            named.len()
        ),
    }
}

/// Sends one request to the running daemon and returns its result.
pub async fn request(state_dir: &Path, req: &AdminRequest) -> anyhow::Result<Value> {
    let path: PathBuf = state_dir.join(SOCKET_FILE);
    let stream = tokio::time::timeout(Duration::from_secs(5), UnixStream::connect(&path))
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting to {}", path.display()))?
        .with_context(|| {
            format!(
                "the gateway is not running with state directory {} (no admin socket at {}); start it with `latchkey --state {} run`",
                state_dir.display(),
                path.display(),
                state_dir.display()
            )
        })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    let answer = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| anyhow::anyhow!("the gateway did not answer within 30 s"))??
        .ok_or_else(|| {
            anyhow::anyhow!("the gateway closed the admin connection without answering")
        })?;
    let v: Value = serde_json::from_str(&answer).context("decoding the gateway's answer")?;
    if v.get("ok").and_then(Value::as_bool) == Some(true) {
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    } else {
        let msg = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        anyhow::bail!("{msg}")
    }
}
