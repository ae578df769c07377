//! The gateway API, served to paired phones inside the Noise channel (HTTP/2).
//!
//! Every request carries the [`DeviceContext`] of the session it came from, and the
//! device's record is re-read and re-checked on each request, so a revocation or an
//! expiry takes effect even between the session checks.
//!
//! Cameras: `GET /v1/cameras` lists the ones this device may watch with their live
//! status; `/v1/cameras/{id}/live.mp4`, `/live.mjpeg` and `/snapshot.jpg` serve them.
//! A camera that does not exist and one that is not granted get the same 404, so a
//! guest cannot probe which cameras exist. Live bodies end at the device's expiry, and
//! with the whole HTTP/2 connection when a revocation cuts the session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use latchkey_pairing::text::escape;
use latchkey_pairing::{
    Action, DeviceId, DeviceRecord, DeviceSummary, ErrorCode, GatewayInfo, InvitationRequest, Role,
};
use serde::Deserialize;

use crate::admin::actions::{self, ActionError, PairRequest};
use crate::admin::device_ref::DeviceRef;
use crate::api_error::{self, error, no_such_camera};
use crate::camera::hub::{Unavailable, Watch};
use crate::camera::{CameraSource, CameraStatus, Frame};
use crate::live::{self, LiveError};
use crate::store::AuditFilter;
use crate::store::AuditKind;
use crate::{Gateway, unix_now};
use crate::{body, limits, live_guard};

/// How long a viewer waits for a camera's first picture before being told it is offline.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(15);

/// Who is asking: attached to every request of a session.
#[derive(Clone, Debug)]
pub struct DeviceContext {
    /// Device id (one copy per device, shared with its session guards).
    pub id: Arc<str>,
    /// Where the session comes from.
    pub peer: SocketAddr,
    /// Cancelling it ends the session (a stream whose viewer stopped reading does).
    pub cut: tokio_util::sync::CancellationToken,
}

/// The router phones talk to.
pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/cameras", get(cameras))
        .route("/v1/gateway", get(gateway_info))
        .route("/v1/cameras/{id}/live.mp4", get(live_mp4))
        .route("/v1/cameras/{id}/live.mjpeg", get(live_mjpeg))
        .route("/v1/cameras/{id}/snapshot.jpg", get(snapshot))
        .route("/v1/devices", get(owner_devices))
        .route("/v1/devices/{id}/revoke", post(owner_revoke))
        .route("/v1/devices/{id}/confirm", post(owner_confirm))
        .route("/v1/invitations", post(owner_invite))
        .route("/v1/audit", get(owner_audit))
        .merge(crate::api_cameras::owner_routes())
        .fallback(api_error::not_found)
        .method_not_allowed_fallback(api_error::method_not_allowed)
        .layer(middleware::from_fn_with_state(gw.clone(), authorize))
        .with_state(gw)
}

/// Re-reads the device and refuses it if it may no longer hold a session.
async fn authorize(
    State(gw): State<Arc<Gateway>>,
    Extension(ctx): Extension<DeviceContext>,
    mut req: Request,
    next: Next,
) -> Response {
    let store = gw.store.clone();
    let id = DeviceId(ctx.id.to_string());
    let record = match tokio::task::spawn_blocking(move || store.device_record(&id)).await {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => return error(ErrorCode::DeviceUnknown, "device unknown"),
        Ok(Err(e)) => {
            tracing::error!("refusing a request, the store is unreadable: {e}");
            return error(
                ErrorCode::StoreUnavailable,
                "the gateway's store is unreadable",
            );
        }
        Err(_) => return error(ErrorCode::Internal, "internal error"),
    };
    if gw.sessions.is_blocked(&record.id.0) {
        return api_error::denied(latchkey_pairing::Denied::Revoked);
    }
    if let Err(denied) = record.admit(gw.clock.unix_now()) {
        return api_error::denied(denied);
    }
    req.extensions_mut().insert(record);
    next.run(req).await
}

