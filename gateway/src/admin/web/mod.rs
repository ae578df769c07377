//! The LAN admin web UI: login, pages and the JSON API under `/api/`, over the admin
//! HTTPS listener.
//!
//! Every request passes [`guard`] before any handler runs:
//!
//! ```text
//!  request ─▶ Host is one of ours? ──no──▶ 421   (DNS rebinding)
//!            unsafe method from another origin? ──▶ 403   (CSRF, first line)
//!            public path (login, setup, static)? ──▶ handler
//!            session cookie valid? ──no──▶ 401 (/api, /cameras) or 303 /login
//!            unsafe method with the session's X-CSRF-Token? ──no──▶ 403
//!            handler ─▶ security headers on every answer
//! ```
//!
//! Source addresses outside the LAN never get this far: the accept loop in
//! [`super::https`] closes them without a byte ([`is_lan`]).

pub mod api;
mod audit_page;
pub mod auth;
pub mod cameras;
pub mod pages;
pub mod quarantine;
pub mod session_cookie;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};

use crate::Gateway;
use crate::admin::answers::WebError;

/// Largest request body (forms and JSON are small; nothing is uploaded).
pub const MAX_BODY: usize = 16 * 1024;
/// Header that state-changing requests carry the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Content Security Policy: only our own script and style, no inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The admin UI's shared state.
#[derive(Debug)]
pub struct Web {
    /// The gateway.
    pub gw: Arc<Gateway>,
    /// The admin certificate's SHA-256 fingerprint, shown on every page.
    pub fingerprint: String,
    /// Password, sessions, setup token.
    pub auth: auth::Auth,
    /// `Host` header values accepted, lowercase.
    hosts: Vec<String>,
}

impl Web {
    /// The UI for `gw`, listening on `listen`, with the certificate `fingerprint`.
    pub fn new(gw: Arc<Gateway>, fingerprint: String, listen: SocketAddr) -> Arc<Self> {
        Arc::new(Self {
            gw,
            fingerprint,
            auth: auth::Auth::default(),
            hosts: allowed_hosts(listen, &super::tls::names()),
        })
    }

    /// Whether the owner has set a password yet.
    pub fn has_password(&self) -> bool {
        matches!(self.gw.store.admin_password(), Ok(Some(_)))
    }
}

/// The connection's peer, attached per connection by the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// A logged-in request, attached by [`guard`].
#[derive(Clone, Debug)]
pub struct Authed {
    /// The session's CSRF token, written into pages for their script.
    pub csrf: String,
    /// The session cookie's value (to end it on logout).
    pub session_id: String,
}

/// The admin UI's router.
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .merge(pages::routes())
        .merge(api::routes())
        .merge(cameras::routes())
        .merge(quarantine::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(web.clone(), guard))
        .layer(middleware::from_fn(refuse_large_bodies))
        .with_state(web)
}

/// Bodies announced larger than this are refused without reading them at all.
const MAX_LINGER: u64 = 1024 * 1024;

/// Answers 413 to a body announced over [`MAX_BODY`] before any handler runs. Such a body
/// is still read and thrown away (up to [`MAX_LINGER`], for at most 3 s) before the
/// answer: closing with unread bytes makes the kernel reset the connection, and the
/// browser would then see a reset instead of the 413 (a "lingering close", as nginx does).
async fn refuse_large_bodies(req: Request, next: middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    use http_body_util::BodyExt as _;
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(len) = announced.filter(|len| *len > MAX_BODY as u64) else {
        return next.run(req).await;
    };
    if len <= MAX_LINGER {
        let mut body = req.into_body();
        let drain = async {
            let mut seen: u64 = 0;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                if seen >= len {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), drain).await;
    }
    (
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        [(axum::http::header::CONNECTION, "close")],
        axum::Json(WebError {
            error: format!("the request body is larger than {MAX_BODY} bytes"),
        }),
    )
        .into_response()
}

/// Loopback, private (RFC 1918), link-local and unique-local addresses: the LAN.
/// Carrier-grade NAT space (100.64.0.0/10) is not the owner's LAN and is refused.
pub fn is_lan(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_lan(IpAddr::V4(v4));
            }
            let first = v6.segments().first().copied().unwrap_or(0);
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// `Host` values the UI answers to: its own address(es) and certificate names, with the
/// port (and without it on 443).
pub fn allowed_hosts(listen: SocketAddr, names: &[String]) -> Vec<String> {
    let port = listen.port();
    let mut ips: Vec<IpAddr> = if listen.ip().is_unspecified() {
        crate::net::reachable_addresses(listen)
            .iter()
            .map(|a| a.ip())
            .collect()
    } else {
        vec![listen.ip()]
    };
    if listen.ip().is_unspecified() || listen.ip().is_loopback() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
        ips.push(IpAddr::from(std::net::Ipv6Addr::LOCALHOST));
    }
    let mut bases: Vec<String> = ips
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        })
        .collect();
    bases.extend(names.iter().map(|n| n.to_ascii_lowercase()));
    let mut out = Vec::new();
    for b in bases {
        out.push(format!("{b}:{port}"));
        if port == 443 {
            out.push(b);
        }
    }
    out.sort();
    out.dedup();
    out
}

