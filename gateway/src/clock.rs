//! The daemon's one clock, injectable as Moonfire NVR does it: wall time (Unix seconds,
//! for expiry and audit rows), monotonic time (for windows and deadlines) and sleeping,
//! from the system ([`Clock::real`]) or simulated ([`Clock::simulated`]), where time
//! moves only when a test advances it or something sleeps on it: a sleep returns at once,
//! having moved the clock by its length. Tests of expiry, rate-limit windows and other
//! timed behaviour run on simulated time instead of waiting.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use latchkey_pairing::UnixTime;

/// Wall and monotonic time, real or simulated; cheap to clone (clones share the time).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    simulated: Option<Arc<Mutex<Simulated>>>,
}

#[derive(Debug)]
struct Simulated {
    /// Wall time at the start, seconds since the epoch.
    unix_start: UnixTime,
    /// The monotonic origin.
    origin: Instant,
    /// Time advanced so far.
    elapsed: Duration,
}

impl Clock {
    /// The system clocks.
    pub fn real() -> Self {
        Self::default()
    }

    /// A clock that starts at `unix_start` and moves only when advanced or slept on.
    pub fn simulated(unix_start: UnixTime) -> Self {
        Self {
            simulated: Some(Arc::new(Mutex::new(Simulated {
                unix_start,
                origin: Instant::now(),
                elapsed: Duration::ZERO,
            }))),
        }
    }

    fn with_sim<T>(&self, f: impl FnOnce(&mut Simulated) -> T) -> Option<T> {
        self.simulated
            .as_ref()
            .map(|s| f(&mut s.lock().unwrap_or_else(PoisonError::into_inner)))
    }

    /// Wall time in Unix seconds.
    pub fn unix_now(&self) -> UnixTime {
        self.with_sim(|s| s.unix_start.saturating_add(s.elapsed.as_secs()))
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            })
    }

    /// Monotonic time.
    pub fn instant(&self) -> Instant {
        self.with_sim(|s| s.origin + s.elapsed)
            .unwrap_or_else(Instant::now)
    }

    /// Moves a simulated clock forward by `by`; the real clock cannot be moved.
    pub fn advance(&self, by: Duration) {
        self.with_sim(|s| s.elapsed = s.elapsed.saturating_add(by));
    }

    /// Waits `d`: really, or on a simulated clock by advancing it (then yielding once).
    pub async fn sleep(&self, d: Duration) {
        if self.simulated.is_some() {
            self.advance(d);
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn simulated_time_moves_only_when_advanced_or_slept_on() {
        let c = Clock::simulated(1_000);
        let (t0, m0) = (c.unix_now(), c.instant());
        assert_eq!(t0, 1_000);
        c.advance(Duration::from_secs(30));
        c.clone().sleep(Duration::from_secs(3600)).await;
        assert_eq!(c.unix_now(), 1_000 + 30 + 3600);
        assert_eq!(c.instant() - m0, Duration::from_secs(3630));
        let real = Clock::real();
        assert!(real.unix_now() > 1_600_000_000);
    }
}
