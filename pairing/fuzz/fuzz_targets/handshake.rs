//! Fuzz target: the gateway's view of a stranger's first frame (both handshakes).
#![no_main]

mod common;

use latchkey_pairing::frame::{MAX_HANDSHAKE_FRAME, decode};
use latchkey_pairing::handshake::split_type;
use latchkey_pairing::{Keypair, PairingResponder, PairingSecret, SessionResponder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let gateway = Keypair::from_secret([0x11; 32]);
    let secret = PairingSecret([0x33; 32]);
    let mut rng = common::Counter(7);
    let Ok(Some(frame)) = decode(data, MAX_HANDSHAKE_FRAME) else { return };
    let Ok((kind, m1)) = split_type(frame.body) else { return };
    if kind == latchkey_pairing::handshake::PAIRING_TYPE {
        let _ = PairingResponder::accept(&gateway, m1, &[&secret], &mut rng);
    } else {
        let _ = SessionResponder::read_hello(&gateway, m1, &mut rng);
    }
});
