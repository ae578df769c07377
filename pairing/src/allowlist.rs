//! The allow-list model: who may connect, and what each device may see and do.
//!
//! This is the policy only; the gateway stores the records and calls these checks on
//! every handshake, every request and periodically on every live stream.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::keys::{DeviceId, PublicKey};

/// Seconds since the Unix epoch, passed in by the caller (this crate reads no clock).
pub type UnixTime = u64;

/// What a device is to the household.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Full control: devices, invitations, remote access, audit log.
    Owner,
    /// Watches the cameras granted to it.
    Viewer,
    /// Like a viewer, and normally time-limited.
    Guest,
}

impl Role {
    /// The lowercase name used in the CLI, the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Viewer => "viewer",
            Self::Guest => "guest",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Self::Owner),
            "viewer" => Ok(Self::Viewer),
            "guest" => Ok(Self::Guest),
            other => Err(format!("unknown role {other:?} (owner, viewer or guest)")),
        }
    }
}

/// Which cameras a device may watch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraGrant {
    /// Every camera, including ones added later.
    All,
    /// Only these camera ids.
    Only(BTreeSet<String>),
}

impl CameraGrant {
    /// Parses the CLI form: `all`, or a comma-separated list of ids.
    pub fn parse_list(text: &str) -> Self {
        let ids: BTreeSet<String> = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if text.trim() == "all" {
            Self::All
        } else {
            Self::Only(ids)
        }
    }

    /// Whether `camera` is covered.
    pub fn covers(&self, camera: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(ids) => ids.contains(camera),
        }
    }
}

impl fmt::Display for CameraGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Only(ids) => {
                let list: Vec<&str> = ids.iter().map(String::as_str).collect();
                f.write_str(&list.join(","))
            }
        }
    }
}

/// Where a device is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceState {
    /// Paired, waiting for the owner to compare the short code and confirm.
    Pending,
    /// Admitted.
    Active,
    /// Revoked by the owner; never admitted again.
    Revoked,
}

impl DeviceState {
    /// The lowercase name used in the CLI, the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Revoked => "revoked",
        }
    }
}

impl FromStr for DeviceState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "active" => Ok(Self::Active),
            "revoked" => Ok(Self::Revoked),
            other => Err(format!("unknown device state {other:?}")),
        }
    }
}

/// Owner-only actions, checked by [`DeviceRecord::may`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// List the household's devices.
    ListDevices,
    /// Revoke a device.
    Revoke,
    /// Mint a pairing invitation.
    Invite,
    /// Open or close remote access.
    RemoteAccess,
    /// Read the audit log.
    ReadAudit,
}

/// Why a device was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// Waiting for the owner's confirmation.
    #[error("device is pending confirmation")]
    Pending,
    /// Revoked.
    #[error("device is revoked")]
    Revoked,
    /// Its access time ran out.
    #[error("device access expired")]
    Expired,
    /// The camera is not granted (or does not exist: the answer is the same).
    #[error("no such camera")]
    Camera,
    /// The action needs the owner role.
    #[error("this action needs the owner role")]
    NotOwner,
}

/// One device on the allow-list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Fingerprint of its key.
    pub id: DeviceId,
    /// The name the owner or the phone gave it.
    pub name: String,
    /// Its static public key.
    pub public_key: PublicKey,
    /// Its role.
    pub role: Role,
    /// Cameras it may watch.
    pub cameras: CameraGrant,
    /// When its access ends, if ever.
    pub expires_at: Option<UnixTime>,
    /// Pending, active or revoked.
    pub state: DeviceState,
}

impl DeviceRecord {
    /// May this device hold a session at `now`? Checked at the handshake and again on
    /// every request and while streams run, so an expiry cuts a live stream.
    pub fn admit(&self, now: UnixTime) -> Result<(), Denied> {
        match self.state {
            DeviceState::Pending => Err(Denied::Pending),
            DeviceState::Revoked => Err(Denied::Revoked),
            DeviceState::Active if self.expires_at.is_some_and(|end| now >= end) => {
                Err(Denied::Expired)
            }
            DeviceState::Active => Ok(()),
        }
    }

    /// May this device watch `camera` at `now`?
    pub fn may_view(&self, camera: &str, now: UnixTime) -> Result<(), Denied> {
        self.admit(now)?;
        if self.role == Role::Owner || self.cameras.covers(camera) {
            Ok(())
        } else {
            Err(Denied::Camera)
        }
    }

    /// May this device perform an owner action at `now`?
    pub fn may(&self, _action: Action, now: UnixTime) -> Result<(), Denied> {
        self.admit(now)?;
        if self.role == Role::Owner {
            Ok(())
        } else {
            Err(Denied::NotOwner)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(
        role: Role,
        cameras: CameraGrant,
        state: DeviceState,
        expires_at: Option<u64>,
    ) -> DeviceRecord {
        DeviceRecord {
            id: DeviceId("d".into()),
            name: "phone".into(),
            public_key: PublicKey([3u8; 32]),
            role,
            cameras,
            expires_at,
            state,
        }
    }

    #[test]
    fn admission_table() {
        let front = CameraGrant::parse_list("front");
        let cases = [
            (DeviceState::Active, None, 100, Ok(())),
            (DeviceState::Pending, None, 100, Err(Denied::Pending)),
            (DeviceState::Revoked, None, 100, Err(Denied::Revoked)),
            (DeviceState::Active, Some(100), 99, Ok(())),
            (DeviceState::Active, Some(100), 100, Err(Denied::Expired)),
        ];
        for (state, expires, now, want) in cases {
            let d = device(Role::Guest, front.clone(), state, expires);
            assert_eq!(d.admit(now), want, "{state:?} {expires:?} at {now}");
        }
    }

    #[test]
    fn grants_and_roles() {
        let guest = device(
            Role::Guest,
            CameraGrant::parse_list("front, back"),
            DeviceState::Active,
            None,
        );
        assert_eq!(guest.may_view("front", 0), Ok(()));
        assert_eq!(guest.may_view("garage", 0), Err(Denied::Camera));
        assert_eq!(guest.may(Action::Revoke, 0), Err(Denied::NotOwner));
        let owner = device(
            Role::Owner,
            CameraGrant::Only(BTreeSet::new()),
            DeviceState::Active,
            None,
        );
        assert_eq!(owner.may_view("garage", 0), Ok(()));
        assert_eq!(owner.may(Action::Invite, 0), Ok(()));
        let revoked_owner = DeviceRecord {
            state: DeviceState::Revoked,
            ..owner
        };
        assert_eq!(revoked_owner.may(Action::Invite, 0), Err(Denied::Revoked));
    }

    #[test]
    fn grant_text_round_trips() {
        assert_eq!(CameraGrant::parse_list("all"), CameraGrant::All);
        assert_eq!(CameraGrant::parse_list("b,a,,a").to_string(), "a,b");
        assert_eq!("viewer".parse::<Role>(), Ok(Role::Viewer));
        assert!("root".parse::<Role>().is_err());
    }
}
