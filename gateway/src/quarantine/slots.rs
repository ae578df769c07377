//! A bounded drop record per camera (ATTACKS 42): one camera sending to thousands of
//! destinations fills only its own record, and every other camera's attempts are still
//! listed one by one.
//!
//! The camera port's table holds [`SLOTS`] pairs of small sets (`seen4_0`, `seen6_0` ...),
//! each with its own [`SLOT_SIZE`], and verdict maps from a camera's IPv4 address
//! (`slots4`) and from its lease's MAC (`slots6`, for IPv6, recorded by MAC) to the chain
//! that records into its sets. A camera gets a slot when its lease is known (fixed or
//! from dnsmasq) or, without a lease (the owner set its address by hand), when the first
//! read shows it; unleased addresses get at most half the slots, so a camera taking many
//! addresses cannot take the leased cameras' slots. When a camera's set is full its
//! further new destinations are counted in its own `over4`/`over6` element ("detail
//! truncated" in the report), so its totals stay exact. Addresses past the slots share
//! `seen4` and `seen6`, the record as it was before slots.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Cameras with a record of their own.
pub const SLOTS: usize = 32;
/// Distinct (protocol, destination, port) recorded per camera; past it, only counts.
/// Twice the report's per-camera cap, so the report's detail is never cut by the kernel.
pub const SLOT_SIZE: u32 = 256;
/// Slots an address without a lease can take.
const UNLEASED: usize = SLOTS / 2;
/// Most MACs mapped to slots (a slotted address's current leases: one from dnsmasq, and
/// the owner's fixed ones). Only the current leases' MACs are mapped (ATTACKS 46: a camera
/// cycling MACs through one address filled a map that kept every MAC it had seen).
pub const MAX_MACS: usize = SLOTS * 2;

/// Which address (and the MAC of its lease) records into which slot.
#[derive(Debug, Default, Clone)]
pub struct Slots {
    by_addr: HashMap<Ipv4Addr, usize>,
    by_mac: HashMap<String, usize>,
    unleased: usize,
}

impl Slots {
    /// Gives `addr` a slot if it has none and one is free for it: its number, when new.
    pub fn assign(&mut self, addr: Ipv4Addr, leased: bool) -> Option<usize> {
        let n = self.by_addr.len();
        if self.by_addr.contains_key(&addr) || n >= SLOTS || (!leased && self.unleased >= UNLEASED)
        {
            return None;
        }
        if !leased {
            self.unleased += 1;
        }
        self.by_addr.insert(addr, n);
        Some(n)
    }

    /// Gives each lease's address in `bound` a slot as [`Slots::assign`] does, and maps
    /// the MACs of exactly these leases (checked MACs, for IPv6) to their address's slot:
    /// a MAC whose lease is gone loses its element, so the map never outgrows the leases.
    pub fn bind<'a>(&mut self, bound: impl IntoIterator<Item = &'a (Ipv4Addr, String)>) {
        let bound: Vec<&(Ipv4Addr, String)> = bound.into_iter().collect();
        for (a, _) in &bound {
            self.assign(*a, true);
        }
        self.by_mac.clear();
        for (a, m) in bound {
            if self.by_mac.len() >= MAX_MACS {
                break;
            }
            if let Some(&n) = self.by_addr.get(a) {
                self.by_mac.entry(m.clone()).or_insert(n);
            }
        }
    }

    /// `10.83.0.2 : goto slot0, ...` (empty when no slot is taken).
    pub fn elements(&self) -> String {
        let mut v: Vec<(&Ipv4Addr, &usize)> = self.by_addr.iter().collect();
        v.sort_by_key(|(_, n)| **n);
        let items: Vec<String> = v.iter().map(|(a, n)| element(**a, **n)).collect();
        items.join(", ")
    }

    /// `02:00:00:00:83:02 : goto slot0, ...` (empty when no MAC has a slot).
    pub fn mac_elements(&self) -> String {
        let mut v: Vec<(&String, &usize)> = self.by_mac.iter().collect();
        v.sort_by_key(|(_, n)| **n);
        let items: Vec<String> = v.iter().map(|(m, n)| element(m, **n)).collect();
        items.join(", ")
    }
}

