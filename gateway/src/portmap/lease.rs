//! The lease planner, sans-IO: from the owner's approval, what is held on the router and
//! how the last round went, which router calls to make and when to look again.
//!
//! `PortMapper` (mod.rs) carries the plan out against the real router; the tests below
//! carry it out against a fake router on simulated time, so the rules that keep a home
//! safe are checked without a network: nothing is asked of the router without an
//! approval, an approved opening never lapses (a rebooted router is repaired within one
//! renewal interval), a withdrawn approval is removed and a failed removal retried, and
//! a lease is never 0 (forever, to a router).

use std::time::Duration;

use crate::store::RemoteApproval;

/// Shortest lease accepted (tests use it; a router reboot is repaired within half of it).
pub const MIN_LEASE_SECS: u32 = 4;
/// Longest lease (the IGDv2 pinhole maximum).
pub const MAX_LEASE_SECS: u32 = 86_400;
/// Retry delay after a failed round (never longer than half the lease).
pub const RETRY: Duration = Duration::from_secs(15);

/// What the owner approved, as the planner needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Approved {
    /// An IPv4 port mapping.
    pub ipv4: bool,
    /// An IPv6 pinhole.
    pub ipv6: bool,
    /// The lease to ask for, already within bounds.
    pub lease_secs: u32,
}

impl From<&RemoteApproval> for Approved {
    fn from(a: &RemoteApproval) -> Self {
        Self {
            ipv4: a.ipv4,
            ipv6: a.ipv6,
            lease_secs: clamp_lease(a.lease_secs),
        }
    }
}

/// What Latchkey holds on the router right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    /// An IPv4 mapping.
    pub v4: bool,
    /// An IPv6 opening.
    pub v6: bool,
}

/// One router call of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Add the IPv4 mapping, or renew it (re-adding it when the router lost it).
    MapV4,
    /// Remove the IPv4 mapping and check the router's table.
    UnmapV4,
    /// Open the IPv6 pinhole, or renew it (re-making it when the router lost it).
    OpenV6,
    /// Close the IPv6 pinhole.
    CloseV6,
}

/// A lease within bounds: never 0, never more than a day.
pub fn clamp_lease(secs: u32) -> u32 {
    secs.clamp(MIN_LEASE_SECS, MAX_LEASE_SECS)
}

/// The router calls of one round. Without an approval only removals are planned.
pub fn steps(approval: Option<&Approved>, held: Holding) -> Vec<Step> {
    let (want_v4, want_v6) = approval.map_or((false, false), |a| (a.ipv4, a.ipv6));
    let mut out = Vec::with_capacity(2);
    if want_v4 {
        out.push(Step::MapV4);
    } else if held.v4 {
        out.push(Step::UnmapV4);
    }
    if want_v6 {
        out.push(Step::OpenV6);
    } else if held.v6 {
        out.push(Step::CloseV6);
    }
    out
}

