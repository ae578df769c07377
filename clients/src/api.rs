//! The gateway API as the phone sees it: HTTP/2 inside the Noise channel.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
pub use latchkey_pairing::api_types::{
    AuditPage, AuditRow, CameraInfo, Confirmed, DeviceInfo, Invitation, InvitationRequest,
    LiveFormat, Revoked,
};
use latchkey_pairing::{ApiError, ErrorCode, ServerHello};
use serde::Deserialize;
use tokio::net::TcpStream;

use crate::ClientError;
use crate::link::{self, Link, Phase};
pub use latchkey_channel::H2_MAX_FRAME;
use latchkey_channel::NoiseStream;
/// Largest JSON answer the client reads into memory.
const MAX_JSON_BODY: usize = 4 << 20;
/// Largest snapshot the client reads into memory.
const MAX_SNAPSHOT: usize = 16 << 20;

/// Camera ids are `a-z 0-9 - _`; anything else never reaches the gateway's URL space.
pub fn valid_camera_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The gateway's error answer (`{"error", "code"}`, PROTOCOL.md §7) as a typed error; a
/// body that is not that shape keeps its text and gets [`ErrorCode::Unknown`].
pub fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => ClientError::Api {
            status: status.as_u16(),
            code: e.code,
            message: e.error,
        },
        Err(_) => local(status.as_u16(), String::from_utf8_lossy(body).into_owned()),
    }
}

/// A failure on this side of an API call (no answer from the gateway to go by).
fn local(status: u16, message: String) -> ClientError {
    ClientError::Api {
        status,
        code: ErrorCode::Unknown,
        message,
    }
}

/// An open session with the gateway. Its HTTP/2 connection may hibernate while idle
/// (PROTOCOL.md §8.1): the next request restarts it in the same session, unseen.
#[derive(Debug)]
pub struct Connection {
    link: Link,
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
        let (link, driver) = Link::start(noise)
            .await
            .map_err(|source| ClientError::Http {
                op: "starting http/2 in the channel",
                source,
            })?;
        Ok(Self {
            link,
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
    /// A hibernated session is not closed.
    pub fn is_closed(&self) -> bool {
        self.link.now().phase == Phase::Closed
    }

    /// Sends a request and returns the response with its streaming body. Requests may
    /// run concurrently (HTTP/2 streams in the one channel). A request the gateway
    /// refused unprocessed because it was hibernating the session is sent once more on
    /// the session's next HTTP/2 connection.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        self.request_with_body(method, path, None).await
    }

    /// Like [`Self::request`], with a JSON body.
    pub async fn request_with_body(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let has_json = json.is_some();
        let body = json.unwrap_or_default();
        let build = || {
            let mut builder = Request::builder()
                .method(method.clone())
                .uri(format!("http://gateway{path}"));
            if has_json {
                builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
            }
            builder
                .body(Full::new(body.clone()))
                .map_err(|e| local(0, format!("building request for {path}: {e}")))
        };
        let mut retried = false;
        loop {
            let req = build()?;
            let state = self.link.sender().await;
            let mut sender = state.sender;
            let (op, sent) = match sender.ready().await {
                Ok(()) => ("sending a request", sender.send_request(req).await),
                Err(e) => ("waiting for the channel", Err(e)),
            };
            match sent {
                Ok(response) => return Ok(response),
                Err(e)
                    if !retried
                        && link::never_processed(&e)
                        && self.link.went_on_after(state.generation).await =>
                {
                    retried = true;
                    tracing::debug!("sending {path} again on the session's next connection");
                }
                Err(source) => return Err(ClientError::Http { op, source }),
            }
        }
    }

    /// GETs `path` and decodes a JSON answer, turning error statuses into [`ClientError::Api`].
    pub async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
    ) -> Result<T, ClientError> {
        self.call_json(Method::GET, path, None).await
    }

    /// POSTs `body` as JSON to `path` and decodes the JSON answer.
    pub async fn post_json<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        let bytes = Bytes::from(body.to_string());
        self.call_json(Method::POST, path, Some(bytes)).await
    }

    async fn call_json<T: for<'de> Deserialize<'de>>(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<T, ClientError> {
        let response = self.request_with_body(method, path, body).await?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_JSON_BODY)
            .collect()
            .await
            .map_err(|e| local(status.as_u16(), format!("reading body: {e}")))?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(api_error(status, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|e| local(status.as_u16(), format!("decoding {path}: {e}")))
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
                code: ErrorCode::NoSuchCamera,
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
        Err(api_error(status, &body))
    }

    /// The camera's latest picture as a JPEG.
    pub async fn snapshot(&self, camera: &str) -> Result<Bytes, ClientError> {
        let response = self.camera_get(camera, "snapshot.jpg").await?;
        http_body_util::Limited::new(response.into_body(), MAX_SNAPSHOT)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| local(200, format!("reading the snapshot of {camera}: {e}")))
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

/// Owner actions (the gateway refuses them, 403, unless this phone has the owner role).
impl Connection {
    /// Every device paired with the gateway.
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>, ClientError> {
        self.get_json("/v1/devices").await
    }

    /// Revokes a device (by id or unique name); its live sessions close at once.
    pub async fn revoke(&self, device: &str) -> Result<Revoked, ClientError> {
        let path = format!("/v1/devices/{}/revoke", path_segment(device));
        self.post_json(&path, &serde_json::Value::Null).await
    }

    /// Confirms a pending device (after comparing its short code).
    pub async fn confirm(&self, device: &str) -> Result<Confirmed, ClientError> {
        let path = format!("/v1/devices/{}/confirm", path_segment(device));
        self.post_json(&path, &serde_json::Value::Null).await
    }

    /// Mints an invitation: a pairing URI for a guest or viewer.
    pub async fn invite(&self, invite: &InvitationRequest) -> Result<Invitation, ClientError> {
        let body = serde_json::to_value(invite)
            .map_err(|e| local(0, format!("encoding the invitation: {e}")))?;
        self.post_json("/v1/invitations", &body).await
    }

    /// The gateway's audit log, newest first.
    pub async fn audit(&self, limit: u32) -> Result<AuditPage, ClientError> {
        self.get_json(&format!("/v1/audit?limit={limit}")).await
    }
}

/// Percent-encodes a device id or name for a URL path segment.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_typed_by_their_code() {
        let body = br#"{"error":"this camera sends h.264/h.265 video: use live.mp4","code":"wrong_format"}"#;
        match api_error(StatusCode::NOT_FOUND, body) {
            ClientError::Api {
                status: 404,
                code: ErrorCode::WrongFormat,
                message,
            } => assert!(message.contains("live.mp4")),
            other => panic!("{other:?}"),
        }
        match api_error(StatusCode::BAD_GATEWAY, b"<html>proxy</html>") {
            ClientError::Api {
                status: 502,
                code: ErrorCode::Unknown,
                message,
            } => assert_eq!(message, "<html>proxy</html>"),
            other => panic!("{other:?}"),
        }
    }
}