async fn cameras(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
) -> Json<Vec<CameraStatus>> {
    let now = gw.clock.unix_now();
    Json(
        gw.cameras
            .statuses()
            .into_iter()
            .filter(|c| device.may_view(&c.id, now).is_ok())
            .collect(),
    )
}

/// What a live request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Fragmented MP4.
    Mp4,
    /// `multipart/x-mixed-replace` JPEGs.
    Mjpeg,
    /// One JPEG.
    Snapshot,
}

/// Checks the output kind, starts watching, and waits for a first frame. The caller has
/// already decided that the asker may watch `id`.
async fn start(gw: &Gateway, id: &str, output: Output) -> Result<(Watch, Frame), Response> {
    let Some(source) = gw.cameras.source(id) else {
        return Err(no_such_camera());
    };
    let is_video = matches!(source, CameraSource::Rtsp { .. });
    let mismatch = match output {
        Output::Mp4 if !is_video => Some(LiveError::NotVideo),
        Output::Mjpeg if is_video => Some(LiveError::NotJpeg),
        Output::Snapshot if is_video => Some(LiveError::NoSnapshot),
        _ => None,
    };
    if let Some(e) = mismatch {
        return Err(api_error::live(&e));
    }
    let Some(mut watch) = gw.cameras.watch(id) else {
        return Err(no_such_camera());
    };
    match watch.first_frame(FIRST_FRAME_TIMEOUT).await {
        Ok(frame) => Ok((watch, frame)),
        Err(e @ (Unavailable::Offline(_) | Unavailable::Timeout(_) | Unavailable::Ended)) => {
            Err(error(ErrorCode::CameraOffline, &e.to_string()))
        }
    }
}

/// Who watches a stream, for the `camera-watched` audit row.
#[derive(Clone, Debug)]
pub struct Watcher {
    /// The device, or `None` for the owner at the admin UI.
    pub device: Option<String>,
    /// Where the request came from.
    pub addr: Option<String>,
    /// The row's detail (`live.mp4`, `owner (web)`).
    pub detail: String,
}

/// Serves camera `id` as `output`, ending live bodies at `until`. Shared by the phone
/// API (after its grant check) and the owner's admin UI. A live stream that is actually
/// served (status 200) is audited as `camera-watched` for `watcher`; refusals, offline
/// cameras and snapshots write no row.
pub async fn serve_camera(
    gw: &Gateway,
    id: &str,
    output: Output,
    until: Option<tokio::time::Instant>,
    watcher: Option<Watcher>,
) -> Response {
    let (watch, first) = match start(gw, id, output).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let body = match output {
        Output::Mp4 => live::mp4_body(watch, first, until).map(|b| streaming("video/mp4", b)),
        Output::Mjpeg => live::mjpeg_body(watch, first, until)
            .map(|b| streaming(&crate::camera::multipart::content_type(), b)),
        Output::Snapshot => {
            drop(watch);
            live::snapshot(first).map(|jpeg| {
                (
                    [
                        (header::CONTENT_TYPE, "image/jpeg"),
                        (header::CACHE_CONTROL, "no-store"),
                    ],
                    jpeg,
                )
                    .into_response()
            })
        }
    };
    let response = match body {
        Ok(r) => r,
        Err(e) => return api_error::live(&e),
    };
    if let Some(w) = watcher.filter(|_| output != Output::Snapshot) {
        audit_watch(gw, id, w).await;
    }
    response
}

async fn audit_watch(gw: &Gateway, camera: &str, w: Watcher) {
    let (store, now) = (gw.store.clone(), gw.clock.unix_now());
    let cam = camera.to_string();
    let done = tokio::task::spawn_blocking(move || {
        store.audit_camera(
            now,
            AuditKind::CameraWatched,
            w.device.as_deref(),
            &cam,
            w.addr.as_deref(),
            &w.detail,
        )
    })
    .await;
    if let Ok(Err(e)) = done {
        tracing::error!("writing the audit log: {e}");
    }
}

