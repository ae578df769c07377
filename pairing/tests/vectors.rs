//! Golden test vectors (`test-data/vectors.json`), referenced from PROTOCOL.md so that
//! another implementation (an iOS app) can check itself byte for byte.
//!
//! Regenerate after a deliberate wire change with `LATCHKEY_WRITE_VECTORS=1 cargo test -p
//! latchkey-pairing --test vectors`, and say so in PROTOCOL.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests fail loudly

mod common;

use std::time::Duration;

use common::CounterRng;
use latchkey_pairing::frame::{self, MAX_FRAME};
use latchkey_pairing::handshake::{
    self, PAIRING_PATTERN, PAIRING_PROLOGUE, SESSION_PATTERN, SESSION_PROLOGUE,
};
use latchkey_pairing::*;
use rand_core::RngCore;
use serde_json::{Value, json};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first 32 of the 64 bytes a handshake draws from an RNG are its ephemeral secret.
fn ephemeral_of(seed: &str) -> String {
    let mut rng = CounterRng::new(seed);
    let mut draw = [0u8; 64];
    rng.fill_bytes(&mut draw);
    hex(&draw[..32])
}

const ABOUT: &str = "Latchkey protocol v1 golden vectors; see PROTOCOL.md. Byte strings are lowercase hex, except fields ending in _b64 (unpadded base64url). Text fields: about, keys, rule, field, pattern, name, short_code, code, every uri text, every *_payload (UTF-8 JSON as sent inside the Noise message), addresses, api_errors. Numbers are JSON numbers. *_frame and *_frames include each frame's 2-byte length; first_frame_body is the first frame without its length (type byte, then the Noise message); message2 and message3 are Noise messages, sent as frame bodies with no type byte.";

/// One case per rule of PROTOCOL.md §3 that makes a parser refuse a URI, each naming the
/// field at fault. Removing a rule from the parser makes `stored_uri_vectors_parse_as_documented` fail.
fn invalid_uris(gateway: &PublicKey, secret: &PairingSecret) -> Vec<Value> {
    let (k, s) = (gateway.to_b64(), secret.to_b64());
    let with = |rest: &str| format!("latchkey://pair?v=1&k={k}&s={s}&n=Home&{rest}");
    // Same 4 data bits in the last character, but a low bit set: not canonical.
    let last = k.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet.find(last).unwrap();
    let loose = alphabet.chars().nth(index | 1).unwrap();
    let noncanonical_k = format!("{}{loose}", &k[..k.len() - 1]);
    let seventeen: Vec<String> = (1..=17).map(|i| format!("a=10.0.0.{i}:7447")).collect();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unsupported version",
            format!("latchkey://pair?v=2&k={k}&s={s}&n=x&a=1.2.3.4:1"),
            "v",
        ),
        (
            "missing v",
            format!("latchkey://pair?k={k}&s={s}&n=x&a=1.2.3.4:1"),
            "v",
        ),
        (
            "repeated v",
            format!("latchkey://pair?v=1&v=1&k={k}&s={s}&n=x&a=1.2.3.4:1"),
            "v",
        ),
        (
            "key not 32 bytes",
            format!("latchkey://pair?v=1&k=AAAA&s={s}&n=x&a=1.2.3.4:1"),
            "k",
        ),
        ("repeated k", with(&format!("k={k}&a=1.2.3.4:1")), "k"),
        (
            "padded base64",
            format!("latchkey://pair?v=1&k={k}%3D&s={s}&n=x&a=1.2.3.4:1"),
            "k",
        ),
        (
            "non-canonical base64 (unused low bits set)",
            format!("latchkey://pair?v=1&k={noncanonical_k}&s={s}&n=x&a=1.2.3.4:1"),
            "k",
        ),
        (
            "standard base64 alphabet",
            format!(
                "latchkey://pair?v=1&k={}&s={s}&n=x&a=1.2.3.4:1",
                k.replace(['_', '-'], "/")
            ),
            "k",
        ),
        (
            "missing s",
            format!("latchkey://pair?v=1&k={k}&n=x&a=1.2.3.4:1"),
            "s",
        ),
        (
            "secret not 32 bytes",
            format!("latchkey://pair?v=1&k={k}&s={}&n=x&a=1.2.3.4:1", &s[..42]),
            "s",
        ),
        ("repeated s", with(&format!("s={s}&a=1.2.3.4:1")), "s"),
        (
            "missing n",
            format!("latchkey://pair?v=1&k={k}&s={s}&a=1.2.3.4:1"),
            "n",
        ),
        ("repeated n", with("n=Other&a=1.2.3.4:1"), "n"),
        (
            "name over 64 bytes",
            format!(
                "latchkey://pair?v=1&k={k}&s={s}&n={}&a=1.2.3.4:1",
                "%C3%A9".repeat(33)
            ),
            "n",
        ),
        (
            "control character in the name",
            format!("latchkey://pair?v=1&k={k}&s={s}&n=Ho%0Ame&a=1.2.3.4:1"),
            "n",
        ),
        (
            "missing a",
            format!("latchkey://pair?v=1&k={k}&s={s}&n=x"),
            "a",
        ),
        ("port 0", with("a=192.168.1.20:0"), "a"),
        ("no port", with("a=192.168.1.20"), "a"),
        (
            "malformed IPv4 (three parts)",
            with("a=192.168.1:7447"),
            "a",
        ),
        (
            "malformed IPv4 (octet over 255)",
            with("a=192.168.1.256:7447"),
            "a",
        ),
        (
            "malformed IPv4 (leading zero)",
            with("a=192.168.01.20:7447"),
            "a",
        ),
        (
            "a host name, not an address",
            with("a=gateway.local:7447"),
            "a",
        ),
        (
            "malformed IPv6 (no brackets)",
            with("a=2001:db8::20:7447"),
            "a",
        ),
        (
            "malformed IPv6 (bad group)",
            with("a=[2001:db8::g]:7447"),
            "a",
        ),
        ("IPv6 with a zone id", with("a=[fe80::1%251]:7447"), "a"),
        ("more than 16 addresses", with(&seventeen.join("&")), "a"),
    ];
    cases
        .into_iter()
        .map(|(rule, text, field)| json!({ "rule": rule, "text": text, "field": field }))
        .collect()
}

