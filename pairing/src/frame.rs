//! Framing: every message on the wire is a 2-byte big-endian length, then that many bytes.
//!
//! "Need more bytes" is a normal result (`Ok(None)`), not an error. A length above the
//! caller's limit is refused from the 2-byte header alone, before anything is buffered
//! for it, so a peer can never make the reader allocate what it announces.

use crate::error::{Error, PeerMisbehaved};

/// Length of the frame header.
pub const HEADER_LEN: usize = 2;
/// Largest frame body the wire format can carry (a Noise message's maximum).
pub const MAX_FRAME: usize = 65535;
/// Largest frame accepted before a peer is authenticated; handshake messages are small.
pub const MAX_HANDSHAKE_FRAME: usize = 1024;

/// A complete frame found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The frame body.
    pub body: &'a [u8],
    /// Bytes of the buffer it used, header included.
    pub consumed: usize,
}

/// Appends `body` as one frame to `out`.
pub fn encode(body: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let len = u16::try_from(body.len()).map_err(|_| Error::FrameTooLarge {
        len: body.len(),
        max: MAX_FRAME,
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// Reads the announced body length from a header, refusing it above `max`.
pub fn body_len(header: [u8; HEADER_LEN], max: usize) -> Result<usize, PeerMisbehaved> {
    let len = usize::from(u16::from_be_bytes(header));
    if len > max {
        return Err(PeerMisbehaved::FrameTooLarge { len, max });
    }
    Ok(len)
}

/// Looks for one complete frame at the start of `buf`.
pub fn decode(buf: &[u8], max: usize) -> Result<Option<Decoded<'_>>, PeerMisbehaved> {
    let Some(&[hi, lo]) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = body_len([hi, lo], max)?;
    let end = HEADER_LEN + len;
    Ok(buf.get(HEADER_LEN..end).map(|body| Decoded {
        body,
        consumed: end,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_input_needs_more_bytes() {
        let mut wire = Vec::new();
        encode(b"hello", &mut wire).unwrap();
        for cut in 0..wire.len() {
            assert_eq!(decode(&wire[..cut], MAX_FRAME), Ok(None), "cut at {cut}");
        }
        let got = decode(&wire, MAX_FRAME).unwrap().unwrap();
        assert_eq!((got.body, got.consumed), (&b"hello"[..], 7));
    }

    #[test]
    fn oversized_announcements_fail_from_the_header() {
        assert_eq!(
            decode(&[0x04, 0x01], MAX_HANDSHAKE_FRAME),
            Err(PeerMisbehaved::FrameTooLarge {
                len: 1025,
                max: 1024
            })
        );
        assert!(decode(&[0xff, 0xff], MAX_FRAME).unwrap().is_none());
    }

    #[test]
    fn encode_refuses_bodies_over_the_wire_limit() {
        let mut out = Vec::new();
        assert!(encode(&vec![0u8; MAX_FRAME], &mut out).is_ok());
        assert!(matches!(
            encode(&vec![0u8; MAX_FRAME + 1], &mut out),
            Err(Error::FrameTooLarge { len: 65536, .. })
        ));
    }
}
