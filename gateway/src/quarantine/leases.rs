//! Every lease bound to its MAC (ATTACKS 43): the fixed leases from the config and, while
//! the gateway runs the DHCP server, the dynamic ones dnsmasq hands out (its lease file,
//! watched every [`WATCH_EVERY`]). The camera port's table drops and counts (`spoofed`)
//! a packet from a leased address with another MAC, and with the DHCP server on, a packet
//! whose address and MAC are not a lease at all (or an IPv6 packet from a MAC without a
//! lease), so one camera cannot put its attempts in another camera's report by taking
//! its address or its MAC. Each leased address gets its own drop record (`slots.rs`).
//! Everything read from the lease file is checked (an address, a MAC) before it reaches
//! nft. A lease is bound a moment (at most [`WATCH_EVERY`]) after dnsmasq writes it: a
//! camera's packets in that moment are dropped and counted as no lease's.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::Lease;
use super::slots::{self, Slots};

/// How often the lease file is checked for changes (a stat; read only when it changed).
pub const WATCH_EVERY: Duration = Duration::from_millis(250);
/// Most dynamic leases bound (dnsmasq's range is smaller unless the owner widened it).
const MAX_DYNAMIC: usize = 1024;

/// `(address, mac)` of each lease in dnsmasq's lease file (`expiry mac ip host id` a line).
pub fn parse(text: &str) -> Vec<(Ipv4Addr, String)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, mac, ip) = (f.next()?, f.next()?, f.next()?);
            let ip = ip.parse().ok()?;
            super::valid_mac(mac).then(|| (ip, mac.to_ascii_lowercase()))
        })
        .take(MAX_DYNAMIC)
        .collect()
}

/// The leases bound in the table, and the slots of the addresses it records apart.
#[derive(Debug)]
pub struct Binding {
    fixed: BTreeSet<(Ipv4Addr, String)>,
    file: Option<PathBuf>,
    stamp: Option<(SystemTime, u64)>,
    /// The last commands failed: the next [`Binding::refresh`] rewrites all again.
    unapplied: bool,
    bound: BTreeSet<(Ipv4Addr, String)>,
    /// Who records into which slot.
    pub slots: Slots,
}

impl Binding {
    /// The fixed `leases` (MACs checked by the caller), and dnsmasq's lease `file` when
    /// the gateway runs the DHCP server (then only leases may send).
    pub fn new(leases: &[Lease], file: Option<PathBuf>) -> Self {
        let fixed: BTreeSet<(Ipv4Addr, String)> = leases
            .iter()
            .filter(|l| super::valid_mac(&l.mac))
            .map(|l| (l.address, l.mac.to_ascii_lowercase()))
            .collect();
        let mut b = Self {
            bound: fixed.clone(),
            fixed,
            file,
            stamp: None,
            unapplied: false,
            slots: Slots::default(),
        };
        let _ = b.read_file();
        b.slots.bind(&b.bound);
        b
    }

    /// Only leases may send (the gateway hands out the addresses).
    pub fn leases_only(&self) -> bool {
        self.file.is_some()
    }

    /// The bound `(address, mac)` pairs.
    pub fn bound(&self) -> &BTreeSet<(Ipv4Addr, String)> {
        &self.bound
    }

    /// Re-reads the lease file if it changed; whether the bound leases changed.
    fn read_file(&mut self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        let stamp = std::fs::metadata(file)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if stamp == self.stamp {
            return false;
        }
        self.stamp = stamp;
        // Lossy: a byte dnsmasq copied from a camera's DHCP hostname cannot unbind every
        // lease in the file.
        let text = std::fs::read(file).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let mut bound = self.fixed.clone();
        bound.extend(parse(&text));
        let changed = bound != self.bound;
        self.bound = bound;
        changed
    }

    /// The nft commands that bring the table up to date with the lease file, if it changed.
    pub fn refresh(&mut self, table: &str) -> Option<String> {
        if !self.read_file() && !self.unapplied {
            return None;
        }
        self.unapplied = false;
        let mut cmds = format!(
            "flush set inet {table} leased4\nflush set inet {table} lease_macs4\nflush set inet {table} leased_macs\n"
        );
        if !self.bound.is_empty() {
            let ips: Vec<String> = self.bound.iter().map(|(a, _)| a.to_string()).collect();
            let pairs: Vec<String> = self
                .bound
                .iter()
                .map(|(a, m)| format!("{a} . {m}"))
                .collect();
            let macs: BTreeSet<&str> = self.bound.iter().map(|(_, m)| m.as_str()).collect();
            let macs: Vec<&str> = macs.into_iter().collect();
            cmds.push_str(&format!(
                "add element inet {table} leased4 {{ {} }}\nadd element inet {table} lease_macs4 {{ {} }}\nadd element inet {table} leased_macs {{ {} }}\n",
                ips.join(", "),
                pairs.join(", "),
                macs.join(", ")
            ));
        }
        // The slot maps are rewritten whole in the same transaction: a failed update
        // leaves nothing behind that the next one would have to know about.
        self.slots.bind(&self.bound);
        for (map, elements) in [
            ("slots4", self.slots.elements()),
            ("slots6", self.slots.mac_elements()),
        ] {
            cmds.push_str(&format!("flush map inet {table} {map}\n"));
            if !elements.is_empty() {
                cmds.push_str(&format!(
                    "add element inet {table} {map} {{ {elements} }}\n"
                ));
            }
        }
        Some(cmds)
    }

