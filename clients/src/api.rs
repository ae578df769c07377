//! The gateway API as the phone sees it: HTTP/2 inside the Noise channel.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use latchkey_pairing::ServerHello;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::ClientError;
use crate::noise_io::NoiseStream;

/// Largest JSON answer the client reads into memory.
const MAX_JSON_BODY: usize = 4 << 20;

/// A camera as the gateway API lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CameraInfo {
    /// Stable id, used in URLs.
    pub id: String,
    /// Source kind: `rtsp`, `mjpeg`, `snapshot` or `demo`.
    pub kind: String,
    /// Whether the camera is delivering frames.
    #[serde(default)]
    pub online: bool,
}

/// An open session with the gateway.
#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    hello: ServerHello,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Connection {
    pub(crate) async fn start(
        noise: NoiseStream<TcpStream>,
        addr: SocketAddr,
        hello: ServerHello,
    ) -> Result<Self, ClientError> {
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(noise))
                .await
                .map_err(|source| ClientError::Http {
                    op: "starting http/2 in the channel",
                    source,
                })?;
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("channel closed: {e}");
            }
        });
        Ok(Self {
            sender,
            addr,
            hello,
            driver,
        })
    }

    /// The address this session runs over.
    pub fn peer_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the gateway said in its handshake (name, addresses, device id).
    pub fn server_hello(&self) -> &ServerHello {
        &self.hello
    }

    /// Sends a request and returns the response with its streaming body.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://gateway{path}"))
            .body(Empty::new())
            .map_err(|e| ClientError::Api {
                status: 0,
                message: format!("building request for {path}: {e}"),
            })?;
        self.sender
            .ready()
            .await
            .map_err(|source| ClientError::Http {
                op: "waiting for the channel",
                source,
            })?;
        self.sender
            .send_request(req)
            .await
            .map_err(|source| ClientError::Http {
                op: "sending a request",
                source,
            })
    }

    /// GETs `path` and decodes a JSON answer, turning error statuses into [`ClientError::Api`].
    pub async fn get_json<T: for<'de> Deserialize<'de>>(
        &mut self,
        path: &str,
    ) -> Result<T, ClientError> {
        let response = self.request(Method::GET, path).await?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_JSON_BODY)
            .collect()
            .await
            .map_err(|e| ClientError::Api {
                status: status.as_u16(),
                message: format!("reading body: {e}"),
            })?
            .to_bytes();
        if status != StatusCode::OK {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(ClientError::Api {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Api {
            status: status.as_u16(),
            message: format!("decoding {path}: {e}"),
        })
    }

    /// The cameras this phone may watch.
    pub async fn cameras(&mut self) -> Result<Vec<CameraInfo>, ClientError> {
        self.get_json("/v1/cameras").await
    }
}
