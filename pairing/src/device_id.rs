//! [`DeviceId`], a paired device's identity: the fingerprint of its static public key,
//! 16 lowercase hex digits. The gateway carries it typed from where an id comes in (a
//! command-line argument, a web path, an admin request: [`DeviceId::parse`] refuses a
//! malformed one with one line) to where it goes out; on the wire it is that text.
//!
//! Reading an id the gateway wrote (`Deserialize`) is lenient, as every reader of the
//! API's answers is: a newer gateway's id is kept as it came. Where an id comes from
//! outside, the gateway parses it (its admin requests take a `DeviceRef`, id or name,
//! that does).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Digits in a device id.
pub const DEVICE_ID_LEN: usize = 16;

/// A device's identity as shown to people and used in the admin CLI: the fingerprint
/// of its static public key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(pub String);

/// A device id that is not one, with the text (made safe to show) that was given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a device id: give the 16 hex digits that `latchkey devices` lists in its ID column"
)]
pub struct BadDeviceId(pub String);

impl DeviceId {
    /// Checks `text` from outside: exactly 16 lowercase hex digits.
    pub fn parse(text: &str) -> Result<Self, BadDeviceId> {
        let ok = text.len() == DEVICE_ID_LEN
            && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(Self(text.to_string()))
        } else {
            let shown: String = crate::text::escape(text).chars().take(40).collect();
            Err(BadDeviceId(shown))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for DeviceId {
    type Err = BadDeviceId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Reads as the text it is (for printing, escaping and comparing).
impl std::ops::Deref for DeviceId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DeviceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for DeviceId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sixteen_lowercase_hex_digits_are_an_id() {
        assert_eq!(
            DeviceId::parse("0123456789abcdef").unwrap().as_str(),
            "0123456789abcdef"
        );
        for bad in [
            "",
            "0123456789abcde",
            "0123456789ABCDEF",
            "0123456789abcdefa",
            "../etc/passwd00",
        ] {
            assert!(DeviceId::parse(bad).is_err(), "{bad}");
        }
        let e = DeviceId::parse("bad\u{1b}[2Jid").unwrap_err().to_string();
        assert!(!e.contains('\u{1b}') && !e.contains('\n'), "{e}");
        assert!(e.contains("latchkey devices"), "{e}");
    }

    #[test]
    fn on_the_wire_an_id_is_its_text() {
        let id = DeviceId::parse("0123456789abcdef").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""0123456789abcdef""#);
        let lenient: DeviceId = serde_json::from_str(r#""anything""#).unwrap();
        assert_eq!(lenient.as_str(), "anything");
    }
}
