//! Owner phones manage cameras inside the Noise channel (PROTOCOL.md §7): list with
//! origins, add (by URL or ONVIF), edit, remove, test, discover, ONVIF inspect. Owner
//! role only: anyone else gets 403 and an audit row naming the device and its address.
//! Every route goes through [`crate::admin::cameras::handle`], the CLI's code.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use latchkey_pairing::{DeviceRecord, ErrorCode, Role};
use serde::Deserialize;

use crate::Gateway;
use crate::admin::actions;
use crate::admin::cameras::{self, CameraInput, CameraRequest};
use crate::admin::cameras_onvif::OnvifTarget;
use crate::api::DeviceContext;
use crate::api_error;

/// Longest discovery a phone may ask for, in milliseconds.
const MAX_DISCOVER_MS: u64 = 5000;

/// The routes, merged into the phone router (behind its `authorize` layer).
pub fn owner_routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/v1/cameras/manage", get(list))
        .route("/v1/cameras/add", post(add))
        .route("/v1/cameras/discover", post(discover))
        .route("/v1/cameras/onvif/inspect", post(inspect))
        .route("/v1/cameras/onvif/add", post(onvif_add))
        .route("/v1/cameras/{id}/edit", post(edit))
        .route("/v1/cameras/{id}/remove", post(remove))
        .route("/v1/cameras/{id}/test", post(test))
}

/// The actor for the audit log, or the 403 (audited) for anyone but an owner.
async fn owner(
    gw: &Arc<Gateway>,
    device: &DeviceRecord,
    ctx: &DeviceContext,
    what: &str,
) -> Result<String, Response> {
    if device.role == Role::Owner {
        return Ok(format!("owner phone {} ({})", device.name, device.id.0));
    }
    let detail = format!("{} ({:?}) asked to {what}", device.name, device.role);
    actions::audit_refusal(gw, &device.id.0, &ctx.peer.to_string(), &detail).await;
    Err(api_error::error(
        ErrorCode::OwnerOnly,
        "only an owner's phone may manage cameras",
    ))
}

async fn run(
    gw: &Arc<Gateway>,
    device: &DeviceRecord,
    ctx: &DeviceContext,
    what: &str,
    request: CameraRequest,
) -> Response {
    let by = match owner(gw, device, ctx, what).await {
        Ok(by) => by,
        Err(r) => return r,
    };
    match cameras::handle(gw, request, &by).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => api_error::action(&e),
    }
}

fn bad(r: &JsonRejection) -> Response {
    api_error::error(
        ErrorCode::BadRequest,
        &format!("expected JSON: {}", r.body_text()),
    )
}

type Ctx = (
    State<Arc<Gateway>>,
    Extension<DeviceRecord>,
    Extension<DeviceContext>,
);

async fn list(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
    Extension(ctx): Extension<DeviceContext>,
) -> Response {
    if let Err(r) = owner(&gw, &device, &ctx, "list camera settings").await {
        return r;
    }
    match cameras::list(&gw).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => api_error::action(&e),
    }
}

async fn add(
    (State(gw), Extension(device), Extension(ctx)): Ctx,
    body: Result<Json<CameraInput>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(camera)) => {
            run(
                &gw,
                &device,
                &ctx,
                "add a camera",
                CameraRequest::Add { camera },
            )
            .await
        }
        Err(r) => bad(&r),
    }
}

/// `{"addresses": [IP…], "wait_ms": N}`.
#[derive(Debug, Deserialize)]
struct DiscoverBody {
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    wait_ms: Option<u64>,
}

async fn discover(
    (State(gw), Extension(device), Extension(ctx)): Ctx,
    body: Result<Json<DiscoverBody>, JsonRejection>,
) -> Response {
    let b = match body {
        Ok(Json(b)) => b,
        Err(r) => return bad(&r),
    };
    let request = CameraRequest::Discover {
        addresses: b.addresses.into_iter().take(8).collect(),
        wait_ms: b.wait_ms.unwrap_or(1500).min(MAX_DISCOVER_MS),
    };
    run(&gw, &device, &ctx, "discover cameras", request).await
}

async fn inspect(
    (State(gw), Extension(device), Extension(ctx)): Ctx,
    body: Result<Json<OnvifTarget>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(target)) => {
            let request = CameraRequest::OnvifInspect { target };
            run(&gw, &device, &ctx, "inspect a camera", request).await
        }
        Err(r) => bad(&r),
    }
}

/// `{"id": NAME, ...OnvifTarget}`.
#[derive(Debug, Deserialize)]
struct OnvifAddBody {
    id: String,
    #[serde(flatten)]
    target: OnvifTarget,
}

async fn onvif_add(
    (State(gw), Extension(device), Extension(ctx)): Ctx,
    body: Result<Json<OnvifAddBody>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(b)) => {
            let request = CameraRequest::OnvifAdd {
                id: b.id,
                target: b.target,
                skip_test: false,
            };
            run(&gw, &device, &ctx, "add a camera", request).await
        }
        Err(r) => bad(&r),
    }
}

async fn edit(
    (State(gw), Extension(device), Extension(ctx)): Ctx,
    Path(id): Path<String>,
    body: Result<Json<CameraInput>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(changes)) => {
            let request = CameraRequest::Edit { id, changes };
            run(&gw, &device, &ctx, "change a camera", request).await
        }
        Err(r) => bad(&r),
    }
}

async fn remove(
    (State(gw), Extension(device), Extension(ctx)): Ctx,
    Path(id): Path<String>,
) -> Response {
    run(
        &gw,
        &device,
        &ctx,
        "remove a camera",
        CameraRequest::Remove { id },
    )
    .await
}

async fn test(
    (State(gw), Extension(device), Extension(ctx)): Ctx,
    Path(id): Path<String>,
) -> Response {
    run(
        &gw,
        &device,
        &ctx,
        "test a camera",
        CameraRequest::Test { id },
    )
    .await
}
