//! HTTP cameras: `mjpeg+http://` (a `multipart/x-mixed-replace` stream of JPEGs) and
//! `snapshot+http://` (one JPEG per GET, polled).
//!
//! hyper's HTTP/1.1 client connection over a plain `TcpStream`: no pool, no TLS (LAN
//! cameras), every read bounded (part size in the multipart parser, body size for
//! snapshots) so a camera that lies about lengths cannot make the gateway buffer without
//! limit. Credentials in the URL (`user:pass@`) become HTTP Basic auth.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::multipart::{self, MultipartParser};
use super::{Frame, FrameStream, SourceError};

/// Time to connect and get the response headers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JPEG accepted from a camera.
pub const MAX_JPEG: usize = 8 << 20;
/// Time between two snapshot polls.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);
/// Consecutive bad parts after which an MJPEG camera counts as broken.
const MAX_BAD_PARTS: u32 = 20;

/// A response whose connection task dies with it.
struct Fetched {
    response: Response<Incoming>,
    _conn: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn parse(url: &str) -> Result<url::Url, SourceError> {
    let bad = |reason: String| SourceError::BadUrl {
        url: url.to_string(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if parsed.scheme() != "http" || parsed.host_str().is_none() {
        return Err(bad("expected http://host[:port]/path".into()));
    }
    Ok(parsed)
}

/// GETs `url` and returns the response once its headers arrived with status 200.
async fn get(url: &url::Url, op: &'static str) -> Result<Fetched, SourceError> {
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let timed = |what: &str| SourceError::Timeout {
        op: format!("{op}: {what} {host}:{port}"),
        secs: CONNECT_TIMEOUT.as_secs(),
    };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| timed("connecting to"))?
        .map_err(|e| SourceError::io(format!("{op}: connecting to {host}:{port}"), e))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|source| SourceError::Http { op, source })?;
    let conn = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("camera http connection ended: {e}");
        }
    }));
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let mut req = Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(
            hyper::header::USER_AGENT,
            concat!("Latchkey/", env!("CARGO_PKG_VERSION")),
        );
    if !url.username().is_empty() {
        let pair = format!("{}:{}", url.username(), url.password().unwrap_or(""));
        let token = base64::engine::general_purpose::STANDARD.encode(pair);
        req = req.header(hyper::header::AUTHORIZATION, format!("Basic {token}"));
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| SourceError::bad(op, format!("building the request: {e}")))?;
    let response = tokio::time::timeout(CONNECT_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| timed("waiting for the answer of"))?
        .map_err(|source| SourceError::Http { op, source })?;
    match response.status() {
        StatusCode::OK => Ok(Fetched {
            response,
            _conn: conn,
        }),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(SourceError::bad(
            op,
            format!(
                "the camera answered {}: put the right user:password@ in its URL",
                response.status()
            ),
        )),
        other => Err(SourceError::bad(op, format!("the camera answered {other}"))),
    }
}

/// Connects to an MJPEG camera and yields its JPEG parts.
pub async fn open_mjpeg(url: &str) -> Result<FrameStream, SourceError> {
    const OP: &str = "mjpeg stream";
    let parsed = parse(url)?;
    let fetched = get(&parsed, OP).await?;
    let content_type = fetched
        .response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if !content_type.to_ascii_lowercase().starts_with("multipart/") {
        return Err(SourceError::bad(
            OP,
            format!("expected multipart/x-mixed-replace, the camera sent {content_type:?}"),
        ));
    }
    let boundary = multipart::boundary_from_content_type(&content_type)
        .map_err(|e| SourceError::bad(OP, e.to_string()))?;
    let parser = MultipartParser::new(&boundary, MAX_JPEG)
        .map_err(|e| SourceError::bad(OP, e.to_string()))?;
    let Fetched { response, _conn } = fetched;
    let state = MjpegState {
        body: response.into_body(),
        parser,
        bad_parts: 0,
        _conn,
    };
    Ok(futures_util::stream::unfold(state, |mut s| async move {
        let item = s.next().await?;
        Some((item, s))
    })
    .boxed())
}

struct MjpegState {
    body: Incoming,
    parser: MultipartParser,
    bad_parts: u32,
    _conn: AbortOnDrop,
}

impl MjpegState {
    async fn next(&mut self) -> Option<Result<Frame, SourceError>> {
        loop {
            match self.parser.next_part() {
                Ok(Some(jpeg)) => {
                    self.bad_parts = 0;
                    return Some(Ok(Frame::Jpeg(jpeg)));
                }
                Ok(None) if self.parser.is_closed() => return None,
                Ok(None) => {}
                Err(e) => {
                    self.bad_parts = self.bad_parts.saturating_add(1);
                    tracing::debug!("mjpeg camera sent a bad part: {e}");
                    if self.bad_parts >= MAX_BAD_PARTS {
                        return Some(Err(SourceError::bad(
                            "mjpeg stream",
                            format!("{} bad parts in a row, the last: {e}", self.bad_parts),
                        )));
                    }
                    continue;
                }
            }
            match self.body.frame().await? {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        self.parser.push(data);
                    }
                }
                Err(source) => {
                    return Some(Err(SourceError::Http {
                        op: "mjpeg stream: reading",
                        source,
                    }));
                }
            }
        }
    }
}

/// Polls a snapshot URL: one JPEG now, then one every [`SNAPSHOT_INTERVAL`].
pub async fn open_snapshot(url: &str) -> Result<FrameStream, SourceError> {
    let parsed = parse(url)?;
    // The first fetch happens here so a broken camera fails the open, not the stream.
    let first = fetch_jpeg(&parsed).await?;
    let polls = futures_util::stream::unfold(parsed, |url| async move {
        tokio::time::sleep(SNAPSHOT_INTERVAL).await;
        let jpeg = fetch_jpeg(&url).await;
        Some((jpeg.map(Frame::Jpeg), url))
    });
    Ok(
        futures_util::stream::once(async move { Ok(Frame::Jpeg(first)) })
            .chain(polls)
            .boxed(),
    )
}

async fn fetch_jpeg(url: &url::Url) -> Result<Bytes, SourceError> {
    const OP: &str = "snapshot";
    let fetched = get(url, OP).await?;
    let body = tokio::time::timeout(
        CONNECT_TIMEOUT,
        Limited::new(fetched.response.into_body(), MAX_JPEG).collect(),
    )
    .await
    .map_err(|_| SourceError::Timeout {
        op: "snapshot: reading the picture".into(),
        secs: CONNECT_TIMEOUT.as_secs(),
    })?
    .map_err(|e| SourceError::bad(OP, format!("reading the picture: {e}")))?
    .to_bytes();
    if !body.starts_with(&[0xff, 0xd8]) {
        return Err(SourceError::bad(OP, "the camera's picture is not a JPEG"));
    }
    Ok(body)
}
