//! One camera, one line in the report, whichever IP version it used: the camera port's
//! neighbour table (`ip -j neigh show dev IFACE`) gives each address's MAC, and an IPv6
//! address whose MAC also has an IPv4 address is tallied under that IPv4 address (the one
//! the camera's URL and fixed lease name).

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

/// IPv6 address → the IPv4 address of the same MAC, from `ip -j neigh` output.
pub fn aliases(json: &str) -> HashMap<IpAddr, IpAddr> {
    let Ok(Value::Array(rows)) = serde_json::from_str::<Value>(json) else {
        return HashMap::new();
    };
    let pairs: Vec<(IpAddr, String)> = rows
        .iter()
        .filter_map(|r| {
            let ip = r.get("dst")?.as_str()?.parse().ok()?;
            let mac = r.get("lladdr")?.as_str()?.to_ascii_lowercase();
            Some((ip, mac))
        })
        .collect();
    let v4_of: HashMap<&str, IpAddr> = pairs
        .iter()
        .filter(|(ip, _)| ip.is_ipv4())
        .map(|(ip, mac)| (mac.as_str(), *ip))
        .collect();
    pairs
        .iter()
        .filter(|(ip, _)| ip.is_ipv6())
        .filter_map(|(ip, mac)| Some((*ip, *v4_of.get(mac.as_str())?)))
        .collect()
}

/// Reads the neighbour table of `iface` (empty on any failure: addresses then stand alone).
pub async fn read(iface: &str) -> HashMap<IpAddr, IpAddr> {
    let out = Command::new("ip")
        .args(["-j", "neigh", "show", "dev", iface])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(5), out).await {
        Ok(Ok(o)) if o.status.success() => aliases(&String::from_utf8_lossy(&o.stdout)),
        _ => HashMap::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ipv6_addresses_follow_the_ipv4_address_of_their_mac() {
        let json = r#"[{"dst":"10.79.0.2","dev":"cam0","lladdr":"02:00:00:00:79:02","state":["REACHABLE"]},
            {"dst":"2001:db8:79::2","dev":"cam0","lladdr":"02:00:00:00:79:02","state":["STALE"]},
            {"dst":"fe80::9","dev":"cam0","lladdr":"02:00:00:00:79:09","state":["STALE"]},
            {"dst":"10.79.0.3","dev":"cam0","state":["FAILED"]}]"#;
        let a = aliases(json);
        assert_eq!(a.len(), 1);
        let v6: IpAddr = "2001:db8:79::2".parse().unwrap();
        assert_eq!(a[&v6].to_string(), "10.79.0.2");
        assert!(aliases("not json").is_empty());
    }
}
