//! End-to-end: the promises PROTOCOL.md makes to an app developer — every error answer
//! is JSON `{"error", "code"}` with the status its code prescribes (unknown paths and
//! wrong methods included), only streams actually served are audited, minting a code
//! closes the previous one, a bad phone name never leaves the phone, and a guest past
//! its expiry is listed as `expired`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests fail loudly

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use hyper::Method;
use latchkey_client::{ClientError, Connection, StateDir};
use latchkey_pairing::{ApiError, ErrorCode};
use latchkey_tests::{Gateway, client, latchkey, wait_for};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Sends `method path` and checks the answer is the documented error shape with `code`.
async fn expect_error(conn: &Connection, method: Method, path: &str, code: ErrorCode) {
    let response = conn.request(method.clone(), path).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let parsed: ApiError = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: {status} body is not {{error, code}} ({e}): {:?}",
            String::from_utf8_lossy(&body)
        )
    });
    assert_eq!(parsed.code, code, "{method} {path}: {parsed:?}");
    assert_eq!(status, code.status(), "{method} {path}: {parsed:?}");
    assert_eq!(content_type, "application/json", "{method} {path}");
    assert!(!parsed.error.is_empty(), "{method} {path}: empty text");
}

/// The `camera-watched` rows of the audit log.
fn watched_rows(state: &Path) -> Vec<serde_json::Value> {
    let audit = latchkey(state, &["audit", "--json"])
        .unwrap()
        .expect_ok("audit")
        .unwrap()
        .json()
        .unwrap();
    audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "camera-watched")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_has_a_code_and_only_served_streams_are_audited() {
    let dir = tmp();
    let (g, phone) = (dir.path().join("G"), dir.path().join("P"));
    // `front` is an H.264 camera nobody answers for: its format answers come before
    // any connection, and watching it finds it offline.
    let gw = Gateway::start(
        &g,
        &[
            "--camera",
            "demo=demo:",
            "--camera",
            "front=rtsp://127.0.0.1:9/none",
        ],
    )
    .unwrap();
    let uri = gw
        .pair_uri(&["--auto-confirm", "--name", "viewer"])
        .unwrap();
    client(&phone, &["pair", &uri, "--name", "viewer"])
        .unwrap()
        .expect_ok("pair")
        .unwrap();
    let conn = latchkey_client::connect(&StateDir::open(&phone).unwrap())
        .await
        .unwrap();

    let cases = [
        (Method::GET, "/v1/nothing", ErrorCode::NotFound),
        (Method::GET, "/", ErrorCode::NotFound),
        (
            Method::GET,
            "/v1/cameras/%FF/live.mjpeg",
            ErrorCode::NotFound,
        ),
        (Method::POST, "/v1/cameras", ErrorCode::MethodNotAllowed),
        (
            Method::DELETE,
            "/v1/devices/x/revoke",
            ErrorCode::MethodNotAllowed,
        ),
        (
            Method::GET,
            "/v1/cameras/nope/live.mjpeg",
            ErrorCode::NoSuchCamera,
        ),
        (
            Method::GET,
            "/v1/cameras/demo/live.mp4",
            ErrorCode::WrongFormat,
        ),
        (
            Method::GET,
            "/v1/cameras/front/live.mjpeg",
            ErrorCode::WrongFormat,
        ),
        (
            Method::GET,
            "/v1/cameras/front/snapshot.jpg",
            ErrorCode::NoSnapshot,
        ),
        (
            Method::GET,
            "/v1/cameras/front/live.mp4",
            ErrorCode::CameraOffline,
        ),
        (Method::GET, "/v1/devices", ErrorCode::OwnerOnly),
        (Method::POST, "/v1/invitations", ErrorCode::OwnerOnly),
    ];
    for (method, path, code) in cases {
        expect_error(&conn, method, path, code).await;
    }
    // The library hands an app the code, not just English.
    match conn.snapshot("front").await {
        Err(ClientError::Api {
            status: 404,
            code: ErrorCode::NoSnapshot,
            ..
        }) => {}
        other => panic!("snapshot of an h.264 camera: {other:?}"),
    }
    assert_eq!(
        watched_rows(&g),
        Vec::<serde_json::Value>::new(),
        "refused and failed requests are not viewing"
    );

    // A stream that is served is audited once, naming device, camera and format.
    let response = conn
        .request(Method::GET, "/v1/cameras/demo/live.mjpeg")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(15), body.frame())
        .await
        .expect("a first part within 15 s");
    assert!(first.is_some());
    drop(body);
    let rows = watched_rows(&g);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["camera"], "demo");
    assert_eq!(rows[0]["detail"], "live.mjpeg");
    assert_eq!(rows[0]["device"], gw.device_id("viewer").unwrap().as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_code_closes_the_previous_and_a_bad_name_never_leaves_the_phone() {
    let dir = tmp();
    let (g, phone, other) = (
        dir.path().join("G"),
        dir.path().join("P"),
        dir.path().join("O"),
    );
    let gw = Gateway::start(&g, &[]).unwrap();
    let first = gw.pair_uri(&["--auto-confirm"]).unwrap();
    let second = gw
        .pair_uri(&["--auto-confirm", "--role", "guest", "--expires", "4s"])
        .unwrap();

    // A name the gateway would refuse is refused on the phone, before the code is used.
    let long = "x".repeat(65);
    for bad in [long.as_str(), "tab\there"] {
        let refused = client(&phone, &["pair", &second, "--name", bad]).unwrap();
        assert!(!refused.ok);
        assert!(
            refused.stderr.contains("phone name cannot be used"),
            "{}",
            refused.stderr
        );
    }
    assert!(!phone.join("client.json").exists());

    // The first code was closed when the second was minted.
    let closed = client(&other, &["pair", &first, "--name", "other"]).unwrap();
    assert!(!closed.ok, "a closed code paired: {}", closed.stdout);
    assert!(
        closed.stderr.contains("may have been used already"),
        "{}",
        closed.stderr
    );

    // The second still works: neither refusal spent it.
    client(&phone, &["pair", &second, "--name", "guest"])
        .unwrap()
        .expect_ok("pair with the newest code")
        .unwrap();

    // Listed `active` while its time runs, `expired` after.
    let state = |gw: &Gateway| -> (String, u64) {
        let list = latchkey(&gw.state, &["devices", "--json"])
            .unwrap()
            .expect_ok("devices")
            .unwrap()
            .json()
            .unwrap();
        let d = &list.as_array().unwrap()[0];
        (
            d["state"].as_str().unwrap().to_string(),
            d["expires_at"].as_u64().unwrap(),
        )
    };
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let (listed, expires_at) = state(&gw);
    let asked_at = now();
    if asked_at < expires_at.saturating_sub(1) {
        assert_eq!(listed, "active");
    }
    let expired = wait_for(Duration::from_secs(15), || {
        (state(&gw).0 == "expired").then_some(())
    });
    assert!(expired.is_some(), "still {:?} after its expiry", state(&gw));
}

/// §6: the gateway cannot tell a wrong session PSK from message 1 (IKpsk2 mixes it in at
/// message 2), so such a phone gets message 2; the phone must say "pair again", not
/// "refused" or "unreachable".
#[test]
fn a_phone_with_a_stale_session_key_is_told_to_pair_again() {
    let dir = tmp();
    let (g, phone) = (dir.path().join("G"), dir.path().join("P"));
    let gw = Gateway::start(&g, &[]).unwrap();
    let uri = gw.pair_uri(&["--auto-confirm"]).unwrap();
    client(&phone, &["pair", &uri, "--name", "phone"])
        .unwrap()
        .expect_ok("pair")
        .unwrap();
    client(&phone, &["cameras", "--json"])
        .unwrap()
        .expect_ok("cameras with the right key")
        .unwrap();
    let file = phone.join("client.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    state["gateway"]["session_psk"] = latchkey_pairing::SessionPsk([7; 32]).to_b64().into();
    std::fs::write(&file, state.to_string()).unwrap();
    let stale = client(&phone, &["cameras", "--json"]).unwrap();
    assert!(!stale.ok);
    assert!(
        stale.stderr.contains("session key does not match") && stale.stderr.contains("pair again"),
        "{}",
        stale.stderr
    );
}
