//! The two Noise handshakes, their prologues and payloads.
//!
//! * Pairing, `Noise_XKpsk0_25519_ChaChaPoly_BLAKE2s`: the phone knows the gateway's key
//!   from the QR code and proves it holds the QR's one-time secret in its very first
//!   message (psk0), so a wrong, used or expired secret is refused before the gateway
//!   sends a byte. The phone's static key travels in message 3, encrypted with forward
//!   secrecy. Then the gateway sends one transport message: [`PairResult`].
//! * Session, `Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s` (WireGuard's): the gateway learns the
//!   phone's key from message 1, checks the allow-list, and only then answers, mixing in
//!   the per-device PSK it handed out at pairing. Unknown keys get silence.
//!
//! The first frame of a connection starts with a type byte that picks the handshake; the
//! prologue binds both the protocol version and that type, so the two patterns can
//! never be confused. See PROTOCOL.md for the byte-level description.

use std::net::SocketAddr;
use std::time::Duration;

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use snow::HandshakeState;

use crate::allowlist::DeviceState;
use crate::error::{Error, PeerMisbehaved};
use crate::frame::MAX_FRAME;
use crate::keys::{Keypair, PairingSecret, PublicKey, SessionPsk};
use crate::noise;
use crate::qr::MAX_NAME_LEN;
use crate::sas::ShortCode;
use crate::session::{RekeyPolicy, Session};

/// Noise pattern of the pairing handshake.
pub const PAIRING_PATTERN: &str = "Noise_XKpsk0_25519_ChaChaPoly_BLAKE2s";
/// Noise pattern of the session handshake.
pub const SESSION_PATTERN: &str = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// First byte of a pairing connection.
pub const PAIRING_TYPE: u8 = 0x01;
/// First byte of a session connection.
pub const SESSION_TYPE: u8 = 0x02;
/// Prologue of the pairing handshake.
pub const PAIRING_PROLOGUE: &[u8] = b"latchkey/1 pair";
/// Prologue of the session handshake.
pub const SESSION_PROLOGUE: &[u8] = b"latchkey/1 session";

/// Message 3 payload of pairing: what the phone says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairRequest {
    /// The name the phone suggests for itself (the owner's `--name` wins).
    pub name: String,
}

/// The one rule for a name in the protocol (the gateway's `n` in a pairing URI, the
/// phone's name in [`PairRequest`]): at most [`MAX_NAME_LEN`] bytes of UTF-8 and no
/// control characters. A phone checks its name with this before pairing, because a
/// gateway answers a bad one with silence (and counts a failed attempt).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the name is {} bytes; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("the name contains a control character (tab, newline, ...)".into());
    }
    Ok(())
}

/// The gateway's one transport message after a pairing handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairResult {
    /// The id the gateway gave the phone (its key's fingerprint).
    pub device_id: String,
    /// `active`, or `pending` until the owner confirms the short code.
    pub state: DeviceState,
    /// The per-device PSK for session handshakes, unpadded base64url.
    pub session_psk: String,
    /// The gateway's name.
    pub gateway_name: String,
    /// The gateway's current addresses.
    pub addresses: Vec<SocketAddr>,
}

/// Message 1 payload of a session handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// Milliseconds since the Unix epoch on the phone, strictly increasing per device: the
    /// gateway refuses a hello not newer than the last one it accepted (replay guard).
    pub timestamp_ms: u64,
}

/// Message 2 payload of a session handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHello {
    /// The phone's device id, as the gateway knows it.
    pub device_id: String,
    /// The gateway's name.
    pub gateway_name: String,
    /// The gateway's current addresses, so the phone finds home after an address change.
    pub addresses: Vec<SocketAddr>,
    /// Seconds after which each side rotates its sending key.
    pub rekey_after_secs: u64,
}

/// Most bytes a handshake message adds to its payload: an ephemeral and an encrypted
/// static key (32 + 48) and the payload's tag (16), with room to spare.
const HANDSHAKE_OVERHEAD: usize = 128;