/// The phone API's camera door: the grant check (same 404 for "missing" and "not
/// yours"), then the stream, audited naming device, camera and address once served.
async fn device_camera(
    gw: Arc<Gateway>,
    device: DeviceRecord,
    ctx: DeviceContext,
    id: String,
    output: Output,
) -> Response {
    if device.may_view(&id, gw.clock.unix_now()).is_err() || gw.cameras.source(&id).is_none() {
        return no_such_camera();
    }
    // Counted per device before anything is held for it (PROTOCOL.md "Limits").
    let permit = if output == Output::Snapshot {
        None
    } else {
        match gw
            .live_streams
            .try_take(&device.id.0, limits::MAX_LIVE_STREAMS_PER_DEVICE)
        {
            Some(p) => Some(p),
            None => {
                return error(
                    ErrorCode::TooManyStreams,
                    "too many live streams for this device; close one first",
                );
            }
        }
    };
    let detail = if output == Output::Mp4 {
        "live.mp4"
    } else {
        "live.mjpeg"
    };
    let watcher = Watcher {
        device: Some(device.id.0.clone()),
        addr: Some(ctx.peer.to_string()),
        detail: detail.into(),
    };
    let response = serve_camera(&gw, &id, output, deadline(&device), Some(watcher)).await;
    match permit {
        Some(permit) if response.status() == StatusCode::OK => response
            .map(|body| live_guard::guard(body, permit, ctx.cut.clone(), limits::STALL_TIMEOUT)),
        _ => response,
    }
}

/// When this device's access ends, as a tokio deadline for its streams.
fn deadline(device: &DeviceRecord) -> Option<tokio::time::Instant> {
    let end = device.expires_at?;
    let left = end.saturating_sub(unix_now());
    Some(tokio::time::Instant::now() + Duration::from_secs(left))
}

fn streaming(content_type: &str, body: live::BodyStream) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

async fn live_mp4(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
    Extension(ctx): Extension<DeviceContext>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return api_error::bad_path();
    };
    device_camera(gw, device, ctx, id, Output::Mp4).await
}

async fn live_mjpeg(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
    Extension(ctx): Extension<DeviceContext>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return api_error::bad_path();
    };
    device_camera(gw, device, ctx, id, Output::Mjpeg).await
}

async fn snapshot(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
    Extension(ctx): Extension<DeviceContext>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return api_error::bad_path();
    };
    device_camera(gw, device, ctx, id, Output::Snapshot).await
}

async fn gateway_info(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
) -> Json<GatewayInfo> {
    Json(GatewayInfo {
        name: gw.config.name.clone(),
        addresses: gw.addresses(),
        device: DeviceSummary {
            id: device.id.clone(),
            name: device.name.clone(),
            role: device.role,
            cameras: device.cameras.to_string(),
        },
    })
}

// Owner actions from a phone. Each checks the role on the freshly read record, and a
// refusal is audited with the asking device and its address, so the owner sees a viewer
// or guest trying.

/// Refuses (403, audited) unless `device` may perform `action` now.
async fn owner_only(
    gw: &Arc<Gateway>,
    device: &DeviceRecord,
    ctx: &DeviceContext,
    action: Action,
    what: &str,
) -> Result<String, Response> {
    match device.may(action, gw.clock.unix_now()) {
        Ok(()) => Ok(format!(
            "owner phone {} ({})",
            device.id.0,
            escape(&device.name)
        )),
        Err(denied) => {
            // Ids first; every peer-controlled string escaped (the `{id}` of the path too).
            let detail = format!(
                "device {} ({}, {:?}) asked to {}: {denied}",
                device.id.0,
                escape(&device.name),
                device.role,
                escape(what)
            );
            actions::audit_refusal(gw, &device.id, &ctx.peer.to_string(), &detail).await;
            Err(api_error::denied(denied))
        }
    }
}

fn answer<T: serde::Serialize>(r: Result<T, ActionError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => api_error::action(&e),
    }
}

