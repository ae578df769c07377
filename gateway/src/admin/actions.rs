//! Owner actions, one implementation for every door: the admin socket (CLI), the LAN web
//! UI's JSON API and an owner's phone inside the Noise channel all call these.
//!
//! Each action takes `by`, the actor written into the audit log ("owner (cli)",
//! "owner (web)", "device ID (owner phone)"), and returns a typed error whose
//! [`ActionError::status`] tells the HTTP doors which status code to answer.

use std::sync::Arc;

use latchkey_pairing::{CameraGrant, DeviceId, DeviceState, PairingSecret, PairingUri, Role};
use rand::rngs::OsRng;

use latchkey_pairing::api_types::{Invitation, ListedState};

use super::answers::{Confirmed, DeviceInfo, GrantsChanged, PairingStatus, Revoked, listing};
use super::device_ref::DeviceRef;

use crate::Gateway;
use crate::portmap::PortmapError;
use crate::portmap::report::{Closed, Plan, RouterAudit, Status};
use crate::store::AuditKind;
use crate::store::{AuditFilter, AuditPage, PairingParams, StoreError};

/// Longest pairing window the owner may ask for (HomeKit's 5 minutes).
pub const MAX_PAIRING_TTL_SECS: u64 = 300;
/// Largest audit page.
pub const MAX_AUDIT_PAGE: u32 = 500;

/// Why an owner action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// No device has that id or name.
    #[error("no device {0:?} (see the device list)")]
    NoSuchDevice(String),
    /// No camera with that id.
    #[error("no camera {0:?} (see `latchkey cameras`)")]
    NoSuchCamera(String),
    /// The request itself is wrong; the message says how.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the device's state.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error("{op}: {source}")]
    Store {
        /// What was being done.
        op: &'static str,
        /// The cause.
        #[source]
        source: Box<StoreError>,
    },
    /// A revocation cut the live sessions but could not be saved.
    #[error(
        "device {id}: {cut} live sessions were cut, but the revocation is NOT yet saved: {source}"
    )]
    NotPersisted {
        /// The device.
        id: DeviceId,
        /// Sessions cut.
        cut: usize,
        /// The cause.
        #[source]
        source: Box<StoreError>,
    },
    /// Remote access (the router) failed; the message is the port mapper's explanation.
    #[error(transparent)]
    Remote(#[from] PortmapError),
    /// A background task died.
    #[error("internal error while {0}")]
    Internal(&'static str),
}

impl ActionError {
    /// The HTTP status the web and phone APIs answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::NoSuchDevice(_) | Self::NoSuchCamera(_) => 404,
            Self::Invalid(_) => 400,
            Self::Conflict(_) => 409,
            Self::Remote(_) => 502,
            Self::Store { .. } | Self::NotPersisted { .. } | Self::Internal(_) => 500,
        }
    }
}

