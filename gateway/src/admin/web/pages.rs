//! The admin UI's pages: server-rendered HTML from `maud` templates, one small script
//! (`/static/app.js`) and one stylesheet, all served by the gateway (no CDN; the CSP
//! allows nothing else).
//!
//! Every value from the store, a phone or the router is interpolated with `(value)`,
//! which maud escapes; nothing here builds markup from strings (no `PreEscaped`). The
//! pages' buttons and forms call the JSON API through app.js.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use latchkey_pairing::DeviceState;
use latchkey_pairing::api_types::ListedState;
use maud::{DOCTYPE, Markup, html};

use super::{Authed, Web};
use crate::store::DeviceRow;

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The pages' routes.
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/devices") }))
        .route("/login", get(login))
        .route("/setup", get(setup))
        .route("/pair", get(pair))
        .route("/devices", get(devices))
        .route("/cameras", get(cameras))
        .route("/remote", get(remote))
        .route("/audit", get(super::audit_page::audit))
        .route(
            "/static/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/static/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A timestamp app.js shows in the browser's time zone, or "never".
pub(super) fn when(ts: Option<u64>) -> Markup {
    match ts {
        None => html! { "never" },
        Some(t) => {
            let at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t));
            html! { time data-ts=(t) { (at) } }
        }
    }
}

const NAV: [(&str, &str); 6] = [
    ("/pair", "Pair a phone"),
    ("/devices", "Devices"),
    ("/cameras", "Cameras"),
    ("/quarantine", "Phone-home report"),
    ("/remote", "Remote access"),
    ("/audit", "Audit log"),
];

/// The layout every page shares: header and navigation (when logged in), the flash
/// line, `body`, and the certificate fingerprint to compare.
pub(super) fn page(web: &Web, authed: Option<&Authed>, title: &str, body: Markup) -> Html<String> {
    let name = &web.gw.config.name;
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf" content=(authed.map_or("", |a| a.csrf.as_str()));
                title { (title) " · " (name) }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                header {
                    strong { "Latchkey · " (name) }
                    @if authed.is_some() {
                        nav {
                            @for (href, label) in NAV {
                                a href=(href) aria-current=[(label == title).then_some("page")] { (label) }
                            }
                            button type="button" class="link" data-post="/logout" data-then="/login" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    p #flash role="status" {}
                    (body)
                }
                footer {
                    "Admin certificate SHA-256: " code #fingerprint { (web.fingerprint) }
                    " — compare it with what your browser shows before typing a password."
                }
            }
        }
    };
    Html(markup.into_string())
}

async fn login(State(web): State<Arc<Web>>) -> Html<String> {
    let body = if web.has_password() {
        html! {
            form #login data-api="/login" data-then="/devices" {
                label { "Password " input type="password" name="password" autocomplete="current-password" required autofocus; }
                button { "Log in" }
            }
        }
    } else {
        html! {
            p { "No password is set yet. Open the one-time " strong { "setup link" }
                " that the gateway printed when it started (it is valid for 15 minutes; restart the gateway for a new one)." }
        }
    };
    page(&web, None, "Log in", body)
}

async fn setup(State(web): State<Arc<Web>>) -> Html<String> {
    let body = if web.has_password() {
        html! { p { "The password is already set. " a href="/login" { "Log in" } "." } }
    } else {
        // The token travels in the URL fragment, which browsers never send to a server
        // or put in a Referer; app.js copies it into the form.
        html! {
            p { "Choose the password for this gateway's admin pages (at least 10 characters). \
                There is no default password and no way in without this one-time link." }
            form #setup data-api="/setup" data-then="/pair" {
                input type="hidden" name="token" #setup-token;
                label { "New password " input type="password" name="password" minlength="10" autocomplete="new-password" required; }
                label { "Again " input type="password" name="password2" minlength="10" autocomplete="new-password" required; }
                button { "Set password" }
            }
        }
    };
    page(&web, None, "Set up", body)
}

fn expiry_options() -> Markup {
    html! {
        option value="" { "never" }
        option value="3600" { "1 hour" }
        option value="86400" { "24 hours" }
        option value="604800" { "7 days" }
        option value="2592000" { "30 days" }
    }
}

