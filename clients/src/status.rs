//! What an app shows about a home's connection: a callback with the connection's state.

use std::net::SocketAddr;

/// Why the gateway refused this phone, told apart where the protocol allows: the session
/// handshake of a refused phone is answered with silence whatever the reason (so strangers
/// learn nothing), and the reason is only known from an API answer (`device_revoked`,
/// `device_pending`, `device_expired`) or from the phone's own record (never confirmed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The owner revoked this phone: pair again only with a new invitation.
    Revoked,
    /// The owner has not confirmed this phone's short code yet.
    Pending,
    /// This phone's access time ended.
    Expired,
    /// The gateway holds another session key for this phone (a restored backup).
    StaleKey,
    /// Refused without a reason (revoked, expired, or not confirmed yet).
    Unknown,
}

/// Where a home's connection stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Handshakes are under way on every known address.
    Connecting,
    /// Connected over this address.
    Connected {
        /// The gateway address that answered first.
        addr: SocketAddr,
    },
    /// The gateway refused this phone.
    Refused {
        /// Why, as far as the protocol tells.
        reason: Refusal,
    },
    /// No address answered (no network, gateway down, not reachable from here).
    Unreachable,
}

/// Receives connection states; called on a library thread, so it must not block.
pub trait ConnectionObserver: Send + Sync {
    /// The connection is now in `state`.
    fn on_state(&self, state: ConnectionState);
}
