//! The phone sends a request again only when the gateway provably never processed it:
//! a GOAWAY NO_ERROR below the request's stream as the session hibernates (PROTOCOL.md
//! §8.1). The gateway end here is written by hand, frame by frame, so the race that is
//! rare against the real gateway (a request sent just as the gateway goes away) happens
//! every time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use latchkey_channel::NoiseStream;
use latchkey_client::{ClientError, Connection};
use latchkey_pairing::ServerHello;
use rand::rngs::OsRng;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The HTTP/2 client preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const NO_ERROR: u32 = 0x0;
const PROTOCOL_ERROR: u32 = 0x1;
/// What the second connection answers.
const SECOND: &[u8] = b"served on the second connection";

/// A phone `Connection` and the gateway's end of the same session, over loopback TCP.
async fn session() -> (Connection, NoiseStream<TcpStream>) {
    let (phone, gateway) =
        latchkey_pairing::testing::session_pair(&mut OsRng, 120, Duration::ZERO).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let origin = Instant::now();
    let gw = NoiseStream::new(accepted.unwrap().0, gateway, origin);
    let hello = ServerHello {
        device_id: String::new(),
        gateway_name: String::new(),
        addresses: vec![],
        rekey_after_secs: 120,
    };
    let phone_noise = NoiseStream::new(dialed.unwrap(), phone, origin);
    let conn = Connection::start(phone_noise, addr, hello).await.unwrap();
    (conn, gw)
}

/// An HTTP/2 frame: length, type, flags 0, stream id, payload.
fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, 0];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads the phone's preface and frames until the HEADERS of its first request arrive.
async fn until_first_request(gw: &mut NoiseStream<TcpStream>) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = gw.read(&mut buf).await.unwrap();
        assert!(n > 0, "the phone closed before sending its request");
        seen.extend_from_slice(&buf[..n]);
        let Some(frames) = seen.strip_prefix(PREFACE) else {
            continue;
        };
        let mut at = 0;
        while let Some(header) = frames.get(at..at + 9) {
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            if header[3] == HEADERS {
                return;
            }
            at += 9 + len;
        }
    }
}

/// The gateway's side of going away: its SETTINGS, a GOAWAY with `last_stream` and
/// `code`, flushed.
async fn go_away(gw: &mut NoiseStream<TcpStream>, last_stream: u32, code: u32) {
    let mut goaway = last_stream.to_be_bytes().to_vec();
    goaway.extend_from_slice(&code.to_be_bytes());
    let mut out = frame(SETTINGS, 0, &[]);
    out.extend_from_slice(&frame(GOAWAY, 0, &goaway));
    gw.write_all(&out).await.unwrap();
    gw.flush().await.unwrap();
}

/// Hibernates the session from the gateway's side (its boundary, then the phone's), then
/// serves the phone's next HTTP/2 connection with a real hyper server; returns how
/// many requests that connection served.
async fn hibernate_then_serve(mut gw: NoiseStream<TcpStream>) -> usize {
    // A phone that closed instead of hibernating is served nothing.
    if gw.send_boundary().await.is_err() || gw.discard_until_boundary().await.is_err() {
        return 0;
    }
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    let service = hyper::service::service_fn(move |_req| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(SECOND)))) }
    });
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(gw), service)
        .await;
    served.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn a_request_refused_unprocessed_by_a_graceful_goaway_is_sent_once_more() {
    let (conn, mut gw) = session().await;
    let gateway = tokio::spawn(async move {
        until_first_request(&mut gw).await;
        // Last stream 0: the request (stream 1) was not processed.
        go_away(&mut gw, 0, NO_ERROR).await;
        hibernate_then_serve(gw).await
    });
    let response = tokio::time::timeout(Duration::from_secs(10), conn.request(Method::GET, "/x"))
        .await
        .expect("the request hung")
        .expect("the request was not sent again");
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], SECOND);
    drop(conn);
    assert_eq!(gateway.await.unwrap(), 1, "sent exactly once more");
}

#[tokio::test]
async fn a_request_the_gateway_may_have_processed_is_never_sent_again() {
    // GOAWAY NO_ERROR naming the request's stream as processed, then the connection ends
    // without an answer; and GOAWAY with an error. Neither may be retried: the request
    // (a POST, say) may have taken effect.
    for (last_stream, code) in [(1, NO_ERROR), (0, PROTOCOL_ERROR)] {
        let (conn, mut gw) = session().await;
        let gateway = tokio::spawn(async move {
            until_first_request(&mut gw).await;
            go_away(&mut gw, last_stream, code).await;
            hibernate_then_serve(gw).await
        });
        let sent = tokio::time::timeout(Duration::from_secs(10), conn.request(Method::POST, "/x"))
            .await
            .expect("the request hung");
        assert!(
            matches!(sent, Err(ClientError::Http { .. })),
            "GOAWAY last stream {last_stream} code {code}: {sent:?}"
        );
        drop(conn);
        assert_eq!(
            gateway.await.unwrap(),
            0,
            "GOAWAY last stream {last_stream} code {code}: the request was sent again"
        );
    }
}
