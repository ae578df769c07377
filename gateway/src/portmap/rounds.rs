//! The port mapper's renewal loop: wait until the next round is due on the gateway's
//! [`Clock`], run it, repeat; an owner's command wakes it early, shutdown ends it.
//! Written against [`Rounds`] so the tests drive the same loop on simulated time with the
//! lease planner and a fake router (`PortMapper` runs it against the real one).

use std::future::Future;
use std::time::Instant;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;

/// What the loop drives.
pub(super) trait Rounds {
    /// When the next round is due; `None`: nothing until the owner acts (a wake).
    fn due(&self) -> impl Future<Output = Option<Instant>> + Send;
    /// Runs one round: renew, repair or remove, and set the next due time.
    fn round(&self) -> impl Future<Output = ()> + Send;
}

impl Rounds for super::PortMapper {
    async fn due(&self) -> Option<Instant> {
        self.live.lock().await.next_due
    }

    async fn round(&self) {
        self.tick().await;
    }
}

/// Runs rounds as they fall due until `shutdown`; `wake` makes it look at the due time
/// again (an owner's open or close changed it).
pub(super) async fn run<R: Rounds + Sync>(
    clock: &Clock,
    rounds: &R,
    wake: &Notify,
    shutdown: &CancellationToken,
) {
    loop {
        let due = rounds.due().await;
        let sleep = async {
            match due {
                Some(d) => clock.sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => continue,
            _ = sleep => rounds.round().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::super::lease::{self, Approved, Holding, Step};
    use super::*;

    /// The lease planner carried out against a router that forgets on reboot, on the
    /// gateway's clock: what `PortMapper::apply` does with the real router.
    struct Planned {
        clock: Clock,
        approval: Approved,
        state: Mutex<State>,
        ran: tokio::sync::mpsc::UnboundedSender<u64>,
    }

    #[derive(Default)]
    struct State {
        held: Holding,
        /// The router's IPv4 lease end, Unix seconds; `None` when it holds nothing.
        router_v4_until: Option<u64>,
        due: Option<Instant>,
        /// Every MapV4 the router was asked for, with its time.
        mapped_at: Vec<u64>,
    }

    impl Rounds for Planned {
        async fn due(&self) -> Option<Instant> {
            self.state.lock().unwrap().due
        }

        async fn round(&self) {
            let now = self.clock.unix_now();
            let mut st = self.state.lock().unwrap();
            for step in lease::steps(Some(&self.approval), st.held) {
                assert_eq!(step, Step::MapV4);
                st.router_v4_until = Some(now + u64::from(self.approval.lease_secs));
                st.mapped_at.push(now);
                st.held.v4 = true;
            }
            let next = lease::next_round(Some(&self.approval), None, true, st.held);
            st.due = next.map(|d| self.clock.instant() + d);
            self.ran.send(now).unwrap();
        }
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_lease_is_renewed_at_half_life_on_the_gateways_clock() {
        const T0: u64 = 1_800_000_000;
        let clock = Clock::simulated(T0);
        let (ran, mut rounds) = tokio::sync::mpsc::unbounded_channel();
        let planned = std::sync::Arc::new(Planned {
            clock: clock.clone(),
            approval: Approved {
                ipv4: true,
                ipv6: false,
                lease_secs: 60,
            },
            state: Mutex::default(),
            ran,
        });
        planned.round().await;
        assert_eq!(rounds.recv().await, Some(T0), "mapped at start");
        let (wake, shutdown) = (std::sync::Arc::new(Notify::new()), CancellationToken::new());
        let task = tokio::spawn({
            let (clock, planned) = (clock.clone(), planned.clone());
            let (wake, shutdown) = (wake.clone(), shutdown.clone());
            async move { run(&clock, planned.as_ref(), &wake, &shutdown).await }
        });
        settle().await;
        clock.advance(Duration::from_secs(29));
        settle().await;
        assert!(rounds.try_recv().is_err(), "no round before half the lease");
        clock.advance(Duration::from_secs(1));
        let at = tokio::time::timeout(Duration::from_secs(10), rounds.recv()).await;
        assert_eq!(at.unwrap(), Some(T0 + 30), "renewed at half-life");
        // The router never went a moment without the mapping.
        let until = planned.state.lock().unwrap().router_v4_until;
        assert_eq!(until, Some(T0 + 30 + 60));
        clock.advance(Duration::from_secs(30));
        let at = tokio::time::timeout(Duration::from_secs(10), rounds.recv()).await;
        assert_eq!(at.unwrap(), Some(T0 + 60), "and again every half-life");
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            planned.state.lock().unwrap().mapped_at,
            [T0, T0 + 30, T0 + 60]
        );
    }
}
