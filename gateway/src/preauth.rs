//! Limits on peers that have not authenticated yet: a bounded pool of pending
//! connections (oldest evicted first) and a per-source handshake rate limit.
//!
//! Numbers follow WireGuard: about 20 handshakes per second per source with a burst of
//! 5. A successful handshake gives its token back, so only failures count. IPv6 sources
//! are grouped by /64, because one host can use a whole /64. The limit is a GCRA (a token
//! bucket kept as one "theoretical arrival time"), in whole nanoseconds of the daemon's
//! [`Clock`](crate::clock::Clock) that callers pass as `now`: a blocked source is let in
//! again exactly one interval (50 ms) after its bucket ran dry, on real or simulated time. The pool is
//! bounded so half-open connections cannot exhaust file descriptors or memory, and the
//! oldest pending connection is dropped to make room, so a flood of idle connections
//! cannot keep a real phone out: its fresh connection always gets a slot.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Tunables.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections allowed in the handshake stage at once.
    pub max_pending: usize,
    /// Sustained handshakes per second per source.
    pub rate_per_sec: f64,
    /// Burst of handshakes per source.
    pub burst: f64,
    /// Sources tracked at most; beyond this, idle sources are forgotten.
    pub max_sources: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pending: 1024,
            rate_per_sec: 20.0,
            burst: 5.0,
            max_sources: 65_536,
        }
    }
}

impl Limits {
    /// Time one handshake's token takes to come back.
    fn interval(self) -> Duration {
        Duration::try_from_secs_f64(1.0 / self.rate_per_sec).unwrap_or(Duration::MAX)
    }

    /// How far ahead of now a source's arrival time may run: a burst of `burst`.
    fn tolerance(self) -> Duration {
        let spare = (self.burst.max(1.0) - 1.0).min(f64::from(u32::MAX));
        self.interval()
            .checked_mul(spare as u32)
            .unwrap_or(Duration::MAX)
    }
}

/// One source's GCRA state: when its bucket would be full again.
#[derive(Debug)]
struct Bucket {
    tat: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    pending: VecDeque<(u64, CancellationToken)>,
    buckets: HashMap<IpAddr, Bucket>,
}

/// The shared limiter.
#[derive(Debug, Clone)]
pub struct PreAuth {
    limits: Limits,
    inner: Arc<Mutex<Inner>>,
}

/// A slot in the pending pool; cancelled if evicted, released on drop.
#[derive(Debug)]
pub struct Pending {
    owner: PreAuth,
    id: u64,
    /// Cancelled when this connection is evicted to make room.
    pub evicted: CancellationToken,
}

impl PreAuth {
    /// A limiter with these limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for a new connection, evicting the oldest pending one if full.
    pub fn enter(&self) -> Pending {
        let evicted = CancellationToken::new();
        let mut inner = self.lock();
        while inner.pending.len() >= self.limits.max_pending.max(1) {
            match inner.pending.pop_front() {
                Some((_, oldest)) => oldest.cancel(),
                None => break,
            }
        }
        inner.next += 1;
        let id = inner.next;
        inner.pending.push_back((id, evicted.clone()));
        Pending {
            owner: self.clone(),
            id,
            evicted,
        }
    }

    /// Connections now pending.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Whether `source` may attempt a handshake at `now` (spends one token if so).
    pub fn allow(&self, source: IpAddr, now: Instant) -> bool {
        let key = source_key(source);
        let limits = self.limits;
        let mut inner = self.lock();
        if inner.buckets.len() >= limits.max_sources && !inner.buckets.contains_key(&key) {
            // Forget sources whose buckets have refilled: they are indistinguishable from new.
            inner.buckets.retain(|_, b| b.tat > now);
            if inner.buckets.len() >= limits.max_sources {
                inner.buckets.clear();
            }
        }
        let bucket = inner.buckets.entry(key).or_insert(Bucket { tat: now });
        let tat = bucket.tat.max(now);
        if tat.saturating_duration_since(now) > limits.tolerance() {
            return false;
        }
        bucket.tat = tat.checked_add(limits.interval()).unwrap_or(tat);
        true
    }
}