fn write(hs: &mut HandshakeState, payload: &[u8], prefix: Option<u8>) -> Result<Vec<u8>, Error> {
    // Sized to the message, not to MAX_FRAME: a 64 KiB buffer per handshake was zeroed
    // for nothing, and the gateway kept it for the whole session (BENCHMARKS.md).
    let mut out = vec![0u8; (payload.len() + HANDSHAKE_OVERHEAD).min(MAX_FRAME)];
    let n = hs
        .write_message(payload, &mut out)
        .map_err(|source| Error::Noise {
            op: "writing handshake message",
            source,
        })?;
    out.truncate(n);
    if let Some(kind) = prefix {
        out.insert(0, kind);
    }
    Ok(out)
}

fn read(hs: &mut HandshakeState, message: &[u8]) -> Result<Vec<u8>, Error> {
    let mut payload = vec![0u8; message.len()];
    let n = hs
        .read_message(message, &mut payload)
        .map_err(|_| PeerMisbehaved::BadHandshake)?;
    payload.truncate(n);
    Ok(payload)
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &'static str) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|_| PeerMisbehaved::BadPayload { what }.into())
}

fn encode<T: Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|source| Error::Encode { what, source })
}

/// Strips the type byte from a connection's first frame body.
pub fn split_type(first_frame: &[u8]) -> Result<(u8, &[u8]), PeerMisbehaved> {
    match first_frame.split_first() {
        Some((&kind, rest)) if kind == PAIRING_TYPE || kind == SESSION_TYPE => Ok((kind, rest)),
        Some((&kind, _)) => Err(PeerMisbehaved::UnknownHandshakeType(kind)),
        None => Err(PeerMisbehaved::BadHandshake),
    }
}

fn remote_key(hs: &HandshakeState) -> Result<PublicKey, Error> {
    hs.get_remote_static()
        .and_then(PublicKey::from_slice)
        .ok_or_else(|| PeerMisbehaved::BadHandshake.into())
}

/// The session after a finished handshake: Noise Split() gives the two transport keys
/// (initiator to responder first), which `Session` runs itself (see `cipher.rs` for why).
fn into_session(
    mut hs: HandshakeState,
    now: Duration,
    policy: RekeyPolicy,
) -> Result<Session, Error> {
    if !hs.is_handshake_finished() {
        return Err(PeerMisbehaved::BadHandshake.into());
    }
    let (mut i2r, mut r2i) = hs.dangerously_get_raw_split();
    let session = if hs.is_initiator() {
        Session::new(&mut i2r, &mut r2i, now, policy)
    } else {
        Session::new(&mut r2i, &mut i2r, now, policy)
    };
    Ok(session)
}

/// Phone side of pairing, after message 1 was produced.
#[derive(Debug)]
pub struct PairingInitiator {
    hs: HandshakeState,
}

impl PairingInitiator {
    /// Starts pairing with the gateway named in a QR code. Returns the state and the body
    /// of the first frame to send (type byte included).
    pub fn start<R: RngCore + CryptoRng>(
        gateway: &PublicKey,
        secret: &PairingSecret,
        device: &Keypair,
        rng: &mut R,
    ) -> Result<(Self, Vec<u8>), Error> {
        let mut hs = noise::builder(PAIRING_PATTERN, rng)?
            .prologue(PAIRING_PROLOGUE)
            .and_then(|b| b.psk(0, &secret.0))
            .and_then(|b| b.local_private_key(device.secret_bytes()))
            .and_then(|b| b.remote_public_key(gateway.as_bytes()))
            .and_then(|b| b.build_initiator())
            .map_err(|source| Error::Noise {
                op: "building pairing initiator",
                source,
            })?;
        let first = write(&mut hs, &[], Some(PAIRING_TYPE))?;
        Ok((Self { hs }, first))
    }