async fn pair(State(web): State<Arc<Web>>, Extension(a): Extension<Authed>) -> Html<String> {
    let body = html! {
        form #pair-form data-api="/api/pair" data-then="pair" {
            label { "Name " input name="name" maxlength="64" placeholder="e.g. Anna's phone"; }
            label { "Role " select name="role" {
                option value="viewer" { "viewer (family)" }
                option value="guest" { "guest (time-limited)" }
                option value="owner" { "owner" }
            } }
            fieldset {
                legend { "Cameras" }
                @for c in &web.gw.config.cameras {
                    label class="inline" { input type="checkbox" name="camera" value=(c.id) checked; " " (c.id) }
                }
            }
            label { "Access expires " select name="expires_secs" { (expiry_options()) } }
            label class="inline" { input type="checkbox" name="auto_confirm"; " admit without confirming the short code" }
            button { "Make pairing code" }
        }
        section #pairing hidden {
            h2 { "Scan with the phone" }
            div #qr {}
            p { "Or paste: " code #pair-uri {} }
            p { "This code works once and expires in " strong #countdown {} "." }
        }
        h2 { "Waiting for confirmation" }
        p { "Compare the short code with the one the phone shows before confirming." }
        table #pending {
            thead { tr { th { "Name" } th { "Role" } th { "Short code" } th { "From" } th {} } }
            tbody {}
        }
    };
    page(&web, Some(&a), "Pair a phone", body)
}

fn device_buttons(d: &DeviceRow) -> Markup {
    let id = &d.id;
    html! {
        @match d.state {
            DeviceState::Pending => {
                button data-post={ "/api/devices/" (id) "/confirm" } { "Confirm" }
                button data-post={ "/api/devices/" (id) "/reject" } class="danger" { "Reject" }
            }
            DeviceState::Active => {
                button data-post={ "/api/devices/" (id) "/revoke" }
                    data-confirm={ "Revoke " (d.name) " (" (id) ")? Its sessions close at once and it can never come back." }
                    class="danger" { "Revoke" }
            }
            DeviceState::Revoked => {}
        }
        @if d.state != DeviceState::Revoked {
            details {
                summary { "Edit access" }
                form data-api={ "/api/devices/" (id) "/grants" } data-then="reload" {
                    label { "Cameras " input name="cameras" value=(d.cameras) maxlength="512"; }
                    label { "Expires in " select name="expires_secs" { (expiry_options()) } }
                    button { "Save" }
                }
            }
        }
    }
}

fn device_row(d: &DeviceRow, sessions: usize, now: u64) -> Markup {
    let state = ListedState::shown(d.state, d.expires_at, now).as_str();
    html! {
        tr data-device=(d.id) data-name=(d.name) data-state=(state) {
            td { (d.name) br; small { code { (d.id) } } }
            td { (d.role.as_str()) }
            td { (d.cameras) }
            td class={ "state-" (state) } { (state) }
            td { (when(d.expires_at)) }
            td { (when(d.last_seen)) }
            td { (d.last_addr.as_deref().unwrap_or("-")) }
            td { (sessions) }
            td { (device_buttons(d)) }
        }
    }
}

async fn devices(State(web): State<Arc<Web>>, Extension(a): Extension<Authed>) -> Response {
    let rows = match web.gw.store.run(|s| s.devices()).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!("admin UI: {e}");
            let body = html! { p class="error" { (e) } };
            return page(&web, Some(&a), "Devices", body).into_response();
        }
    };
    let body = html! {
        table #devices {
            thead { tr {
                th { "Name" } th { "Role" } th { "Cameras" } th { "State" } th { "Expires" }
                th { "Last seen" } th { "From" } th { "Live" } th {}
            } }
            tbody {
                @for d in &rows { (device_row(d, web.gw.sessions.count(d.id.as_str()), web.gw.clock.unix_now())) }
            }
        }
        @if rows.is_empty() {
            p { "No devices yet. " a href="/pair" { "Pair a phone" } "." }
        }
    };
    page(&web, Some(&a), "Devices", body).into_response()
}