/// One element of the `slots4` (an address) or `slots6` (a MAC) map.
pub fn element(key: impl std::fmt::Display, slot: usize) -> String {
    format!("{key} : goto slot{slot}")
}

/// ` elements = { ... };` for a map's `elements`, or nothing.
fn listed(elements: &str) -> String {
    if elements.is_empty() {
        String::new()
    } else {
        format!(" elements = {{ {elements} }};")
    }
}

/// The sets, the chains and the maps (with `slots`' elements), for the camera port's table.
pub fn ruleset(slots: &Slots) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  map slots4 {{ type ipv4_addr : verdict; size {SLOTS};{} }}\n  map slots6 {{ type ether_addr : verdict; size {MAX_MACS};{} }}",
        listed(&slots.elements()),
        listed(&slots.mac_elements())
    );
    for n in 0..SLOTS {
        let _ = writeln!(
            out,
            "  set seen4_{n} {{ type ipv4_addr . inet_proto . ipv4_addr . inet_service; size {SLOT_SIZE}; flags dynamic; counter; }}
  set seen6_{n} {{ type ether_addr . inet_proto . ipv6_addr . inet_service; size {SLOT_SIZE}; flags dynamic; counter; }}
  chain slot{n} {{
    meta nfproto ipv4 meta l4proto {{ tcp, udp }} update @seen4_{n} {{ ip saddr . meta l4proto . ip daddr . th dport }} drop
    meta nfproto ipv6 meta l4proto {{ tcp, udp }} update @seen6_{n} {{ ether saddr . meta l4proto . ip6 daddr . th dport }} drop
    meta nfproto ipv4 update @over4 {{ ip saddr }} drop
    meta nfproto ipv6 update @over6 {{ ether saddr }} drop
    drop
  }}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn leased_addresses_keep_slots_that_unleased_ones_cannot_take() {
        let mut s = Slots::default();
        let a = |i: u8| Ipv4Addr::new(10, 83, 0, i);
        assert_eq!(s.assign(a(2), true), Some(0));
        assert_eq!(s.assign(a(2), true), None);
        let unleased: Vec<usize> = (10..100).filter_map(|i| s.assign(a(i), false)).collect();
        assert_eq!(unleased.len(), UNLEASED);
        let leased: Vec<usize> = (100..200).filter_map(|i| s.assign(a(i), true)).collect();
        assert_eq!(leased.len(), SLOTS - UNLEASED - 1);
        assert!(
            s.elements()
                .starts_with("10.83.0.2 : goto slot0, 10.83.0.10 : goto slot1")
        );
        let r = ruleset(&s);
        assert_eq!(r.matches("chain slot").count(), SLOTS);
        assert!(r.contains(&format!("set seen4_{} ", SLOTS - 1)));
        assert!(
            ruleset(&Slots::default())
                .contains("map slots6 { type ether_addr : verdict; size 64; }")
        );
        let lease = |m: u32| (a(2), format!("02:c4:00:00:{:02x}:{:02x}", m >> 8, m & 0xff));
        // ATTACKS 46: MAC after MAC through one address; only the current one is mapped.
        for m in 0..1000 {
            s.bind([&lease(m)]);
            assert_eq!(s.mac_elements(), element(&lease(m).1, 0));
        }
        s.bind([&(a(2), "02:00:00:00:83:02".to_string())]);
        assert!(ruleset(&s).contains("elements = { 02:00:00:00:83:02 : goto slot0 }"));
        let many: Vec<(Ipv4Addr, String)> = (0..1000).map(lease).collect();
        s.bind(&many);
        assert_eq!(s.by_mac.len(), MAX_MACS);
        s.bind(&[]);
        assert_eq!(s.mac_elements(), "");
    }
}
