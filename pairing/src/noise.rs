//! The bridge to `snow`: caller-supplied entropy and X25519 with the all-zero check.
//!
//! `snow` normally draws ephemeral keys from the OS. This crate must not touch OS
//! randomness (it is sans-IO and tested on a seeded RNG), so each handshake gets a
//! resolver that serves bytes the caller drew beforehand from its own RNG. Primitives
//! come from `ring` where it has them (ChaChaPoly) and from snow's default resolver
//! otherwise (X25519, BLAKE2s), which measured fastest here (DESIGN.md §8).

use rand_core::{CryptoRng, RngCore};
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver, RingResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use zeroize::Zeroize;

use crate::Error;
use crate::keys::KEY_LEN;

/// Entropy one handshake may consume: one ephemeral key, with room to spare.
const HANDSHAKE_ENTROPY: usize = 64;

/// Serves pre-drawn bytes; fails (and so fails the handshake) once they run out.
struct FixedEntropy {
    bytes: Vec<u8>,
}

impl Random for FixedEntropy {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        if dest.len() > self.bytes.len() {
            return Err(snow::Error::Rng);
        }
        let rest = self.bytes.split_off(dest.len());
        dest.copy_from_slice(&self.bytes);
        self.bytes.zeroize();
        self.bytes = rest;
        Ok(())
    }
}

impl Drop for FixedEntropy {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// X25519 that refuses an all-zero shared secret, i.e. a low-order or all-zero peer
/// key (RFC 7748 §6.1). snow's default X25519 does not check, and a zero output would
/// let a peer who sent a low-order ephemeral key predict the handshake keys.
struct CheckedDh(Box<dyn Dh>);

impl Dh for CheckedDh {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn pub_len(&self) -> usize {
        self.0.pub_len()
    }
    fn priv_len(&self) -> usize {
        self.0.priv_len()
    }
    fn set(&mut self, privkey: &[u8]) {
        self.0.set(privkey);
    }
    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        self.0.generate(rng)
    }
    fn pubkey(&self) -> &[u8] {
        self.0.pubkey()
    }
    fn privkey(&self) -> &[u8] {
        self.0.privkey()
    }
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        if pubkey.len() < KEY_LEN {
            return Err(snow::Error::Dh);
        }
        self.0.dh(pubkey, out)?;
        let len = self.dh_len().min(out.len());
        match out.get(..len) {
            Some(secret) if secret.iter().any(|b| *b != 0) => Ok(()),
            _ => Err(snow::Error::Dh),
        }
    }
    fn dh_len(&self) -> usize {
        self.0.dh_len()
    }
}

struct Resolver {
    entropy: std::sync::Mutex<Option<FixedEntropy>>,
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        let mut slot = self.entropy.lock().ok()?;
        slot.take().map(|e| Box::new(e) as Box<dyn Random>)
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver
            .resolve_dh(choice)
            .map(|dh| Box::new(CheckedDh(dh)) as Box<dyn Dh>)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        RingResolver
            .resolve_hash(choice)
            .or_else(|| DefaultResolver.resolve_hash(choice))
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        RingResolver
            .resolve_cipher(choice)
            .or_else(|| DefaultResolver.resolve_cipher(choice))
    }
}

/// A snow builder whose randomness comes from `rng`.
pub(crate) fn builder<'a, R: RngCore + CryptoRng>(
    pattern: &'static str,
    rng: &mut R,
) -> Result<snow::Builder<'a>, Error> {
    let params: NoiseParams = pattern.parse().map_err(|source| Error::Noise {
        op: "parsing pattern",
        source,
    })?;
    let mut bytes = vec![0u8; HANDSHAKE_ENTROPY];
    rng.try_fill_bytes(&mut bytes).map_err(Error::Entropy)?;
    let resolver = Resolver {
        entropy: std::sync::Mutex::new(Some(FixedEntropy { bytes })),
    };
    Ok(snow::Builder::with_resolver(params, Box::new(resolver)))
}

/// X25519 public key of a secret (the base-point multiplication).
pub(crate) fn x25519_public(secret: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    if let Some(mut dh) = DefaultResolver.resolve_dh(&DHChoice::Curve25519) {
        dh.set(secret);
        if let Some(public) = dh.pubkey().get(..KEY_LEN) {
            out.copy_from_slice(public);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x25519_matches_rfc7748_vector() {
        // RFC 7748 §6.1, Alice's key pair.
        let secret: [u8; 32] =
            hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let public = hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(x25519_public(&secret), public);
    }

    #[test]
    fn checked_dh_refuses_low_order_points() {
        let dh = Resolver {
            entropy: std::sync::Mutex::new(None),
        }
        .resolve_dh(&DHChoice::Curve25519)
        .unwrap();
        let mut dh = dh;
        dh.set(&[5u8; 32]);
        let mut out = [0u8; 32];
        // The all-zero point and the point of order 8 from libsodium's blocklist.
        assert!(dh.dh(&[0u8; 32], &mut out).is_err());
        let order8 = hex32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
        assert!(dh.dh(&order8, &mut out).is_err());
        assert!(dh.dh(&x25519_public(&[6u8; 32]), &mut out).is_ok());
    }

    pub(crate) fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
