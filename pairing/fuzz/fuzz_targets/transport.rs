//! Fuzz target: arbitrary bytes arriving on an established session (frames, ciphertext).
#![no_main]

mod common;

use std::time::Duration;

use latchkey_pairing::handshake::split_type;
use latchkey_pairing::session::open_frames;
use latchkey_pairing::{ClientHello, Keypair, ServerHello, SessionInitiator, SessionPsk, SessionResponder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let gateway = Keypair::from_secret([0x11; 32]);
    let phone = Keypair::from_secret([0x22; 32]);
    let psk = SessionPsk([0x44; 32]);
    let mut rng = common::Counter(3);
    let hello = ClientHello { timestamp_ms: 1 };
    let Ok((init, first)) = SessionInitiator::start(&gateway.public(), &phone, &psk, &hello, &mut rng) else { return };
    let Ok((_, m1)) = split_type(&first) else { return };
    let Ok(resp) = SessionResponder::read_hello(&gateway, m1, &mut rng) else { return };
    let sh = ServerHello { device_id: String::new(), gateway_name: String::new(), addresses: vec![], rekey_after_secs: 120 };
    let Ok((m2, mut gw)) = resp.accept(&psk, &sh, Duration::ZERO) else { return };
    let Ok((_, mut ph)) = init.read_response(&m2, Duration::ZERO) else { return };
    // Half the input as if from the phone, half as if from the gateway.
    let (a, b) = data.split_at(data.len() / 2);
    let mut out = Vec::new();
    let _ = open_frames(&mut gw, Duration::from_secs(1), a, &mut out);
    let _ = open_frames(&mut ph, Duration::from_secs(1), b, &mut out);
});
