//! ChaCha20-Poly1305 in place through ring: the default backend, and the phones' (ring
//! builds for iOS and Android with no system library).

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

use super::{CIPHER_KEY_LEN, CipherError, NONCE_LEN, TAG_LEN};

/// ring's key (it refuses only a key of the wrong length, which a 32-byte array is not:
/// treated as a closed session). Built per message: ChaCha20 has no key schedule worth
/// keeping, and ring's keys cannot be zeroed.
fn key(key: &[u8; CIPHER_KEY_LEN]) -> Result<LessSafeKey, CipherError> {
    UnboundKey::new(&CHACHA20_POLY1305, key)
        .map(LessSafeKey::new)
        .map_err(|_| CipherError::Exhausted)
}

/// Encrypts `in_out` in place under `nonce`; returns the tag.
pub(super) fn seal(
    k: &[u8; CIPHER_KEY_LEN],
    nonce: [u8; NONCE_LEN],
    in_out: &mut [u8],
) -> Result<[u8; TAG_LEN], CipherError> {
    let tag = key(k)?
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), in_out)
        .map_err(|_| CipherError::Exhausted)?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens `in_out` (ciphertext, then the tag) in place; returns the plaintext's length.
pub(super) fn open(
    k: &[u8; CIPHER_KEY_LEN],
    nonce: [u8; NONCE_LEN],
    in_out: &mut [u8],
) -> Result<usize, CipherError> {
    key(k)?
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), in_out)
        .map(|plain| plain.len())
        .map_err(|_| CipherError::Open)
}
