//! Every kind of audit row, in one place: the stable keywords the audit log stores, the
//! CLI and the web UI filter on, and PROTOCOL.md's audit rows carry. Rows are written
//! only with an [`AuditKind`]; reading keeps the stored text (a row written by an older
//! version stays readable).

use std::fmt;

macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// What an audit row records.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum AuditKind {
            $($(#[$doc])* $variant,)*
        }

        impl AuditKind {
            /// Every kind.
            pub const ALL: &'static [AuditKind] = &[$(AuditKind::$variant,)*];

            /// The stored keyword.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditKind::$variant => $text,)*
                }
            }
        }
    };
}

kinds! {
    /// The admin UI's password was set through the setup link.
    AdminPasswordSet = "admin-password-set",
    /// The owner logged in to the admin UI.
    AdminLogin = "admin-login",
    /// A wrong admin UI password.
    AdminLoginFailed = "admin-login-failed",
    /// A summary of rate-limited rows (`audit_flood.rs`).
    AuditFlood = "audit-flood",
    /// A camera was added.
    CameraAdded = "camera-added",
    /// A camera was renamed or its source changed.
    CameraChanged = "camera-changed",
    /// A camera was removed.
    CameraRemoved = "camera-removed",
    /// A device started watching a camera (routine).
    CameraWatched = "camera-watched",
    /// A device was confirmed.
    DeviceConfirmed = "device-confirmed",
    /// A device's cameras or expiry changed.
    DeviceGrantsChanged = "device-grants-changed",
    /// A phone completed pairing.
    DevicePaired = "device-paired",
    /// A device was set back to pending.
    DevicePending = "device-pending",
    /// A device was revoked (or rejected).
    DeviceRevoked = "device-revoked",
    /// An owner action from a device without the role (routine).
    OwnerActionRefused = "owner-action-refused",
    /// A pairing attempt while another was being handled.
    PairingBusy = "pairing-busy",
    /// The pairing code was closed after too many failed attempts.
    PairingClosed = "pairing-closed",
    /// The pairing code expired unused.
    PairingExpired = "pairing-expired",
    /// A wrong pairing attempt.
    PairingFailed = "pairing-failed",
    /// A pairing code was made.
    PairingOpened = "pairing-opened",
    /// A pairing handshake was refused.
    PairingRefused = "pairing-refused",
    /// A used pairing code was tried again (an alarm).
    PairingReused = "pairing-reused",
    /// The owner approved remote access.
    RemoteApproved = "remote-approved",
    /// Remote access was closed.
    RemoteClosed = "remote-closed",
    /// An IPv4 port mapping was made.
    RemoteMapped = "remote-mapped",
    /// An IPv6 pinhole was opened.
    RemotePinhole = "remote-pinhole",
    /// An IPv6 pinhole was deleted.
    RemotePinholeClosed = "remote-pinhole-closed",
    /// A mapping the router lost was made again.
    RemoteRepaired = "remote-repaired",
    /// A mapping could not be removed.
    RemoteUnmapFailed = "remote-unmap-failed",
    /// An IPv4 port mapping was removed.
    RemoteUnmapped = "remote-unmapped",
    /// A refused request (routine; kept apart like the other routine kinds).
    RequestRefused = "request-refused",
    /// The owner removed a mapping found on the router.
    RouterMappingRemoved = "router-mapping-removed",
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuditKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("no audit kind {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for k in AuditKind::ALL {
            assert!(seen.insert(k.as_str()), "{k} twice");
            assert_eq!(k.as_str().parse::<AuditKind>(), Ok(*k));
        }
        assert!("no-such-kind".parse::<AuditKind>().is_err());
    }
}
