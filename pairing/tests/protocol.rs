//! Both ends of every handshake and session driven in memory on simulated time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests fail loudly

use std::time::Duration;

use latchkey_pairing::error::{Error, PeerMisbehaved};
use latchkey_pairing::frame::{self, MAX_FRAME};
use latchkey_pairing::handshake::{self, PAIRING_TYPE, SESSION_TYPE};
use latchkey_pairing::session::{Opened, open_frames};
use latchkey_pairing::*;
mod common;
use common::CounterRng;

const T0: Duration = Duration::from_secs(1000);

struct Paired {
    phone: Keypair,
    gateway: Keypair,
    psk: SessionPsk,
}

fn pair(rng: &mut CounterRng) -> Paired {
    let gateway = Keypair::generate(rng).unwrap();
    let phone = Keypair::generate(rng).unwrap();
    let secret = PairingSecret::generate(rng).unwrap();
    let (init, first) = PairingInitiator::start(&gateway.public(), &secret, &phone, rng).unwrap();
    let (kind, m1) = handshake::split_type(&first).unwrap();
    assert_eq!(kind, PAIRING_TYPE);
    let (resp, m2) = PairingResponder::accept(&gateway, m1, &[&secret], rng).unwrap();
    assert_eq!(resp.candidate(), 0);
    let request = PairRequest {
        name: "Ana's phone".into(),
    };
    let (awaiting, m3) = init.read_response(&m2, &request, T0).unwrap();
    let paired = resp.read_request(&m3, T0).unwrap();
    assert_eq!(paired.request, request);
    assert_eq!(paired.public_key, phone.public());
    assert_eq!(&paired.code, awaiting.code());
    let psk = SessionPsk::generate(rng).unwrap();
    let result = PairResult {
        device_id: phone.public().fingerprint(),
        state: DeviceState::Active,
        session_psk: psk.to_b64(),
        gateway_name: "home".into(),
        addresses: vec!["127.0.0.1:7447".parse().unwrap()],
    };
    let wire = paired.finish(&result, T0).unwrap();
    let body = frame::decode(&wire, MAX_FRAME).unwrap().unwrap().body;
    assert_eq!(awaiting.read_result(body, T0).unwrap(), result);
    Paired {
        phone,
        gateway,
        psk,
    }
}

fn connect(p: &Paired, rng: &mut CounterRng, ts: u64) -> (Session, Session) {
    let hello = ClientHello { timestamp_ms: ts };
    let (init, first) =
        SessionInitiator::start(&p.gateway.public(), &p.phone, &p.psk, &hello, rng).unwrap();
    let (kind, m1) = handshake::split_type(&first).unwrap();
    assert_eq!(kind, SESSION_TYPE);
    let resp = SessionResponder::read_hello(&p.gateway, m1, rng).unwrap();
    assert_eq!(resp.remote_key(), p.phone.public());
    assert_eq!(resp.hello(), &hello);
    let server_hello = ServerHello {
        device_id: p.phone.public().fingerprint(),
        gateway_name: "home".into(),
        addresses: vec![],
        rekey_after_secs: 120,
    };
    let (m2, gw) = resp.accept(&p.psk, &server_hello, T0).unwrap();
    let (got, phone) = init.read_response(&m2, T0).unwrap();
    assert_eq!(got, server_hello);
    (phone, gw)
}

fn transfer(
    from: &mut Session,
    to: &mut Session,
    now: Duration,
    data: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut wire = Vec::new();
    from.seal(now, data, &mut wire)?;
    let mut plain = Vec::new();
    let used = open_frames(to, now, &wire, &mut plain)?;
    assert_eq!(used, wire.len());
    Ok(plain)
}

#[test]
fn pairing_then_session_carries_data_both_ways() {
    let mut rng = CounterRng::new("basic");
    let p = pair(&mut rng);
    let (mut phone, mut gw) = connect(&p, &mut rng, 1);
    assert_eq!(
        transfer(&mut phone, &mut gw, T0, b"GET /v1/cameras").unwrap(),
        b"GET /v1/cameras"
    );
    let big = vec![0x5a; 3 * MAX_FRAME + 17];
    assert_eq!(transfer(&mut gw, &mut phone, T0, &big).unwrap(), big);
}

