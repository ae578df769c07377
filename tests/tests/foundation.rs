//! End-to-end: pairing, sessions, silence to strangers, revocation and the store,
//! against the real `latchkey` and `latchkey-client` binaries on loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests fail loudly

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use latchkey_tests::{Gateway, client, latchkey, wait_for};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Sends `bytes`, then reads until the gateway closes; returns what came back and how long
/// the gateway took to close.
fn poke(addr: std::net::SocketAddr, bytes: &[u8]) -> (Vec<u8>, Duration) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout");
    let start = Instant::now();
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    (got, start.elapsed())
}

fn camera_ids(run: &latchkey_tests::Run) -> Vec<String> {
    run.json()
        .expect("json")
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c.get("id").and_then(|i| i.as_str()).map(String::from))
        .collect()
}

/// The check from the foundation issue, step by step.
#[test]
fn pair_list_revoke_and_stay_revoked_after_restart() {
    let dir = tmp();
    let (g, c, c2) = (
        dir.path().join("G"),
        dir.path().join("C"),
        dir.path().join("C2"),
    );
    let mut gw = Gateway::start(&g, &[]).unwrap();
    let (junk_reply, _) = poke(gw.noise, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        junk_reply.is_empty(),
        "junk got {} bytes back",
        junk_reply.len()
    );

    let uri = gw.pair_uri(&["--auto-confirm", "--name", "phone"]).unwrap();
    assert!(uri.starts_with("latchkey://pair?v=1&"), "{uri}");
    let paired = client(&c, &["pair", &uri, "--name", "phone"])
        .unwrap()
        .expect_ok("pair")
        .unwrap();
    assert!(paired.stdout.contains("short code:"), "{}", paired.stdout);

    let second = client(&c2, &["pair", &uri]).unwrap();
    assert!(!second.ok);
    assert!(
        second
            .stderr
            .contains("may have been used already or have expired"),
        "{}",
        second.stderr
    );
    assert!(
        !c2.join("client.json").exists(),
        "a refused pairing stores nothing"
    );

    let cams = client(&c, &["cameras", "--json"])
        .unwrap()
        .expect_ok("cameras")
        .unwrap();
    assert_eq!(camera_ids(&cams), ["demo"]);

    let id = gw.device_id("phone").unwrap();
    latchkey(&g, &["revoke", &id])
        .unwrap()
        .expect_ok("revoke")
        .unwrap();
    let refused = client(&c, &["cameras", "--json"]).unwrap();
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("refused this phone"),
        "{}",
        refused.stderr
    );

    gw.restart(&[]).unwrap();
    let still = client(&c, &["cameras", "--json"]).unwrap();
    assert!(!still.ok, "revocation must survive a restart");
    assert!(
        still.stderr.contains("refused this phone"),
        "refused, not unreachable: {}",
        still.stderr
    );

    let audit = latchkey(&g, &["audit", "--json"])
        .unwrap()
        .expect_ok("audit")
        .unwrap()
        .json()
        .unwrap();
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    for kind in [
        "pairing-opened",
        "device-paired",
        "pairing-reused",
        "device-revoked",
    ] {
        assert!(kinds.contains(&kind), "audit lacks {kind}: {kinds:?}");
    }
    drop(gw);
}

