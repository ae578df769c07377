//! Hand-made sessions for the end-to-end tests that play a phone by hand: a paired
//! phone's keys read back from its state, the session handshake, and a `NoiseStream`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use latchkey_channel::{NoiseStream, read_frame, write_frame};
use latchkey_pairing::{ClientHello, Keypair, PublicKey, SessionInitiator, SessionPsk};
use tokio::net::TcpStream;

pub fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A paired phone's keys, for hand-made sessions.
#[allow(dead_code)] // abuse.rs reads every field, hibernate.rs only the keys
pub struct Phone {
    pub dir: PathBuf,
    pub id: String,
    pub key: Keypair,
    pub gateway: PublicKey,
    pub psk: SessionPsk,
}

pub fn load(dir: &Path) -> Phone {
    let state = latchkey_client::StateDir::open(dir)
        .unwrap()
        .load()
        .unwrap()
        .unwrap();
    let record = state.gateway.clone().unwrap();
    Phone {
        dir: dir.to_path_buf(),
        id: record.device_id.clone(),
        key: state.keypair().unwrap(),
        gateway: record.gateway_key().unwrap(),
        psk: record.psk().unwrap(),
    }
}

/// Message 1 of a session from `phone`, dated `ts`.
pub fn hello(phone: &Phone, ts: u64) -> (SessionInitiator, Vec<u8>) {
    let hello = ClientHello { timestamp_ms: ts };
    SessionInitiator::start(
        &phone.gateway,
        &phone.key,
        &phone.psk,
        &hello,
        &mut rand_core::OsRng,
    )
    .unwrap()
}

/// A session dated `ts`, or `None` if the gateway stayed silent.
pub async fn session(addr: SocketAddr, phone: &Phone, ts: u64) -> Option<NoiseStream<TcpStream>> {
    let (init, first) = hello(phone, ts);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let origin = tokio::time::Instant::now().into_std();
    write_frame(&mut stream, &first).await.unwrap();
    let m2 = tokio::time::timeout(Duration::from_secs(8), read_frame(&mut stream, 65_535))
        .await
        .ok()?
        .ok()?;
    let (_, s) = init.read_response(&m2, origin.elapsed()).unwrap();
    Some(NoiseStream::new(stream, s, origin))
}
