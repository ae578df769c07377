//! One camera, one line in the report, whichever IP version it used. IPv6 attempts are
//! recorded by the MAC they came from (`nft.rs`), written as that MAC's EUI-64 link-local
//! address ([`mac_address`]); here each such MAC becomes the camera's IPv4 address: its
//! lease's (bound to the MAC, `leases.rs`) or else the camera port's neighbour table's
//! (`ip -j neigh show dev IFACE`), never for a leased address (any camera can write the
//! neighbour table with an ARP request naming another's address). A MAC with neither
//! stays as its link-local address.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

/// `fe80::` + the MAC's modified EUI-64 (`02:00:00:00:79:02` → `fe80::ff:fe00:7902`), for
/// a checked `aa:bb:cc:dd:ee:ff`.
pub fn mac_address(mac: &str) -> Option<IpAddr> {
    if !super::valid_mac(mac) {
        return None;
    }
    let b: Vec<u8> = mac
        .split(':')
        .filter_map(|p| u8::from_str_radix(p, 16).ok())
        .collect();
    let [a, b1, c, d, e, f] = b.as_slice() else {
        return None;
    };
    let seg = |x: u8, y: u8| u16::from_be_bytes([x, y]);
    Some(IpAddr::V6(Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        seg(a ^ 0x02, *b1),
        seg(*c, 0xff),
        seg(0xfe, *d),
        seg(*e, *f),
    )))
}

/// A MAC's link-local address → an IPv4 address of the same MAC, from `ip -j neigh`
/// output.
pub fn aliases(json: &str) -> HashMap<IpAddr, IpAddr> {
    let Ok(Value::Array(rows)) = serde_json::from_str::<Value>(json) else {
        return HashMap::new();
    };
    rows.iter()
        .filter_map(|r| {
            let ip: Ipv4Addr = r.get("dst")?.as_str()?.parse().ok()?;
            let mac = r.get("lladdr")?.as_str()?;
            Some((mac_address(mac)?, IpAddr::V4(ip)))
        })
        .collect()
}

/// The aliases for `iface`: the leases in `bound` first, then the neighbour table (empty
/// on any failure: those addresses then stand alone).
pub async fn read(iface: &str, bound: &BTreeSet<(Ipv4Addr, String)>) -> HashMap<IpAddr, IpAddr> {
    let out = Command::new("ip")
        .args(["-j", "neigh", "show", "dev", iface])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let mut a = match tokio::time::timeout(Duration::from_secs(5), out).await {
        Ok(Ok(o)) if o.status.success() => aliases(&String::from_utf8_lossy(&o.stdout)),
        _ => HashMap::new(),
    };
    merge_leases(&mut a, bound);
    a
}

/// Puts the leases in `bound` over the neighbour table's aliases `a`: a leased address is
/// only ever its lease's MAC's (ATTACKS 49: any camera writes the neighbour table with an
/// ARP request naming another camera's address as its own).
pub fn merge_leases(a: &mut HashMap<IpAddr, IpAddr>, bound: &BTreeSet<(Ipv4Addr, String)>) {
    let leased: std::collections::HashSet<IpAddr> =
        bound.iter().map(|(ip, _)| IpAddr::V4(*ip)).collect();
    a.retain(|_, v| !leased.contains(v));
    for (ip, mac) in bound {
        if let Some(ll) = mac_address(mac) {
            a.insert(ll, IpAddr::V4(*ip));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn macs_become_link_local_addresses_and_follow_their_ipv4_address() {
        let ll = mac_address("02:00:00:00:79:02").unwrap();
        assert_eq!(ll.to_string(), "fe80::ff:fe00:7902");
        assert_eq!(
            mac_address("aa:BB:cc:dd:ee:ff").unwrap().to_string(),
            "fe80::a8bb:ccff:fedd:eeff"
        );
        assert_eq!(mac_address("<script>"), None);
        let json = r#"[{"dst":"10.79.0.2","dev":"cam0","lladdr":"02:00:00:00:79:02","state":["REACHABLE"]},
            {"dst":"2001:db8:79::2","dev":"cam0","lladdr":"02:00:00:00:79:02","state":["STALE"]},
            {"dst":"fe80::9","dev":"cam0","lladdr":"02:00:00:00:79:09","state":["STALE"]},
            {"dst":"10.79.0.3","dev":"cam0","state":["FAILED"]},
            {"dst":"10.79.0.4","dev":"cam0","lladdr":"nonsense"}]"#;
        let a = aliases(json);
        assert_eq!(a.len(), 1);
        assert_eq!(a[&ll].to_string(), "10.79.0.2");
        assert!(aliases("not json").is_empty());
        // A MAC that claimed a leased address in the neighbour table stands alone.
        let evil = r#"[{"dst":"10.79.0.2","dev":"cam0","lladdr":"02:00:00:00:79:09"}]"#;
        let mut a = aliases(evil);
        let bound = BTreeSet::from([("10.79.0.2".parse().unwrap(), "02:00:00:00:79:02".into())]);
        merge_leases(&mut a, &bound);
        assert_eq!(a.len(), 1);
        assert_eq!(a[&ll].to_string(), "10.79.0.2");
    }
}