#[test]
fn strangers_get_silence_and_are_dropped_promptly() {
    let dir = tmp();
    let gw = Gateway::start(&dir.path().join("G"), &[]).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("http request", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ("oversized frame 65535", vec![0xff, 0xff, 0x02, 0x00]),
        (
            "frame announcing 1000 bytes then stalling",
            vec![0x03, 0xe8, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        ),
        ("nothing at all", vec![]),
        ("unknown handshake type", vec![0x00, 0x03, 0x09, 0x00, 0x00]),
        ("session hello of random bytes", {
            let mut v = vec![0x00, 0x61, 0x02];
            v.extend((0..96u8).map(|i| i.wrapping_mul(37)));
            v
        }),
    ];
    for (what, bytes) in cases {
        let (reply, took) = poke(gw.noise, &bytes);
        assert!(reply.is_empty(), "{what}: got {} bytes back", reply.len());
        assert!(
            took < Duration::from_secs(8),
            "{what}: held open for {took:?}"
        );
    }
}

#[test]
fn unknown_and_pending_phones_get_silence() {
    let dir = tmp();
    let (g, c) = (dir.path().join("G"), dir.path().join("C"));
    let gw = Gateway::start(&g, &[]).unwrap();
    // Pending: paired but not confirmed.
    let uri = gw.pair_uri(&["--name", "pending-phone"]).unwrap();
    let out = client(&c, &["pair", &uri])
        .unwrap()
        .expect_ok("pair")
        .unwrap();
    assert!(out.stdout.contains("latchkey confirm"), "{}", out.stdout);
    let refused = client(&c, &["cameras"]).unwrap();
    assert!(
        !refused.ok && refused.stderr.contains("refused this phone"),
        "{}",
        refused.stderr
    );
    // The owner compares the code and confirms; then the phone is admitted.
    let devices = latchkey(&g, &["devices", "--json"])
        .unwrap()
        .json()
        .unwrap();
    let code_on_gateway = devices[0]["code"].as_str().unwrap().to_string();
    assert!(
        out.stdout.contains(&code_on_gateway),
        "both sides show the same short code"
    );
    latchkey(&g, &["confirm", "pending-phone"])
        .unwrap()
        .expect_ok("confirm")
        .unwrap();
    client(&c, &["cameras"])
        .unwrap()
        .expect_ok("cameras after confirm")
        .unwrap();

    // A stranger with a well-formed session handshake but an unknown key.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stranger = dir.path().join("S");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.join("client.json")).unwrap()).unwrap();
    state["device_secret"] = serde_json::Value::String(latchkey_pairing::keys::b64(&[7u8; 32]));
    std::fs::create_dir_all(&stranger).unwrap();
    std::fs::write(stranger.join("client.json"), state.to_string()).unwrap();
    let dir_s = latchkey_client::StateDir::open(&stranger).unwrap();
    let err = rt.block_on(latchkey_client::connect(&dir_s)).unwrap_err();
    assert!(
        matches!(err, latchkey_client::ClientError::SessionRefused),
        "{err}"
    );
}

#[test]
fn expired_pairing_codes_are_refused_and_erased() {
    let dir = tmp();
    let (g, c) = (dir.path().join("G"), dir.path().join("C"));
    let gw = Gateway::start(&g, &[]).unwrap();
    let uri = gw.pair_uri(&["--ttl", "1s", "--auto-confirm"]).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let out = client(&c, &["pair", &uri]).unwrap();
    assert!(!out.ok && out.stderr.contains("expired"), "{}", out.stderr);
    let audit = latchkey(&g, &["audit", "--json"]).unwrap().json().unwrap();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "pairing-expired"),
        "{audit}"
    );
    // A fresh code works.
    let uri = gw.pair_uri(&["--auto-confirm"]).unwrap();
    client(&c, &["pair", &uri])
        .unwrap()
        .expect_ok("pair with a fresh code")
        .unwrap();
}

#[test]
fn grants_limit_the_camera_list() {
    let dir = tmp();
    let (g, c) = (dir.path().join("G"), dir.path().join("C"));
    let gw = Gateway::start(&g, &["--camera", "front=demo:", "--camera", "back=demo:"]).unwrap();
    let uri = gw
        .pair_uri(&[
            "--auto-confirm",
            "--cameras",
            "front",
            "--role",
            "guest",
            "--expires",
            "1h",
        ])
        .unwrap();
    client(&c, &["pair", &uri])
        .unwrap()
        .expect_ok("pair")
        .unwrap();
    let cams = client(&c, &["cameras", "--json"])
        .unwrap()
        .expect_ok("cameras")
        .unwrap();
    assert_eq!(camera_ids(&cams), ["front"]);
    let bad = latchkey(&g, &["pair", "--cameras", "garage"]).unwrap();
    assert!(
        !bad.ok && bad.stderr.contains("no camera \"garage\""),
        "{}",
        bad.stderr
    );
}

#[test]
fn revocation_cuts_a_live_session_within_a_second() {
    let dir = tmp();
    let (g, c) = (dir.path().join("G"), dir.path().join("C"));
    let gw = Gateway::start(&g, &[]).unwrap();
    let uri = gw.pair_uri(&["--auto-confirm", "--name", "phone"]).unwrap();
    client(&c, &["pair", &uri])
        .unwrap()
        .expect_ok("pair")
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = latchkey_client::StateDir::open(&c).unwrap();
    let conn = rt.block_on(latchkey_client::connect(&state)).unwrap();
    assert_eq!(rt.block_on(conn.cameras()).unwrap().len(), 1);
    let listed = latchkey(&g, &["devices", "--json"])
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed[0]["sessions"], 1, "{listed}");
    let start = Instant::now();
    let out = latchkey(&g, &["revoke", "phone"])
        .unwrap()
        .expect_ok("revoke")
        .unwrap();
    assert!(
        out.stdout.contains("1 live sessions closed"),
        "{}",
        out.stdout
    );
    let cut = wait_for(Duration::from_secs(1), || {
        rt.block_on(conn.cameras()).is_err().then_some(())
    });
    assert!(
        cut.is_some(),
        "session still served {:?} after revocation",
        start.elapsed()
    );
}

#[test]
fn a_corrupt_store_admits_nobody_and_says_why() {
    let dir = tmp();
    let g = dir.path().join("G");
    std::fs::create_dir_all(&g).unwrap();
    std::fs::write(g.join("latchkey.db"), vec![0x42u8; 16384]).unwrap();
    let err = Gateway::start(&g, &[]).unwrap_err().to_string();
    assert!(err.contains("latchkey.db"), "{err}");
    assert!(
        err.contains("not a database") || err.contains("corrupt"),
        "{err}"
    );
}

