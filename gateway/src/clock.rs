//! The daemon's one clock, injectable as Moonfire NVR does it: wall time (Unix seconds,
//! for expiry and audit rows), monotonic time (for windows and deadlines) and sleeping,
//! from the system ([`Clock::real`]) or simulated ([`Clock::simulated`]), where time
//! moves only when a test advances it or something sleeps on it: a sleep returns at once,
//! having moved the clock by its length, while [`Clock::sleep_until`] waits for others
//! (a test) to move it past the deadline. Tests of expiry, rate-limit windows, rekeying
//! and lease renewal run on simulated time instead of waiting.

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
    /// Tells [`Clock::sleep_until`] waiters that time moved.
    moved: tokio::sync::watch::Sender<Duration>,
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
                moved: tokio::sync::watch::Sender::new(Duration::ZERO),
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

    /// Wall time in milliseconds since the epoch (session hello timestamps).
    pub fn unix_now_ms(&self) -> u64 {
        self.with_sim(|s| {
            let start = s.unix_start.saturating_mul(1000);
            start.saturating_add(u64::try_from(s.elapsed.as_millis()).unwrap_or(u64::MAX))
        })
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
        self.with_sim(|s| {
            s.elapsed = s.elapsed.saturating_add(by);
            s.moved.send_replace(s.elapsed);
        });
    }

    /// The time since `origin` (an [`Clock::instant`] of this clock), as the protocol
    /// core's `now` values are measured: a function for a session to read it by.
    pub fn since(&self, origin: Instant) -> impl Fn() -> Duration + Send + Sync + 'static {
        let clock = self.clone();
        move || clock.instant().saturating_duration_since(origin)
    }

    /// Waits until `deadline` (an [`Clock::instant`] of this clock): really, or on a
    /// simulated clock until something advances it that far (this does not move it).
    pub async fn sleep_until(&self, deadline: Instant) {
        let Some(mut moved) = self.with_sim(|s| s.moved.subscribe()) else {
            tokio::time::sleep_until(deadline.into()).await;
            return;
        };
        while self.instant() < deadline {
            if moved.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
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

    #[tokio::test]
    async fn a_deadline_passes_when_simulated_time_reaches_it() {
        let c = Clock::simulated(1_000);
        let deadline = c.instant() + Duration::from_secs(30);
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { c.sleep_until(deadline).await }
        });
        c.advance(Duration::from_secs(29));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "1 s early");
        c.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap();
        let since = c.since(deadline);
        c.advance(Duration::from_secs(5));
        assert_eq!(since(), Duration::from_secs(5));
    }
}
