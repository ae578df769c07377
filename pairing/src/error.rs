//! Errors of the protocol core, one variant per thing that can go wrong.

use thiserror::Error;

/// Everything the protocol core can refuse.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The pairing URI could not be parsed.
    #[error("parsing pairing uri: {0}")]
    Uri(#[from] UriError),
    /// The peer broke a rule of the protocol; the connection must be closed.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(#[from] PeerMisbehaved),
    /// The Noise library refused an operation (bad key, failed decryption, wrong state).
    #[error("noise {op}: {source}")]
    Noise {
        /// What was being done.
        op: &'static str,
        /// The cause.
        #[source]
        source: snow::Error,
    },
    /// A payload could not be serialised (a bug, never caused by a peer).
    #[error("encoding {what}: {source}")]
    Encode {
        /// Which payload.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A frame to send is larger than the wire format allows.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The requested length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The caller's random number generator failed.
    #[error("drawing random bytes: {0}")]
    Entropy(rand_core::Error),
    /// The session was used after it closed or failed.
    #[error("session is closed")]
    SessionClosed,
}

/// Rules a peer can break. Each ends the connection.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerMisbehaved {
    /// The first byte of a connection named no known handshake.
    #[error("unknown handshake type {0:#04x}")]
    UnknownHandshakeType(u8),
    /// A handshake message had the wrong size or did not decrypt.
    #[error("handshake message rejected")]
    BadHandshake,
    /// A handshake payload was not the JSON object the protocol defines.
    #[error("malformed {what} payload")]
    BadPayload {
        /// Which payload.
        what: &'static str,
    },
    /// A frame announced more bytes than the limit for this stage.
    #[error("frame announces {len} bytes, limit is {max}")]
    FrameTooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A transport message did not decrypt (tampering, or a key that was rotated away).
    #[error("transport message did not decrypt")]
    BadCiphertext,
    /// A transport record had an unknown type byte or was empty.
    #[error("unknown record type")]
    BadRecord,
    /// The peer kept sending on a key older than the rotation schedule allows.
    #[error("peer did not rotate its key in time")]
    StaleKey,
    /// A session hello carried a timestamp not newer than one already seen (a replay).
    #[error("replayed session hello")]
    Replay,
}

/// Why a pairing URI was refused; every variant names the field at fault.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UriError {
    /// The URI does not start with `latchkey://pair?`.
    #[error("expected a uri starting with latchkey://pair?")]
    Scheme,
    /// A required field is absent.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A field that must appear once appears twice.
    #[error("field `{0}` appears more than once")]
    Duplicate(&'static str),
    /// A field is present but its value is unusable.
    #[error("field `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The URI is of a version this code does not speak.
    #[error("field `v`: unsupported version {0} (this client speaks 1)")]
    Version(String),
}
