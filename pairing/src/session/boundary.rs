//! The hibernation boundary (PROTOCOL.md §8.1): two rekey markers in a row.
//!
//! A rekey marker (an empty message) is only ever sent right before data, so two markers
//! with no data between them cannot occur in ordinary traffic: they mark the end of one
//! HTTP/2 connection inside the session. Each marker still rotates the key, so a peer that
//! does not know boundaries just rotates twice and reads on.

use std::time::Duration;

use super::{Session, TAG_LEN};
use crate::error::Error;
use crate::frame::HEADER_LEN;

/// Bytes a boundary takes on the wire: two empty messages.
pub const BOUNDARY_LEN: usize = 2 * (HEADER_LEN + TAG_LEN);

impl Session {
    /// Seals a boundary (two rekey markers, each rotating the sending key) into the front
    /// of `out`, which must hold [`BOUNDARY_LEN`] bytes; returns the bytes written.
    pub fn seal_boundary_into(&mut self, now: Duration, out: &mut [u8]) -> Result<usize, Error> {
        if self.failed {
            return Err(Error::SessionClosed);
        }
        let mut used = 0;
        for _ in 0..2 {
            used += self.write_one_into(&[], out.get_mut(used..).unwrap_or_default())?;
            self.rekey_send(now)?;
        }
        Ok(used)
    }
}
