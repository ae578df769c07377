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
    let mut plain = Vec::new();
    session::open_frames(&mut phone_session, later, &rekey_wire, &mut plain).unwrap();
    assert_eq!(plain, b"after rekey");

    json!({
        "about": "Latchkey protocol v1 golden vectors; see PROTOCOL.md. Hex unless named b64 (unpadded base64url). Frames include their 2-byte length.",
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
            "invalid": [
                { "text": format!("latchkey://pair?v=2&k={}&s={}&n=x&a=1.2.3.4:1", gateway.public().to_b64(), secret.to_b64()), "field": "v" },
                { "text": format!("latchkey://pair?v=1&k=AAAA&s={}&n=x&a=1.2.3.4:1", secret.to_b64()), "field": "k" },
                { "text": format!("latchkey://pair?v=1&k={}&n=x&a=1.2.3.4:1", gateway.public().to_b64()), "field": "s" },
                { "text": format!("latchkey://pair?v=1&k={}&s={}&n=x", gateway.public().to_b64(), secret.to_b64()), "field": "a" },
            ],
        },
        "pairing": {
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
    for case in stored["uri"]["invalid"].as_array().unwrap() {
        let err = PairingUri::parse(case["text"].as_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("`{}`", case["field"].as_str().unwrap())),
            "{err}"
        );
    }
    let ks = Keypair::from_secret([0x11; 32]);
    assert_eq!(
        hex(ks.public().as_bytes()),
        stored["x25519"]["gateway_static_public"]
    );
}
