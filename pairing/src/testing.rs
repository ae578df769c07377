//! Both ends of a session made in one process, for tests and benchmarks (feature
//! `testing`; no product code enables it).

use std::time::Duration;

use rand_core::{CryptoRng, RngCore};

use crate::handshake::split_type;
use crate::{
    ClientHello, Error, Keypair, ServerHello, Session, SessionInitiator, SessionPsk,
    SessionResponder,
};

/// A session pair with fresh keys, as a real handshake makes it: `(phone, gateway)`.
/// The gateway asks for rekeying every `rekey_after_secs` and made its end at
/// `gateway_now` (its session clock); the phone made its end at zero.
pub fn session_pair<R: RngCore + CryptoRng>(
    rng: &mut R,
    rekey_after_secs: u64,
    gateway_now: Duration,
) -> Result<(Session, Session), Error> {
    let gateway = Keypair::generate(rng)?;
    let phone = Keypair::generate(rng)?;
    let psk = SessionPsk::generate(rng)?;
    let hello = ClientHello { timestamp_ms: 1 };
    let (initiator, first) = SessionInitiator::start(&gateway.public(), &phone, &psk, &hello, rng)?;
    let (_, message1) = split_type(&first)?;
    let responder = SessionResponder::read_hello(&gateway, message1, rng)?;
    let server_hello = ServerHello {
        device_id: String::new(),
        gateway_name: String::new(),
        addresses: vec![],
        rekey_after_secs,
    };
    let (message2, gateway_session) = responder.accept(&psk, &server_hello, gateway_now)?;
    let (_, phone_session) = initiator.read_response(&message2, Duration::ZERO)?;
    Ok((phone_session, gateway_session))
}
