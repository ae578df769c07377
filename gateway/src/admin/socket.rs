//! The admin socket: how `latchkey pair|confirm|devices|revoke|...` reach the daemon.
//!
//! A Unix socket, mode 0600 in the state directory (0700), or 0660 where
//! `LATCHKEY_SOCKET` puts it (the packaged service: /run/latchkey, 0750 to the `latchkey`
//! group); the peer must own the state directory, be root, or be in the socket's group
//! ([`super::access`]).
//! One JSON request per line ([`AdminRequest`]), one JSON answer per line ([`Reply`]):
//! `{"ok":true,"result":...}` or `{"ok":false,"error":"..."}`, where `result` is the
//! request's typed answer (`admin/answers.rs`, `portmap/report.rs`); [`call`] reads it
//! back as that type.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use latchkey_pairing::Role;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::actions::{self, ActionError, PairRequest};
use super::answers::PairAnswer;
use super::device_ref::DeviceRef;
use crate::Gateway;
use crate::store::AuditFilter;

/// Socket file in the state directory.
pub const SOCKET_FILE: &str = "admin.sock";
pub use super::actions::MAX_PAIRING_TTL_SECS;
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
        /// Id or unique name (refused when it is neither).
        device: DeviceRef,
    },
    /// Revoke a device and cut its sessions.
    Revoke {
        /// Id or unique name (refused when it is neither).
        device: DeviceRef,
    },
    /// List devices.
    Devices,
    /// The latest pairing window and its failed attempts.
    PairingStatus,
    /// List cameras.
    Cameras,
    /// Add, change, remove or test a camera (`admin/cameras.rs`).
    Camera {
        /// What to do.
        action: super::cameras::CameraRequest,
    },
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
    /// The camera quarantine's phone-home report (`admin/quarantine.rs`).
    QuarantineReport {
        /// One camera (name or address), or all.
        camera: Option<String>,
        /// Only what was seen at or after this Unix time.
        since: Option<u64>,
    },
    /// The cameras, addresses and MACs the owner's router rules would cover.
    QuarantineLockdown,
}

/// One answer line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the request was carried out.
    pub ok: bool,
    /// The request's answer, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// One line saying what went wrong and what to do, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    fn done(result: Value) -> Self {
        Self {
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    fn failed(error: String) -> Self {
        Self {
            ok: false,
            result: None,
            error: Some(error),
        }
    }
}

/// Binds the socket, replacing a stale one left by a crash.
pub fn bind(dir: &Path) -> anyhow::Result<UnixListener> {
    let path = super::access::bind_path(dir);
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
    // 0600 in the private state directory; 0660 where LATCHKEY_SOCKET shares it.
    let mode = if path.starts_with(dir) { 0o600 } else { 0o660 };
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("securing {}", path.display()))?;
    Ok(listener)
}

/// Serves admin requests until `shutdown` is cancelled.
pub async fn serve(listener: UnixListener, gw: Arc<Gateway>, shutdown: CancellationToken) {
    let allowed =
        super::access::Allowed::read(&gw.state_dir, &super::access::bind_path(&gw.state_dir));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let cred = stream.peer_cred().map(|c| (c.uid(), c.gid())).ok();
        if !cred.is_some_and(|(uid, gid)| allowed.admits(uid, gid)) {
            tracing::warn!(
                uid = ?cred.map(|c| c.0),
                "admin socket: refused a user who neither owns the state directory nor is in the socket's group"
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
            Ok(req) => match handle(req, gw.clone()).await {
                Ok(result) => Reply::done(result),
                Err(e) => Reply::failed(format!("{e:#}")),
            },
            Err(e) => Reply::failed(format!("bad request: {e}")),
        };
        let mut text = serde_json::to_string(&answer)?;
        text.push('\n');
        write.write_all(text.as_bytes()).await?;
    }
    Ok(())
}

use tokio::io::AsyncReadExt as _;

