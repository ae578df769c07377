//! The pairing URI carried by the QR code: `latchkey://pair?v=1&k=..&s=..&n=..&a=..`.
//!
//! Parsing is strict about what it needs (every error names the field) and lenient
//! about what it does not know (unknown parameters are ignored so the format can grow).

use std::net::SocketAddr;

use crate::error::UriError;
use crate::keys::{PairingSecret, PublicKey};

/// The only URI version this code writes and reads.
pub const URI_VERSION: u32 = 1;
const PREFIX: &str = "latchkey://pair?";
/// Longest gateway name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most addresses accepted in one URI.
pub const MAX_ADDRESSES: usize = 16;

/// Everything a phone needs to pair with a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingUri {
    /// The gateway's static Noise public key (`k`).
    pub gateway_key: PublicKey,
    /// The one-time pairing secret (`s`), the PSK of the pairing handshake.
    pub secret: PairingSecret,
    /// The gateway's human name (`n`).
    pub name: String,
    /// Where the gateway listens (`a`, repeated): LAN first, then external.
    pub addresses: Vec<SocketAddr>,
}

impl PairingUri {
    /// The URI text, as put in the QR code.
    pub fn encode(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("v", &URI_VERSION.to_string());
        query.append_pair("k", &self.gateway_key.to_b64());
        query.append_pair("s", &self.secret.to_b64());
        query.append_pair("n", &self.name);
        for addr in &self.addresses {
            query.append_pair("a", &addr.to_string());
        }
        format!("{PREFIX}{}", query.finish())
    }

    /// Parses URI text, refusing anything a phone could not pair with.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let query = text.trim().strip_prefix(PREFIX).ok_or(UriError::Scheme)?;
        let mut version = None;
        let mut key = None;
        let mut secret = None;
        let mut name = None;
        let mut addresses = Vec::new();
        for (field, value) in form_urlencoded::parse(query.as_bytes()) {
            match field.as_ref() {
                "v" => set_once(&mut version, "v", value.into_owned())?,
                "k" => {
                    let k = PublicKey::from_b64(&value)
                        .map_err(|reason| UriError::Invalid { field: "k", reason })?;
                    set_once(&mut key, "k", k)?;
                }
                "s" => {
                    let s = PairingSecret::from_b64(&value)
                        .map_err(|reason| UriError::Invalid { field: "s", reason })?;
                    set_once(&mut secret, "s", s)?;
                }
                "n" => {
                    crate::handshake::check_name(&value)
                        .map_err(|reason| UriError::Invalid { field: "n", reason })?;
                    set_once(&mut name, "n", value.into_owned())?;
                }
                "a" => {
                    if addresses.len() == MAX_ADDRESSES {
                        return Err(UriError::Invalid {
                            field: "a",
                            reason: format!("more than {MAX_ADDRESSES} addresses"),
                        });
                    }
                    let addr: SocketAddr = value.parse().map_err(|_| UriError::Invalid {
                        field: "a",
                        reason: format!("{value:?} is not IP:PORT or [IPv6]:PORT"),
                    })?;
                    if addr.port() == 0 {
                        return Err(UriError::Invalid {
                            field: "a",
                            reason: "port 0".into(),
                        });
                    }
                    if matches!(addr, SocketAddr::V6(v6) if v6.scope_id() != 0) {
                        return Err(UriError::Invalid {
                            field: "a",
                            reason: format!(
                                "{value:?} has a zone id, which means nothing on another device"
                            ),
                        });
                    }
                    addresses.push(addr);
                }
                _ => {} // Unknown parameters are ignored: the format can grow.
            }
        }
        match version.as_deref() {
            None => return Err(UriError::Missing("v")),
            Some("1") => {}
            Some(other) => return Err(UriError::Version(other.to_string())),
        }
        if addresses.is_empty() {
            return Err(UriError::Missing("a"));
        }
        Ok(Self {
            gateway_key: key.ok_or(UriError::Missing("k"))?,
            secret: secret.ok_or(UriError::Missing("s"))?,
            name: name.ok_or(UriError::Missing("n"))?,
            addresses,
        })
    }
}

fn set_once<T>(slot: &mut Option<T>, field: &'static str, value: T) -> Result<(), UriError> {
    if slot.is_some() {
        return Err(UriError::Duplicate(field));
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PairingUri {
        PairingUri {
            gateway_key: PublicKey([1u8; 32]),
            secret: PairingSecret([2u8; 32]),
            name: "Home & garden".into(),
            addresses: vec![
                "192.168.1.20:7447".parse().unwrap(),
                "[2001:db8::20]:7447".parse().unwrap(),
            ],
        }
    }

    #[test]
    fn round_trips() {
        let uri = sample();
        assert_eq!(PairingUri::parse(&uri.encode()).unwrap(), uri);
    }

    #[test]
    fn ignores_unknown_fields() {
        let text = format!("{}&future=1", sample().encode());
        assert_eq!(PairingUri::parse(&text).unwrap(), sample());
    }

    #[test]
    fn names_and_address_counts_at_the_limits() {
        let mut uri = sample();
        uri.name = "é".repeat(32); // 64 bytes
        uri.addresses = (1..=16)
            .map(|i| format!("10.0.0.{i}:7447").parse().unwrap())
            .collect();
        assert_eq!(PairingUri::parse(&uri.encode()).unwrap(), uri);
        uri.name.push('x');
        assert!(matches!(
            PairingUri::parse(&uri.encode()),
            Err(UriError::Invalid { field: "n", .. })
        ));
    }

    #[test]
    fn every_error_names_its_field() {
        let good = sample().encode();
        let k = PublicKey([1u8; 32]).to_b64();
        let s = PairingSecret([2u8; 32]).to_b64();
        let cases: Vec<(String, UriError)> = vec![
            ("https://example.com/?v=1".into(), UriError::Scheme),
            (good.replace("v=1&", ""), UriError::Missing("v")),
            (good.replace("v=1", "v=2"), UriError::Version("2".into())),
            (good.replace(&format!("k={k}&"), ""), UriError::Missing("k")),
            (good.replace(&format!("s={s}&"), ""), UriError::Missing("s")),
            (
                format!("latchkey://pair?v=1&k={k}&s={s}&n=x"),
                UriError::Missing("a"),
            ),
            (format!("{good}&v=1"), UriError::Duplicate("v")),
        ];
        for (text, want) in cases {
            assert_eq!(PairingUri::parse(&text).unwrap_err(), want, "{text}");
        }
        let invalid = [
            (good.replace(&k, "AAAA"), "k"),
            (good.replace(&s, "not*base64"), "s"),
            (format!("{good}&a=nowhere"), "a"),
            (format!("{good}&a=1.2.3.4:0"), "a"),
            (good.replace("n=Home", "n=%07Home"), "n"),
        ];
        for (text, field) in invalid {
            match PairingUri::parse(&text) {
                Err(UriError::Invalid { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