    /// The commands from [`Binding::refresh`] or [`Binding::assign_seen`] failed: the next
    /// refresh brings the whole table up to date again, changed file or not.
    pub fn failed(&mut self) {
        self.unapplied = true;
    }

    /// The nft commands giving slots to `sources` the record showed without one.
    pub fn assign_seen(&mut self, table: &str, sources: impl Iterator<Item = IpAddr>) -> String {
        let v4 = sources.filter_map(|s| match s {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        });
        let new: Vec<String> = v4
            .filter_map(|a| Some(slots::element(a, self.slots.assign(a, false)?)))
            .collect();
        if new.is_empty() {
            String::new()
        } else {
            format!("add element inet {table} slots4 {{ {} }}\n", new.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_lease_file_is_checked_and_changes_rebind() {
        let text = "1764700000 02:00:00:00:83:02 10.83.0.150 cam *\n\
                    1764700000 02:00:00:00:83:0G 10.83.0.151 bad *\n\
                    1764700000 02:00:00:00:83:04 10.83.0.152; * *\n\
                    garbage\n\
                    1764700000 02:00:00:00:83:05 10.83.0.153\n";
        let p = parse(text);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].1, "02:00:00:00:83:02");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("leases");
        let fixed = [Lease {
            mac: "02:00:00:00:83:0A".into(),
            address: "10.83.0.2".parse().unwrap(),
            camera: None,
        }];
        let mut b = Binding::new(&fixed, Some(file.clone()));
        assert!(b.leases_only());
        assert_eq!(b.bound().len(), 1);
        assert!(b.refresh("t").is_none());
        std::fs::write(&file, text).unwrap();
        let cmds = b.refresh("t").unwrap();
        assert!(cmds.contains("flush set inet t lease_macs4"), "{cmds}");
        assert!(cmds.contains("10.83.0.150 . 02:00:00:00:83:02"), "{cmds}");
        assert!(cmds.contains("10.83.0.2 . 02:00:00:00:83:0a"), "{cmds}");
        assert!(
            cmds.contains(
                "flush map inet t slots4\nadd element inet t slots4 { 10.83.0.2 : goto slot0, 10.83.0.150 : goto slot1, 10.83.0.153 : goto slot2 }"
            ),
            "{cmds}"
        );
        assert!(
            cmds.contains(
                "slots6 { 02:00:00:00:83:0a : goto slot0, 02:00:00:00:83:02 : goto slot1, 02:00:00:00:83:05 : goto slot2 }"
            ),
            "{cmds}"
        );
        assert!(
            cmds.contains(
                "leased_macs { 02:00:00:00:83:02, 02:00:00:00:83:05, 02:00:00:00:83:0a }"
            ),
            "{cmds}"
        );
        assert!(!cmds.contains("10.83.0.151"), "{cmds}");
        assert!(b.refresh("t").is_none());
        b.failed();
        assert_eq!(b.refresh("t").as_deref(), Some(cmds.as_str()));
        assert!(b.refresh("t").is_none());
        let seen = ["10.83.0.9".parse().unwrap(), "fe80::1".parse().unwrap()];
        assert_eq!(
            b.assign_seen("t", seen.into_iter()),
            "add element inet t slots4 { 10.83.0.9 : goto slot3 }\n"
        );
        assert!(!Binding::new(&fixed, None).leases_only());
        // A hostname byte that is not UTF-8 unbinds nothing; a lease gone loses its MAC.
        let mut odd = b"1764700000 02:00:00:00:83:02 10.83.0.150 cam\xff\x1b[2J *\n".to_vec();
        odd.extend_from_slice(b"1764700000 02:00:00:00:83:07 10.83.0.153 x *\n");
        std::fs::write(&file, odd).unwrap();
        let cmds = b.refresh("t").unwrap();
        assert!(cmds.contains("10.83.0.150 . 02:00:00:00:83:02"), "{cmds}");
        assert!(cmds.contains("02:00:00:00:83:07 : goto slot2"), "{cmds}");
        assert!(!cmds.contains("83:05"), "{cmds}");
    }
}
