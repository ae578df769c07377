//! The local HTTP front: lets any player on this machine (VLC, ffplay, a browser) watch
//! the gateway's cameras through the Noise channel.
//!
//! ```text
//!  player ──HTTP/1.1──▶ 127.0.0.1:PORT ──one Noise channel (HTTP/2)──▶ gateway
//!   /                      the page below (lists cameras, plays them)
//!   /cameras.json          ──▶ /v1/cameras
//!   /cameras/ID/live.mp4   ──▶ /v1/cameras/ID/live.mp4     (and live.mjpeg, snapshot.jpg)
//! ```
//!
//! All requests share one channel, opened on demand and reopened when it closed. Bodies
//! are passed through as they arrive, so when the gateway cuts the channel (revocation,
//! expiry) every local stream ends with it.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use crate::api::valid_camera_id;
use crate::{ClientError, Connection, StateDir};

type Body = BoxBody<Bytes, hyper::Error>;

/// The page served at `/`.
const PAGE: &str = include_str!("serve.html");

/// Files the front passes through for a camera.
const CAMERA_FILES: [&str; 3] = ["live.mp4", "live.mjpeg", "snapshot.jpg"];

/// Serves the local front on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, dir: StateDir) -> std::io::Result<()> {
    let front = Arc::new(Front {
        dir,
        conn: Mutex::new(None),
    });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("accepting a local connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let front = front.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let front = front.clone();
                async move { Ok::<_, Infallible>(front.handle(req).await) }
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

struct Front {
    dir: StateDir,
    conn: Mutex<Option<Arc<Connection>>>,
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
    response
}

fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message }).to_string();
    full(status, "application/json", body)
}

impl Front {
    /// The shared channel, (re)connecting if there is none or it closed.
    async fn connection(&self, fresh: bool) -> Result<Arc<Connection>, ClientError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !fresh
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let c = Arc::new(crate::connect(&self.dir).await?);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Sends `path` to the gateway, retrying once on a fresh channel if the old one died.
    async fn forward(&self, path: &str) -> Result<Response<Incoming>, ClientError> {
        let conn = self.connection(false).await?;
        match conn.request(Method::GET, path).await {
            Ok(r) => Ok(r),
            Err(ClientError::Http { .. }) => {
                let conn = self.connection(true).await?;
                conn.request(Method::GET, path).await
            }
            Err(e) => Err(e),
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return json_error(StatusCode::METHOD_NOT_ALLOWED, "only GET is served here");
        }
        let path = req.uri().path();
        let upstream = match path {
            "/" | "/index.html" => {
                return full(StatusCode::OK, "text/html; charset=utf-8", PAGE);
            }
            "/cameras.json" => "/v1/cameras".to_string(),
            _ => {
                let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                match parts.as_slice() {
                    ["cameras", id, file] if valid_camera_id(id) && CAMERA_FILES.contains(file) => {
                        format!("/v1/cameras/{id}/{file}")
                    }
                    _ => return json_error(StatusCode::NOT_FOUND, "not found"),
                }
            }
        };
        match self.forward(&upstream).await {
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
        }
    }
}
