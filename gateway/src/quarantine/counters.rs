//! Bounded per-camera tallies of what quarantined cameras tried: DNS names asked and
//! destinations (protocol, address, port) their packets were dropped on the way to.
//!
//! Whatever a camera sends, memory stays bounded: at most [`MAX_SOURCES`] cameras (and
//! [`MAX_NAMED`] more rows kept for the cameras the owner named), and per
//! camera at most [`MAX_NAMES`] names and [`MAX_DESTS`] destinations; anything past a cap
//! is added to an "other" tally (count, first and last seen) instead of a new entry. The
//! store keeps exactly these tallies (`store/quarantine.rs`), so the disk is bounded too.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Most cameras (source addresses) tallied one by one; more go to the "other" camera.
pub const MAX_SOURCES: usize = 64;
/// Rows past [`MAX_SOURCES`] kept for the cameras the owner named (ATTACKS 47: a camera
/// holding dozens of leases took every row, and a named camera's attempts went to "other").
pub const MAX_NAMED: usize = 64;
/// Most distinct names tallied per camera.
pub const MAX_NAMES: usize = 128;
/// Most distinct destinations tallied per camera.
pub const MAX_DESTS: usize = 128;

/// How often and when something was seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Times seen.
    pub count: u64,
    /// First seen (Unix seconds); 0 when never.
    pub first: u64,
    /// Last seen (Unix seconds); 0 when never.
    pub last: u64,
}

impl Tally {
    /// Adds `n` sightings at `now`.
    pub fn add(&mut self, n: u64, now: u64) {
        if n == 0 {
            return;
        }
        if self.count == 0 {
            self.first = now;
        }
        self.count = self.count.saturating_add(n);
        self.last = self.last.max(now);
    }

    /// Folds another tally in (its count, the earlier first, the later last).
    pub fn merge(&mut self, other: &Tally) {
        if other.count == 0 {
            return;
        }
        self.first = if self.count == 0 {
            other.first
        } else {
            self.first.min(other.first)
        };
        self.count = self.count.saturating_add(other.count);
        self.last = self.last.max(other.last);
    }
}

/// A transport protocol the drop rules record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `"tcp"` or `"udp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// Parses `"tcp"`/`"udp"` (as nftables and the store write them).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// Where a dropped packet was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dest {
    /// Protocol.
    pub proto: Proto,
    /// Destination address.
    pub addr: IpAddr,
    /// Destination port.
    pub port: u16,
}

/// What one camera tried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraTally {
    /// Names asked, at most [`MAX_NAMES`].
    pub names: HashMap<String, Tally>,
    /// Names past the cap.
    pub other_names: Tally,
    /// Destinations tried, at most [`MAX_DESTS`].
    pub dests: HashMap<Dest, Tally>,
    /// Destinations past the cap, and packets the drop rules could not attribute.
    pub other_dests: Tally,
}

impl CameraTally {
    /// Records `n` queries for `name` at `now`.
    pub fn name(&mut self, name: &str, n: u64, now: u64) {
        if let Some(t) = self.names.get_mut(name) {
            t.add(n, now);
        } else if self.names.len() < MAX_NAMES {
            self.names.entry(name.to_string()).or_default().add(n, now);
        } else {
            self.other_names.add(n, now);
        }
    }

    /// Records `n` packets to `dest` at `now`.
    pub fn dest(&mut self, dest: Dest, n: u64, now: u64) {
        if let Some(t) = self.dests.get_mut(&dest) {
            t.add(n, now);
        } else if self.dests.len() < MAX_DESTS {
            self.dests.entry(dest).or_default().add(n, now);
        } else {
            self.other_dests.add(n, now);
        }
    }
}

/// Every camera's tally, keyed by the camera's source address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Per source address, at most [`MAX_SOURCES`].
    pub cameras: HashMap<IpAddr, CameraTally>,
    /// Sources past the cap, all together.
    pub other: CameraTally,
    /// Changed since the last save.
    pub dirty: bool,
    /// The addresses of the cameras the owner named (fixed leases, cameras' addresses):
    /// they get a row even when unnamed sources took [`MAX_SOURCES`] (not stored).
    pub named: HashSet<IpAddr>,
}