async fn owner_devices(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
    Extension(ctx): Extension<DeviceContext>,
) -> Response {
    if let Err(r) = owner_only(&gw, &device, &ctx, Action::ListDevices, "list devices").await {
        return r;
    }
    answer(actions::devices(&gw).await)
}

async fn owner_revoke(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
    Extension(ctx): Extension<DeviceContext>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return api_error::bad_path();
    };
    let what = format!("revoke {id}");
    let by = match owner_only(&gw, &device, &ctx, Action::Revoke, &what).await {
        Ok(by) => by,
        Err(r) => return r,
    };
    match device_in_path(&id) {
        Ok(id) => answer(actions::revoke(&gw, &id, &by).await),
        Err(e) => answer::<()>(Err(e)),
    }
}

/// A device path's `{id}`, read once the role check passed: its id or name, or a
/// `bad_request` saying what is wrong with it.
fn device_in_path(id: &str) -> Result<DeviceRef, ActionError> {
    DeviceRef::parse(id).map_err(|e| ActionError::Invalid(e.to_string()))
}

async fn owner_confirm(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
    Extension(ctx): Extension<DeviceContext>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return api_error::bad_path();
    };
    let what = format!("confirm {id}");
    let by = match owner_only(&gw, &device, &ctx, Action::Invite, &what).await {
        Ok(by) => by,
        Err(r) => return r,
    };
    match device_in_path(&id) {
        Ok(id) => answer(actions::confirm(&gw, &id, &by).await),
        Err(e) => answer::<()>(Err(e)),
    }
}

async fn owner_invite(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
    Extension(ctx): Extension<DeviceContext>,
    request_body: axum::body::Body,
) -> Response {
    // The role first: a refused device's body is never read.
    if let Err(r) = owner_only(&gw, &device, &ctx, Action::Invite, "mint an invitation").await {
        return r;
    }
    let req: InvitationRequest =
        match body::read_json(request_body, limits::MAX_BODY_BYTES, limits::BODY_DEADLINE).await {
            Ok(r) => r,
            Err(body::BodyError::Invalid(_)) => {
                return error(
                    ErrorCode::BadRequest,
                    "expected JSON {role, cameras, expires_secs, name, auto_confirm}",
                );
            }
            Err(e) => return api_error::body(&e),
        };
    if req.role == Role::Owner {
        return error(
            ErrorCode::BadRequest,
            "a phone can invite guests and viewers; pair another owner at the gateway",
        );
    }
    let offer = actions::pair(
        &gw,
        PairRequest {
            name: req.name,
            role: req.role,
            cameras: req.cameras,
            expires_secs: req.expires_secs,
            auto_confirm: req.auto_confirm,
            ttl_secs: actions::MAX_PAIRING_TTL_SECS,
        },
    )
    .await;
    if offer.is_ok() {
        tracing::info!(by = %device.id.0, role = ?req.role, "an owner phone minted an invitation");
    }
    answer(offer)
}

/// Audit log query: `?limit=&offset=&device=&camera=&kind=`.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// Most rows.
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
    /// Only this device.
    pub device: Option<String>,
    /// Only this camera.
    pub camera: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
}

impl AuditQuery {
    /// The store filter, empty strings meaning "any".
    pub fn filter(&self) -> AuditFilter {
        let some = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        AuditFilter {
            device: some(&self.device),
            camera: some(&self.camera),
            kind: some(&self.kind),
        }
    }
}

async fn owner_audit(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
    Extension(ctx): Extension<DeviceContext>,
    query: Result<axum::extract::Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = owner_only(&gw, &device, &ctx, Action::ReadAudit, "read the audit log").await {
        return r;
    }
    let q = query.map(|q| q.0).unwrap_or_default();
    answer(
        actions::audit(
            &gw,
            q.filter(),
            q.offset.unwrap_or(0),
            q.limit.unwrap_or(100),
        )
        .await,
    )
}
