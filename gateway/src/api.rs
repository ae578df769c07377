//! The gateway API, served to paired phones inside the Noise channel (HTTP/2).
//!
//! Every request carries the [`DeviceContext`] of the session it came from, and the
//! device's record is re-read and re-checked on each request, so a revocation or an
//! expiry takes effect even between the session checks.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use latchkey_pairing::DeviceRecord;
use serde_json::json;

use crate::camera::CameraStatus;
use crate::{Gateway, unix_now};

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
        gw.config
            .cameras
            .iter()
            .filter(|c| device.may_view(&c.id, now).is_ok())
            .map(|c| CameraStatus {
                id: c.id.clone(),
                kind: c.source.kind().to_string(),
                online: matches!(c.source, crate::camera::CameraSource::Demo),
            })
            .collect(),
    )
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
