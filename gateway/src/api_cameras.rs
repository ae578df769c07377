//! Owner phones manage cameras inside the Noise channel (PROTOCOL.md §7): list with
//! origins, add (by URL or ONVIF), edit, remove, test, discover, ONVIF inspect. Owner
//! role only: anyone else gets 403 and an audit row naming the device and its address.
//! Every route goes through [`crate::admin::cameras::handle`], the CLI's code. The role is
//! checked before a body is read, and bodies are bounded in size and time (PROTOCOL.md
//! "Limits"), as for every owner route.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use latchkey_pairing::{DeviceRecord, ErrorCode, Role};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::Gateway;
use crate::admin::actions;
use crate::admin::cameras::{self, CameraInput, CameraRequest};
use crate::admin::cameras_onvif::{OnvifAddBody, OnvifTarget};
use crate::api::DeviceContext;
use crate::{api_error, body, limits};

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
        .route("/v1/cameras/report", get(report))
}

/// The camera quarantine's phone-home report (PROTOCOL.md §7), owners only.
async fn report(
    State(gw): State<Arc<Gateway>>,
    Extension(device): Extension<DeviceRecord>,
    Extension(ctx): Extension<DeviceContext>,
    uri: axum::http::Uri,
) -> Response {
    if let Err(r) = owner(&gw, &device, &ctx, "read the phone-home report").await {
        return r;
    }
    let Some((camera, since)) = crate::admin::quarantine::parse_query(uri.query()) else {
        return api_error::error(
            ErrorCode::BadRequest,
            "expected ?camera=NAME&since=UNIX_SECONDS (both optional)",
        );
    };
    Json(crate::admin::quarantine::report(
        &gw,
        camera.as_deref(),
        since,
    ))
    .into_response()
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
    actions::audit_refusal(gw, &device.id, &ctx.peer.to_string(), &detail).await;
    Err(api_error::error(
        ErrorCode::OwnerOnly,
        "only an owner's phone may manage cameras",
    ))
}

/// The owner check first, then the body: a refused device's body is never read, and an
/// owner's is read within the size and time limits.
async fn owner_body<T: DeserializeOwned>(
    (gw, device, ctx): (&Arc<Gateway>, &DeviceRecord, &DeviceContext),
    what: &str,
    request_body: Body,
) -> Result<(String, T), Response> {
    let by = owner(gw, device, ctx, what).await?;
    let value = body::read_json(request_body, limits::MAX_BODY_BYTES, limits::BODY_DEADLINE)
        .await
        .map_err(|e| api_error::body(&e))?;
    Ok((by, value))
}

/// Runs `request` for the owner `by`.
async fn run_as(gw: &Arc<Gateway>, by: &str, request: CameraRequest) -> Response {
    match cameras::handle(gw, request, by).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => api_error::action(&e),
    }
}

async fn run(
    gw: &Arc<Gateway>,
    device: &DeviceRecord,
    ctx: &DeviceContext,
    what: &str,
    request: CameraRequest,
) -> Response {
    match owner(gw, device, ctx, what).await {
        Ok(by) => run_as(gw, &by, request).await,
        Err(r) => r,
    }
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

async fn add((State(gw), Extension(device), Extension(ctx)): Ctx, b: Body) -> Response {
    match owner_body((&gw, &device, &ctx), "add a camera", b).await {
        Ok((by, camera)) => run_as(&gw, &by, CameraRequest::Add { camera }).await,
        Err(r) => r,
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

async fn discover((State(gw), Extension(device), Extension(ctx)): Ctx, b: Body) -> Response {
    let (by, b): (String, DiscoverBody) =
        match owner_body((&gw, &device, &ctx), "discover cameras", b).await {
            Ok(v) => v,
            Err(r) => return r,
        };
    let request = CameraRequest::Discover {
        addresses: b.addresses.into_iter().take(8).collect(),
        wait_ms: b.wait_ms.unwrap_or(1500).min(MAX_DISCOVER_MS),
    };
    run_as(&gw, &by, request).await
}

async fn inspect((State(gw), Extension(device), Extension(ctx)): Ctx, b: Body) -> Response {
    match owner_body::<OnvifTarget>((&gw, &device, &ctx), "inspect a camera", b).await {
        Ok((by, target)) => run_as(&gw, &by, CameraRequest::OnvifInspect { target }).await,
        Err(r) => r,
    }
}

async fn onvif_add((State(gw), Extension(device), Extension(ctx)): Ctx, b: Body) -> Response {
    match owner_body::<OnvifAddBody>((&gw, &device, &ctx), "add a camera", b).await {
        Ok((by, b)) => {
            let request = CameraRequest::OnvifAdd {
                id: b.id,
                target: b.target,
                skip_test: false,
            };
            run_as(&gw, &by, request).await
        }
        Err(r) => r,
    }
}

async fn edit(
    (State(gw), Extension(device), Extension(ctx)): Ctx,
    Path(id): Path<String>,
    b: Body,
) -> Response {
    match owner_body::<CameraInput>((&gw, &device, &ctx), "change a camera", b).await {
        Ok((by, changes)) => run_as(&gw, &by, CameraRequest::Edit { id, changes }).await,
        Err(r) => r,
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
