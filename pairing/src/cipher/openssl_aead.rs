//! ChaCha20-Poly1305 in place through the system's OpenSSL (libcrypto 3): the backend of
//! the `openssl` feature, which the gateway's Debian build turns on.
//
// Why a second backend: OpenSSL has AVX-512 code for ChaCha20 and Poly1305 and ring has
// AVX2 only, so on x86-64 CPUs with AVX-512 OpenSSL seals about 1.5 times as fast (3,240
// against 2,170 MiB/s for 64 KiB messages on the benchmark machine, BENCHMARKS.md round
// eight). The gateway seals every frame once per viewer, so that is the fan-out's cost.
// The bytes are the same as ring's: the tests seal with one and open with the other.

use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use zeroize::Zeroize as _;

use super::{CIPHER_KEY_LEN, CipherError, NONCE_LEN, TAG_LEN};

/// A context set up for one message. A new one per message: creating it costs about 2 %
/// of a 64 KiB seal, and freeing it wipes the key (EVP_CIPHER_CTX_free cleanses).
fn context(
    key: &[u8; CIPHER_KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    encrypt: bool,
) -> Result<CipherCtx, openssl::error::ErrorStack> {
    let mut ctx = CipherCtx::new()?;
    let cipher = Cipher::chacha20_poly1305();
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
