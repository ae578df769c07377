//! Latchkey's phone side, embeddable in an app: pair from a QR code, connect to the home
//! gateway over Noise (trying every known address at once), and use the gateway API.
//!
//! Apps use [`Phone`] (several homes, secrets in the app's [`KeyStore`], a connection
//! callback, [`player::Player`] for native players; `clients/ffi` binds it for Swift,
//! Kotlin and Python, APP.md says how). The CLI keeps one home in a [`StateDir`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), latchkey_client::ClientError> {
//! let dir = latchkey_client::StateDir::open("/tmp/phone")?;
//! let uri = latchkey_client::PairingUri::parse("latchkey://pair?v=1&...")?;
//! let paired = latchkey_client::pair(&dir, &uri, "My phone").await?;
//! println!("compare this code with the gateway: {}", paired.code);
//! let conn = latchkey_client::connect(&dir).await?;
//! for camera in conn.cameras().await? {
//!     println!("{}", camera.id);
//! }
//! # Ok(()) }
//! ```

pub mod api;
pub mod connect;
pub mod errors;
pub mod homes;
pub mod keystore;
mod link;
pub mod player;
#[cfg(feature = "qr")]
pub mod qr;
pub mod serve;
pub mod state;
pub mod status;

use std::io;

pub use api::{
    AuditPage, AuditRow, CameraInfo, Confirmed, Connection, DeviceInfo, Invitation,
    InvitationRequest, LiveFormat, Revoked,
};
pub use connect::{PairOutcome, connect, pair};
pub use errors::ErrorKind;
pub use homes::{Home, Phone};
pub use keystore::{FileKeyStore, KeyStore, KeyStoreError, Secret};
pub use latchkey_pairing::PairingUri;
pub use state::{ClientState, GatewayRecord, StateDir};
pub use status::{ConnectionObserver, ConnectionState, Refusal};

/// Everything the client library can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A local file or socket operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The pairing URI is malformed.
    #[error("the pairing code is not valid: {0}")]
    Uri(#[from] latchkey_pairing::UriError),
    /// The stored state is unreadable.
    #[error(
        "the phone's stored state is unreadable ({0}); pair again into a fresh --state directory"
    )]
    CorruptState(String),
    /// No gateway is paired yet.
    #[error("this phone is not paired with a gateway yet: run `latchkey-client pair URI` first")]
    NotPaired,
    /// The gateway closed the pairing connection without answering.
    #[error(
        "pairing was refused by the gateway: the pairing code may have been used already or have expired, or another phone is pairing right now; ask the owner for a new code"
    )]
    PairingRefused,
    /// The gateway answered with another key than the QR code's.
    #[error(
        "the gateway did not prove it holds the key from the QR code: someone may be impersonating it; nothing was stored"
    )]
    GatewayNotAuthentic,
    /// The phone's key store failed.
    #[error("the phone's key store failed ({0}); check the app's key store permissions")]
    KeyStore(String),
    /// The gateway refused this phone for a known reason.
    #[error("the gateway refused this phone: {}", refusal_text(*.0))]
    Refused(crate::status::Refusal),
    /// The gateway closed a session connection without answering.
    #[error(
        "the gateway refused this phone: it may have been revoked, have expired, or still be waiting for the owner to confirm it"
    )]
    SessionRefused,
    /// The gateway answered the session handshake, but its message 2 did not decrypt: it
    /// holds another session PSK for this phone (a restored backup on either side).
    #[error(
        "the gateway no longer recognises this phone's pairing (its session key does not match): ask the owner for a new pairing code and pair again"
    )]
    SessionKeyMismatch,
    /// No address could be reached at all.
    #[error("could not reach the gateway at any of its addresses: {0}")]
    Unreachable(String),
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] latchkey_pairing::Error),
    /// The gateway API answered with an error status.
    #[error("the gateway answered {status}: {message}")]
    Api {
        /// HTTP status code.
        status: u16,
        /// The stable reason (PROTOCOL.md §7): branch on this, not on the text.
        code: latchkey_pairing::ErrorCode,
        /// The gateway's explanation.
        message: String,
    },
    /// The name chosen for this phone would be refused by every gateway.
    #[error("the phone name cannot be used: {0}; choose a shorter name without control characters")]
    BadName(String),
    /// A photo did not yield a pairing code.
    #[error("{0}; take the picture again with the whole QR code in view, or type the code")]
    Qr(String),
    /// HTTP/2 inside the channel failed.
    #[error("{op}: {source}")]
    Http {
        /// What was being done.
        op: &'static str,
        /// The cause.
        #[source]
        source: hyper::Error,
    },
}

fn refusal_text(r: crate::status::Refusal) -> &'static str {
    use crate::status::Refusal;
    match r {
        Refusal::Revoked => "the owner revoked it; ask the owner for a new invitation",
        Refusal::Pending => {
            "it is waiting for the owner to compare the short code and confirm it; ask the owner"
        }
        Refusal::Expired => "its access time ended; ask the owner to extend it",
        Refusal::StaleKey => "its session key does not match; pair again with a new code",
        Refusal::Unknown => "it may have been revoked, have expired, or not be confirmed yet",
    }
}

impl ClientError {
    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            op: op.into(),
            source,
        }
    }
}
