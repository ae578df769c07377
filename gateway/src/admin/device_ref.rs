//! [`DeviceRef`]: how an owner names a device at a door (a CLI argument, a web or phone
//! API path, an admin socket request): its id or its name. Parsed once at the door, so a
//! malformed one is refused there with one line, and the actions get a typed value that
//! they resolve to the core's [`DeviceId`].

use std::fmt;

use latchkey_pairing::DeviceId;
use latchkey_pairing::text::{check_device_name, escape};
use serde::{Deserialize, Serialize};

/// A device named by its id or its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceRef {
    /// Its id: 16 lowercase hex digits.
    Id(DeviceId),
    /// Its name, as the owner or the phone gave it.
    Name(String),
}

/// Neither an id nor a name; the text is made safe to show.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is neither a device id (16 hex digits) nor a device name (1 to 64 visible characters); `latchkey devices` lists both"
)]
pub struct BadDeviceRef(String);

impl DeviceRef {
    /// Reads what the owner typed.
    pub fn parse(text: &str) -> Result<Self, BadDeviceRef> {
        if let Ok(id) = DeviceId::parse(text) {
            return Ok(Self::Id(id));
        }
        match check_device_name(text, []) {
            Ok(()) => Ok(Self::Name(text.to_string())),
            Err(_) => Err(BadDeviceRef(escape(text).chars().take(40).collect())),
        }
    }

    /// The text the owner gave (the id or the name).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Id(id) => id.as_str(),
            Self::Name(n) => n,
        }
    }
}

impl fmt::Display for DeviceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DeviceRef {
    type Err = BadDeviceRef;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for DeviceRef {
    type Error = BadDeviceRef;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<DeviceRef> for String {
    fn from(r: DeviceRef) -> Self {
        r.as_str().to_string()
    }
}

impl From<DeviceId> for DeviceRef {
    fn from(id: DeviceId) -> Self {
        Self::Id(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_a_name_or_a_clear_refusal() {
        let id = DeviceRef::parse("0123456789abcdef").unwrap();
        assert!(matches!(id, DeviceRef::Id(_)));
        assert_eq!(
            DeviceRef::parse("Ann's phone").unwrap(),
            DeviceRef::Name("Ann's phone".into())
        );
        for bad in [
            "",
            " padded",
            "ABCDEF0123456789",
            "bell\u{7}",
            &"x".repeat(65),
        ] {
            let e = DeviceRef::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("latchkey devices") && !e.contains('\u{7}'),
                "{e}"
            );
        }
    }

    #[test]
    fn a_request_with_a_malformed_device_is_refused_and_a_good_one_is_its_text() {
        #[derive(Serialize, Deserialize)]
        struct Req {
            device: DeviceRef,
        }
        let r: Req = serde_json::from_str(r#"{"device":"0123456789abcdef"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"device":"0123456789abcdef"}"#
        );
        let e = serde_json::from_str::<Req>(r#"{"device":"\u0000"}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("neither a device id"), "{e}");
    }
}
