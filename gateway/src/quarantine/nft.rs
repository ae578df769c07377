//! The camera port's firewall: one nftables table, applied with `nft -f` and removed on
//! shutdown, that forwards nothing from or to the camera port (IPv4 and IPv6), lets the
//! cameras reach only the gateway's DHCP, DNS and NTP (and answers to what the gateway
//! asked: streams, ONVIF), drops every router advertisement the gateway would send there,
//! and records every dropped TCP/UDP packet. Broadcasts and multicasts (SSDP searches for
//! a router to open ports on, for one) are recorded at prerouting: the kernel would drop
//! them unseen before the input hook; only DHCP and WS-Discovery pass. So is everything
//! addressed past the gateway: a box that does not forward (Debian's default) would drop
//! it unseen before the forward hook.
//!
//! Recording without a packet capture or NFLOG: dynamic sets keyed by
//! `source . protocol . destination . port` with a counter per element
//! (`update @seen4 { ... }`), read back with one `nft -j list table`. IPv6 attempts are
//! keyed by the MAC they came from instead of their source address (any camera can pick
//! any IPv6 source address, and answer neighbour solicitations for another's), which
//! `neigh.rs` turns into the camera's IPv4 address. Each camera with a slot records into
//! sets of its own (`slots.rs`); the others share `seen4` and `seen6`. The kernel bounds
//! each set (its `size`); when it is full the `update` fails, the rule does not match,
//! and the packet is counted per source in the small `over4`/`over6` sets instead ("other
//! destinations", detail truncated). Packets that are neither TCP nor UDP are counted
//! there too. A source the camera port does not route back to (a spoofed address) is
//! dropped and counted (`spoofed`) first, so spoofed addresses cannot fill `over4` or the
//! report's sources, and so is a packet whose address and MAC are not a lease, or an
//! IPv6 packet from a MAC without a lease (`leases.rs`: one camera blaming another).
//! The gateway's own broadcasts and multicasts on the port (its DHCP answers, its ONVIF
//! probes), which the kernel loops back to it without an Ethernet header, pass
//! unrecorded (ATTACKS 48); a frame from the wire with one of its addresses is spoofed.
//! DNS, DHCP and NTP are served on IPv4 only: IPv6 to the gateway's port 53 or 123 is
//! dropped and recorded like any other attempt. The counters only grow, so each read
//! adds the difference since the previous one.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;

use anyhow::Context as _;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use super::counters::{Dest, Proto};
use super::leases::Binding;
use super::slots;

/// The table this module owns.
pub const TABLE: &str = "latchkey_quarantine";
/// Elements of each `seen` set (distinct source, protocol, destination, port).
pub const SEEN_SIZE: u32 = 4096;
/// Elements of each `over` set (distinct sources).
pub const OVER_SIZE: u32 = 1024;

/// The bound leases as nftables sets: their addresses, and each address with its MAC.
fn lease_sets(bound: &BTreeSet<(Ipv4Addr, String)>) -> String {
    let ips: Vec<String> = bound.iter().map(|(a, _)| a.to_string()).collect();
    let pairs: Vec<String> = bound.iter().map(|(a, m)| format!("{a} . {m}")).collect();
    let elements = |v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!(" elements = {{ {} }};", v.join(", "))
        }
    };
    let macs: BTreeSet<String> = bound.iter().map(|(_, m)| m.clone()).collect();
    let macs: Vec<String> = macs.into_iter().collect();
    format!(
        "  set leased4 {{ type ipv4_addr;{} }}\n  set lease_macs4 {{ type ipv4_addr . ether_addr;{} }}\n  set leased_macs {{ type ether_addr;{} }}\n",
        elements(&ips),
        elements(&pairs),
        elements(&macs)
    )
}

