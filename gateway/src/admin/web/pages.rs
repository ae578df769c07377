//! The admin UI's pages: server-rendered HTML, one small script (`/static/app.js`) and
//! one stylesheet, all served by the gateway (no CDN; the CSP allows nothing else).
//!
//! Every value from the store, a phone or the router is escaped with [`esc`] before it
//! reaches the page; the pages' buttons and forms call the JSON API through app.js.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use latchkey_pairing::DeviceState;

use super::api::{AuditQuery, PER_PAGE};
use super::{Authed, Web};
use crate::admin::actions;
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
        .route("/audit", get(audit))
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

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn when(ts: Option<u64>) -> String {
    match ts {
        None => "never".into(),
        Some(t) => {
            let at = UNIX_EPOCH + Duration::from_secs(t);
            format!(
                "<time data-ts=\"{t}\">{}</time>",
                humantime::format_rfc3339_seconds(at)
            )
        }
    }
}

const NAV: [(&str, &str); 5] = [
    ("/pair", "Pair a phone"),
    ("/devices", "Devices"),
    ("/cameras", "Cameras"),
    ("/remote", "Remote access"),
    ("/audit", "Audit log"),
];

fn page(web: &Web, authed: Option<&Authed>, title: &str, body: &str) -> Html<String> {
    let mut nav = String::new();
    if authed.is_some() {
        nav.push_str("<nav>");
        for (href, label) in NAV {
            let current = if label == title {
                " aria-current=\"page\""
            } else {
                ""
            };
            nav.push_str(&format!("<a href=\"{href}\"{current}>{label}</a>"));
        }
        nav.push_str("<button type=\"button\" class=\"link\" data-post=\"/logout\" data-then=\"/login\">Log out</button></nav>");
    }
    let csrf = authed.map(|a| esc(&a.csrf)).unwrap_or_default();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"csrf\" content=\"{csrf}\"><title>{title} · {name}</title>\
<link rel=\"stylesheet\" href=\"/static/app.css\"><script src=\"/static/app.js\" defer></script></head>\
<body><header><strong>Latchkey · {name}</strong>{nav}</header><main><h1>{title}</h1>\
<p id=\"flash\" role=\"status\"></p>{body}</main>\
<footer>Admin certificate SHA-256: <code id=\"fingerprint\">{fp}</code> — compare it with what your browser shows before typing a password.</footer>\
</body></html>",
        name = esc(&web.gw.config.name),
        fp = esc(&web.fingerprint),
    ))
}

async fn login(State(web): State<Arc<Web>>) -> Html<String> {
    let body = if web.has_password() {
        "<form id=\"login\" data-api=\"/login\" data-then=\"/devices\">\
<label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required autofocus></label>\
<button>Log in</button></form>"
    } else {
        "<p>No password is set yet. Open the one-time <strong>setup link</strong> that the gateway \
printed when it started (it is valid for 15 minutes; restart the gateway for a new one).</p>"
    };
    page(&web, None, "Log in", body)
}

async fn setup(State(web): State<Arc<Web>>) -> Html<String> {
    let body = if web.has_password() {
        "<p>The password is already set. <a href=\"/login\">Log in</a>.</p>"
    } else {
        // The token travels in the URL fragment, which browsers never send to a server
        // or put in a Referer; app.js copies it into the form.
        "<p>Choose the password for this gateway's admin pages (at least 10 characters). \
There is no default password and no way in without this one-time link.</p>\
<form id=\"setup\" data-api=\"/setup\" data-then=\"/pair\">\
<input type=\"hidden\" name=\"token\" id=\"setup-token\">\
<label>New password <input type=\"password\" name=\"password\" minlength=\"10\" autocomplete=\"new-password\" required></label>\
<label>Again <input type=\"password\" name=\"password2\" minlength=\"10\" autocomplete=\"new-password\" required></label>\
<button>Set password</button></form>"
    };
    page(&web, None, "Set up", body)
}

fn camera_options(web: &Web) -> String {
    web.gw
        .config
        .cameras
        .iter()
        .map(|c| {
            format!(
                "<label class=\"inline\"><input type=\"checkbox\" name=\"camera\" value=\"{id}\" checked> {id}</label>",
                id = esc(&c.id)
            )
        })
        .collect()
}

