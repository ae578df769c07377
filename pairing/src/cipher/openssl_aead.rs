//! ChaCha20-Poly1305 in place through the system's OpenSSL (libcrypto 3), for messages of
//! [`FROM_LEN`] bytes and more when the `openssl` feature is on (the gateway's Debian build).
//
// Why a second backend: OpenSSL has AVX-512 code for ChaCha20 and Poly1305 and ring has
// AVX2 only, so on x86-64 CPUs with AVX-512 OpenSSL seals a 64 KiB message about 1.45
// times as fast (3,380 against 2,330 MiB/s on the benchmark machine, BENCHMARKS.md round
// eight). The gateway seals every frame once per viewer, so that is the fan-out's cost.
// But OpenSSL costs about a microsecond more per message (a context, its key set-up), so
// ring stays faster below 4 KiB (at 2 KiB: 1,950 against 1,640 MiB/s): small messages
// (HTTP/2 headers, window updates, pings, rekey markers) stay with ring. The bytes are the
// same either way: the tests seal with one and open with the other.

use std::sync::OnceLock;

use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::CipherCtx;
use zeroize::Zeroize as _;

use super::{CIPHER_KEY_LEN, CipherError, NONCE_LEN, TAG_LEN};

/// Messages (plaintext, or ciphertext with its tag) of this many bytes or more go through
/// OpenSSL; shorter ones through ring, which is faster there.
pub(super) const FROM_LEN: usize = 4096;

/// The cipher, fetched from OpenSSL's default provider once: handing OpenSSL 3 the legacy
/// `EVP_chacha20_poly1305()` instead makes it fetch the implementation again, under a
/// lock, at every message (about 10 % of a 16 KiB seal).
fn cipher() -> &'static CipherRef {
    static FETCHED: OnceLock<Option<Cipher>> = OnceLock::new();
    match FETCHED.get_or_init(|| Cipher::fetch(None, "ChaCha20-Poly1305", None).ok()) {
        Some(fetched) => fetched,
        None => Cipher::chacha20_poly1305(),
    }
}

/// A context set up for one message. A new one per message: creating it costs about 3 %
/// of a 64 KiB seal, and freeing it wipes the key (EVP_CIPHER_CTX_free cleanses).
fn context(
    key: &[u8; CIPHER_KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    encrypt: bool,
) -> Result<CipherCtx, openssl::error::ErrorStack> {
    let mut ctx = CipherCtx::new()?;
    let cipher = cipher();
    if encrypt {
        ctx.encrypt_init(Some(cipher), Some(key), Some(nonce))?;
    } else {
        ctx.decrypt_init(Some(cipher), Some(key), Some(nonce))?;
    }
    Ok(ctx)
}

/// Encrypts `in_out` in place under `nonce`; returns the tag.
pub(super) fn seal(
    key: &[u8; CIPHER_KEY_LEN],
    nonce: [u8; NONCE_LEN],
    in_out: &mut [u8],
) -> Result<[u8; TAG_LEN], CipherError> {
    let len = in_out.len();
    let sealed = (|| {
        let mut ctx = context(key, &nonce, true)?;
        ctx.cipher_update_inplace(in_out, len)?;
        // ChaCha20 is a stream cipher: the final step writes no bytes, only the tag.
        ctx.cipher_final(&mut [])?;
        let mut tag = [0u8; TAG_LEN];
        ctx.tag(&mut tag)?;
        Ok::<_, openssl::error::ErrorStack>(tag)
    })();
    sealed.map_err(|_| CipherError::Exhausted)
}

/// Opens `in_out` (ciphertext, then the tag) in place; returns the plaintext's length.
/// On failure the buffer is zeroed: OpenSSL decrypts before it checks the tag, and the
/// unauthenticated plaintext must not be left for anyone to read by mistake.
pub(super) fn open(
    key: &[u8; CIPHER_KEY_LEN],
    nonce: [u8; NONCE_LEN],
    in_out: &mut [u8],
) -> Result<usize, CipherError> {
    let Some(len) = in_out.len().checked_sub(TAG_LEN) else {
        return Err(CipherError::Open);
    };
    let (text, tag) = in_out.split_at_mut(len);
    let opened = (|| {
        let mut ctx = context(key, &nonce, false)?;
        ctx.set_tag(tag)?;
        ctx.cipher_update_inplace(text, len)?;
        ctx.cipher_final(&mut [])
    })();
    match opened {
        Ok(_) => Ok(len),
        Err(_) => {
            in_out.zeroize();
            Err(CipherError::Open)
        }
    }
}