/// When to run the next round, after one that went `ok` (every step succeeded) and left
/// `held` on the router; `granted_v6` is the IPv6 lease the router granted (PCP may grant
/// less than asked). `None`: nothing to do until the owner acts.
pub fn next_round(
    approval: Option<&Approved>,
    granted_v6: Option<u32>,
    ok: bool,
    held: Holding,
) -> Option<Duration> {
    let Some(a) = approval else {
        // A removal that failed is retried: an opening that outlives its approval is
        // the worst case.
        return (held.v4 || held.v6).then_some(RETRY);
    };
    let leftover = (held.v4 && !a.ipv4) || (held.v6 && !a.ipv6);
    let lease = granted_v6.map_or(a.lease_secs, |g| g.min(a.lease_secs));
    let half = Duration::from_secs(u64::from(lease / 2).max(1));
    Some(if ok && !leftover {
        half
    } else {
        half.min(RETRY)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A router that holds leases, can reboot (forgetting them) and can fail calls.
    #[derive(Debug, Default)]
    struct FakeRouter {
        v4_until: Option<u64>,
        v6_until: Option<u64>,
        /// Calls fail while `now` is before this.
        down_until: u64,
        /// Every mapping or pinhole request, with its time.
        asked: Vec<(u64, Step)>,
        /// The largest lease it ever saw.
        max_lease_granted: u32,
        /// What it grants for IPv6 at most (PCP servers may cap lifetimes).
        v6_cap: Option<u32>,
    }

    impl FakeRouter {
        fn reboot(&mut self) {
            self.v4_until = None;
            self.v6_until = None;
        }

        fn expire(&mut self, now: u64) {
            if self.v4_until.is_some_and(|t| t <= now) {
                self.v4_until = None;
            }
            if self.v6_until.is_some_and(|t| t <= now) {
                self.v6_until = None;
            }
        }

        /// Carries out one step; Ok(granted lease) or Err.
        fn call(&mut self, now: u64, step: Step, lease: u32) -> Result<u32, ()> {
            self.asked.push((now, step));
            if now < self.down_until {
                return Err(());
            }
            self.max_lease_granted = self.max_lease_granted.max(lease);
            match step {
                Step::MapV4 => self.v4_until = Some(now + u64::from(lease)),
                Step::OpenV6 => {
                    let granted = self.v6_cap.map_or(lease, |c| c.min(lease));
                    self.v6_until = Some(now + u64::from(granted));
                    return Ok(granted);
                }
                Step::UnmapV4 => self.v4_until = None,
                Step::CloseV6 => self.v6_until = None,
            }
            Ok(lease)
        }
    }

    /// The manager's loop on simulated time, one second per tick.
    struct Sim {
        router: FakeRouter,
        held: Holding,
        granted_v6: Option<u32>,
        due: Option<u64>,
        now: u64,
        /// The approval the loop last acted on.
        last: Option<Approved>,
    }

    impl Sim {
        fn new() -> Self {
            Self {
                router: FakeRouter::default(),
                held: Holding::default(),
                granted_v6: None,
                due: Some(0),
                now: 0,
                last: None,
            }
        }

        fn round(&mut self, approval: Option<&Approved>) {
            let mut ok = true;
            let lease = approval.map_or(0, |a| a.lease_secs);
            for step in steps(approval, self.held) {
                match (step, self.router.call(self.now, step, lease)) {
                    (Step::MapV4, Ok(_)) => self.held.v4 = true,
                    (Step::OpenV6, Ok(g)) => {
                        self.held.v6 = true;
                        self.granted_v6 = Some(g);
                    }
                    (Step::UnmapV4, Ok(_)) => self.held.v4 = false,
                    (Step::CloseV6, Ok(_)) => {
                        self.held.v6 = false;
                        self.granted_v6 = None;
                    }
                    (_, Err(())) => ok = false,
                }
            }
            self.due = next_round(approval, self.granted_v6, ok, self.held)
                .map(|d| self.now + d.as_secs());
        }

        /// Runs until `until`; `approval(now)` says what stands at each second, and a
        /// change of approval wakes the loop at once (as `open`/`close` do).
        fn run(&mut self, until: u64, approval: impl Fn(u64) -> Option<Approved>) {
            while self.now < until {
                self.router.expire(self.now);
                let current = approval(self.now);
                if current != self.last || self.due.is_some_and(|d| d <= self.now) {
                    self.round(current.as_ref());
                    self.last = current;
                }
                self.now += 1;
            }
        }
    }

    const BOTH: Approved = Approved {
        ipv4: true,
        ipv6: true,
        lease_secs: 60,
    };

    #[test]
    fn nothing_is_asked_of_the_router_without_an_approval() {
        let mut sim = Sim::new();
        sim.run(86_400, |_| None);
        assert!(sim.router.asked.is_empty(), "{:?}", sim.router.asked);
        assert_eq!(sim.due, None);
    }

    #[test]
    fn an_approved_opening_never_lapses_and_is_renewed_at_half_life() {
        let mut sim = Sim::new();
        let mut lapsed = 0;
        for t in 0..3_600 {
            sim.run(t + 1, |_| Some(BOTH));
            if t > 0 && (sim.router.v4_until.is_none() || sim.router.v6_until.is_none()) {
                lapsed += 1;
            }
        }
        assert_eq!(lapsed, 0);
        let renewals = sim
            .router
            .asked
            .iter()
            .filter(|(_, s)| *s == Step::MapV4)
            .count();
        // Every 30 s for an hour: 120 rounds (the first at 0).
        assert_eq!(renewals, 120);
        assert!(sim.router.max_lease_granted > 0 && sim.router.max_lease_granted <= 60);
    }

    #[test]
    fn a_rebooted_router_is_repaired_within_one_renewal_interval() {
        let mut sim = Sim::new();
        sim.run(100, |_| Some(BOTH));
        sim.router.reboot();
        let lost_at = sim.now;
        let mut repaired_at = None;
        while repaired_at.is_none() && sim.now < lost_at + 120 {
            let t = sim.now + 1;
            sim.run(t, |_| Some(BOTH));
            if sim.router.v4_until.is_some() && sim.router.v6_until.is_some() {
                repaired_at = Some(sim.now);
            }
        }
        let took = repaired_at.map(|t| t - lost_at);
        assert!(took.is_some_and(|s| s <= 30), "repaired after {took:?} s");
    }

    #[test]
    fn a_withdrawn_approval_is_removed_at_once_and_a_failed_removal_retried() {
        let mut sim = Sim::new();
        sim.run(200, |t| (t < 100).then_some(BOTH));
        assert_eq!(sim.router.v4_until, None);
        assert_eq!(sim.router.v6_until, None);
        assert_eq!(sim.held, Holding::default());
        let removed = sim.router.asked.iter().find(|(_, s)| *s == Step::UnmapV4);
        assert_eq!(removed.map(|(t, _)| *t), Some(100));
        assert_eq!(sim.due, None, "nothing left to do");

        // The router is down when the approval ends: removal is retried every RETRY.
        let mut sim = Sim::new();
        sim.run(100, |_| Some(BOTH));
        sim.router.down_until = 140;
        sim.run(200, |_| None);
        let tries: Vec<u64> = sim
            .router
            .asked
            .iter()
            .filter(|(_, s)| *s == Step::UnmapV4)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(tries, vec![100, 115, 130, 145]);
        assert_eq!(sim.held, Holding::default());
        // No mapping was asked for after the approval ended.
        assert!(
            !sim.router
                .asked
                .iter()
                .any(|(t, s)| *t >= 100 && matches!(s, Step::MapV4 | Step::OpenV6))
        );
    }

    #[test]
    fn failures_are_retried_sooner_and_short_grants_renewed_at_their_half() {
        let mut sim = Sim::new();
        sim.router.down_until = 50;
        sim.run(60, |_| {
            Some(Approved {
                lease_secs: 3_600,
                ..BOTH
            })
        });
        let times: Vec<u64> = sim
            .router
            .asked
            .iter()
            .filter(|(_, s)| *s == Step::MapV4)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(times, vec![0, 15, 30, 45]);
        assert!(!sim.held.v4);
        sim.run(61, |_| {
            Some(Approved {
                lease_secs: 3_600,
                ..BOTH
            })
        });
        assert!(sim.held.v4, "the router is back: the round at 60 s maps");

        let mut sim = Sim::new();
        sim.router.v6_cap = Some(20);
        sim.run(61, |_| Some(BOTH));
        let v6: Vec<u64> = sim
            .router
            .asked
            .iter()
            .filter(|(_, s)| *s == Step::OpenV6)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(v6, vec![0, 10, 20, 30, 40, 50, 60]);
    }

    #[test]
    fn leases_are_never_zero_or_over_a_day() {
        assert_eq!(clamp_lease(0), MIN_LEASE_SECS);
        assert_eq!(clamp_lease(u32::MAX), MAX_LEASE_SECS);
        assert_eq!(clamp_lease(3_600), 3_600);
        let tiny = Approved {
            lease_secs: clamp_lease(1),
            ..BOTH
        };
        assert_eq!(
            next_round(Some(&tiny), None, true, Holding { v4: true, v6: true }),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn dropping_one_family_from_the_approval_removes_only_that_one() {
        let held = Holding { v4: true, v6: true };
        let v6_only = Approved {
            ipv4: false,
            ..BOTH
        };
        assert_eq!(
            steps(Some(&v6_only), held),
            vec![Step::UnmapV4, Step::OpenV6]
        );
        assert_eq!(steps(None, held), vec![Step::UnmapV4, Step::CloseV6]);
        assert_eq!(steps(None, Holding::default()), vec![]);
        // A leftover that could not be removed is looked at again soon.
        assert_eq!(next_round(Some(&v6_only), None, true, held), Some(RETRY));
    }
}