/// A typed answer as the socket's JSON.
fn typed<T: serde::Serialize>(r: Result<T, ActionError>) -> Result<Value, ActionError> {
    r.and_then(|v| {
        serde_json::to_value(v).map_err(|_| ActionError::Internal("encoding the answer"))
    })
}

async fn handle(req: AdminRequest, gw: Arc<Gateway>) -> Result<Value, ActionError> {
    const BY: &str = "owner (cli)";
    let gw = &gw;
    match req {
        AdminRequest::Pair {
            name,
            role,
            cameras,
            expires_secs,
            auto_confirm,
            ttl_secs,
        } => {
            let offer = actions::pair(
                gw,
                PairRequest {
                    name,
                    role,
                    cameras,
                    expires_secs,
                    auto_confirm,
                    ttl_secs,
                },
            )
            .await?;
            typed(Ok(PairAnswer {
                uri: offer.uri,
                expires_in_secs: offer.expires_in_secs,
            }))
        }
        AdminRequest::PairingStatus => typed(actions::pairing_status(gw).await),
        AdminRequest::Confirm { device } => typed(actions::confirm(gw, &device, BY).await),
        AdminRequest::Revoke { device } => typed(actions::revoke(gw, &device, BY).await),
        AdminRequest::Devices => typed(actions::devices(gw).await),
        AdminRequest::Cameras => typed(super::cameras::list(gw).await),
        AdminRequest::Camera { action } => super::cameras::handle(gw, action, BY).await,
        AdminRequest::RemoteStatus => typed(actions::remote_status(gw).await),
        AdminRequest::RemotePlan {
            ipv4,
            ipv6,
            lease_secs,
        } => typed(actions::remote_plan(gw, ipv4, ipv6, lease_secs).await),
        AdminRequest::RemoteOpen {
            ipv4,
            ipv6,
            lease_secs,
        } => typed(actions::remote_open(gw, ipv4, ipv6, lease_secs, BY).await),
        AdminRequest::RemoteClose => typed(actions::remote_close(gw, BY).await),
        AdminRequest::RemoteAudit { remove } => typed(actions::remote_audit(gw, remove).await),
        AdminRequest::QuarantineReport { camera, since } => {
            typed(Ok(super::quarantine::report(gw, camera.as_deref(), since)))
        }
        AdminRequest::QuarantineLockdown => typed(Ok(super::quarantine::lockdown_plan(gw))),
        AdminRequest::Audit { limit } => {
            let page = actions::audit(gw, AuditFilter::default(), 0, limit.clamp(1, 10_000));
            typed(page.await.map(|p| p.rows))
        }
    }
}

/// Sends one request to the running daemon and returns its result.
pub async fn request(state_dir: &Path, req: &AdminRequest) -> anyhow::Result<Value> {
    let path: PathBuf = super::access::connect_path(state_dir);
    let stream = tokio::time::timeout(Duration::from_secs(5), UnixStream::connect(&path))
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting to {}", path.display()))?;
    if let Err(e) = &stream
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        anyhow::bail!("{}", super::access::denied(&path));
    }
    let stream = stream.with_context(|| {
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
    let reply: Reply = serde_json::from_str(&answer).context("decoding the gateway's answer")?;
    if reply.ok {
        Ok(reply.result.unwrap_or(Value::Null))
    } else {
        anyhow::bail!("{}", reply.error.as_deref().unwrap_or("unknown error"))
    }
}

/// Sends one request and reads its answer as `T`, the request's answer type.
pub async fn call<T: DeserializeOwned>(state_dir: &Path, req: &AdminRequest) -> anyhow::Result<T> {
    decode(request(state_dir, req).await?)
}

/// A raw answer as `T`.
pub fn decode<T: DeserializeOwned>(answer: Value) -> anyhow::Result<T> {
    serde_json::from_value(answer).map_err(|e| {
        anyhow::anyhow!(
            "reading the gateway's answer: {e}; is the running gateway a different version? restart it"
        )
    })
}