    /// Reads the gateway's message 2 and returns message 3, carrying `request`. A
    /// gateway that is not the QR's key fails here, and nothing has been stored.
    pub fn read_response(
        mut self,
        message2: &[u8],
        request: &PairRequest,
        now: Duration,
    ) -> Result<(PairingAwaitingResult, Vec<u8>), Error> {
        read(&mut self.hs, message2)?;
        let message3 = write(&mut self.hs, &encode(request, "pair request")?, None)?;
        let code = ShortCode::from_handshake_hash(self.hs.get_handshake_hash());
        let session = into_session(self.hs, now, RekeyPolicy::default())?;
        Ok((PairingAwaitingResult { session, code }, message3))
    }
}

/// Phone side of pairing, waiting for the gateway's [`PairResult`].
#[derive(Debug)]
pub struct PairingAwaitingResult {
    session: Session,
    code: ShortCode,
}

impl PairingAwaitingResult {
    /// The short code to show the owner.
    pub fn code(&self) -> &ShortCode {
        &self.code
    }

    /// Reads the gateway's result message (one frame body).
    pub fn read_result(mut self, body: &[u8], now: Duration) -> Result<PairResult, Error> {
        let mut plain = Vec::new();
        self.session.open(now, body, &mut plain)?;
        decode(&plain, "pair result")
    }
}

/// Gateway side of pairing, after message 1 decrypted with one of the candidate secrets.
#[derive(Debug)]
pub struct PairingResponder {
    hs: HandshakeState,
    candidate: usize,
}

impl PairingResponder {
    /// Tries message 1 (the first frame body without its type byte) against each
    /// candidate secret. `Ok` says which one the phone holds and gives message 2; the
    /// caller decides whether to send it (a used secret is recognised but answered with
    /// silence). `Err` means no candidate matched: stay silent.
    pub fn accept<R: RngCore + CryptoRng>(
        gateway: &Keypair,
        message1: &[u8],
        candidates: &[&PairingSecret],
        rng: &mut R,
    ) -> Result<(Self, Vec<u8>), Error> {
        for (candidate, secret) in candidates.iter().enumerate() {
            let mut hs = noise::builder(PAIRING_PATTERN, rng)?
                .prologue(PAIRING_PROLOGUE)
                .and_then(|b| b.psk(0, &secret.0))
                .and_then(|b| b.local_private_key(gateway.secret_bytes()))
                .and_then(|b| b.build_responder())
                .map_err(|source| Error::Noise {
                    op: "building pairing responder",
                    source,
                })?;
            if read(&mut hs, message1).is_ok() {
                let message2 = write(&mut hs, &[], None)?;
                return Ok((Self { hs, candidate }, message2));
            }
        }
        Err(PeerMisbehaved::BadHandshake.into())
    }

    /// Index into the candidates of the secret the phone used.
    pub fn candidate(&self) -> usize {
        self.candidate
    }

    /// Reads message 3: the phone's static key and its request.
    pub fn read_request(mut self, message3: &[u8], now: Duration) -> Result<PairedPhone, Error> {
        let payload = read(&mut self.hs, message3)?;
        let request: PairRequest = decode(&payload, "pair request")?;
        if check_name(&request.name).is_err() {
            return Err(PeerMisbehaved::BadPayload {
                what: "pair request",
            }
            .into());
        }
        let public_key = remote_key(&self.hs)?;
        let code = ShortCode::from_handshake_hash(self.hs.get_handshake_hash());
        let session = into_session(self.hs, now, RekeyPolicy::default())?;
        Ok(PairedPhone {
            request,
            public_key,
            code,
            session,
        })
    }
}

/// Gateway side of a completed pairing handshake: store the device, then send the result.
#[derive(Debug)]
pub struct PairedPhone {
    /// What the phone asked for.
    pub request: PairRequest,
    /// The phone's static key.
    pub public_key: PublicKey,
    /// The short code both sides show.
    pub code: ShortCode,
    session: Session,
}