impl PreAuth {
    /// Gives back the token a handshake spent once it succeeded: only failures count
    /// against a source, so a phone that reconnects often is never slowed down.
    pub fn refund(&self, source: IpAddr) {
        let limits = self.limits;
        if let Some(bucket) = self.lock().buckets.get_mut(&source_key(source)) {
            bucket.tat = bucket
                .tat
                .checked_sub(limits.interval())
                .unwrap_or(bucket.tat);
        }
    }
}

/// The rate-limit key: the IPv4 address, or the IPv6 /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        v4 => v4,
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut inner = self.owner.lock();
        if let Some(pos) = inner.pending.iter().position(|(id, _)| *id == self.id) {
            inner.pending.remove(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    #[test]
    fn the_oldest_pending_connection_makes_room() {
        let pre = PreAuth::new(Limits {
            max_pending: 2,
            ..Limits::default()
        });
        let a = pre.enter();
        let b = pre.enter();
        let c = pre.enter();
        assert!(a.evicted.is_cancelled());
        assert!(!b.evicted.is_cancelled() && !c.evicted.is_cancelled());
        assert_eq!(pre.pending(), 2);
        drop(b);
        drop(c);
        drop(a);
        assert_eq!(pre.pending(), 0);
    }

    #[test]
    fn per_source_rate_limit_with_burst() {
        let pre = PreAuth::new(Limits::default());
        let t0 = Instant::now();
        let one: IpAddr = "203.0.113.9".parse().unwrap();
        let allowed = (0..100).filter(|_| pre.allow(one, t0)).count();
        assert_eq!(allowed, 5, "burst of 5");
        assert!(
            pre.allow("203.0.113.10".parse().unwrap(), t0),
            "other sources unaffected"
        );
        // One second later, about 20 more.
        let t1 = t0 + Duration::from_secs(1);
        let allowed = (0..100).filter(|_| pre.allow(one, t1)).count();
        assert_eq!(allowed, 5, "refill is capped at the burst");
        let later: usize = (1..=20)
            .map(|i| usize::from(pre.allow(one, t1 + Duration::from_millis(50 * i))))
            .sum();
        assert!((19..=20).contains(&later), "{later} in one second");
    }

    #[test]
    fn successful_handshakes_cost_nothing() {
        let pre = PreAuth::new(Limits::default());
        let t0 = Instant::now();
        let phone: IpAddr = "192.168.1.7".parse().unwrap();
        for _ in 0..1000 {
            assert!(pre.allow(phone, t0));
            pre.refund(phone);
        }
    }

    #[test]
    fn ipv6_sources_are_grouped_by_slash_64() {
        let pre = PreAuth::new(Limits::default());
        let t0 = Instant::now();
        let allowed = (0..100u16)
            .filter(|i| pre.allow(IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, *i]), t0))
            .count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn source_table_stays_bounded() {
        let pre = PreAuth::new(Limits {
            max_sources: 100,
            ..Limits::default()
        });
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            pre.allow(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(pre.lock().buckets.len() <= 100);
    }

    #[test]
    fn a_blocked_source_is_let_in_exactly_one_interval_later() {
        let pre = PreAuth::new(Limits::default());
        let clock = Clock::simulated(1_000_000);
        let one: IpAddr = "203.0.113.9".parse().unwrap();
        let allowed = (0..10).filter(|_| pre.allow(one, clock.instant())).count();
        assert_eq!(allowed, 5, "the burst, then blocked");
        clock.advance(Duration::from_millis(49));
        assert!(!pre.allow(one, clock.instant()), "still blocked 1 ms early");
        clock.advance(Duration::from_millis(1));
        assert!(pre.allow(one, clock.instant()), "released at 50 ms");
        assert!(
            !pre.allow(one, clock.instant()),
            "one handshake per interval"
        );
        clock.advance(Duration::from_millis(250));
        let allowed = (0..10).filter(|_| pre.allow(one, clock.instant())).count();
        assert_eq!(
            allowed, 5,
            "after a quiet spell the whole burst is back, no more"
        );
    }

    #[test]
    fn a_refund_lets_the_next_attempt_in_at_once() {
        let pre = PreAuth::new(Limits::default());
        let clock = Clock::simulated(1_000_000);
        let one: IpAddr = "203.0.113.9".parse().unwrap();
        while pre.allow(one, clock.instant()) {}
        pre.refund(one);
        assert!(pre.allow(one, clock.instant()));
        assert!(!pre.allow(one, clock.instant()));
    }
}
