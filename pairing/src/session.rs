//! An established session: sealing and opening transport messages, and key rotation.
//!
//! Each direction rotates its own key on a schedule (`rekey_after`, by time or message
//! count). The sender announces a rotation with a transport message whose plaintext is
//! empty, then calls Noise `Rekey()` on its sending key; the receiver does the same on
//! its receiving key when it opens that marker. Messages under a rotated-away key no
//! longer decrypt, and a peer that keeps a key longer than `reject_after` is refused.
//! Rotation is in-band and needs no round trip, so a live stream does not stutter.

use std::time::Duration;

use crate::cipher::{self, CipherState};
use crate::error::{Error, PeerMisbehaved};
use crate::frame::{self, HEADER_LEN, MAX_FRAME};

mod boundary;
pub use boundary::BOUNDARY_LEN;

/// Authentication tag appended to each transport message.
pub const TAG_LEN: usize = cipher::TAG_LEN;
/// Most plaintext bytes one transport message carries.
pub const MAX_PLAINTEXT: usize = MAX_FRAME - TAG_LEN;

/// When keys rotate. WireGuard's numbers: rekey after 120 s, refuse after 180 s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RekeyPolicy {
    /// The sender rotates before sending once its key is this old.
    pub rekey_after: Duration,
    /// The receiver refuses data under a key older than this (its own clock).
    pub reject_after: Duration,
    /// The sender also rotates after this many messages under one key.
    pub rekey_after_messages: u64,
}

impl Default for RekeyPolicy {
    fn default() -> Self {
        Self::with_interval(120)
    }
}

impl RekeyPolicy {
    /// A policy rotating every `secs` seconds (at least 1), refusing after 1.5 times that.
    pub fn with_interval(secs: u64) -> Self {
        let secs = secs.clamp(1, 24 * 3600);
        Self {
            rekey_after: Duration::from_secs(secs),
            reject_after: Duration::from_secs(secs.saturating_mul(3) / 2 + 1),
            rekey_after_messages: 1 << 24,
        }
    }
}

/// What [`Session::open`] found in a transport message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// This many plaintext bytes were appended to the output.
    Data(usize),
    /// The peer rotated its key; nothing was appended.
    Rekeyed,
}

/// A Noise transport session with the rotation schedule. `now` is any monotonic clock
/// the caller chooses, as a duration since its own origin.
#[derive(Debug)]
pub struct Session {
    send: CipherState,
    recv: CipherState,
    policy: RekeyPolicy,
    send_key_since: Duration,
    send_key_messages: u64,
    recv_key_since: Duration,
    failed: bool,
}

impl Session {
    /// A session over the two keys of the handshake's Split(), this side's sending key
    /// first; both are zeroed here (the session holds the only copies).
    pub(crate) fn new(
        send: &mut [u8; cipher::CIPHER_KEY_LEN],
        recv: &mut [u8; cipher::CIPHER_KEY_LEN],
        now: Duration,
        policy: RekeyPolicy,
    ) -> Self {
        Self {
            send: CipherState::new(send),
            recv: CipherState::new(recv),
            policy,
            send_key_since: now,
            send_key_messages: 0,
            recv_key_since: now,
            failed: false,
        }
    }

    /// The rotation policy in force.
    pub fn policy(&self) -> RekeyPolicy {
        self.policy
    }

    /// The nonce the next sealed message uses. It counts every message sent in this
    /// direction, rekey markers included; `Rekey()` does not reset it (Noise §11.3).
    pub fn sending_nonce(&self) -> u64 {
        self.send.nonce()
    }

    /// Encrypts `data` (any length; empty sends nothing) into framed transport messages
    /// appended to `out`, rotating the sending key first if it is due.
    pub fn seal(&mut self, now: Duration, data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        if self.failed {
            return Err(Error::SessionClosed);
        }
        for chunk in data.chunks(MAX_PLAINTEXT) {
            if self.send_key_due(now) {
                self.write_one(&[], out)?;
                self.rekey_send(now)?;
            }
            self.write_one(chunk, out)?;
            self.send_key_messages += 1;
        }
        Ok(())
    }

    fn send_key_due(&self, now: Duration) -> bool {
        now.saturating_sub(self.send_key_since) >= self.policy.rekey_after
            || self.send_key_messages >= self.policy.rekey_after_messages
    }

    /// Noise `Rekey()` of the sending key, after its marker was sealed.
    fn rekey_send(&mut self, now: Duration) -> Result<(), Error> {
        if self.send.rekey().is_err() {
            self.failed = true;
            return Err(Error::SessionClosed);
        }
        self.send_key_since = now;
        self.send_key_messages = 0;
        Ok(())
    }

    fn write_one(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        out.resize(start + HEADER_LEN + plain.len() + TAG_LEN, 0);
        let written = match out.get_mut(start..) {
            Some(frame) => self.write_one_into(plain, frame),
            None => Err(Error::SessionClosed),
        };
        if written.is_err() {
            out.truncate(start);
        }
        written.map(|_| ())
    }

