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

/// Largest HTTP/2 frame either side accepts: 64 KiB rather than the 16 KiB default, so a
/// bulk body takes a quarter of the frames, writes and wake-ups (measured by the relay
/// benchmark; see BENCHMARKS.md).
pub const H2_MAX_FRAME: u32 = 64 << 10;
/// Largest JSON answer the client reads into memory.
const MAX_JSON_BODY: usize = 4 << 20;
/// Largest snapshot the client reads into memory.
const MAX_SNAPSHOT: usize = 16 << 20;

/// A live stream format the gateway serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveFormat {
    /// Fragmented MP4 (H.264/H.265 cameras).
    Mp4,
    /// `multipart/x-mixed-replace` JPEGs (MJPEG, snapshot and demo cameras).
    Mjpeg,
}

impl LiveFormat {
    /// The file name in the gateway's and the local front's URLs.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Mp4 => "live.mp4",
            Self::Mjpeg => "live.mjpeg",
        }
    }
}

/// Camera ids are `a-z 0-9 - _`; anything else never reaches the gateway's URL space.
pub fn valid_camera_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

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
    /// `idle`, `connecting`, `online` or `offline`.
    #[serde(default)]
    pub state: Option<String>,
    /// Why it is offline.
    #[serde(default)]
    pub error: Option<String>,
    /// `h264`, `h265` or `mjpeg`, once known.
    #[serde(default)]
    pub codec: Option<String>,
    /// RFC 6381 codec string, for a browser's MediaSource.
    #[serde(default)]
    pub codec_string: Option<String>,
    /// Picture width, once known.
    #[serde(default)]
    pub width: Option<u32>,
    /// Picture height, once known.
    #[serde(default)]
    pub height: Option<u32>,
    /// Viewers watching now.
    #[serde(default)]
    pub viewers: usize,
    /// The gateway's connections to the camera (0 or 1).
    #[serde(default)]
    pub upstream_sessions: u8,
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
    /// Starts HTTP/2 over an established channel (what [`crate::connect`] does after
    /// its handshake).
    pub async fn start(
        noise: NoiseStream<TcpStream>,
        addr: SocketAddr,
        hello: ServerHello,
    ) -> Result<Self, ClientError> {
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .max_frame_size(H2_MAX_FRAME)
            .handshake(TokioIo::new(noise))
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

    /// True once the channel to the gateway is gone (revoked, gateway restarted, network).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends a request and returns the response with its streaming body. Requests may
    /// run concurrently (HTTP/2 streams in the one channel).
    pub async fn request(
        &self,
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
        let mut sender = self.sender.clone();
        sender.ready().await.map_err(|source| ClientError::Http {
            op: "waiting for the channel",
            source,
        })?;
        sender
            .send_request(req)
            .await
            .map_err(|source| ClientError::Http {
                op: "sending a request",
                source,
            })
    }

    /// GETs `path` and decodes a JSON answer, turning error statuses into [`ClientError::Api`].
    pub async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
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
    pub async fn cameras(&self) -> Result<Vec<CameraInfo>, ClientError> {
        self.get_json("/v1/cameras").await
    }

    /// GETs a camera resource; an error status becomes [`ClientError::Api`] with the
    /// gateway's explanation, so a success is always a body worth reading.
    async fn camera_get(
        &self,
        camera: &str,
        file: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        if !valid_camera_id(camera) {
            return Err(ClientError::Api {
                status: 404,
                message: "no such camera".into(),
            });
        }
        let response = self
            .request(Method::GET, &format!("/v1/cameras/{camera}/{file}"))
            .await?;
        let status = response.status();
        if status == StatusCode::OK {
            return Ok(response);
        }
        let body = http_body_util::Limited::new(response.into_body(), MAX_JSON_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(ClientError::Api {
            status: status.as_u16(),
            message,
        })
    }

    /// The camera's latest picture as a JPEG.
    pub async fn snapshot(&self, camera: &str) -> Result<Bytes, ClientError> {
        let response = self.camera_get(camera, "snapshot.jpg").await?;
        http_body_util::Limited::new(response.into_body(), MAX_SNAPSHOT)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| ClientError::Api {
                status: 200,
                message: format!("reading the snapshot of {camera}: {e}"),
            })
    }

    /// Starts a live stream; the response body carries it until the camera, the
    /// channel or this phone's access ends.
    pub async fn live(
        &self,
        camera: &str,
        format: LiveFormat,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        self.camera_get(camera, format.file_name()).await
    }
}
