//! The admin UI's JSON API (`/api/...`), its login, setup and logout endpoints, and the
//! owner's live camera views (`/cameras/ID/...`). Every action goes through
//! [`crate::admin::actions`], the same code the CLI's socket uses.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use latchkey_pairing::Role;
use serde::{Deserialize, Serialize};

use super::auth::{self, AuthError, Gate};
use super::{Authed, Peer, Web, json_error};
use crate::admin::actions::{self, ActionError, PairRequest};
use crate::admin::answers::{WebAuditPage, WebOk, WebPairAnswer, WebSession};
use crate::admin::device_ref::{BadDeviceRef, DeviceRef};
use crate::api::{Output, Watcher, serve_camera};
use crate::store::AuditFilter;
use crate::store::AuditKind;

/// Who the audit log names for actions taken in the web UI.
const BY: &str = "owner (web)";
/// Audit rows per page.
pub const PER_PAGE: u32 = 50;

type WebState = State<Arc<Web>>;

/// The API's routes, camera views, and the login/setup/logout endpoints.
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/login", post(login))
        .route("/setup", post(setup))
        .route("/logout", post(logout))
        .route("/api/session", get(session))
        .route("/api/devices", get(devices))
        .route("/api/devices/{id}/confirm", post(confirm))
        .route("/api/devices/{id}/reject", post(reject))
        .route("/api/devices/{id}/revoke", post(revoke))
        .route("/api/devices/{id}/grants", post(grants))
        .route("/api/pair", post(pair))
        .route("/api/cameras", get(cameras))
        .route("/api/remote", get(remote_status))
        .route("/api/remote/plan", get(remote_plan))
        .route("/api/remote/open", post(remote_open))
        .route("/api/remote/close", post(remote_close))
        .route("/api/remote/audit", get(remote_audit))
        .route("/api/remote/audit/{index}/remove", post(remote_remove))
        .route("/api/audit", get(audit))
        .route("/cameras/{id}/live.mp4", get(live_mp4))
        .route("/cameras/{id}/live.mjpeg", get(live_mjpeg))
        .route("/cameras/{id}/snapshot.jpg", get(snapshot))
}

fn answer<T: Serialize>(r: Result<T, ActionError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            if e.status() >= 500 {
                tracing::error!("admin UI action failed: {e}");
            }
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            json_error(status, &e.to_string())
        }
    }
}

fn bad_json(rejection: &JsonRejection) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large",
        );
    }
    json_error(
        StatusCode::BAD_REQUEST,
        "the request body is not the expected JSON",
    )
}

async fn audit_event(web: &Web, kind: AuditKind, addr: String, detail: &'static str) {
    let store = &web.gw.store;
    store
        .audit_async(
            web.gw.clock.unix_now(),
            kind,
            None,
            Some(addr),
            detail.into(),
        )
        .await;
}

/// `{"password": "..."}`.
#[derive(Debug, Deserialize)]
struct LoginBody {
    password: String,
}

async fn login(
    State(web): WebState,
    Extension(peer): Extension<Peer>,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(b)) => b,
        Err(r) => return bad_json(&r),
    };
    let ip = peer.0.ip();
    if let Gate::Wait(wait) = web.auth.gate(ip, web.gw.clock.instant()) {
        let secs = wait.as_secs().max(1);
        let mut r = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("too many wrong passwords from this address; try again in {secs} s"),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let store = web.gw.store.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let Some(phc) = store.admin_password().map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        auth::verify_password(&body.password, &phc)
            .map(Some)
            .map_err(|e| e.to_string())
    })
    .await;
    match checked {
        Ok(Ok(Some(true))) => {
            web.auth.succeeded(ip);
            let (id, _) = web.auth.new_session(web.gw.clock.instant());
            audit_event(
                &web,
                AuditKind::AdminLogin,
                peer.0.to_string(),
                "owner logged in to the admin UI",
            )
            .await;
            let mut r = Json(WebOk { ok: true }).into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, super::session_cookie::set(&id));
            r
        }
        Ok(Ok(Some(false))) => {
            let wait = web.auth.failed(ip, web.gw.clock.instant());
            audit_event(
                &web,
                AuditKind::AdminLoginFailed,
                peer.0.to_string(),
                "wrong admin UI password",
            )
            .await;
            tracing::warn!(addr = %peer.0, "admin UI: wrong password");
            let mut msg = "wrong password".to_string();
            if !wait.is_zero() {
                msg.push_str(&format!("; wait {} s before trying again", wait.as_secs()));
            }
            json_error(StatusCode::UNAUTHORIZED, &msg)
        }
        Ok(Ok(None)) => json_error(
            StatusCode::CONFLICT,
            "no password is set yet: open the setup link the gateway printed when it started",
        ),
        Ok(Err(e)) => {
            tracing::error!("admin UI login: {e}");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway cannot check passwords: its store is unreadable",
            )
        }
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

