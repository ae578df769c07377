//! Noise's transport `CipherState` (spec §5.1): ChaCha20-Poly1305 in place, over ring or
//! (feature `openssl`) the system's OpenSSL.
//
// Hand-written rather than snow's `TransportState`, for speed only: snow's `read_message`
// copies the ciphertext into its output buffer and opens it there, so every byte received
// costs one extra pass over memory, on the gateway and on the phone. Here a message is
// opened where it was read, and sealed where it will be written from (the plaintext is
// copied in once, as snow does too). The bytes are those of snow's ChaChaPoly cipher:
// nonce = 4 zero bytes and the 64-bit counter little-endian, empty associated data, the
// 16-byte tag after the ciphertext; `rekey` is Noise §4.2's REKEY (the first 32 bytes of
// ENCRYPT(k, 2^64 - 1, empty, 32 zero bytes)). The golden vectors (tests/vectors.rs)
// check both against the bytes snow produced, whichever backend is built.

#[cfg(feature = "openssl")]
mod openssl_aead;
mod ring_aead;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes of a ChaCha20-Poly1305 nonce.
const NONCE_LEN: usize = 12;

/// The backend for a message of `len` bytes: ring, or OpenSSL for long messages when the
/// `openssl` feature is on (`cipher/openssl_aead.rs` says why).
mod aead {
    use super::{CIPHER_KEY_LEN, CipherError, NONCE_LEN, TAG_LEN, ring_aead};

    /// Encrypts `in_out` in place under `nonce`; returns the tag.
    pub(super) fn seal(
        key: &[u8; CIPHER_KEY_LEN],
        nonce: [u8; NONCE_LEN],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CipherError> {
        #[cfg(feature = "openssl")]
        if in_out.len() >= super::openssl_aead::FROM_LEN {
            return super::openssl_aead::seal(key, nonce, in_out);
        }
        ring_aead::seal(key, nonce, in_out)
    }

    /// Opens `in_out` (ciphertext, then the tag) in place; returns the plaintext's length.
    pub(super) fn open(
        key: &[u8; CIPHER_KEY_LEN],
        nonce: [u8; NONCE_LEN],
        in_out: &mut [u8],
    ) -> Result<usize, CipherError> {
        #[cfg(feature = "openssl")]
        if in_out.len() >= super::openssl_aead::FROM_LEN {
            return super::openssl_aead::open(key, nonce, in_out);
        }
        ring_aead::open(key, nonce, in_out)
    }
}

/// Which library seals and opens session messages in this build, for logs and benchmarks.
pub const BACKEND: &str = if cfg!(feature = "openssl") {
    "ring below 4096 bytes, the system's OpenSSL from 4096 bytes (feature openssl)"
} else {
    "ring (default build)"
};

/// Bytes of a ChaCha20-Poly1305 key.
pub(crate) const CIPHER_KEY_LEN: usize = 32;
/// Bytes of the authentication tag after each ciphertext.
pub(crate) const TAG_LEN: usize = 16;

/// Why a cipher operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CipherError {
    /// The tag did not verify (or the message is shorter than a tag).
    Open,
    /// 2^64 - 1 messages were sent under this state (Noise reserves the last nonce), or
    /// the backend refused the key or failed.
    Exhausted,
}

/// One direction's key and message counter. The key zeroes itself when dropped and never
/// prints; the backend's key is built from it for each message and not kept.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct CipherState {
    key: [u8; CIPHER_KEY_LEN],
    n: u64,
}

impl std::fmt::Debug for CipherState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CipherState")
            .field("key", &"<redacted>")
            .field("n", &self.n)
            .finish()
    }
}

impl CipherState {
    /// A state with key `key` and nonce 0; `key` is zeroed (the state holds the only copy).
    pub(crate) fn new(key: &mut [u8; CIPHER_KEY_LEN]) -> Self {
        let state = Self { key: *key, n: 0 };
        key.zeroize();
        state
    }

    /// The nonce the next message uses.
    pub(crate) fn nonce(&self) -> u64 {
        self.n
    }