#[test]
fn wrong_secret_is_refused_at_message_one() {
    let mut rng = CounterRng::new("wrong-secret");
    let gateway = Keypair::generate(&mut rng).unwrap();
    let phone = Keypair::generate(&mut rng).unwrap();
    let real = PairingSecret::generate(&mut rng).unwrap();
    let guess = PairingSecret::generate(&mut rng).unwrap();
    let (_, first) = PairingInitiator::start(&gateway.public(), &guess, &phone, &mut rng).unwrap();
    let (_, m1) = handshake::split_type(&first).unwrap();
    let err = PairingResponder::accept(&gateway, m1, &[&real], &mut rng).unwrap_err();
    assert!(matches!(
        err,
        Error::PeerMisbehaved(PeerMisbehaved::BadHandshake)
    ));
    // A used secret kept as a second candidate is recognised, so it can be audited.
    let (resp, _) = PairingResponder::accept(&gateway, m1, &[&real, &guess], &mut rng).unwrap();
    assert_eq!(resp.candidate(), 1);
}

#[test]
fn man_in_the_middle_with_another_key_is_detected_by_the_phone() {
    let mut rng = CounterRng::new("mitm");
    let gateway = Keypair::generate(&mut rng).unwrap();
    let attacker = Keypair::generate(&mut rng).unwrap();
    let phone = Keypair::generate(&mut rng).unwrap();
    let secret = PairingSecret::generate(&mut rng).unwrap();
    let (init, first) =
        PairingInitiator::start(&gateway.public(), &secret, &phone, &mut rng).unwrap();
    let (_, m1) = handshake::split_type(&first).unwrap();
    // The attacker knows the secret (photographed QR) but not the gateway's private key.
    assert!(PairingResponder::accept(&attacker, m1, &[&secret], &mut rng).is_err());
    // Even a message 2 from a genuine exchange with another initiator fails the phone.
    let (other, first2) =
        PairingInitiator::start(&attacker.public(), &secret, &phone, &mut rng).unwrap();
    drop(other);
    let (_, m1b) = handshake::split_type(&first2).unwrap();
    let (_, m2) = PairingResponder::accept(&attacker, m1b, &[&secret], &mut rng).unwrap();
    let req = PairRequest { name: "p".into() };
    assert!(init.read_response(&m2, &req, T0).is_err());
}

#[test]
fn session_with_unknown_psk_or_key_fails() {
    let mut rng = CounterRng::new("unknown");
    let p = pair(&mut rng);
    let stranger = Keypair::generate(&mut rng).unwrap();
    let hello = ClientHello { timestamp_ms: 5 };
    let (_, first) =
        SessionInitiator::start(&p.gateway.public(), &stranger, &p.psk, &hello, &mut rng).unwrap();
    let (_, m1) = handshake::split_type(&first).unwrap();
    // The gateway learns the stranger's key and would find it on no list.
    let resp = SessionResponder::read_hello(&p.gateway, m1, &mut rng).unwrap();
    assert_eq!(resp.remote_key(), stranger.public());
    // A phone with a wrong PSK fails when it reads message 2.
    let wrong = SessionPsk::generate(&mut rng).unwrap();
    let (init, first) =
        SessionInitiator::start(&p.gateway.public(), &p.phone, &wrong, &hello, &mut rng).unwrap();
    let (_, m1) = handshake::split_type(&first).unwrap();
    let resp = SessionResponder::read_hello(&p.gateway, m1, &mut rng).unwrap();
    let sh = ServerHello {
        device_id: String::new(),
        gateway_name: String::new(),
        addresses: vec![],
        rekey_after_secs: 120,
    };
    let (m2, _) = resp.accept(&p.psk, &sh, T0).unwrap();
    assert!(init.read_response(&m2, T0).is_err());
}

#[test]
fn low_order_and_zero_ephemeral_keys_are_refused() {
    let mut rng = CounterRng::new("low-order");
    let p = pair(&mut rng);
    let hello = ClientHello { timestamp_ms: 5 };
    let (_, first) =
        SessionInitiator::start(&p.gateway.public(), &p.phone, &p.psk, &hello, &mut rng).unwrap();
    let (_, m1) = handshake::split_type(&first).unwrap();
    for bad in [[0u8; 32], {
        let mut k = [0u8; 32];
        k[0] = 1;
        k
    }] {
        let mut forged = m1.to_vec();
        forged[..32].copy_from_slice(&bad);
        assert!(SessionResponder::read_hello(&p.gateway, &forged, &mut rng).is_err());
    }
}