fn build() -> Value {
    let t = Duration::from_secs(0);
    let gateway = Keypair::from_secret([0x11; 32]);
    let phone = Keypair::from_secret([0x22; 32]);
    let secret = PairingSecret([0x33; 32]);
    let psk = SessionPsk([0x44; 32]);

    let uri = PairingUri {
        gateway_key: gateway.public(),
        secret: secret.clone(),
        name: "Home".into(),
        addresses: vec![
            "192.168.1.20:7447".parse().unwrap(),
            "[2001:db8::20]:7447".parse().unwrap(),
        ],
    };

    // Pairing.
    let mut phone_rng = CounterRng::new("phone-pairing");
    let mut gw_rng = CounterRng::new("gateway-pairing");
    let (init, first) =
        PairingInitiator::start(&gateway.public(), &secret, &phone, &mut phone_rng).unwrap();
    let (_, m1) = handshake::split_type(&first).unwrap();
    let (resp, m2) = PairingResponder::accept(&gateway, m1, &[&secret], &mut gw_rng).unwrap();
    let request = PairRequest {
        name: "Ana's phone".into(),
    };
    let (awaiting, m3) = init.read_response(&m2, &request, t).unwrap();
    let code = awaiting.code().clone();
    let paired = resp.read_request(&m3, t).unwrap();
    let result = PairResult {
        device_id: phone.public().fingerprint(),
        state: DeviceState::Pending,
        session_psk: psk.to_b64(),
        gateway_name: "Home".into(),
        addresses: uri.addresses.clone(),
    };
    let result_wire = paired.finish(&result, t).unwrap();
    let body = frame::decode(&result_wire, MAX_FRAME)
        .unwrap()
        .unwrap()
        .body;
    assert_eq!(awaiting.read_result(body, t).unwrap(), result);

    // Session.
    let mut phone_rng = CounterRng::new("phone-session");
    let mut gw_rng = CounterRng::new("gateway-session");
    let hello = ClientHello {
        timestamp_ms: 1_795_000_000_000,
    };
    let (init, s_first) =
        SessionInitiator::start(&gateway.public(), &phone, &psk, &hello, &mut phone_rng).unwrap();
    let (_, s_m1) = handshake::split_type(&s_first).unwrap();
    let resp = SessionResponder::read_hello(&gateway, s_m1, &mut gw_rng).unwrap();
    let server_hello = ServerHello {
        device_id: phone.public().fingerprint(),
        gateway_name: "Home".into(),
        addresses: uri.addresses.clone(),
        rekey_after_secs: 120,
    };
    let (s_m2, mut gw_session) = resp.accept(&psk, &server_hello, t).unwrap();
    let (_, mut phone_session) = init.read_response(&s_m2, t).unwrap();
    let mut req_wire = Vec::new();
    phone_session
        .seal(t, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &mut req_wire)
        .unwrap();
    let mut plain = Vec::new();
    session::open_frames(&mut gw_session, t, &req_wire, &mut plain).unwrap();
    // The gateway's second message comes after its rekey interval: a marker, then data.
    let later = Duration::from_secs(121);
    let mut rekey_wire = Vec::new();
    gw_session
        .seal(later, b"after rekey", &mut rekey_wire)
        .unwrap();
    // Rekey() keeps the counter: the marker went out with nonce 0, the data with nonce 1.
    assert_eq!(gw_session.sending_nonce(), 2);
    let mut plain = Vec::new();
    session::open_frames(&mut phone_session, later, &rekey_wire, &mut plain).unwrap();
    assert_eq!(plain, b"after rekey");

    json!({
        "about": ABOUT,
        "x25519": {
            "gateway_static_secret": hex(&[0x11; 32]),
            "gateway_static_public": hex(gateway.public().as_bytes()),
            "phone_static_secret": hex(&[0x22; 32]),
            "phone_static_public": hex(phone.public().as_bytes()),
        },
        "fingerprint": { "public_key_b64": phone.public().to_b64(), "fingerprint": phone.public().fingerprint() },
        "uri": {
            "text": uri.encode(),
            "gateway_key_b64": gateway.public().to_b64(),
            "secret_b64": secret.to_b64(),
            "name": "Home",
            "addresses": ["192.168.1.20:7447", "[2001:db8::20]:7447"],
            "invalid": invalid_uris(&gateway.public(), &secret),
        },
        "pairing": {
            "keys": "initiator (phone) static: x25519.phone_static_secret; responder (gateway) static: x25519.gateway_static_secret, known to the phone as uri.gateway_key_b64",
            "pattern": PAIRING_PATTERN,
            "prologue": hex(PAIRING_PROLOGUE),
            "psk0": hex(&secret.0),
            "phone_ephemeral_secret": ephemeral_of("phone-pairing"),
            "gateway_ephemeral_secret": ephemeral_of("gateway-pairing"),
            "first_frame_body": hex(&first),
            "message2": hex(&m2),
            "message3_payload": serde_json::to_string(&request).unwrap(),
            "message3": hex(&m3),
            "short_code": code.0,
            "pair_result_payload": serde_json::to_string(&result).unwrap(),
            "pair_result_frame": hex(&result_wire),
        },
        "session": {
            "keys": "initiator (phone) static: x25519.phone_static_secret; responder (gateway) static: x25519.gateway_static_secret; psk2 is pairing.pair_result_payload's session_psk",
            "pattern": SESSION_PATTERN,
            "prologue": hex(SESSION_PROLOGUE),
            "psk2": hex(&psk.0),
            "phone_ephemeral_secret": ephemeral_of("phone-session"),
            "gateway_ephemeral_secret": ephemeral_of("gateway-session"),
            "message1_payload": serde_json::to_string(&hello).unwrap(),
            "first_frame_body": hex(&s_first),
            "message2_payload": serde_json::to_string(&server_hello).unwrap(),
            "message2": hex(&s_m2),
            "phone_first_transport_plaintext": hex(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            "phone_first_transport_frames": hex(&req_wire),
            "gateway_rekey_marker_then_data_frames": hex(&rekey_wire),
            "gateway_data_plaintext_after_rekey": hex(b"after rekey"),
            "gateway_rekey_marker_nonce": 0,
            "gateway_data_after_rekey_nonce": 1,
        },
        "api_errors": {
            "example": serde_json::to_value(ApiError::new(ErrorCode::NoSuchCamera, "no such camera")).unwrap(),
            "codes": ErrorCode::ALL.iter().map(|c| json!({ "code": c.as_str(), "status": c.status() })).collect::<Vec<_>>(),
        },
    })
}

#[test]
fn golden_vectors_match() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/test-data/vectors.json");
    let built = build();
    if std::env::var_os("LATCHKEY_WRITE_VECTORS").is_some() {
        std::fs::write(path, serde_json::to_string_pretty(&built).unwrap() + "\n").unwrap();
    }
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("test-data/vectors.json"))
            .unwrap();
    assert_eq!(
        stored, built,
        "wire format changed: see the header of this file"
    );
}

#[test]
fn stored_uri_vectors_parse_as_documented() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/test-data/vectors.json");
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let uri = PairingUri::parse(stored["uri"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(uri.gateway_key.to_b64(), stored["uri"]["gateway_key_b64"]);
    let invalid = stored["uri"]["invalid"].as_array().unwrap();
    assert!(invalid.len() >= 26, "one case per must-reject rule of §3");
    for case in invalid {
        let (text, rule) = (case["text"].as_str().unwrap(), &case["rule"]);
        let err = match PairingUri::parse(text) {
            Ok(uri) => panic!("{rule}: accepted {text} as {uri:?}"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&format!("`{}`", case["field"].as_str().unwrap())),
            "{rule}: {err}"
        );
    }
    let ks = Keypair::from_secret([0x11; 32]);
    assert_eq!(
        hex(ks.public().as_bytes()),
        stored["x25519"]["gateway_static_public"]
    );
}
