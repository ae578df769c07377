//! The short authentication code both sides show after pairing, from the handshake hash.

use std::fmt;

use sha2::{Digest, Sha256};

/// Six decimal digits that the owner compares on the phone and on the gateway. A man
/// in the middle has a different handshake hash on each side, so the codes differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShortCode(pub String);

impl ShortCode {
    /// Derives the code: SHA-256("latchkey sas v1" || handshake_hash), first 4 bytes as a
    /// big-endian u32, modulo 1,000,000, zero-padded to 6 digits.
    pub fn from_handshake_hash(handshake_hash: &[u8]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"latchkey sas v1")
            .chain_update(handshake_hash)
            .finalize();
        let mut first = [0u8; 4];
        for (dst, src) in first.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
        Self(format!("{:06}", u32::from_be_bytes(first) % 1_000_000))
    }
}

impl fmt::Display for ShortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_digits_and_hash_dependent() {
        let a = ShortCode::from_handshake_hash(&[0u8; 32]);
        let b = ShortCode::from_handshake_hash(&[1u8; 32]);
        assert_eq!(a.0.len(), 6);
        assert!(a.0.chars().all(|c| c.is_ascii_digit()));
        assert_ne!(a, b);
    }
}