/// The ruleset for camera port `iface` (an interface name: checked by the caller) with
/// its bound leases and slots.
pub fn ruleset(iface: &str, binding: &Binding) -> String {
    let leases = lease_sets(binding.bound());
    let slots = slots::ruleset(&binding.slots);
    // With the DHCP server on, only leases may send (IPv6 only from a leased MAC);
    // without it, leased addresses only with their MAC (the owner set the other cameras'
    // addresses by hand).
    let unleased = if binding.leases_only() {
        format!(
            "    iifname \"{iface}\" ip saddr != 0.0.0.0 ip saddr . ether saddr != @lease_macs4 counter name spoofed drop\n    iifname \"{iface}\" meta nfproto ipv6 ether saddr != @leased_macs counter name spoofed drop\n"
        )
    } else {
        String::new()
    };
    format!(
        r#"table inet {TABLE} {{}}
delete table inet {TABLE}
table inet {TABLE} {{
  counter spoofed {{}}
  set seen4 {{ type ipv4_addr . inet_proto . ipv4_addr . inet_service; size {SEEN_SIZE}; flags dynamic; counter; }}
  set seen6 {{ type ether_addr . inet_proto . ipv6_addr . inet_service; size {SEEN_SIZE}; flags dynamic; counter; }}
  set over4 {{ type ipv4_addr; size {OVER_SIZE}; flags dynamic; counter; }}
  set over6 {{ type ether_addr; size {OVER_SIZE}; flags dynamic; counter; }}
{leases}{slots}  chain record {{
    meta nfproto ipv4 ip saddr vmap @slots4
    meta nfproto ipv6 ether saddr vmap @slots6
    meta nfproto ipv4 meta l4proto {{ tcp, udp }} update @seen4 {{ ip saddr . meta l4proto . ip daddr . th dport }} drop
    meta nfproto ipv6 meta l4proto {{ tcp, udp }} update @seen6 {{ ether saddr . meta l4proto . ip6 daddr . th dport }} drop
    meta nfproto ipv4 update @over4 {{ ip saddr }} drop
    meta nfproto ipv6 update @over6 {{ ether saddr }} drop
    drop
  }}
  chain forward {{
    type filter hook forward priority filter - 10; policy accept;
    iifname "{iface}" jump record
    oifname "{iface}" drop
  }}
  chain prerouting {{
    type filter hook prerouting priority filter - 10; policy accept;
    iifname "{iface}" ip saddr != 0.0.0.0 fib saddr . iif oif missing counter name spoofed drop
    iifname "{iface}" fib saddr type local ether type {{ ip, ip6 }} counter name spoofed drop
    iifname "{iface}" fib saddr type local accept
    iifname "{iface}" ip saddr @leased4 ip saddr . ether saddr != @lease_macs4 counter name spoofed drop
{unleased}    iifname "{iface}" meta pkttype {{ broadcast, multicast }} udp dport != {{ 67, 3702 }} jump record
    iifname "{iface}" fib daddr type != {{ local, broadcast, multicast }} jump record
  }}
  chain input {{
    type filter hook input priority filter - 10; policy accept;
    iifname != "{iface}" accept
    fib saddr type local accept
    ct state established,related accept
    meta l4proto icmp accept
    icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, echo-request, echo-reply, destination-unreachable, packet-too-big, time-exceeded }} accept
    meta nfproto ipv4 udp dport {{ 53, 67, 123 }} accept
    udp sport 3702 accept
    jump record
  }}
  chain output {{
    type filter hook output priority filter - 10; policy accept;
    oifname "{iface}" icmpv6 type nd-router-advert drop
  }}
}}
"#
    )
}

async fn nft(args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running nft (install nftables; the camera port needs it)")?;
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(text.as_bytes()).await?;
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait_with_output())
        .await
        .context("nft did not finish within 10 s")??;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().next().unwrap_or("").trim();
        anyhow::bail!("nft {}: {line}", args.join(" "));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs (or replaces) the table for `iface` with its bound leases and slots.
pub async fn apply(iface: &str, binding: &Binding) -> anyhow::Result<()> {
    run(&ruleset(iface, binding)).await
}

/// Runs `commands` (an `nft -f` script) as one transaction.
pub async fn run(commands: &str) -> anyhow::Result<()> {
    nft(&["-f", "-"], Some(commands)).await.with_context(|| {
        format!(
            "applying the camera port's firewall rules (the gateway needs CAP_NET_ADMIN{})",
            super::SERVICE_HINT
        )
    })?;
    Ok(())
}