    /// Seals one framed message into the front of `out`; returns its length.
    fn write_one_into(&mut self, plain: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let len = plain.len() + TAG_LEN;
        let header = u16::try_from(len).map_err(|_| Error::FrameTooLarge {
            len,
            max: MAX_FRAME,
        })?;
        // The plaintext is copied once, to where it is sealed in place, the tag after it.
        let written = match out.split_at_mut_checked(HEADER_LEN) {
            Some((head, body)) => match body.get_mut(..len).map(|b| b.split_at_mut(plain.len())) {
                Some((text, tag)) => {
                    head.copy_from_slice(&header.to_be_bytes());
                    text.copy_from_slice(plain);
                    self.send
                        .seal_in_place(text)
                        .map(|sealed| {
                            tag.copy_from_slice(&sealed);
                            len
                        })
                        .map_err(|_| Error::SessionClosed)
                }
                None => Err(Error::SessionClosed),
            },
            None => Err(Error::SessionClosed),
        };
        if written.is_err() {
            self.failed = true;
        }
        written.map(|n| n + HEADER_LEN)
    }

    /// Like [`Session::seal`], into the front of `out`, which must hold at least
    /// [`sealed_len_max`]`(data.len())` bytes (already initialised memory, so a caller
    /// reusing its buffer never zeroes it again). Returns the bytes written.
    pub fn seal_into(
        &mut self,
        now: Duration,
        data: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        if self.failed {
            return Err(Error::SessionClosed);
        }
        let mut used = 0;
        for chunk in data.chunks(MAX_PLAINTEXT) {
            if self.send_key_due(now) {
                used += self.write_one_into(&[], out.get_mut(used..).unwrap_or_default())?;
                self.rekey_send(now)?;
            }
            used += self.write_one_into(chunk, out.get_mut(used..).unwrap_or_default())?;
            self.send_key_messages += 1;
        }
        Ok(used)
    }

    /// Decrypts one frame body, appending its plaintext to `out`. Any failure is fatal:
    /// the session refuses everything afterwards.
    pub fn open(&mut self, now: Duration, body: &[u8], out: &mut Vec<u8>) -> Result<Opened, Error> {
        if self.failed {
            return Err(Error::SessionClosed);
        }
        let result = self.open_inner(now, body, out);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn open_inner(
        &mut self,
        now: Duration,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Opened, Error> {
        let start = out.len();
        out.extend_from_slice(body);
        let opened = match out.get_mut(start..) {
            Some(buf) => self.open_in_place_inner(now, buf),
            None => Err(PeerMisbehaved::BadCiphertext.into()),
        };
        let len = match opened {
            Ok(Opened::Data(len)) => len,
            _ => 0,
        };
        out.truncate(start + len);
        opened
    }

    /// Opens one frame body where it lies: `body` holds the ciphertext and tag, and on
    /// `Data(n)` its first `n` bytes are the plaintext. Nothing is copied. Any failure is
    /// fatal: the session refuses everything afterwards.
    pub fn open_in_place(&mut self, now: Duration, body: &mut [u8]) -> Result<Opened, Error> {
        if self.failed {
            return Err(Error::SessionClosed);
        }
        let result = self.open_in_place_inner(now, body);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn open_in_place_inner(&mut self, now: Duration, body: &mut [u8]) -> Result<Opened, Error> {
        if body.len() > MAX_FRAME {
            return Err(PeerMisbehaved::BadCiphertext.into());
        }
        let len = self
            .recv
            .open_in_place(body)
            .map_err(|_| Error::from(PeerMisbehaved::BadCiphertext))?;
        if len == 0 {
            // An empty message is the peer's rekey marker (PROTOCOL.md §8).
            self.recv
                .rekey()
                .map_err(|_| Error::from(PeerMisbehaved::BadCiphertext))?;
            self.recv_key_since = now;
            return Ok(Opened::Rekeyed);
        }
        if now.saturating_sub(self.recv_key_since) > self.policy.reject_after {
            return Err(PeerMisbehaved::StaleKey.into());
        }
        Ok(Opened::Data(len))
    }
}

/// Most bytes [`Session::seal_into`] writes for `len` plaintext bytes: each message's
/// header and tag, and one key-rotation marker.
pub const fn sealed_len_max(len: usize) -> usize {
    let messages = if len == 0 {
        0
    } else {
        len.div_ceil(MAX_PLAINTEXT)
    };
    len + (messages + 1) * (HEADER_LEN + TAG_LEN)
}

/// Splits complete frames off the front of `buf` and opens each, appending plaintext to
/// `out`. Returns how many bytes of `buf` were used; a partial frame is left for later.
pub fn open_frames(
    session: &mut Session,
    now: Duration,
    buf: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, Error> {
    let mut used = 0;
    while let Some(frame) = frame::decode(buf.get(used..).unwrap_or_default(), MAX_FRAME)? {
        session.open(now, frame.body, out)?;
        used += frame.consumed;
    }
    Ok(used)
}