impl PairedPhone {
    /// The wire bytes (framed) of the result message.
    pub fn finish(mut self, result: &PairResult, now: Duration) -> Result<Vec<u8>, Error> {
        let mut wire = Vec::new();
        self.session
            .seal(now, &encode(result, "pair result")?, &mut wire)?;
        Ok(wire)
    }
}

/// Phone side of a session handshake, after message 1 was produced.
#[derive(Debug)]
pub struct SessionInitiator {
    hs: HandshakeState,
}

impl SessionInitiator {
    /// Starts a session. Returns the state and the first frame body (type byte included).
    pub fn start<R: RngCore + CryptoRng>(
        gateway: &PublicKey,
        device: &Keypair,
        psk: &SessionPsk,
        hello: &ClientHello,
        rng: &mut R,
    ) -> Result<(Self, Vec<u8>), Error> {
        let mut hs = noise::builder(SESSION_PATTERN, rng)?
            .prologue(SESSION_PROLOGUE)
            .and_then(|b| b.psk(2, &psk.0))
            .and_then(|b| b.local_private_key(device.secret_bytes()))
            .and_then(|b| b.remote_public_key(gateway.as_bytes()))
            .and_then(|b| b.build_initiator())
            .map_err(|source| Error::Noise {
                op: "building session initiator",
                source,
            })?;
        let first = write(&mut hs, &encode(hello, "client hello")?, Some(SESSION_TYPE))?;
        Ok((Self { hs }, first))
    }

    /// Reads message 2 and enters the session.
    pub fn read_response(
        mut self,
        message2: &[u8],
        now: Duration,
    ) -> Result<(ServerHello, Session), Error> {
        let payload = read(&mut self.hs, message2)?;
        let hello: ServerHello = decode(&payload, "server hello")?;
        let policy = RekeyPolicy::with_interval(hello.rekey_after_secs);
        Ok((hello, into_session(self.hs, now, policy)?))
    }
}

/// Gateway side of a session handshake after message 1: the phone's key is known and
/// authenticated (message 1's `ss` proves possession), nothing has been sent yet.
#[derive(Debug)]
pub struct SessionResponder {
    hs: HandshakeState,
    remote: PublicKey,
    hello: ClientHello,
}

impl SessionResponder {
    /// Reads message 1 (the first frame body without its type byte).
    pub fn read_hello<R: RngCore + CryptoRng>(
        gateway: &Keypair,
        message1: &[u8],
        rng: &mut R,
    ) -> Result<Self, Error> {
        let mut hs = noise::builder(SESSION_PATTERN, rng)?
            .prologue(SESSION_PROLOGUE)
            .and_then(|b| b.local_private_key(gateway.secret_bytes()))
            .and_then(|b| b.build_responder())
            .map_err(|source| Error::Noise {
                op: "building session responder",
                source,
            })?;
        let payload = read(&mut hs, message1)?;
        let hello: ClientHello = decode(&payload, "client hello")?;
        let remote = remote_key(&hs)?;
        Ok(Self { hs, remote, hello })
    }

    /// The phone's static key: look it up on the allow-list before calling [`Self::accept`].
    pub fn remote_key(&self) -> PublicKey {
        self.remote
    }

    /// The phone's hello (check its timestamp against the last one accepted).
    pub fn hello(&self) -> &ClientHello {
        &self.hello
    }

    /// Admits the phone: mixes in its PSK and returns message 2 and the session.
    pub fn accept(
        mut self,
        psk: &SessionPsk,
        hello: &ServerHello,
        now: Duration,
    ) -> Result<(Vec<u8>, Session), Error> {
        self.hs.set_psk(2, &psk.0).map_err(|source| Error::Noise {
            op: "setting session psk",
            source,
        })?;
        let message2 = write(&mut self.hs, &encode(hello, "server hello")?, None)?;
        let policy = RekeyPolicy::with_interval(hello.rekey_after_secs);
        Ok((message2, into_session(self.hs, now, policy)?))
    }
}