/// Removes the table (the camera port is off again).
pub async fn remove() -> anyhow::Result<()> {
    nft(&["delete", "table", "inet", TABLE], None).await?;
    Ok(())
}

/// Packet counters by element, as read from the sets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Per source and destination.
    pub seen: HashMap<(IpAddr, Dest), u64>,
    /// Per source, packets not in `seen`.
    pub over: HashMap<IpAddr, u64>,
}

/// A record's source: an IPv4 address, or the MAC an IPv6 packet came from (as its
/// EUI-64 link-local address, [`super::neigh::mac_address`]).
fn source(s: &str) -> Option<IpAddr> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Some(IpAddr::V4(a)),
        Ok(IpAddr::V6(_)) => None,
        Err(_) => super::neigh::mac_address(s),
    }
}

fn seen_into(elements: Vec<(Value, u64)>, into: &mut HashMap<(IpAddr, Dest), u64>) {
    for (val, packets) in elements {
        let Some(parts) = val.get("concat").and_then(Value::as_array) else {
            continue;
        };
        let [src, proto, dst, port] = parts.as_slice() else {
            continue;
        };
        let (Some(src), Some(proto), Some(dst), Some(port)) = (
            src.as_str().and_then(source),
            proto.as_str().and_then(Proto::parse),
            dst.as_str().and_then(|s| s.parse::<IpAddr>().ok()),
            port.as_u64().and_then(|p| u16::try_from(p).ok()),
        ) else {
            continue;
        };
        let d = Dest {
            proto,
            addr: dst,
            port,
        };
        *into.entry((src, d)).or_default() += packets;
    }
}

fn over_into(elements: Vec<(Value, u64)>, into: &mut HashMap<IpAddr, u64>) {
    for (val, packets) in elements {
        if let Some(src) = val.as_str().and_then(source) {
            *into.entry(src).or_default() += packets;
        }
    }
}

/// The `(value, packets)` of one `{"set": ...}` object's elements.
fn set_elements(o: &Value) -> Vec<(Value, u64)> {
    let elems = o
        .get("set")
        .and_then(|s| s.get("elem"))
        .and_then(Value::as_array);
    elems
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.get("elem")?;
            let packets = e.get("counter")?.get("packets")?.as_u64()?;
            Some((e.get("val")?.clone(), packets))
        })
        .collect()
}