#[test]
fn bad_pairing_uris_and_impostor_gateways_are_refused_without_storing_anything() {
    let dir = tmp();
    let (g, c) = (dir.path().join("G"), dir.path().join("C"));
    let gw = Gateway::start(&g, &[]).unwrap();
    let bad = client(&c, &["pair", "latchkey://pair?v=1&s=AAAA"]).unwrap();
    assert!(
        !bad.ok && bad.stderr.contains("field `s`"),
        "{}",
        bad.stderr
    );
    let bad = client(&c, &["pair", "https://evil.example/pair"]).unwrap();
    assert!(
        !bad.ok && bad.stderr.contains("latchkey://pair?"),
        "{}",
        bad.stderr
    );
    // Someone answers at the gateway's address with another key than the QR's.
    let uri = gw.pair_uri(&["--auto-confirm"]).unwrap();
    let other = latchkey_pairing::keys::b64(&[9u8; 32]);
    let k_start = uri.find("k=").unwrap() + 2;
    let k_end = k_start + uri[k_start..].find('&').unwrap();
    let forged = format!("{}{}{}", &uri[..k_start], other, &uri[k_end..]);
    let out = client(&c, &["pair", &forged]).unwrap();
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        !c.join("client.json").exists(),
        "nothing stored after a failed pairing"
    );
    assert!(
        latchkey(&g, &["devices", "--json"])
            .unwrap()
            .json()
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn pairing_from_a_qr_image() {
    let dir = tmp();
    let (g, c) = (dir.path().join("G"), dir.path().join("C"));
    let gw = Gateway::start(&g, &[]).unwrap();
    let uri = gw.pair_uri(&["--auto-confirm"]).unwrap();
    let picture = qrcode::QrCode::new(uri.as_bytes())
        .unwrap()
        .render::<image::Luma<u8>>()
        .build();
    let png = dir.path().join("qr.png");
    picture.save(&png).unwrap();
    client(&c, &["pair", "--qr-image", png.to_str().unwrap()])
        .unwrap()
        .expect_ok("pair from png")
        .unwrap();
    client(&c, &["cameras"])
        .unwrap()
        .expect_ok("cameras")
        .unwrap();
    // The terminal QR encodes the same kind of URI.
    let shown = latchkey(&g, &["pair"])
        .unwrap()
        .expect_ok("pair with terminal QR")
        .unwrap();
    assert!(
        shown.stdout.contains('█') || shown.stdout.contains('▀'),
        "no QR drawn"
    );
    assert!(shown.stdout.contains("latchkey://pair?v=1&"));
}

#[test]
fn state_files_are_private_and_the_admin_certificate_persists() {
    let dir = tmp();
    let (g, c) = (dir.path().join("G"), dir.path().join("C"));
    let mut gw = Gateway::start(&g, &[]).unwrap();
    let first = gw.cert_fingerprint.clone();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&g), 0o700);
    for f in ["latchkey.db", "admin.sock", "admin-key.pem"] {
        assert_eq!(mode(&g.join(f)), 0o600, "{f}");
    }
    let uri = gw.pair_uri(&["--auto-confirm"]).unwrap();
    client(&c, &["pair", &uri])
        .unwrap()
        .expect_ok("pair")
        .unwrap();
    assert_eq!(mode(&c.join("client.json")), 0o600);
    assert_eq!(mode(&c), 0o700);
    gw.stop().unwrap();
    assert!(!g.join("admin.sock").exists(), "socket removed on shutdown");
    let gw = Gateway::start(&g, &[]).unwrap();
    assert_eq!(gw.cert_fingerprint, first);
    // Admin commands without a running gateway explain themselves.
    drop(gw);
    let out = latchkey(&g, &["devices"]).unwrap();
    assert!(
        !out.ok && out.stderr.contains("not running"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_device_that_is_neither_an_id_nor_a_name_is_refused_in_one_line() {
    let dir = tmp();
    let g = dir.path().join("G");
    let _gw = Gateway::start(&g, &[]).unwrap();
    for bad in ["bad\u{1b}[2Jid", " padded", "ABCDEF0123456789"] {
        for command in ["revoke", "confirm"] {
            let out = latchkey(&g, &[command, bad]).unwrap();
            assert!(!out.ok, "{command} {bad:?} was accepted: {}", out.stdout);
            let err = out.stderr.trim_end();
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains("latchkey devices"), "{err}");
            assert!(!err.contains('\u{1b}'), "{err:?}");
        }
    }
    let out = latchkey(&g, &["revoke", "0123456789abcdef"]).unwrap();
    assert!(!out.ok);
    assert!(out.stderr.contains("0123456789abcdef"), "{}", out.stderr);
}
