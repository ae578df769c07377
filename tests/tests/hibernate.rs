//! End-to-end: idle sessions hibernate (PROTOCOL.md §8.1). The real gateway with a short
//! `--hibernate-after` and the real phone library: an idle session gives up its HTTP/2
//! connection and wakes in the same session (same TCP connection, no new handshake); a
//! live stream keeps it awake; revocation cuts a hibernated session; a phone that sends a
//! boundary unasked is disconnected; a client that knows nothing of hibernation still
//! works.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests fail loudly

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use latchkey_channel::Next;
use latchkey_client::{LiveFormat, StateDir};
use latchkey_tests::{Gateway, client, latchkey, wait_for};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[path = "support/raw_session.rs"]
mod raw_session;
use raw_session::{load, now_ms, session};

/// Generous: catches a hang, says nothing about speed.
const DEADLINE: Duration = Duration::from_secs(20);

fn pair(gw: &Gateway, phone: &Path) {
    let uri = gw.pair_uri(&["--auto-confirm", "--name", "phone"]).unwrap();
    client(phone, &["pair", &uri, "--name", "phone"])
        .unwrap()
        .expect_ok("pair")
        .unwrap();
}

/// The `peer=` of each log line that says `message`, in order.
fn peers(log: &str, message: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(message))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("peer=")))
        .map(str::to_string)
        .collect()
}

/// Waits until the gateway logged `message` `n` times.
fn logged(gw: &Gateway, message: &str, n: usize) {
    let seen = wait_for(DEADLINE, || {
        (gw.log().matches(message).count() >= n).then_some(())
    });
    assert!(seen.is_some(), "no {n}× {message:?} in:\n{}", gw.log());
}

/// A gateway that hibernates sessions idle for 1 s, and a paired phone connected to it.
struct Hibernating {
    gw: Gateway,
    /// The gateway's state directory (for `latchkey` commands).
    state: std::path::PathBuf,
    rt: tokio::runtime::Runtime,
    conn: latchkey_client::Connection,
    /// Holds the directories: bind it (`_dir`, not `..`) or they are deleted at once.
    _dir: tempfile::TempDir,
}

fn hibernating() -> Hibernating {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("G");
    let gw = Gateway::start(&state, &["--hibernate-after", "1s"]).unwrap();
    let phone = dir.path().join("phone");
    pair(&gw, &phone);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conn = rt
        .block_on(latchkey_client::connect(&StateDir::open(&phone).unwrap()))
        .unwrap();
    Hibernating {
        gw,
        state,
        rt,
        conn,
        _dir: dir,
    }
}

#[test]
fn an_idle_session_hibernates_and_wakes_in_the_same_session() {
    let Hibernating {
        gw, rt, conn, _dir, ..
    } = hibernating();
    assert_eq!(rt.block_on(conn.cameras()).unwrap().len(), 1);
    for round in 1..=2 {
        // Idle past the delay: the gateway ends HTTP/2 and keeps the Noise session.
        logged(&gw, "session hibernated", round);
        assert!(!conn.is_closed(), "a hibernated session is not closed");
        if round == 1 {
            // Nothing flows while hibernated: the kernel's keepalive watches the socket.
            let filter = format!("( sport = :{} )", gw.noise.port());
            let out = std::process::Command::new("ss")
                .args(["-tnoH", "state", "established", &filter])
                .output()
                .expect("ss (iproute2)");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("keepalive"),
                "no TCP keepalive on the session:\n{text}"
            );
        }
        // The next request wakes it, and works.
        let cameras = rt.block_on(conn.cameras()).unwrap();
        assert_eq!(cameras[0].id, "demo");
        logged(&gw, "session woke up", round);
    }
    // Same TCP connection (same source port) and no second handshake.
    let log = gw.log();
    let started = peers(&log, "session started");
    assert_eq!(started.len(), 1, "one handshake only:\n{log}");
    assert_eq!(
        peers(&log, "session hibernated"),
        vec![started[0].clone(); 2]
    );
    assert_eq!(peers(&log, "session woke up"), vec![started[0].clone(); 2]);
    assert!(!log.contains("session ended"), "{log}");
}

