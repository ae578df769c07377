//! The local player endpoint: native players (AVPlayer, ExoPlayer, VLC) and the CLI's
//! `serve` play the gateway's cameras from a loopback URL, through the Noise channel.
//!
//! ```text
//!  player ──HTTP/1.1──▶ 127.0.0.1:PORT/TOKEN/… ──one Noise channel (HTTP/2)──▶ gateway
//!   TOKEN/                          a player page (lists cameras, plays them)
//!   TOKEN/cameras.json              ──▶ /v1/cameras
//!   TOKEN/cameras/ID/live.mp4       ──▶ /v1/cameras/ID/live.mp4 (and live.mjpeg, snapshot.jpg)
//!   TOKEN/cameras/ID/live.m3u8      HLS of live.mp4: hls/init.mp4, hls/N.m4s (≤ 2 s each)
//! ```
//!
//! On a phone every other app can reach 127.0.0.1, and on a desktop so can any web page
//! (DNS rebinding), so a request is served only if its path starts with this launch's
//! unguessable token and its `Host` is this endpoint's loopback address by name or number.
//! Anything else gets nothing: the connection is closed without an answer. No CORS
//! header is ever sent, so another origin's page cannot read an answer either. Bodies are
//! passed through as they arrive, so when the gateway cuts the channel (revocation,
//! expiry) every local stream ends with it.

mod boxes;
pub mod front;
mod hls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use rand::RngCore as _;
use tokio::net::TcpListener;

pub use front::{Connector, Front};

use crate::api::valid_camera_id;

type Body = BoxBody<Bytes, hyper::Error>;

/// The page served at `TOKEN/`.
const PAGE: &str = include_str!("../serve.html");

/// Files passed through to the gateway for a camera.
const CAMERA_FILES: [&str; 3] = ["live.mp4", "live.mjpeg", "snapshot.jpg"];

/// A request that gets nothing (wrong token or foreign `Host`): the connection closes.
#[derive(Debug, thiserror::Error)]
#[error("refused a local request without the token or with a foreign Host")]
struct Refused;

/// A running player endpoint on loopback; stops when dropped.
#[derive(Debug)]
pub struct Player {
    base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Player {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Player {
    /// Starts an endpoint on 127.0.0.1 (a free port) that reaches the home through
    /// `connector`. Must be called within a tokio runtime.
    pub async fn start(connector: Connector) -> std::io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let endpoint = Endpoint::new(&listener, connector)?;
        let base = endpoint.base_url();
        let task = tokio::spawn(async move {
            let _ = endpoint.run(listener).await;
        });
        Ok(Self { base, task })
    }

    /// `http://127.0.0.1:PORT/TOKEN`: what every URL of this endpoint starts with.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// A camera's live fMP4 URL.
    pub fn mp4_url(&self, camera: &str) -> String {
        format!("{}/cameras/{camera}/live.mp4", self.base)
    }

    /// A camera's HLS playlist URL (fMP4 segments of at most 2 s).
    pub fn hls_url(&self, camera: &str) -> String {
        format!("{}/cameras/{camera}/live.m3u8", self.base)
    }

    /// A camera's MJPEG URL (MJPEG, snapshot and demo cameras).
    pub fn mjpeg_url(&self, camera: &str) -> String {
        format!("{}/cameras/{camera}/live.mjpeg", self.base)
    }
}

/// One endpoint: its token, the hosts it answers to, its channel and HLS feeds.
#[derive(Debug)]
pub struct Endpoint {
    token: String,
    hosts: Vec<String>,
    addr: SocketAddr,
    front: Arc<Front>,
    hls: hls::Hls,
}

impl Endpoint {
    /// An endpoint for `listener` with a fresh token.
    pub fn new(listener: &TcpListener, connector: Connector) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let port = addr.port();
        let mut hosts = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ];
        if !hosts.contains(&addr.to_string()) {
            hosts.push(addr.to_string());
        }
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        Ok(Self {
            token: latchkey_pairing::keys::b64(&raw),
            hosts,
            addr,
            front: Arc::new(Front::new(connector)),
            hls: hls::Hls::default(),
        })
    }

    /// `http://ADDR/TOKEN`.
    pub fn base_url(&self) -> String {
        format!("http://{}/{}", self.addr, self.token)
    }

    /// Serves `listener` until the future is dropped.
    pub async fn run(self, listener: TcpListener) -> std::io::Result<()> {
        let me = Arc::new(self);
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accepting a local connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let me = me.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let me = me.clone();
                    async move { me.handle(req).await }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder.timer(TokioTimer::new());
                if let Err(e) = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%peer, "local connection ended: {e}");
                }
            });
        }
    }

    /// The path after the token, if the request carries the token and a Host of ours.
    fn admitted<'a>(&self, req: &'a Request<Incoming>) -> Option<&'a str> {
        let host = req.headers().get(header::HOST)?.to_str().ok()?;
        if !self.hosts.iter().any(|h| h == host) {
            return None;
        }
        let rest = req.uri().path().strip_prefix('/')?;
        let (token, after) = rest.split_at_checked(self.token.len())?;
        let same = token
            .bytes()
            .zip(self.token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        (same && (after.is_empty() || after.starts_with('/'))).then_some(after)
    }

    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Body>, Refused> {
        let Some(path) = self.admitted(&req) else {
            return Err(Refused);
        };
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Ok(json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET is served here",
            ));
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let upstream = match parts.as_slice() {
            [] | [""] if path.is_empty() => {
                let mut r = full(StatusCode::PERMANENT_REDIRECT, "text/plain", "");
                if let Ok(v) = header::HeaderValue::from_str(&format!("/{}/", self.token)) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                return Ok(r);
            }
            [""] | ["index.html"] => {
                return Ok(full(StatusCode::OK, "text/html; charset=utf-8", PAGE));
            }
            ["cameras.json"] => "/v1/cameras".to_string(),
            ["cameras", id, "live.m3u8"] if valid_camera_id(id) => {
                return Ok(match self.hls.playlist(&self.front, id).await {
                    Some(text) => full(StatusCode::OK, "application/vnd.apple.mpegurl", text),
                    None => json_error(StatusCode::BAD_GATEWAY, "the live stream did not start"),
                });
            }
            ["cameras", id, "hls", file] if valid_camera_id(id) => {
                return Ok(match self.hls.file(id, file) {
                    Some(bytes) => full(StatusCode::OK, "video/mp4", bytes),
                    None => json_error(StatusCode::NOT_FOUND, "no such segment"),
                });
            }
            ["cameras", id, file] if valid_camera_id(id) && CAMERA_FILES.contains(file) => {
                format!("/v1/cameras/{id}/{file}")
            }
            _ => return Ok(json_error(StatusCode::NOT_FOUND, "not found")),
        };
        Ok(match self.front.forward(&upstream).await {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let mut out = Response::new(body.boxed());
                *out.status_mut() = parts.status;
                for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
                    if let Some(v) = parts.headers.get(&name) {
                        out.headers_mut().insert(name, v.clone());
                    }
                }
                out
            }
            Err(e) => {
                tracing::warn!("forwarding {upstream}: {e}");
                json_error(StatusCode::BAD_GATEWAY, &e.to_string())
            }
        })
    }
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message }).to_string();
    full(status, "application/json", body)
}