/// Runs a store call off the async threads.
async fn blocking<T: Send + 'static>(
    gw: &Arc<Gateway>,
    op: &'static str,
    f: impl FnOnce(&crate::store::Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ActionError> {
    gw.store.run(f).await.map_err(|source| match source {
        StoreError::NoSuchDevice(d) => ActionError::NoSuchDevice(d),
        source => ActionError::Store {
            op,
            source: Box::new(source),
        },
    })
}

/// What the owner asks for when minting a pairing code.
#[derive(Clone, Debug)]
pub struct PairRequest {
    /// Device name (else the phone's suggestion).
    pub name: Option<String>,
    /// Role.
    pub role: Role,
    /// Cameras: `all` or a comma list.
    pub cameras: String,
    /// Device access lifetime in seconds.
    pub expires_secs: Option<u64>,
    /// Skip the owner's confirmation.
    pub auto_confirm: bool,
    /// Pairing code lifetime in seconds (clamped to 1..=300).
    pub ttl_secs: u64,
}

/// Opens a pairing window (closing any other) and returns the URI for the QR code.
pub async fn pair(gw: &Arc<Gateway>, req: PairRequest) -> Result<Invitation, ActionError> {
    let now = gw.clock.unix_now();
    let ttl = req.ttl_secs.clamp(1, MAX_PAIRING_TTL_SECS);
    let params = PairingParams {
        name: req
            .name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        role: req.role,
        cameras: CameraGrant::parse_list(&req.cameras),
        device_expires_at: req.expires_secs.map(|s| now.saturating_add(s)),
        auto_confirm: req.auto_confirm,
        window_expires_at: now + ttl,
    };
    if let Some(name) = params.name.clone() {
        blocking(gw, "checking the device name", move |s| {
            s.check_new_name(&name)
        })
        .await?
        .map_err(|e| ActionError::Invalid(e.to_string()))?;
    }
    let uri = open_pairing(gw, params).await?;
    Ok(Invitation {
        uri: uri.encode(),
        expires_in_secs: ttl,
        expires_at: now + ttl,
    })
}

fn check_cameras(gw: &Gateway, grant: &CameraGrant) -> Result<(), ActionError> {
    if let CameraGrant::Only(ids) = grant {
        for id in ids {
            if gw.cameras.source(id).is_none() {
                return Err(ActionError::Invalid(format!(
                    "no camera {id:?} (see the camera list)"
                )));
            }
        }
    }
    Ok(())
}

/// Opens a pairing window with `params` and returns the URI.
pub async fn open_pairing(
    gw: &Arc<Gateway>,
    params: PairingParams,
) -> Result<PairingUri, ActionError> {
    check_cameras(gw, &params.cameras)?;
    let secret = PairingSecret::generate(&mut OsRng)
        .map_err(|_| ActionError::Internal("drawing a pairing secret"))?;
    let (stored, now) = (secret.clone(), gw.clock.unix_now());
    blocking(gw, "opening a pairing window", move |s| {
        s.open_pairing(&params, &stored, now)
    })
    .await?;
    Ok(PairingUri {
        gateway_key: gw.keys.public(),
        secret,
        name: gw.config.name.clone(),
        addresses: gw.addresses(),
    })
}

/// Finds a device by exact id, else by unique name.
pub async fn resolve(gw: &Arc<Gateway>, what: &DeviceRef) -> Result<DeviceId, ActionError> {
    let devices = blocking(gw, "listing devices", |s| s.devices()).await?;
    if let DeviceRef::Id(id) = what
        && devices.iter().any(|d| d.id == *id)
    {
        return Ok(id.clone());
    }
    let what = what.as_str();
    let named: Vec<_> = devices.iter().filter(|d| d.name == what).collect();
    match named.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(ActionError::NoSuchDevice(what.to_string())),
        _ => Err(ActionError::Conflict(format!(
            "{} devices are named {what:?}; use the id",
            named.len()
        ))),
    }
}

/// Confirms a pending device.
pub async fn confirm(
    gw: &Arc<Gateway>,
    device: &DeviceRef,
    by: &str,
) -> Result<Confirmed, ActionError> {
    let id = resolve(gw, device).await?;
    let (id2, by, now) = (id.clone(), by.to_string(), gw.clock.unix_now());
    let state = blocking(gw, "confirming a device", move |s| {
        s.set_device_state(&id2, DeviceState::Active, now, &by)
    })
    .await?;
    if state == DeviceState::Revoked {
        return Err(ActionError::Conflict(format!(
            "device {id} is revoked; a revocation cannot be undone (pair the phone again with a new key)"
        )));
    }
    Ok(Confirmed {
        id,
        state: state.into(),
    })
}

/// Revokes a device durably, then cuts its live sessions.
pub async fn revoke(
    gw: &Arc<Gateway>,
    device: &DeviceRef,
    by: &str,
) -> Result<Revoked, ActionError> {
    let id = resolve(gw, device).await?;
    let (id2, by, now) = (id.clone(), by.to_string(), gw.clock.unix_now());
    // Durable first: the answer is only sent once the revocation is on disk.
    let persisted = gw
        .store
        .run(move |s| s.set_device_state(&id2, DeviceState::Revoked, now, &by))
        .await;
    // Cut even when saving failed: the owner wants this phone out now.
    let cut = gw.sessions.cut(id.as_str());
    match persisted {
        Ok(_) => Ok(Revoked {
            id,
            state: ListedState::Revoked,
            sessions_closed: u64::try_from(cut).unwrap_or(u64::MAX),
        }),
        Err(source) => Err(ActionError::NotPersisted {
            id,
            cut,
            source: Box::new(source),
        }),
    }
}

/// Rejects a device that is still pending (its key is revoked for good). An active
/// device is revoked, not rejected: the two words must not be confused in the audit log.
pub async fn reject(
    gw: &Arc<Gateway>,
    device: &DeviceRef,
    by: &str,
) -> Result<Revoked, ActionError> {
    let id = resolve(gw, device).await?;
    let id2 = id.clone();
    let rows = blocking(gw, "listing devices", |s| s.devices()).await?;
    match rows.iter().find(|d| d.id == id2).map(|d| d.state) {
        Some(DeviceState::Pending) => revoke(gw, &id.into(), &format!("{by}, rejected")).await,
        Some(_) => Err(ActionError::Conflict(format!(
            "device {id} is not pending; revoke it instead"
        ))),
        None => Err(ActionError::NoSuchDevice(id.to_string())),
    }
}

