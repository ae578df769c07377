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
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use latchkey_pairing::DeviceRecord;
use serde_json::json;

use crate::camera::hub::{Unavailable, Watch};
use crate::camera::{CameraSource, CameraStatus, Frame};
use crate::live::{self, LiveError};
use crate::{Gateway, unix_now};

/// How long a viewer waits for a camera's first picture before being told it is offline.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(15);

/// Who is asking: attached to every request of a session.
#[derive(Clone, Debug)]
pub struct DeviceContext {
    /// Device id.
    pub id: String,
    /// Where the session comes from.
    pub peer: SocketAddr,
}

/// An API error as JSON `{"error": "..."}`.
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The router phones talk to.
pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/cameras", get(cameras))
        .route("/v1/gateway", get(gateway_info))
        .route("/v1/cameras/{id}/live.mp4", get(live_mp4))
        .route("/v1/cameras/{id}/live.mjpeg", get(live_mjpeg))
        .route("/v1/cameras/{id}/snapshot.jpg", get(snapshot))
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
    let id = ctx.id.clone();
    let record = match tokio::task::spawn_blocking(move || store.device_record(&id)).await {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => return error(StatusCode::FORBIDDEN, "device unknown"),
        Ok(Err(e)) => {
            tracing::error!("refusing a request, the store is unreadable: {e}");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway's store is unreadable",
            );
        }
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    if gw.sessions.is_blocked(&record.id.0) {
        return error(StatusCode::FORBIDDEN, "device is revoked");
    }
    if let Err(denied) = record.admit(unix_now()) {
        return error(StatusCode::FORBIDDEN, &denied.to_string());
    }
    req.extensions_mut().insert(record);
    next.run(req).await
}

async fn cameras(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
) -> Json<Vec<CameraStatus>> {
    let now = unix_now();
    Json(
        gw.cameras
            .statuses()
            .into_iter()
            .filter(|c| device.may_view(&c.id, now).is_ok())
            .collect(),
    )
}

/// The one answer for "no such camera" and "not yours".
fn no_such_camera() -> Response {
    error(StatusCode::NOT_FOUND, "no such camera")
}

/// What a live request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Mp4,
    Mjpeg,
    Snapshot,
}

/// Checks the grant and the output kind, starts watching, and waits for a first frame.
async fn start(
    gw: &Gateway,
    device: &DeviceRecord,
    id: &str,
    output: Output,
) -> Result<(Watch, Frame), Response> {
    if device.may_view(id, unix_now()).is_err() {
        return Err(no_such_camera());
    }
    let Some(source) = gw.cameras.source(id) else {
        return Err(no_such_camera());
    };
    let is_video = matches!(source, CameraSource::Rtsp { .. });
    let mismatch = match output {
        Output::Mp4 if !is_video => Some(LiveError::NotVideo),
        Output::Mjpeg | Output::Snapshot if is_video => Some(LiveError::NotJpeg),
        _ => None,
    };
    if let Some(e) = mismatch {
        return Err(error(StatusCode::NOT_FOUND, &e.to_string()));
    }
    let Some(mut watch) = gw.cameras.watch(id) else {
        return Err(no_such_camera());
    };
    match watch.first_frame(FIRST_FRAME_TIMEOUT).await {
        Ok(frame) => Ok((watch, frame)),
        Err(e @ (Unavailable::Offline(_) | Unavailable::Timeout(_) | Unavailable::Ended)) => {
            Err(error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()))
        }
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

fn live_error(e: LiveError) -> Response {
    match e {
        LiveError::Mp4(_) => {
            tracing::warn!("a camera's parameters cannot be muxed: {e}");
            error(StatusCode::BAD_GATEWAY, &e.to_string())
        }
        other => error(StatusCode::NOT_FOUND, &other.to_string()),
    }
}

async fn live_mp4(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
    Path(id): Path<String>,
) -> Response {
    let (watch, first) = match start(&gw, &device, &id, Output::Mp4).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    match live::mp4_body(watch, first, deadline(&device)) {
        Ok(body) => streaming("video/mp4", body),
        Err(e) => live_error(e),
    }
}

async fn live_mjpeg(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
    Path(id): Path<String>,
) -> Response {
    let (watch, first) = match start(&gw, &device, &id, Output::Mjpeg).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    match live::mjpeg_body(watch, first, deadline(&device)) {
        Ok(body) => streaming(&crate::camera::multipart::content_type(), body),
        Err(e) => live_error(e),
    }
}

async fn snapshot(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
    Path(id): Path<String>,
) -> Response {
    let (watch, first) = match start(&gw, &device, &id, Output::Snapshot).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    drop(watch);
    match live::snapshot(first) {
        Ok(jpeg) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            jpeg,
        )
            .into_response(),
        Err(e) => live_error(e),
    }
}

async fn gateway_info(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
) -> Json<serde_json::Value> {
    Json(json!({
        "name": gw.config.name,
        "addresses": gw.addresses(),
        "device": { "id": device.id.0, "name": device.name, "role": device.role, "cameras": device.cameras.to_string() },
    }))
}