#[test]
fn a_live_stream_keeps_its_session_awake() {
    let Hibernating {
        gw, rt, conn, _dir, ..
    } = hibernating();
    let frames = rt.block_on(async {
        let response = conn.live("demo", LiveFormat::Mjpeg).await.unwrap();
        let mut body = response.into_body();
        // Three times the delay with the stream open: the session stays awake.
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        let mut bytes = 0usize;
        while let Ok(Some(frame)) = tokio::time::timeout_at(until, body.frame()).await {
            bytes += frame.unwrap().into_data().map_or(0, |d| d.len());
        }
        bytes
    });
    assert!(frames > 0, "the stream delivered nothing");
    assert!(
        !gw.log().contains("session hibernated"),
        "hibernated under a live stream:\n{}",
        gw.log()
    );
    // The body is gone: now it may sleep, and wake for the next request.
    logged(&gw, "session hibernated", 1);
    assert_eq!(rt.block_on(conn.cameras()).unwrap().len(), 1);
}

#[test]
fn revocation_cuts_a_hibernated_session() {
    let Hibernating {
        gw,
        state: g,
        rt,
        conn,
        _dir,
    } = hibernating();
    rt.block_on(conn.cameras()).unwrap();
    logged(&gw, "session hibernated", 1);
    latchkey(&g, &["revoke", "phone"])
        .unwrap()
        .expect_ok("revoke")
        .unwrap();
    logged(&gw, "session cut: device revoked", 1);
    assert!(
        wait_for(DEADLINE, || conn.is_closed().then_some(())).is_some(),
        "the phone still thinks its session is open"
    );
    assert!(rt.block_on(conn.cameras()).is_err());
}

#[test]
fn a_boundary_the_gateway_did_not_ask_for_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&dir.path().join("G"), &[]).unwrap();
    let phone = dir.path().join("phone");
    pair(&gw, &phone);
    let phone = load(&phone);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut noise = session(gw.noise, &phone, now_ms()).await.unwrap();
        // An HTTP/2 client preface and empty SETTINGS (the session is proven and its
        // connection starts), then a boundary nobody asked for.
        noise
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .unwrap();
        noise.flush().await.unwrap();
        noise.send_boundary().await.unwrap();
        // The gateway closes the session: whatever it still sent, then the end.
        let mut sink = [0u8; 1024];
        let ended = tokio::time::timeout(DEADLINE, async {
            while let Ok(n) = noise.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the gateway kept the session");
        assert!(
            !noise.at_boundary(),
            "the gateway answered with a boundary:\n{}",
            gw.log()
        );
        assert_eq!(noise.next_input().await.ok(), Some(Next::End));
    });
    logged(&gw, "a boundary the gateway had not asked for", 1);
}

#[test]
fn a_client_that_knows_nothing_of_hibernation_just_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&dir.path().join("G"), &["--hibernate-after", "1s"]).unwrap();
    let phone = dir.path().join("phone");
    pair(&gw, &phone);
    let phone = load(&phone);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ts = now_ms();
        for attempt in 0..2 {
            // Plain hyper over the channel: it owns the stream and closes it on GOAWAY.
            let noise = session(gw.noise, &phone, ts + attempt).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .handshake::<_, Empty<Bytes>>(TokioIo::new(noise))
                .await
                .unwrap();
            let driver = tokio::spawn(conn);
            let req = hyper::Request::get("http://gateway/v1/cameras")
                .body(Empty::new())
                .unwrap();
            assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
            // The gateway hibernates; this client just sees its connection end.
            tokio::time::timeout(DEADLINE, driver)
                .await
                .expect("the connection outlived the gateway's GOAWAY")
                .unwrap()
                .unwrap();
            assert!(sender.is_closed());
        }
    });
    // Its connection ended after GOAWAY: the gateway's boundary found it gone, and the
    // session ended (no session is held for a client that left).
    logged(&gw, "session ended peer=", 2);
}