/// Every `seen` and `over` set of a `nft -j list table` listing, added up.
pub fn parse_table(json: &str) -> Reading {
    let mut r = Reading::default();
    let Ok(v) = serde_json::from_str::<Value>(json) else {
        return r;
    };
    for set in v
        .get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = set
            .get("set")
            .and_then(|s| s.get("name"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        if name.starts_with("seen") {
            seen_into(set_elements(set), &mut r.seen);
        } else if name.starts_with("over") {
            over_into(set_elements(set), &mut r.over);
        }
    }
    r
}

/// Reads the whole table's records (one `nft` run).
pub async fn read() -> anyhow::Result<Reading> {
    let out = nft(&["-j", "list", "table", "inet", TABLE], None).await?;
    Ok(parse_table(&out))
}

/// What `now` adds to `before` (counters only grow while the table lives).
pub fn delta(before: &Reading, now: &Reading) -> Reading {
    let mut out = Reading::default();
    for (k, v) in &now.seen {
        let d = v.saturating_sub(before.seen.get(k).copied().unwrap_or(0));
        if d > 0 {
            out.seen.insert(*k, d);
        }
    }
    for (k, v) in &now.over {
        let d = v.saturating_sub(before.over.get(k).copied().unwrap_or(0));
        if d > 0 {
            out.over.insert(*k, d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn table_listings_parse_and_deltas_count_only_new_packets() {
        let table = r#"{"nftables": [{"metainfo": {}}, {"table": {"name": "t"}},
          {"set": {"name": "seen4", "elem": [
          {"elem": {"val": {"concat": ["10.78.0.2", "udp", "203.0.113.50", 32100]}, "counter": {"packets": 7, "bytes": 300}}},
          {"elem": {"val": {"concat": ["<script>", "udp", "1.2.3.4", 1]}, "counter": {"packets": 9, "bytes": 1}}}
          ]}},
          {"set": {"name": "seen4_3", "elem": [
          {"elem": {"val": {"concat": ["10.78.0.2", "udp", "203.0.113.50", 32100]}, "counter": {"packets": 1, "bytes": 30}}},
          {"elem": {"val": {"concat": ["10.78.0.2", "tcp", "198.51.100.7", 443]}, "counter": {"packets": 2, "bytes": 120}}}
          ]}},
          {"set": {"name": "seen6", "elem": [
          {"elem": {"val": {"concat": ["02:00:00:00:79:02", "udp", "2001:db8:50::50", 32100]}, "counter": {"packets": 4, "bytes": 300}}},
          {"elem": {"val": {"concat": ["2001:db8::1", "udp", "2001:db8:50::50", 32100]}, "counter": {"packets": 5, "bytes": 300}}}
          ]}},
          {"set": {"name": "over6", "elem": [{"elem": {"val": "02:00:00:00:79:02", "counter": {"packets": 6, "bytes": 60}}}]}},
          {"set": {"name": "leased4", "elem": ["10.78.0.2"]}},
          {"map": {"name": "slots4", "elem": [["10.78.0.2", {"goto": {"target": "slot3"}}]]}},
          {"set": {"name": "over4", "elem": [{"elem": {"val": "10.78.0.2", "counter": {"packets": 3, "bytes": 60}}}]}}]}"#;
        let a = parse_table(table);
        assert_eq!(a.seen.len(), 3, "{a:?}");
        let mac: IpAddr = "fe80::ff:fe00:7902".parse().unwrap();
        let p2p6 = Dest {
            proto: Proto::Udp,
            addr: "2001:db8:50::50".parse().unwrap(),
            port: 32100,
        };
        assert_eq!(a.seen[&(mac, p2p6)], 4);
        assert_eq!(a.over[&mac], 6);
        let cam: IpAddr = "10.78.0.2".parse().unwrap();
        let p2p = Dest {
            proto: Proto::Udp,
            addr: "203.0.113.50".parse().unwrap(),
            port: 32100,
        };
        assert_eq!(a.seen[&(cam, p2p)], 8);
        assert_eq!(a.over[&cam], 3);
        let mut b = a.clone();
        b.seen.insert((cam, p2p), 10);
        let d = delta(&a, &b);
        assert_eq!(d.seen.len(), 1);
        assert_eq!(d.seen[&(cam, p2p)], 2);
        assert!(d.over.is_empty());
        assert_eq!(parse_table("not json"), Reading::default());
    }

    #[test]
    fn the_ruleset_names_the_port_in_every_hook() {
        let r = ruleset("cam0", &Binding::new(&[], None));
        assert_eq!(r.matches("\"cam0\"").count(), 10);
        assert!(r.contains("set leased4 { type ipv4_addr; }"), "{r}");
        let lease = super::super::Lease {
            mac: "02:00:00:00:83:0A".into(),
            address: "10.83.0.2".parse().unwrap(),
            camera: None,
        };
        let leases_only = Binding::new(&[lease], Some("/nonexistent".into()));
        let r = ruleset("cam0", &leases_only);
        assert_eq!(r.matches("\"cam0\"").count(), 12);
        assert!(
            r.contains("set leased_macs { type ether_addr; elements = { 02:00:00:00:83:0a }; }"),
            "{r}"
        );
        assert!(
            r.contains("elements = { 10.83.0.2 . 02:00:00:00:83:0a }"),
            "{r}"
        );
        assert!(r.contains("elements = { 10.83.0.2 : goto slot0 }"), "{r}");
        assert!(
            r.contains("elements = { 02:00:00:00:83:0a : goto slot0 }"),
            "{r}"
        );
        assert!(r.contains("nd-router-advert drop"));
        assert!(r.contains("fib saddr type local accept"));
        assert!(r.contains("meta nfproto ipv4 udp dport { 53, 67, 123 } accept"));
    }
}