/// `{"token": "...", "password": "..."}`.
#[derive(Debug, Deserialize)]
struct SetupBody {
    token: String,
    password: String,
}

async fn setup(
    State(web): WebState,
    Extension(peer): Extension<Peer>,
    body: Result<Json<SetupBody>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(b)) => b,
        Err(r) => return bad_json(&r),
    };
    let len = body.password.chars().count();
    if !(auth::MIN_PASSWORD..=auth::MAX_PASSWORD).contains(&len) {
        return json_error(StatusCode::BAD_REQUEST, &AuthError::BadLength.to_string());
    }
    let now = web.gw.clock.instant();
    if !web.auth.take_setup_token(&body.token, now) {
        tracing::warn!(addr = %peer.0, "admin UI: a wrong, used or expired setup link");
        return json_error(
            StatusCode::FORBIDDEN,
            "this setup link is wrong, already used or expired (15 minutes); restart the gateway to get a new one",
        );
    }
    let store = web.gw.store.clone();
    let (password, at) = (body.password, web.gw.clock.unix_now());
    let done = tokio::task::spawn_blocking(move || {
        let phc = auth::hash_password(&password).map_err(|e| e.to_string())?;
        store
            .set_admin_password(&phc, true, at, "owner (setup link)")
            .map_err(|e| e.to_string())
    })
    .await;
    match done {
        Ok(Ok(true)) => {
            let (id, _) = web.auth.new_session(web.gw.clock.instant());
            let mut r = Json(WebOk { ok: true }).into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, super::session_cookie::set(&id));
            r
        }
        Ok(Ok(false)) => json_error(StatusCode::CONFLICT, "a password is already set; log in"),
        Ok(Err(e)) => {
            tracing::error!("admin UI setup: {e}");
            web.auth.restore_setup_token(&body.token, now);
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the password could not be saved: {e}"),
            )
        }
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

async fn logout(State(web): WebState, Extension(authed): Extension<Authed>) -> Response {
    web.auth.end_session(&authed.session_id);
    let mut r = Json(WebOk { ok: true }).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, super::session_cookie::clear());
    r
}

async fn session(State(web): WebState, Extension(authed): Extension<Authed>) -> Json<WebSession> {
    Json(WebSession {
        csrf: authed.csrf,
        fingerprint: web.fingerprint.clone(),
        name: web.gw.config.name.clone(),
    })
}

async fn devices(State(web): WebState) -> Response {
    answer(actions::devices(&web.gw).await)
}

/// A device path's `{id}` that is neither an id nor a name: 400, saying so.
fn bad_device(e: &BadDeviceRef) -> Response {
    json_error(StatusCode::BAD_REQUEST, &e.to_string())
}

async fn confirm(State(web): WebState, Path(id): Path<String>) -> Response {
    match DeviceRef::parse(&id) {
        Ok(d) => answer(actions::confirm(&web.gw, &d, BY).await),
        Err(e) => bad_device(&e),
    }
}

async fn reject(State(web): WebState, Path(id): Path<String>) -> Response {
    match DeviceRef::parse(&id) {
        Ok(d) => answer(actions::reject(&web.gw, &d, BY).await),
        Err(e) => bad_device(&e),
    }
}

async fn revoke(State(web): WebState, Path(id): Path<String>) -> Response {
    match DeviceRef::parse(&id) {
        Ok(d) => answer(actions::revoke(&web.gw, &d, BY).await),
        Err(e) => bad_device(&e),
    }
}

/// `{"cameras": "all" | "a,b", "expires_secs": N | null}`.
#[derive(Debug, Deserialize)]
struct GrantsBody {
    cameras: String,
    #[serde(default)]
    expires_secs: Option<u64>,
}

async fn grants(
    State(web): WebState,
    Path(id): Path<String>,
    body: Result<Json<GrantsBody>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(b)) => b,
        Err(r) => return bad_json(&r),
    };
    let device = match DeviceRef::parse(&id) {
        Ok(d) => d,
        Err(e) => return bad_device(&e),
    };
    answer(actions::set_grants(&web.gw, &device, &body.cameras, body.expires_secs, BY).await)
}

/// The pairing form.
#[derive(Debug, Deserialize)]
struct PairBody {
    #[serde(default)]
    name: Option<String>,
    role: Role,
    #[serde(default = "all")]
    cameras: String,
    #[serde(default)]
    expires_secs: Option<u64>,
    #[serde(default)]
    auto_confirm: bool,
}

fn all() -> String {
    "all".into()
}

