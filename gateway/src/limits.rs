//! What one paired device can make the gateway hold: sessions, HTTP/2 streams, live
//! streams, request bodies, and how long a stream may sit unread. A paired device is not
//! trusted with the gateway: every budget here is per device (PROTOCOL.md "Limits").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Live Noise sessions one device may hold; a new one closes the device's oldest (a phone
/// that changed networks gets in at once, a hoarder only ever holds this many).
pub const MAX_SESSIONS_PER_DEVICE: usize = 4;
/// Concurrent HTTP/2 streams per session (requests in flight).
pub const MAX_H2_STREAMS_PER_SESSION: u32 = 16;
/// Live camera bodies (`live.mp4`, `live.mjpeg`) one device may hold over all its
/// sessions; one more is answered `429` with `too many live streams`.
pub const MAX_LIVE_STREAMS_PER_DEVICE: usize = 8;
/// Largest request body any route reads (only `POST /v1/invitations` reads one).
pub const MAX_BODY_BYTES: usize = 4096;
/// Time a request body has to arrive in full.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);
/// HTTP/2 flow-control windows the gateway grants a phone: what a session can make the
/// gateway hold unread (phones upload only small JSON).
pub const H2_STREAM_WINDOW: u32 = 16 << 10;
/// See [`H2_STREAM_WINDOW`]; the whole session's inbound window.
pub const H2_CONN_WINDOW: u32 = 64 << 10;
/// Bytes queued per stream for a phone that is not reading them.
pub const H2_MAX_SEND_BUF: usize = 128 << 10;
/// Headers of one request.
pub const H2_MAX_HEADER_LIST: u32 = 16 << 10;
/// A live stream whose viewer has not taken a chunk for this long (while the gateway had
/// one ready) ends its session.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A session whose HTTP/2 connection has had no open stream (no request in flight, no
/// response body open) for this long hibernates: the connection ends and only the Noise
/// session is kept until the phone's next request (PROTOCOL.md §8.1). Pings do not count.
pub const HIBERNATE_AFTER: Duration = Duration::from_secs(15);
/// How far ahead of the gateway's clock a session hello may be dated.
pub const HELLO_MAX_AHEAD_MS: u64 = 5 * 60 * 1000;

/// Live streams per device.
#[derive(Debug, Default, Clone)]
pub struct LiveStreams {
    inner: Arc<Mutex<HashMap<String, usize>>>,
}

/// One live stream counted against its device; released on drop.
#[derive(Debug)]
pub struct StreamPermit {
    owner: LiveStreams,
    device: String,
}

impl LiveStreams {
    /// A permit for one more live stream of `device`, unless it holds `max` already.
    pub fn try_take(&self, device: &str, max: usize) -> Option<StreamPermit> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let n = inner.entry(device.to_string()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(StreamPermit {
            owner: self.clone(),
            device: device.to_string(),
        })
    }

    /// Live streams `device` holds now.
    pub fn count(&self, device: &str) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.get(device).copied().unwrap_or(0)
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut inner = self.owner.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = inner.get_mut(&self.device) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.remove(&self.device);
            }
        }
    }
}

/// Whether a hello dated `hello_ms` may start a session at `now_ms`, given the newest
/// hello already accepted from the device (`last_ms`, remembered across restarts).
pub fn hello_fresh(hello_ms: u64, last_ms: u64, now_ms: u64) -> Result<(), &'static str> {
    if hello_ms > now_ms.saturating_add(HELLO_MAX_AHEAD_MS) {
        return Err("hello dated too far ahead of the gateway's clock");
    }
    if hello_ms <= last_ms {
        return Err("replayed or stale session hello");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_streams_are_capped_per_device_and_released_on_drop() {
        let streams = LiveStreams::default();
        let held: Vec<_> = (0..3).filter_map(|_| streams.try_take("a", 3)).collect();
        assert_eq!(held.len(), 3);
        assert!(streams.try_take("a", 3).is_none());
        assert!(
            streams.try_take("b", 3).is_some(),
            "other devices unaffected"
        );
        drop(held);
        assert_eq!(streams.count("a"), 0);
        assert!(streams.try_take("a", 3).is_some());
    }

    #[test]
    fn hellos_far_ahead_or_not_newer_are_refused() {
        let now = 1_800_000_000_000;
        assert!(hello_fresh(now, 0, now).is_ok());
        assert!(hello_fresh(now + HELLO_MAX_AHEAD_MS, 0, now).is_ok());
        assert!(hello_fresh(now + HELLO_MAX_AHEAD_MS + 1, 0, now).is_err());
        assert!(hello_fresh(now + 10 * 365 * 86_400_000, 0, now).is_err());
        assert!(hello_fresh(now, now, now).is_err(), "replay");
        assert!(
            hello_fresh(1, 0, now).is_ok(),
            "a slow clock is still accepted"
        );
    }
}
