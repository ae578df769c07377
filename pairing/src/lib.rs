//! Latchkey protocol core: everything two peers must agree on, with no I/O.
//!
//! This crate does not take care of network I/O, clocks or randomness. Callers feed it
//! bytes they read, the current time and a cryptographic RNG; it hands back bytes to
//! write and decisions to act on:
//!
//! ```text
//!   phone (clients/)                                   gateway (gateway/)
//!   PairingUri::parse ──┐                         ┌── PairingUri::encode (QR)
//!   PairingInitiator ───┼── frame::encode/decode ─┼── PairingResponder
//!   SessionInitiator ───┤    (2-byte length)      ├── SessionResponder ── allowlist::DeviceRecord::admit
//!   Session::seal/open ─┘                         └── Session::seal/open
//! ```
//!
//! The wire format is specified in PROTOCOL.md at the workspace root; the golden vectors
//! in `test-data/` are checked by this crate's tests.

pub mod allowlist;
pub mod api_error;
pub mod api_types;
mod cipher;
pub mod device_id;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod keys;
mod noise;
pub mod qr;
pub mod sas;
pub mod session;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;

pub use allowlist::{Action, CameraGrant, Denied, DeviceRecord, DeviceState, Role, UnixTime};
pub use api_error::{ApiError, ErrorCode};
pub use api_types::{
    AuditPage, AuditRow, CameraInfo, CameraState, Confirmed, DeviceInfo, DeviceSummary,
    GatewayInfo, Invitation, InvitationRequest, ListedState, LiveFormat, Revoked,
};
pub use cipher::BACKEND as CIPHER_BACKEND;
pub use error::{Error, PeerMisbehaved, UriError};
pub use handshake::{
    ClientHello, PairRequest, PairResult, PairingInitiator, PairingResponder, ServerHello,
    SessionInitiator, SessionResponder,
};
pub use keys::{DeviceId, Keypair, PairingSecret, PublicKey, SessionPsk};
pub use qr::PairingUri;
pub use sas::ShortCode;
pub use session::{Opened, RekeyPolicy, Session};