const EXPIRY_OPTIONS: &str = "<option value=\"\">never</option><option value=\"3600\">1 hour</option>\
<option value=\"86400\">24 hours</option><option value=\"604800\">7 days</option>\
<option value=\"2592000\">30 days</option>";

async fn pair(State(web): State<Arc<Web>>, Extension(a): Extension<Authed>) -> Html<String> {
    let body = format!(
        "<form id=\"pair-form\" data-api=\"/api/pair\" data-then=\"pair\">\
<label>Name <input name=\"name\" maxlength=\"64\" placeholder=\"e.g. Anna's phone\"></label>\
<label>Role <select name=\"role\"><option value=\"viewer\">viewer (family)</option>\
<option value=\"guest\">guest (time-limited)</option><option value=\"owner\">owner</option></select></label>\
<fieldset><legend>Cameras</legend>{cams}</fieldset>\
<label>Access expires <select name=\"expires_secs\">{EXPIRY_OPTIONS}</select></label>\
<label class=\"inline\"><input type=\"checkbox\" name=\"auto_confirm\"> admit without confirming the short code</label>\
<button>Make pairing code</button></form>\
<section id=\"pairing\" hidden><h2>Scan with the phone</h2><div id=\"qr\"></div>\
<p>Or paste: <code id=\"pair-uri\"></code></p>\
<p>This code works once and expires in <strong id=\"countdown\"></strong>.</p></section>\
<h2>Waiting for confirmation</h2>\
<p>Compare the short code with the one the phone shows before confirming.</p>\
<table id=\"pending\"><thead><tr><th>Name</th><th>Role</th><th>Short code</th><th>From</th><th></th></tr></thead><tbody></tbody></table>",
        cams = camera_options(&web),
    );
    page(&web, Some(&a), "Pair a phone", &body)
}

fn device_row(d: &DeviceRow, sessions: usize) -> String {
    let id = esc(&d.id);
    let name = esc(&d.name);
    let mut buttons = String::new();
    match d.state {
        DeviceState::Pending => buttons.push_str(&format!(
            "<button data-post=\"/api/devices/{id}/confirm\">Confirm</button>\
<button data-post=\"/api/devices/{id}/reject\" class=\"danger\">Reject</button>"
        )),
        DeviceState::Active => buttons.push_str(&format!(
            "<button data-post=\"/api/devices/{id}/revoke\" data-confirm=\"Revoke {name} ({id})? Its sessions close at once and it can never come back.\" class=\"danger\">Revoke</button>"
        )),
        DeviceState::Revoked => {}
    }
    let edit = if d.state == DeviceState::Revoked {
        String::new()
    } else {
        format!(
            "<details><summary>Edit access</summary><form data-api=\"/api/devices/{id}/grants\" data-then=\"reload\">\
<label>Cameras <input name=\"cameras\" value=\"{cams}\" maxlength=\"512\"></label>\
<label>Expires in <select name=\"expires_secs\">{EXPIRY_OPTIONS}</select></label><button>Save</button></form></details>",
            cams = esc(&d.cameras)
        )
    };
    format!(
        "<tr data-device=\"{id}\" data-name=\"{name}\" data-state=\"{state}\"><td>{name}<br><small><code>{id}</code></small></td>\
<td>{role}</td><td>{cams}</td><td class=\"state-{state}\">{state}</td><td>{expires}</td><td>{seen}</td><td>{addr}</td><td>{sessions}</td>\
<td>{buttons}{edit}</td></tr>",
        role = esc(d.role.as_str()),
        cams = esc(&d.cameras),
        state = esc(actions::shown_state(
            d.state,
            d.expires_at,
            crate::unix_now()
        )),
        expires = when(d.expires_at),
        seen = when(d.last_seen),
        addr = esc(d.last_addr.as_deref().unwrap_or("-")),
    )
}