    /// Takes the next nonce, refusing the reserved last one.
    fn next_nonce(&mut self) -> Result<[u8; NONCE_LEN], CipherError> {
        if self.n == u64::MAX {
            return Err(CipherError::Exhausted);
        }
        let nonce = nonce_bytes(self.n);
        self.n += 1;
        Ok(nonce)
    }

    /// Encrypts `in_out` in place and returns the tag to append.
    pub(crate) fn seal_in_place(
        &mut self,
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CipherError> {
        let nonce = self.next_nonce()?;
        aead::seal(&self.key, nonce, in_out)
    }

    /// Opens `in_out` (ciphertext then tag) in place; returns the plaintext's length,
    /// which is then at the front of `in_out`. On failure the nonce does not advance.
    pub(crate) fn open_in_place(&mut self, in_out: &mut [u8]) -> Result<usize, CipherError> {
        if in_out.len() < TAG_LEN {
            return Err(CipherError::Open);
        }
        if self.n == u64::MAX {
            return Err(CipherError::Exhausted);
        }
        let len = aead::open(&self.key, nonce_bytes(self.n), in_out)?;
        self.n += 1;
        Ok(len)
    }

    /// Noise §4.2 REKEY: the key becomes the first 32 bytes of ENCRYPT(k, 2^64 - 1,
    /// empty, 32 zero bytes). The nonce counter is unchanged (§11.3).
    pub(crate) fn rekey(&mut self) -> Result<(), CipherError> {
        let mut next = [0u8; CIPHER_KEY_LEN];
        let sealed = aead::seal(&self.key, nonce_bytes(u64::MAX), &mut next);
        if sealed.is_ok() {
            self.key.copy_from_slice(&next);
        }
        next.zeroize();
        sealed.map(|_| ()).map_err(|_| CipherError::Exhausted)
    }
}

/// Noise's ChaChaPoly nonce: 32 bits of zeros, then the counter little-endian.
fn nonce_bytes(n: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    for (slot, byte) in nonce.iter_mut().skip(4).zip(n.to_le_bytes()) {
        *slot = byte;
    }
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_four_zero_bytes_then_the_counter_little_endian() {
        assert_eq!(
            nonce_bytes(0x0102_0304_0506_0708),
            [0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]
        );
        assert_eq!(nonce_bytes(0), [0u8; 12]);
    }

    #[test]
    fn seal_then_open_round_trips_and_counts() {
        let mut a = CipherState::new(&mut [9u8; 32]);
        let mut b = CipherState::new(&mut [9u8; 32]);
        for round in 0..3u64 {
            let mut msg = b"attack at dawn".to_vec();
            let tag = a.seal_in_place(&mut msg).unwrap();
            msg.extend_from_slice(&tag);
            let n = b.open_in_place(&mut msg).unwrap();
            assert_eq!(&msg[..n], b"attack at dawn");
            assert_eq!((a.nonce(), b.nonce()), (round + 1, round + 1));
        }
        // A tampered message fails and does not advance the nonce.
        let mut msg = vec![0u8; 20];
        let tag = a.seal_in_place(&mut msg).unwrap();
        msg.extend_from_slice(&tag);
        msg[3] ^= 1;
        assert_eq!(b.open_in_place(&mut msg), Err(CipherError::Open));
        assert_eq!(b.nonce(), 3);
        assert_eq!(b.open_in_place(&mut [0u8; 15]), Err(CipherError::Open));
    }

    #[test]
    fn rekey_is_noise_rekey_and_keeps_the_nonce() {
        let mut a = CipherState::new(&mut [1u8; 32]);
        let mut msg = Vec::new();
        let _ = a.seal_in_place(&mut msg).unwrap();
        // REKEY(k) by hand, with ring: encrypt 32 zero bytes under nonce 2^64 - 1.
        let mut expected = [0u8; 32];
        let _tag = ring_aead::seal(
            &[1u8; 32],
            [0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255],
            &mut expected,
        )
        .unwrap();
        a.rekey().unwrap();
        assert_eq!(a.key, expected);
        assert_eq!(a.nonce(), 1);
    }

    #[test]
    fn the_last_nonce_is_never_used() {
        let mut a = CipherState::new(&mut [1u8; 32]);
        a.n = u64::MAX - 1;
        assert!(a.seal_in_place(&mut [0u8; 4]).is_ok());
        assert_eq!(a.seal_in_place(&mut [0u8; 4]), Err(CipherError::Exhausted));
        assert_eq!(a.open_in_place(&mut [0u8; 16]), Err(CipherError::Exhausted));
    }

    /// The same bytes as snow's own ChaChaPoly (what the session used before), message
    /// by message, across two rekeys; short and long messages (with the `openssl`
    /// feature, the long ones are OpenSSL's).
    #[test]
    fn same_bytes_as_snows_chachapoly_across_rekeys() {
        use snow::params::CipherChoice;
        use snow::resolvers::{CryptoResolver, RingResolver};
        let mut theirs = RingResolver
            .resolve_cipher(&CipherChoice::ChaChaPoly)
            .unwrap();
        let key = [0x5cu8; 32];
        theirs.set(&key);
        let mut ours = CipherState::new(&mut key.clone());
        for n in 0..9u64 {
            if n % 4 == 3 {
                theirs.rekey();
                ours.rekey().unwrap();
            }
            let len = if n % 2 == 1 {
                4096 + n as usize * 999
            } else {
                n as usize * 37
            };
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut expected = vec![0u8; plain.len() + TAG_LEN];
            let len = theirs.encrypt(n, &[], &plain, &mut expected);
            assert_eq!(len, expected.len());
            let mut got = plain.clone();
            let tag = ours.seal_in_place(&mut got).unwrap();
            got.extend_from_slice(&tag);
            assert_eq!(got, expected, "message {n}");
        }
    }

    /// The OpenSSL backend against ring's, both ways, at every size class the channel
    /// uses (empty rekey markers to full 65,519-byte messages), and a tampered tag.
    /// The backend named in logs and benchmarks is the one built, with the real threshold.
    #[test]
    fn backend_names_the_build() {
        #[cfg(feature = "openssl")]
        assert!(BACKEND.contains(&format!("from {} bytes", openssl_aead::FROM_LEN)));
        #[cfg(not(feature = "openssl"))]
        assert!(!BACKEND.contains("OpenSSL"));
    }

    #[cfg(feature = "openssl")]
    #[test]
    fn openssl_and_ring_seal_the_same_bytes_and_open_each_other() {
        let key = [0x3au8; CIPHER_KEY_LEN];
        for (i, len) in [0usize, 1, 15, 16, 17, 63, 64, 65, 1000, 16_384, 65_519]
            .into_iter()
            .enumerate()
        {
            let nonce = nonce_bytes(i as u64 * 0x0101_0101);
            let plain: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
            let mut by_ring = plain.clone();
            let ring_tag = ring_aead::seal(&key, nonce, &mut by_ring).unwrap();
            let mut by_openssl = plain.clone();
            let openssl_tag = openssl_aead::seal(&key, nonce, &mut by_openssl).unwrap();
            assert_eq!(
                (&by_ring, ring_tag),
                (&by_openssl, openssl_tag),
                "{len} bytes"
            );
            by_ring.extend_from_slice(&ring_tag);
            let mut both = by_ring.clone();
            assert_eq!(openssl_aead::open(&key, nonce, &mut by_ring), Ok(len));
            assert_eq!(&by_ring[..len], &plain[..]);
            assert_eq!(ring_aead::open(&key, nonce, &mut both), Ok(len));
            let mut tampered = by_openssl.clone();
            tampered.extend_from_slice(&openssl_tag);
            let last = tampered.len() - 1;
            tampered[last] ^= 0x80;
            assert_eq!(
                openssl_aead::open(&key, nonce, &mut tampered),
                Err(CipherError::Open)
            );
            assert!(
                tampered.iter().all(|&b| b == 0),
                "a failed open leaves nothing readable"
            );
            assert_eq!(
                openssl_aead::open(&key, nonce, &mut [0u8; 15]),
                Err(CipherError::Open)
            );
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let a = CipherState::new(&mut [0xabu8; 32]);
        let shown = format!("{a:?}");
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab, "));
        assert!(shown.contains("redacted"));
    }
}