impl Counters {
    /// The tally for `source`, or the shared "other" one when the cap is reached.
    pub fn camera(&mut self, source: IpAddr) -> &mut CameraTally {
        self.dirty = true;
        let cap = if self.named.contains(&source) {
            MAX_SOURCES + MAX_NAMED
        } else {
            MAX_SOURCES
        };
        self.row(source, cap)
    }

    /// The tally for a `source` read back from the store (which holds the named
    /// cameras' rows past [`MAX_SOURCES`] too).
    pub fn restore(&mut self, source: IpAddr) -> &mut CameraTally {
        self.row(source, MAX_SOURCES + MAX_NAMED)
    }

    fn row(&mut self, source: IpAddr, cap: usize) -> &mut CameraTally {
        if !self.cameras.contains_key(&source) && self.cameras.len() >= cap {
            return &mut self.other;
        }
        self.cameras.entry(source).or_default()
    }

    /// Entries held, names and destinations together (what memory and the store grow with).
    pub fn entries(&self) -> usize {
        self.cameras
            .values()
            .chain(std::iter::once(&self.other))
            .map(|c| c.names.len() + c.dests.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_flood_of_distinct_names_and_destinations_stays_bounded_and_counted() {
        let mut c = Counters::default();
        let cam: IpAddr = "10.0.0.5".parse().unwrap();
        for i in 0..100_000u32 {
            c.camera(cam)
                .name(&format!("n{i}.vendor.example"), 1, 100 + u64::from(i));
            let d = Dest {
                proto: Proto::Udp,
                addr: IpAddr::from(i.to_be_bytes()),
                port: 32100,
            };
            c.camera(cam).dest(d, 2, 100);
        }
        let t = &c.cameras[&cam];
        assert_eq!(t.names.len(), MAX_NAMES);
        assert_eq!(t.dests.len(), MAX_DESTS);
        assert_eq!(t.other_names.count, 100_000 - MAX_NAMES as u64);
        assert_eq!(t.other_names.last, 100 + 99_999);
        let dests: u64 = t.dests.values().map(|t| t.count).sum::<u64>() + t.other_dests.count;
        assert_eq!(dests, 200_000, "every packet is counted somewhere");
        for i in 0..1000u32 {
            c.camera(IpAddr::from((0x0a00_0000 + i).to_be_bytes()))
                .name("x", 1, 1);
        }
        assert_eq!(c.cameras.len(), MAX_SOURCES);
        assert!(c.other.names["x"].count > 0);
        // ATTACKS 47: the owner's cameras still get their rows, up to MAX_NAMED more.
        let front: IpAddr = "10.83.0.2".parse().unwrap();
        c.named.insert(front);
        c.camera(front).name("front.example", 1, 1);
        assert!(c.cameras[&front].names.contains_key("front.example"));
        for i in 0..1000u32 {
            let ip = IpAddr::from((0x0b00_0000 + i).to_be_bytes());
            c.named.insert(ip);
            c.camera(ip).name("y", 1, 1);
        }
        assert_eq!(c.cameras.len(), MAX_SOURCES + MAX_NAMED);
        assert!(c.entries() <= (MAX_SOURCES + MAX_NAMED + 1) * (MAX_NAMES + MAX_DESTS));
    }

    #[test]
    fn tallies_keep_first_and_last() {
        let mut t = Tally::default();
        t.add(0, 5);
        assert_eq!(t, Tally::default());
        t.add(3, 10);
        t.add(1, 20);
        assert_eq!((t.count, t.first, t.last), (4, 10, 20));
        let mut u = Tally::default();
        u.merge(&t);
        u.merge(&Tally {
            count: 1,
            first: 5,
            last: 6,
        });
        assert_eq!((u.count, u.first, u.last), (5, 5, 20));
    }
}
