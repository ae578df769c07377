//! Key types: static X25519 keys, pairing secrets, per-device session PSKs, fingerprints.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;

/// Length of every key and secret in the protocol.
pub const KEY_LEN: usize = 32;

/// Encodes bytes as unpadded base64url, the protocol's text form for keys.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes exactly 32 bytes of unpadded base64url.
pub fn b64_key(text: &str) -> Result<[u8; KEY_LEN], String> {
    let raw = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| format!("not unpadded base64url: {e}"))?;
    <[u8; KEY_LEN]>::try_from(raw.as_slice())
        .map_err(|_| format!("expected {KEY_LEN} bytes, got {}", raw.len()))
}

/// An X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Builds a key from a slice, if it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; KEY_LEN]>::try_from(bytes).ok().map(Self)
    }

    /// Parses the unpadded base64url text form.
    pub fn from_b64(text: &str) -> Result<Self, String> {
        b64_key(text).map(Self)
    }

    /// The unpadded base64url text form.
    pub fn to_b64(&self) -> String {
        b64(&self.0)
    }

    /// A short, stable identifier for humans and logs: the first 8 bytes of
    /// SHA-256("latchkey fingerprint v1" || key), as 16 lowercase hex digits.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"latchkey fingerprint v1")
            .chain_update(self.0)
            .finalize();
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The device id of the phone holding this key (see [`DeviceId`]).
    pub fn device_id(&self) -> DeviceId {
        DeviceId(self.fingerprint())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_b64())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_b64())
    }
}

/// A static X25519 key pair. The secret half is wiped from memory on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Keypair {
    secret: [u8; KEY_LEN],
    #[zeroize(skip)]
    public: PublicKey,
}

impl Keypair {
    /// Generates a new key pair from the caller's RNG.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Result<Self, Error> {
        let mut secret = [0u8; KEY_LEN];
        rng.try_fill_bytes(&mut secret).map_err(Error::Entropy)?;
        Ok(Self::from_secret(secret))
    }

    /// Rebuilds a key pair from its stored secret half.
    pub fn from_secret(secret: [u8; KEY_LEN]) -> Self {
        let public = PublicKey(crate::noise::x25519_public(&secret));
        Self { secret, public }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The secret half, for storage (keep it in a file or row only its owner can read).
    pub fn secret_bytes(&self) -> &[u8; KEY_LEN] {
        &self.secret
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
        pub struct $name(pub [u8; KEY_LEN]);

        impl $name {
            /// Draws a fresh value from the caller's RNG.
            pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Result<Self, Error> {
                let mut bytes = [0u8; KEY_LEN];
                rng.try_fill_bytes(&mut bytes).map_err(Error::Entropy)?;
                Ok(Self(bytes))
            }

            /// Parses the unpadded base64url text form.
            pub fn from_b64(text: &str) -> Result<Self, String> {
                b64_key(text).map(Self)
            }

            /// The unpadded base64url text form.
            pub fn to_b64(&self) -> String {
                b64(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

secret_type!(
    /// The one-time secret in a pairing QR code; the PSK of the pairing handshake.
    PairingSecret
);
secret_type!(
    /// The per-device PSK the gateway hands a phone at pairing; the PSK of its sessions.
    SessionPsk
);

pub use crate::device_id::DeviceId;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64_key_rejects_wrong_lengths_and_alphabets() {
        assert!(b64_key(&b64(&[1u8; 32])).is_ok());
        assert!(b64_key(&b64(&[1u8; 31])).unwrap_err().contains("got 31"));
        assert!(b64_key("a+b/").is_err());
        assert!(b64_key(&format!("{}=", b64(&[1u8; 32]))).is_err());
    }

    #[test]
    fn fingerprint_is_stable_and_short() {
        let key = PublicKey([7u8; 32]);
        assert_eq!(key.fingerprint().len(), 16);
        assert_eq!(key.fingerprint(), key.device_id().0);
        assert_ne!(key.fingerprint(), PublicKey([8u8; 32]).fingerprint());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = PairingSecret([9u8; 32]);
        assert_eq!(format!("{s:?}"), "PairingSecret(..)");
    }
}
