//! Latchkey's phone side, embeddable in an app: pair from a QR code, connect to the home
//! gateway over Noise (trying every known address at once), and use the gateway API.
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
pub mod assets;
pub mod connect;
pub mod exit;
pub mod noise_io;
pub mod serve;
pub mod state;

use std::io;

pub use api::{AuditPage, CameraInfo, Connection, Invitation, Invite, LiveFormat};
pub use connect::{PairOutcome, connect, pair};
pub use latchkey_pairing::PairingUri;
pub use state::{ClientState, GatewayRecord, StateDir};

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
    /// The gateway closed a session connection without answering.
    #[error(
        "the gateway refused this phone: it may have been revoked, have expired, or still be waiting for the owner to confirm it"
    )]
    SessionRefused,
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
        /// The gateway's explanation.
        message: String,
    },
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

impl ClientError {
    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            op: op.into(),
            source,
        }
    }
}
