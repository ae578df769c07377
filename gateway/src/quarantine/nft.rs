//! The camera port's firewall: one nftables table, applied with `nft -f` and removed on
//! shutdown, that forwards nothing from or to the camera port (IPv4 and IPv6), lets the
//! cameras reach only the gateway's DHCP, DNS and NTP (and answers to what the gateway
//! asked: streams, ONVIF), drops every router advertisement the gateway would send there,
//! and records every dropped TCP/UDP packet. Broadcasts and multicasts (SSDP searches for
//! a router to open ports on, for one) are recorded at prerouting: the kernel would drop
//! them unseen before the input hook; only DHCP and WS-Discovery pass.
//!
//! Recording without a packet capture or NFLOG: a dynamic set keyed by
//! `source . protocol . destination . port` with a counter per element
//! (`update @seen4 { ... }`), read back with `nft -j list set`. The kernel bounds it (its
//! `size`); when it is full the `update` fails, the rule does not match, and the packet
//! is counted per source in the small `over4` set instead ("other destinations"). Packets
//! that are neither TCP nor UDP are counted there too. The counters only grow, so each
//! read adds the difference since the previous one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::Stdio;

use anyhow::Context as _;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use super::counters::{Dest, Proto};

/// The table this module owns.
pub const TABLE: &str = "latchkey_quarantine";
/// Elements of each `seen` set (distinct source, protocol, destination, port).
pub const SEEN_SIZE: u32 = 4096;
/// Elements of each `over` set (distinct sources).
pub const OVER_SIZE: u32 = 1024;

/// The ruleset for camera port `iface` (an interface name: checked by the caller).
pub fn ruleset(iface: &str) -> String {
    format!(
        r#"table inet {TABLE} {{}}
delete table inet {TABLE}
table inet {TABLE} {{
  set seen4 {{ type ipv4_addr . inet_proto . ipv4_addr . inet_service; size {SEEN_SIZE}; flags dynamic; counter; }}
  set seen6 {{ type ipv6_addr . inet_proto . ipv6_addr . inet_service; size {SEEN_SIZE}; flags dynamic; counter; }}
  set over4 {{ type ipv4_addr; size {OVER_SIZE}; flags dynamic; counter; }}
  set over6 {{ type ipv6_addr; size {OVER_SIZE}; flags dynamic; counter; }}
  chain record {{
    meta nfproto ipv4 meta l4proto {{ tcp, udp }} update @seen4 {{ ip saddr . meta l4proto . ip daddr . th dport }} drop
    meta nfproto ipv6 meta l4proto {{ tcp, udp }} update @seen6 {{ ip6 saddr . meta l4proto . ip6 daddr . th dport }} drop
    meta nfproto ipv4 update @over4 {{ ip saddr }} drop
    meta nfproto ipv6 update @over6 {{ ip6 saddr }} drop
    drop
  }}
  chain forward {{
    type filter hook forward priority filter - 10; policy accept;
    iifname "{iface}" jump record
    oifname "{iface}" drop
  }}
  chain prerouting {{
    type filter hook prerouting priority filter - 10; policy accept;
    iifname "{iface}" meta pkttype {{ broadcast, multicast }} udp dport != {{ 67, 3702 }} jump record
  }}
  chain input {{
    type filter hook input priority filter - 10; policy accept;
    iifname != "{iface}" accept
    ct state established,related accept
    meta l4proto icmp accept
    icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, echo-request, echo-reply, destination-unreachable, packet-too-big, time-exceeded }} accept
    udp dport {{ 53, 67, 123 }} accept
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

/// Installs (or replaces) the table for `iface`.
pub async fn apply(iface: &str) -> anyhow::Result<()> {
    nft(&["-f", "-"], Some(&ruleset(iface)))
        .await
        .context("applying the camera port's firewall rules (the gateway needs CAP_NET_ADMIN)")?;
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

/// Parses `nft -j list set` output for a `seen` set.
pub fn parse_seen(json: &str, into: &mut HashMap<(IpAddr, Dest), u64>) {
    for (val, packets) in elements(json) {
        let Some(parts) = val.get("concat").and_then(Value::as_array) else {
            continue;
        };
        let [src, proto, dst, port] = parts.as_slice() else {
            continue;
        };
        let (Some(src), Some(proto), Some(dst), Some(port)) = (
            src.as_str().and_then(|s| s.parse::<IpAddr>().ok()),
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

/// Parses `nft -j list set` output for an `over` set.
pub fn parse_over(json: &str, into: &mut HashMap<IpAddr, u64>) {
    for (val, packets) in elements(json) {
        if let Some(src) = val.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
            *into.entry(src).or_default() += packets;
        }
    }
}

fn elements(json: &str) -> Vec<(Value, u64)> {
    let Ok(v) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let sets = v.get("nftables").and_then(Value::as_array);
    sets.into_iter()
        .flatten()
        .filter_map(|o| o.get("set")?.get("elem")?.as_array())
        .flatten()
        .filter_map(|e| {
            let e = e.get("elem")?;
            let packets = e.get("counter")?.get("packets")?.as_u64()?;
            Some((e.get("val")?.clone(), packets))
        })
        .collect()
}

/// Reads all four sets.
pub async fn read() -> anyhow::Result<Reading> {
    let mut r = Reading::default();
    for set in ["seen4", "seen6"] {
        let out = nft(&["-j", "list", "set", "inet", TABLE, set], None).await?;
        parse_seen(&out, &mut r.seen);
    }
    for set in ["over4", "over6"] {
        let out = nft(&["-j", "list", "set", "inet", TABLE, set], None).await?;
        parse_over(&out, &mut r.over);
    }
    Ok(r)
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
    fn set_listings_parse_and_deltas_count_only_new_packets() {
        let seen = r#"{"nftables": [{"metainfo": {}}, {"set": {"name": "seen4", "elem": [
          {"elem": {"val": {"concat": ["10.78.0.2", "udp", "203.0.113.50", 32100]}, "counter": {"packets": 7, "bytes": 300}}},
          {"elem": {"val": {"concat": ["10.78.0.2", "tcp", "198.51.100.7", 443]}, "counter": {"packets": 2, "bytes": 120}}},
          {"elem": {"val": {"concat": ["<script>", "udp", "1.2.3.4", 1]}, "counter": {"packets": 9, "bytes": 1}}}
        ]}}]}"#;
        let over = r#"{"nftables": [{"set": {"elem": [{"elem": {"val": "10.78.0.2", "counter": {"packets": 3, "bytes": 60}}}]}}]}"#;
        let mut a = Reading::default();
        parse_seen(seen, &mut a.seen);
        parse_over(over, &mut a.over);
        assert_eq!(a.seen.len(), 2);
        let cam: IpAddr = "10.78.0.2".parse().unwrap();
        let p2p = Dest {
            proto: Proto::Udp,
            addr: "203.0.113.50".parse().unwrap(),
            port: 32100,
        };
        assert_eq!(a.seen[&(cam, p2p)], 7);
        assert_eq!(a.over[&cam], 3);
        let mut b = a.clone();
        b.seen.insert((cam, p2p), 10);
        let d = delta(&a, &b);
        assert_eq!(d.seen.len(), 1);
        assert_eq!(d.seen[&(cam, p2p)], 3);
        assert!(d.over.is_empty());
        parse_seen("not json", &mut b.seen);
    }

    #[test]
    fn the_ruleset_names_the_port_in_every_hook() {
        let r = ruleset("cam0");
        assert_eq!(r.matches("\"cam0\"").count(), 5);
        assert!(r.contains("nd-router-advert drop"));
    }
}