/// Changes a device's cameras and expiry (`expires_secs` from now; `None` = never).
pub async fn set_grants(
    gw: &Arc<Gateway>,
    device: &DeviceRef,
    cameras: &str,
    expires_secs: Option<u64>,
    by: &str,
) -> Result<GrantsChanged, ActionError> {
    let id = resolve(gw, device).await?;
    let grant = CameraGrant::parse_list(cameras);
    check_cameras(gw, &grant)?;
    let now = gw.clock.unix_now();
    let expires_at = expires_secs.map(|s| now.saturating_add(s));
    let (id2, by, g2) = (id.clone(), by.to_string(), grant.clone());
    blocking(gw, "changing a device's grants", move |s| {
        s.set_device_grants(&id2, &g2, expires_at, now, &by)
    })
    .await?;
    // Live streams re-check the record per request; an expiry moved into the past takes
    // effect at once for live sessions too.
    if expires_at.is_some_and(|e| e <= gw.clock.unix_now()) {
        gw.sessions.cut(id.as_str());
    }
    Ok(GrantsChanged {
        id,
        cameras: grant.to_string(),
        expires_at,
    })
}

/// The latest pairing window (state, failed attempts, expiry), or null if none was opened.
pub async fn pairing_status(gw: &Arc<Gateway>) -> Result<PairingStatus, ActionError> {
    blocking(gw, "reading the pairing window", |s| {
        s.latest_pairing_window()
    })
    .await
}

/// Every device with its live session count. `state` is what the allow-list does with
/// the device now: a pending or active device past its `expires_at` shows `expired`.
pub async fn devices(gw: &Arc<Gateway>) -> Result<Vec<DeviceInfo>, ActionError> {
    let rows = blocking(gw, "listing devices", |s| s.devices()).await?;
    let now = gw.clock.unix_now();
    Ok(rows
        .into_iter()
        .map(|d| {
            let live = gw.sessions.count(d.id.as_str());
            listing(d, live, now)
        })
        .collect())
}

/// One page of the audit log.
pub async fn audit(
    gw: &Arc<Gateway>,
    filter: AuditFilter,
    offset: u32,
    limit: u32,
) -> Result<AuditPage, ActionError> {
    let limit = limit.clamp(1, MAX_AUDIT_PAGE);
    blocking(gw, "reading the audit log", move |s| {
        s.audit_page(&filter, offset, limit)
    })
    .await
}

/// Records a refused owner action (and logs it), rate-limited and aggregated per device
/// (`audit_flood`): a flood of refusals costs a few rows and one summary.
pub async fn audit_refusal(gw: &Arc<Gateway>, device: &DeviceId, addr: &str, what: &str) {
    let what = latchkey_pairing::text::escape(what);
    tracing::debug!(device = %device, addr, "refused owner action: {what}");
    let row = crate::audit_flood::Row {
        kind: AuditKind::OwnerActionRefused,
        device: Some(device),
        addr,
        detail: &what,
    };
    crate::audit_flood::limited(gw, device, row).await;
}

/// `remote status`.
pub async fn remote_status(gw: &Arc<Gateway>) -> Result<Status, ActionError> {
    Ok(gw.remote.status().await?)
}

/// `remote open` dry run: what would be asked of the router.
pub async fn remote_plan(
    gw: &Arc<Gateway>,
    ipv4: bool,
    ipv6: bool,
    lease_secs: u32,
) -> Result<Plan, ActionError> {
    Ok(gw.remote.plan(ipv4, ipv6, lease_secs).await?)
}

/// `remote open`: records the approval and maps.
pub async fn remote_open(
    gw: &Arc<Gateway>,
    ipv4: bool,
    ipv6: bool,
    lease_secs: u32,
    by: &str,
) -> Result<Status, ActionError> {
    if lease_secs == 0 {
        return Err(ActionError::Invalid(
            "a lease of 0 means forever to a router; Latchkey never asks for one".into(),
        ));
    }
    Ok(gw.remote.open(ipv4, ipv6, lease_secs, by).await?)
}

/// `remote close`: ends the approval and removes every mapping.
pub async fn remote_close(gw: &Arc<Gateway>, by: &str) -> Result<Closed, ActionError> {
    Ok(gw.remote.close(by).await?)
}

/// `remote audit`: every mapping on the router; optionally removes one by index.
pub async fn remote_audit(
    gw: &Arc<Gateway>,
    remove: Option<u32>,
) -> Result<RouterAudit, ActionError> {
    Ok(gw.remote.audit(remove).await?)
}