fn is_public(path: &str) -> bool {
    matches!(path, "/login" | "/setup" | "/favicon.ico") || path.starts_with("/static/")
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

/// A state-changing request must come from our own origin: a browser says so with
/// `Sec-Fetch-Site: same-origin` and an `Origin` equal to ours. At least one must be
/// present, and any present must agree (old browsers lack Sec-Fetch-Site).
fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or(""));
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or(""));
    if site.is_none() && origin.is_none() {
        return false;
    }
    let site_ok = site.is_none_or(|s| s == "same-origin");
    let origin_ok = origin.is_none_or(|o| o.eq_ignore_ascii_case(&format!("https://{host}")));
    site_ok && origin_ok
}

/// A JSON error `{"error": ...}`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    let body = WebError {
        error: message.to_string(),
    };
    (status, axum::Json(body)).into_response()
}

/// The gatekeeper described in the module docs.
async fn guard(State(web): State<Arc<Web>>, mut req: Request, next: Next) -> Response {
    let mut response = match check(&web, &req) {
        Ok(authed) => {
            if let Some(a) = authed {
                req.extensions_mut().insert(a);
            }
            next.run(req).await
        }
        Err(refusal) => *refusal,
    };
    let h = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn check(web: &Web, req: &Request) -> Result<Option<Authed>, Box<Response>> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if !web.hosts.contains(&host) {
        // A page on another name that resolves to us (DNS rebinding) ends here.
        tracing::debug!(host, "admin UI: refused an unknown Host");
        return Err(Box::new(
            (StatusCode::MISDIRECTED_REQUEST, "unknown host name\n").into_response(),
        ));
    }
    let safe = is_safe(req.method());
    if !safe && !same_origin(req.headers(), &host) {
        tracing::warn!(
            path = req.uri().path(),
            "admin UI: refused a cross-origin request"
        );
        return Err(Box::new(json_error(
            StatusCode::FORBIDDEN,
            "cross-origin request refused",
        )));
    }
    let path = req.uri().path();
    if is_public(path) {
        return Ok(None);
    }
    let now = web.gw.clock.instant();
    let session = session_cookie::session_id(req.headers())
        .and_then(|id| web.auth.session(&id, now).map(|s| (id, s)));
    let Some((session_id, session)) = session else {
        return Err(Box::new(
            if !safe || path.starts_with("/api/") || path.starts_with("/cameras/") {
                json_error(StatusCode::UNAUTHORIZED, "log in first")
            } else {
                Redirect::to("/login").into_response()
            },
        ));
    };
    if !safe {
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // Compared as digests so the comparison's timing says nothing about the token.
        use sha2::{Digest, Sha256};
        if Sha256::digest(sent.as_bytes()) != Sha256::digest(session.csrf.as_bytes()) {
            return Err(Box::new(json_error(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token",
            )));
        }
    }
    Ok(Some(Authed {
        csrf: session.csrf,
        session_id,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn lan_ranges() {
        for lan in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.2",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:192.168.1.2",
        ] {
            assert!(is_lan(lan.parse().unwrap()), "{lan}");
        }
        for wan in [
            "8.8.8.8",
            "100.64.0.1",
            "100.127.255.254",
            "203.0.113.2",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "172.32.0.1",
        ] {
            assert!(!is_lan(wan.parse().unwrap()), "{wan}");
        }
    }

    #[test]
    fn hosts_are_our_address_and_names_only() {
        let hosts = allowed_hosts(
            "127.0.0.1:8443".parse().unwrap(),
            &["latchkey.local".into()],
        );
        assert!(hosts.contains(&"127.0.0.1:8443".to_string()));
        assert!(hosts.contains(&"latchkey.local:8443".to_string()));
        assert!(!hosts.contains(&"evil.example:8443".to_string()));
        assert!(!hosts.contains(&"127.0.0.1".to_string()));
    }

    #[test]
    fn origin_checks() {
        let mut h = HeaderMap::new();
        assert!(!same_origin(&h, "127.0.0.1:1"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://127.0.0.1:1"),
        );
        assert!(same_origin(&h, "127.0.0.1:1"));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h, "127.0.0.1:1"));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:2"),
        );
        assert!(!same_origin(&h, "127.0.0.1:1"));
    }
}