#[test]
fn junk_first_frames_are_refused_without_panics() {
    let mut rng = CounterRng::new("junk");
    let gateway = Keypair::generate(&mut rng).unwrap();
    let secret = PairingSecret::generate(&mut rng).unwrap();
    assert!(handshake::split_type(&[]).is_err());
    assert_eq!(
        handshake::split_type(&[0x47, 0x45]),
        Err(PeerMisbehaved::UnknownHandshakeType(0x47))
    );
    for len in [0usize, 1, 31, 32, 47, 48, 96, 200, 1024] {
        let junk: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        assert!(PairingResponder::accept(&gateway, &junk, &[&secret], &mut rng).is_err());
        assert!(SessionResponder::read_hello(&gateway, &junk, &mut rng).is_err());
    }
}

#[test]
fn keys_rotate_on_schedule_and_old_keys_are_refused() {
    let mut rng = CounterRng::new("rekey");
    let p = pair(&mut rng);
    let (mut phone, mut gw) = connect(&p, &mut rng, 1);
    // A message sealed under the first key, held back by an attacker.
    let mut old = Vec::new();
    gw.seal(T0, b"frame 1", &mut old).unwrap();
    let mut plain = Vec::new();
    open_frames(&mut phone, T0, &old, &mut plain).unwrap();
    // Ten minutes of streaming, one message per second: the key rotates every 120 s.
    let mut rotations = 0;
    for s in 1..=600u64 {
        let now = T0 + Duration::from_secs(s);
        let mut wire = Vec::new();
        gw.seal(now, format!("frame at {s}").as_bytes(), &mut wire)
            .unwrap();
        let mut offset = 0;
        let mut got = Vec::new();
        while let Some(f) = frame::decode(&wire[offset..], MAX_FRAME).unwrap() {
            if phone.open(now, f.body, &mut got).unwrap() == Opened::Rekeyed {
                rotations += 1;
            }
            offset += f.consumed;
        }
        assert_eq!(
            got,
            format!("frame at {s}").as_bytes(),
            "no stutter at {s} s"
        );
    }
    assert_eq!(rotations, 5);
    // Replaying the old message now fails: its key is gone.
    let mut plain = Vec::new();
    assert!(open_frames(&mut phone, T0 + Duration::from_secs(601), &old, &mut plain).is_err());
    assert!(matches!(
        phone.open(T0, &old[2..], &mut plain),
        Err(Error::SessionClosed)
    ));
}

#[test]
fn a_peer_that_never_rotates_is_refused() {
    let mut rng = CounterRng::new("stale");
    let p = pair(&mut rng);
    let (mut phone, mut gw) = connect(&p, &mut rng, 1);
    // The gateway's clock is frozen (it never sees a reason to rotate); the phone's runs.
    let mut wire = Vec::new();
    gw.seal(T0, b"still here", &mut wire).unwrap();
    let body = frame::decode(&wire, MAX_FRAME).unwrap().unwrap().body;
    let mut out = Vec::new();
    let late = T0 + phone.policy().reject_after + Duration::from_secs(1);
    assert!(matches!(
        phone.open(late, body, &mut out),
        Err(Error::PeerMisbehaved(PeerMisbehaved::StaleKey))
    ));
    assert!(out.is_empty());
}

#[test]
fn tampered_and_truncated_messages_kill_the_session() {
    let mut rng = CounterRng::new("tamper");
    let p = pair(&mut rng);
    let (mut phone, mut gw) = connect(&p, &mut rng, 1);
    let mut wire = Vec::new();
    gw.seal(T0, b"hello", &mut wire).unwrap();
    let mut bad = wire.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let mut out = Vec::new();
    assert!(open_frames(&mut phone, T0, &bad, &mut out).is_err());
    assert!(
        open_frames(&mut phone, T0, &wire, &mut out).is_err(),
        "dead after one failure"
    );
    assert!(gw.open(T0, &[0u8; 3], &mut out).is_err());
}

#[test]
fn message_count_also_triggers_rotation() {
    let mut rng = CounterRng::new("count");
    let p = pair(&mut rng);
    let (mut phone, mut gw) = connect(&p, &mut rng, 1);
    let limit = gw.policy().rekey_after_messages;
    assert!(limit > 1000, "the limit is far above what this test sends");
    for _ in 0..1000 {
        transfer(&mut gw, &mut phone, T0, b"x").unwrap();
    }
}