async fn devices(State(web): State<Arc<Web>>, Extension(a): Extension<Authed>) -> Response {
    let store = web.gw.store.clone();
    let rows = match tokio::task::spawn_blocking(move || store.devices()).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => {
            tracing::error!("admin UI: {e}");
            let body = format!("<p class=\"error\">{}</p>", esc(&e.to_string()));
            return page(&web, Some(&a), "Devices", &body).into_response();
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let mut body = String::from(
        "<table id=\"devices\"><thead><tr><th>Name</th><th>Role</th><th>Cameras</th><th>State</th>\
<th>Expires</th><th>Last seen</th><th>From</th><th>Live</th><th></th></tr></thead><tbody>",
    );
    for d in &rows {
        body.push_str(&device_row(d, web.gw.sessions.count(&d.id)));
    }
    body.push_str("</tbody></table>");
    if rows.is_empty() {
        body.push_str("<p>No devices yet. <a href=\"/pair\">Pair a phone</a>.</p>");
    }
    page(&web, Some(&a), "Devices", &body).into_response()
}

async fn cameras(State(web): State<Arc<Web>>, Extension(a): Extension<Authed>) -> Html<String> {
    let mut body = String::from(
        "<table id=\"cameras\"><thead><tr><th>Camera</th><th>Kind</th><th>Status</th><th>Codec</th>\
<th>Resolution</th><th>Viewers</th><th>Upstream</th><th>From</th><th></th></tr></thead><tbody>",
    );
    let statuses = web.gw.cameras.statuses();
    for c in &statuses {
        let v = serde_json::to_value(c).unwrap_or_default();
        let s = |k: &str| {
            v.get(k)
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .filter(|x| x != "null")
                .unwrap_or_else(|| "-".into())
        };
        let res = match (v.get("width"), v.get("height")) {
            (Some(w), Some(h)) if !w.is_null() && !h.is_null() => format!("{w}×{h}"),
            _ => "-".into(),
        };
        body.push_str(&format!(
            "<tr data-camera=\"{id}\"><td>{id}</td><td>{kind}</td><td class=\"cam-state\">{state} <small>{err}</small></td><td>{codec}</td><td>{res}</td><td>{viewers}</td><td>{up}</td>{manage}</tr>",
            manage = super::cameras::manage_cells(&web.gw, &c.id),
            id = esc(&s("id")),
            kind = esc(&s("kind")),
            state = esc(&s("state")),
            err = esc(v.get("error").and_then(|e| e.as_str()).unwrap_or("")),
            codec = esc(&s("codec")),
            viewers = esc(&s("viewers")),
            up = esc(&s("upstream_sessions")),
        ));
    }
    body.push_str("</tbody></table><div class=\"views\">");
    for c in &web.gw.cameras.configs() {
        let id = esc(&c.id);
        let is_video = matches!(c.source, crate::camera::CameraSource::Rtsp { .. });
        if is_video {
            body.push_str(&format!(
                "<figure><video id=\"view-{id}\" data-mse=\"/cameras/{id}/live.mp4\" data-camera=\"{id}\" muted autoplay playsinline></video><figcaption>{id} (fMP4)</figcaption></figure>"
            ));
        } else {
            body.push_str(&format!(
                "<figure><img id=\"view-{id}\" src=\"/cameras/{id}/live.mjpeg\" alt=\"live view of {id}\"><figcaption>{id} (MJPEG)</figcaption></figure>"
            ));
        }
    }
    body.push_str("</div>");
    body.push_str(super::cameras::PANEL);
    page(&web, Some(&a), "Cameras", &body)
}

async fn remote(State(web): State<Arc<Web>>, Extension(a): Extension<Authed>) -> Html<String> {
    let body = "<section id=\"remote-status\"><p>Asking the router…</p></section>\
<h2>Open remote access</h2>\
<p>Nothing is opened until you approve it here. First see exactly what will be asked of the router.</p>\
<form id=\"remote-form\" data-plan=\"/api/remote/plan\">\
<label class=\"inline\"><input type=\"checkbox\" name=\"ipv4\" checked> IPv4 port mapping</label>\
<label class=\"inline\"><input type=\"checkbox\" name=\"ipv6\"> IPv6 pinhole</label>\
<label>Lease <select name=\"lease_secs\"><option value=\"3600\">1 hour (renewed while approved)</option>\
<option value=\"7200\">2 hours</option><option value=\"1800\">30 minutes</option></select></label>\
<button>Show what will be asked</button></form>\
<section id=\"remote-plan\" hidden><h3>The router will be asked</h3><div id=\"plan-body\"></div>\
<button id=\"remote-open\" class=\"danger\">Approve and open</button></section>\
<p><button data-post=\"/api/remote/close\" data-then=\"reload\" data-confirm=\"Close remote access and remove every mapping?\">Close remote access</button></p>\
<h2>Mappings on the router</h2>\
<p>Every port mapping the router holds, with the LAN host it points to. Cameras open mappings by themselves; remove what you did not ask for.</p>\
<button id=\"router-audit\" type=\"button\">Read the router's mappings</button><div id=\"router-mappings\"></div>";
    page(&web, Some(&a), "Remote access", body)
}

async fn audit(
    State(web): State<Arc<Web>>,
    Extension(a): Extension<Authed>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Html<String> {
    let q = q.map(|q| q.0).unwrap_or_default();
    let page_no = q.page();
    let offset = (page_no - 1).saturating_mul(PER_PAGE);
    let result = actions::audit(&web.gw, q.filter(), offset, PER_PAGE).await;
    let store = web.gw.store.clone();
    let devices = tokio::task::spawn_blocking(move || store.devices())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let selected = |v: &Option<String>, x: &str| {
        if v.as_deref() == Some(x) {
            " selected"
        } else {
            ""
        }
    };
    let mut dev_opts = String::from("<option value=\"\">any</option>");
    for d in &devices {
        dev_opts.push_str(&format!(
            "<option value=\"{id}\"{sel}>{name} ({id})</option>",
            id = esc(&d.id),
            sel = selected(&q.device, &d.id),
            name = esc(&d.name)
        ));
    }
    let mut cam_opts = String::from("<option value=\"\">any</option>");
    for c in &web.gw.cameras.configs() {
        cam_opts.push_str(&format!(
            "<option value=\"{id}\"{sel}>{id}</option>",
            id = esc(&c.id),
            sel = selected(&q.camera, &c.id)
        ));
    }
    let mut body = format!(
        "<form method=\"get\" action=\"/audit\" class=\"filters\">\
<label>Device <select name=\"device\">{dev_opts}</select></label>\
<label>Camera <select name=\"camera\">{cam_opts}</select></label>\
<label>Kind <input name=\"kind\" value=\"{kind}\" placeholder=\"e.g. device-revoked\" maxlength=\"64\"></label>\
<button>Filter</button></form>",
        kind = esc(q.kind.as_deref().unwrap_or("")),
    );
    match result {
        Err(e) => body.push_str(&format!("<p class=\"error\">{}</p>", esc(&e.to_string()))),
        Ok(p) => {
            let names: std::collections::HashMap<&str, &str> = devices
                .iter()
                .map(|d| (d.id.as_str(), d.name.as_str()))
                .collect();
            body.push_str(
                "<table id=\"audit\"><thead><tr><th>#</th><th>When</th><th>Kind</th><th>Device</th>\
<th>Camera</th><th>From</th><th>Detail</th></tr></thead><tbody>",
            );
            for r in &p.rows {
                let device = r
                    .device
                    .as_deref()
                    .map_or_else(String::new, |d| esc(names.get(d).copied().unwrap_or(d)));
                body.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    r.id,
                    when(Some(r.at)),
                    esc(&r.kind),
                    device,
                    esc(r.camera.as_deref().unwrap_or("")),
                    esc(r.addr.as_deref().unwrap_or("")),
                    esc(&r.detail)
                ));
            }
            body.push_str("</tbody></table>");
            let pages = p.total.div_ceil(u64::from(PER_PAGE)).max(1);
            let link = |n: u32| {
                let mut qs = form_urlencoded::Serializer::new(String::new());
                for (k, v) in [
                    ("device", &q.device),
                    ("camera", &q.camera),
                    ("kind", &q.kind),
                ] {
                    if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                        qs.append_pair(k, v);
                    }
                }
                qs.append_pair("page", &n.to_string());
                format!("/audit?{}", qs.finish())
            };
            body.push_str(&format!(
                "<p class=\"pager\">{} entries · page {page_no} of {pages} ",
                p.total
            ));
            if page_no > 1 {
                body.push_str(&format!(
                    "<a href=\"{}\">← newer</a> ",
                    esc(&link(page_no - 1))
                ));
            }
            if u64::from(page_no) < pages {
                body.push_str(&format!(
                    "<a href=\"{}\">older →</a>",
                    esc(&link(page_no + 1))
                ));
            }
            body.push_str("</p>");
        }
    }
    page(&web, Some(&a), "Audit log", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<img src=x onerror='a'>&\""),
            "&lt;img src=x onerror=&#39;a&#39;&gt;&amp;&quot;"
        );
    }
}