/// A status field as its wire text (`"-"` when absent), the way the JSON API shows it.
fn shown<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v).unwrap_or_default() {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

async fn cameras(State(web): State<Arc<Web>>, Extension(a): Extension<Authed>) -> Html<String> {
    let statuses = web.gw.cameras.statuses();
    let body = html! {
        table #cameras {
            thead { tr {
                th { "Camera" } th { "Kind" } th { "Status" } th { "Codec" } th { "Resolution" }
                th { "Viewers" } th { "Upstream" } th { "From" } th {}
            } }
            tbody {
                @for c in &statuses {
                    tr data-camera=(c.id) {
                        td { (c.id) }
                        td { (c.kind) }
                        td class="cam-state" { (shown(&c.state)) " " small { (c.error.as_deref().unwrap_or("")) } }
                        td { (shown(&c.codec)) }
                        td {
                            @if let (Some(w), Some(h)) = (c.width, c.height) { (w) "×" (h) } @else { "-" }
                        }
                        td { (c.viewers) }
                        td { (c.upstream_sessions) }
                        (super::cameras::manage_cells(&web.gw, &c.id))
                    }
                }
            }
        }
        div class="views" {
            @for c in &web.gw.cameras.configs() {
                @let id = &c.id;
                figure {
                    @if matches!(c.source, crate::camera::CameraSource::Rtsp { .. }) {
                        video id={ "view-" (id) } data-mse={ "/cameras/" (id) "/live.mp4" } data-camera=(id) muted autoplay playsinline {}
                        figcaption { (id) " (fMP4)" }
                    } @else {
                        img id={ "view-" (id) } src={ "/cameras/" (id) "/live.mjpeg" } alt={ "live view of " (id) };
                        figcaption { (id) " (MJPEG)" }
                    }
                }
            }
        }
        (super::cameras::panel())
    };
    page(&web, Some(&a), "Cameras", body)
}

async fn remote(State(web): State<Arc<Web>>, Extension(a): Extension<Authed>) -> Html<String> {
    let body = html! {
        section #remote-status { p { "Asking the router…" } }
        h2 { "Open remote access" }
        p { "Nothing is opened until you approve it here. First see exactly what will be asked of the router." }
        form #remote-form data-plan="/api/remote/plan" {
            label class="inline" { input type="checkbox" name="ipv4" checked; " IPv4 port mapping" }
            label class="inline" { input type="checkbox" name="ipv6"; " IPv6 pinhole" }
            label { "Lease " select name="lease_secs" {
                option value="3600" { "1 hour (renewed while approved)" }
                option value="7200" { "2 hours" }
                option value="1800" { "30 minutes" }
            } }
            button { "Show what will be asked" }
        }
        section #remote-plan hidden {
            h3 { "The router will be asked" }
            div #plan-body {}
            button #remote-open class="danger" { "Approve and open" }
        }
        p { button data-post="/api/remote/close" data-then="reload" data-confirm="Close remote access and remove every mapping?" { "Close remote access" } }
        h2 { "Mappings on the router" }
        p { "Every port mapping the router holds, with the LAN host it points to. Cameras open mappings by themselves; remove what you did not ask for." }
        button #router-audit type="button" { "Read the router's mappings" }
        div #router-mappings {}
    };
    page(&web, Some(&a), "Remote access", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_pairing::Role;

    #[test]
    fn a_hostile_device_name_is_text_in_every_attribute_and_cell() {
        let d = DeviceRow {
            id: latchkey_pairing::DeviceId("dev\"1".into()),
            name: "<img src=x onerror=alert(1)>'\"&".into(),
            role: Role::Viewer,
            cameras: "all\"><script>".into(),
            state: DeviceState::Active,
            expires_at: None,
            code: "123456".into(),
            created_at: 0,
            last_seen: Some(1),
            last_addr: Some("<b>".into()),
        };
        let html = device_row(&d, 0, 0).into_string();
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(html.contains("data-device=\"dev&quot;1\""), "{html}");
    }
}