/// The QR code of `text` as an inline SVG element.
pub fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(280, 280)
        .quiet_zone(true)
        .build();
    // Drop the XML declaration: the element goes inside an HTML page.
    let start = svg.find("<svg")?;
    svg.get(start..).map(str::to_string)
}

async fn pair(State(web): WebState, body: Result<Json<PairBody>, JsonRejection>) -> Response {
    let body = match body {
        Ok(Json(b)) => b,
        Err(r) => return bad_json(&r),
    };
    let offer = actions::pair(
        &web.gw,
        PairRequest {
            name: body.name,
            role: body.role,
            cameras: body.cameras,
            expires_secs: body.expires_secs.filter(|s| *s > 0),
            auto_confirm: body.auto_confirm,
            ttl_secs: actions::MAX_PAIRING_TTL_SECS,
        },
    )
    .await;
    match offer {
        Ok(o) => Json(WebPairAnswer {
            svg: qr_svg(&o.uri),
            expires_at: o.expires_at,
            expires_in_secs: o.expires_in_secs,
            uri: o.uri,
        })
        .into_response(),
        Err(e) => answer::<WebPairAnswer>(Err(e)),
    }
}

async fn cameras(State(web): WebState) -> Response {
    answer(crate::admin::cameras::list(&web.gw).await)
}

async fn remote_status(State(web): WebState) -> Response {
    answer(actions::remote_status(&web.gw).await)
}

/// What remote access to open.
#[derive(Debug, Deserialize)]
struct RemoteBody {
    #[serde(default)]
    ipv4: bool,
    #[serde(default)]
    ipv6: bool,
    #[serde(default = "default_lease")]
    lease_secs: u32,
}

fn default_lease() -> u32 {
    3600
}

async fn remote_plan(
    State(web): WebState,
    q: Result<Query<RemoteBody>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return json_error(StatusCode::BAD_REQUEST, "expected ?ipv4=&ipv6=&lease_secs=");
    };
    answer(actions::remote_plan(&web.gw, q.ipv4, q.ipv6, q.lease_secs).await)
}

async fn remote_open(
    State(web): WebState,
    body: Result<Json<RemoteBody>, JsonRejection>,
) -> Response {
    let b = match body {
        Ok(Json(b)) => b,
        Err(r) => return bad_json(&r),
    };
    answer(actions::remote_open(&web.gw, b.ipv4, b.ipv6, b.lease_secs, BY).await)
}

async fn remote_close(State(web): WebState) -> Response {
    answer(actions::remote_close(&web.gw, BY).await)
}

async fn remote_audit(State(web): WebState) -> Response {
    answer(actions::remote_audit(&web.gw, None).await)
}

async fn remote_remove(State(web): WebState, Path(index): Path<u32>) -> Response {
    answer(actions::remote_audit(&web.gw, Some(index)).await)
}

/// `?device=&camera=&kind=&page=` (pages count from 1).
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// Only this device.
    #[serde(default)]
    pub device: Option<String>,
    /// Only this camera.
    #[serde(default)]
    pub camera: Option<String>,
    /// Only this kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Page number, from 1.
    #[serde(default)]
    pub page: Option<u32>,
}

impl AuditQuery {
    /// The store filter; empty fields match everything.
    pub fn filter(&self) -> AuditFilter {
        let some = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        AuditFilter {
            device: some(&self.device),
            camera: some(&self.camera),
            kind: some(&self.kind),
        }
    }

    /// The page number, at least 1.
    pub fn page(&self) -> u32 {
        self.page.unwrap_or(1).max(1)
    }
}

async fn audit(State(web): WebState, q: Result<Query<AuditQuery>, QueryRejection>) -> Response {
    let q = q.map(|q| q.0).unwrap_or_default();
    let offset = (q.page() - 1).saturating_mul(PER_PAGE);
    match actions::audit(&web.gw, q.filter(), offset, PER_PAGE).await {
        Ok(p) => Json(WebAuditPage {
            page: q.page(),
            per_page: PER_PAGE,
            rows: p.rows,
            total: p.total,
        })
        .into_response(),
        Err(e) => answer::<WebAuditPage>(Err(e)),
    }
}

async fn owner_view(web: &Web, id: &str, output: Output) -> Response {
    let watcher = Watcher {
        device: None,
        addr: None,
        detail: "owner (web)".into(),
    };
    serve_camera(&web.gw, id, output, None, Some(watcher)).await
}

async fn live_mp4(State(web): WebState, Path(id): Path<String>) -> Response {
    owner_view(&web, &id, Output::Mp4).await
}

async fn live_mjpeg(State(web): WebState, Path(id): Path<String>) -> Response {
    owner_view(&web, &id, Output::Mjpeg).await
}

async fn snapshot(State(web): WebState, Path(id): Path<String>) -> Response {
    owner_view(&web, &id, Output::Snapshot).await
}
