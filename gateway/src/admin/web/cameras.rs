//! The admin UI's camera management: the "Find cameras" panel and the add form on the
//! cameras page, its script, and the JSON routes behind them. Every route goes through
//! [`crate::admin::cameras::handle`], the code the CLI's socket uses; the guard in
//! `mod.rs` has already checked the session and the CSRF token.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Web, json_error};
use crate::admin::cameras::{self, CameraInput, CameraRequest};
use crate::admin::cameras_onvif::{OnvifAddBody, OnvifTarget};

/// Who the audit log names for camera changes made in the web UI.
const BY: &str = "owner (web)";
/// How long the "Find cameras" panel listens.
const DISCOVER_MS: u64 = 1500;
const CAMERAS_JS: &str = include_str!("assets/cameras.js");

/// The "Find cameras" panel and the add/change forms appended to the cameras page.
pub fn panel() -> Markup {
    html! {
        section #find-cameras {
            h2 { "Find cameras" }
            p { "Looks for ONVIF cameras on this network (and at one address you give, for a camera on another subnet)." }
            form #discover-form {
                label { "Also ask this address " input name="address" placeholder="192.168.2.30" autocomplete="off"; }
                button type="submit" #discover { "Find cameras" }
            }
            table #found {
                thead { tr {
                    th { "Address" } th { "Maker" } th { "Model" } th { "Firmware" } th { "Added as" } th {}
                } }
                tbody {}
            }
            h2 { "Add a camera" }
            form #add-camera autocomplete="off" {
                label { "Name " input name="id" required pattern=(ID_PATTERN) placeholder="front"; }
                label { "ONVIF address " input name="address" placeholder="192.168.1.10 or 192.168.1.10:8080"; }
                label { "or stream URL " input name="url" placeholder="rtsp://192.168.1.10/stream1"; }
                label { "User " input name="username" value="admin"; }
                label { "Password " input name="password" type="password" autocomplete="new-password"; }
                label { "Main profile " select name="main_profile" { option value="" { "automatic" } } }
                label { "Sub-stream " select name="sub_profile" { option value="" { "automatic" } } }
                button type="button" #inspect-camera { "Check camera" }
                " "
                button type="submit" #save-camera { "Add camera" }
            }
            pre #camera-choice {}
            h2 { "Change a camera" }
            form #edit-camera autocomplete="off" {
                label { "Camera " input name="camera" required placeholder="front"; }
                label { "New name " input name="id" pattern=(ID_PATTERN) placeholder="unchanged"; }
                label { "New stream URL " input name="url" placeholder="unchanged"; }
                label { "New user " input name="username" placeholder="unchanged"; }
                label { "New password " input name="password" type="password" autocomplete="new-password" placeholder="unchanged"; }
                button type="submit" #edit-save { "Save changes" }
            }
        }
        script src="/static/cameras.js" defer {}
    }
}

/// What the browser checks a camera name against (the daemon checks it again).
const ID_PATTERN: &str = r"[a-z0-9_\-]{1,32}";

/// The "From" cell and the Test/Remove buttons of a camera row (a config-file camera is
/// changed in the file, so it gets Test only).
pub fn manage_cells(gw: &crate::Gateway, id: &str) -> Markup {
    let from_config = gw.config.cameras.iter().any(|c| c.id == id);
    html! {
        td { @if from_config { "config file" } @else { "added here" } }
        td {
            button data-post={ "/api/cameras/" (id) "/test" } data-then="none" { "Test" }
            @if !from_config {
                " "
                button class="danger" data-post={ "/api/cameras/" (id) "/remove" }
                    data-confirm={ "Remove camera " (id) "? Its live streams end." } data-then="reload" { "Remove" }
            }
        }
    }
}

/// The routes.
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/static/cameras.js", get(script))
        .route("/api/cameras/discover", post(discover))
        .route("/api/cameras/add", post(add))
        .route("/api/cameras/onvif/inspect", post(inspect))
        .route("/api/cameras/onvif/add", post(onvif_add))
        .route("/api/cameras/{id}/edit", post(edit))
        .route("/api/cameras/{id}/remove", post(remove))
        .route("/api/cameras/{id}/test", post(test))
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        CAMERAS_JS,
    )
        .into_response()
}

async fn run(web: &Web, request: CameraRequest) -> Response {
    match cameras::handle(&web.gw, request, BY).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            json_error(status, &e.to_string())
        }
    }
}

fn bad(r: &JsonRejection) -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        &format!("expected JSON: {}", r.body_text()),
    )
}

/// `{"address": "optional IP"}`.
#[derive(Debug, Deserialize)]
struct DiscoverBody {
    #[serde(default)]
    address: String,
}

async fn discover(
    State(web): State<Arc<Web>>,
    body: Result<Json<DiscoverBody>, JsonRejection>,
) -> Response {
    let Ok(Json(b)) = body else {
        return json_error(StatusCode::BAD_REQUEST, "expected JSON {address}");
    };
    let addresses = if b.address.trim().is_empty() {
        Vec::new()
    } else {
        vec![b.address.trim().to_string()]
    };
    run(
        &web,
        CameraRequest::Discover {
            addresses,
            wait_ms: DISCOVER_MS,
        },
    )
    .await
}

async fn add(
    State(web): State<Arc<Web>>,
    body: Result<Json<CameraInput>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(camera)) => run(&web, CameraRequest::Add { camera }).await,
        Err(r) => bad(&r),
    }
}

async fn inspect(
    State(web): State<Arc<Web>>,
    body: Result<Json<OnvifTarget>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(target)) => run(&web, CameraRequest::OnvifInspect { target }).await,
        Err(r) => bad(&r),
    }
}

async fn onvif_add(
    State(web): State<Arc<Web>>,
    body: Result<Json<OnvifAddBody>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(b)) => {
            let request = CameraRequest::OnvifAdd {
                id: b.id,
                target: b.target,
                skip_test: false,
            };
            run(&web, request).await
        }
        Err(r) => bad(&r),
    }
}

async fn edit(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    body: Result<Json<CameraInput>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(changes)) => run(&web, CameraRequest::Edit { id, changes }).await,
        Err(r) => bad(&r),
    }
}

async fn remove(State(web): State<Arc<Web>>, Path(id): Path<String>) -> Response {
    run(&web, CameraRequest::Remove { id }).await
}

async fn test(State(web): State<Arc<Web>>, Path(id): Path<String>) -> Response {
    run(&web, CameraRequest::Test { id }).await
}
