//! Rules for the owner's own router, for homes where the cameras stay on the main LAN:
//! each camera may talk to the gateway only (by IP and by MAC), with a counter per camera,
//! as an nftables table or OpenWrt firewall rules (`latchkey cameras lockdown --print`).
//!
//! The plan (which cameras, their addresses and MACs, the gateway's address towards
//! each) is made by the daemon; rendering is pure. Camera names are checked ids (`a-z 0-9
//! - _`) and MACs are checked before they are written into rules.

use std::net::{IpAddr, UdpSocket};

use serde::{Deserialize, Serialize};

/// One camera to lock in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedCamera {
    /// Its name (a camera id).
    pub name: String,
    /// Its address.
    pub address: IpAddr,
    /// Its MAC, when the gateway has seen it (the neighbour table).
    pub mac: Option<String>,
    /// The gateway's address towards it.
    pub gateway: IpAddr,
}

/// Every camera the rules cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Cameras with a literal address.
    pub cameras: Vec<LockedCamera>,
    /// Cameras left out, with why.
    pub skipped: Vec<String>,
}

/// The gateway's own address on the way to `ip` (a route lookup; nothing is sent).
pub fn local_address_towards(ip: IpAddr) -> Option<IpAddr> {
    let bind: IpAddr = if ip.is_ipv4() {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u16; 8])
    };
    let s = UdpSocket::bind((bind, 0)).ok()?;
    s.connect((ip, 9)).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// The MAC of `ip` in the kernel's ARP table (`/proc/net/arp`), if complete.
pub fn mac_of(ip: IpAddr, arp_table: &str) -> Option<String> {
    let want = ip.to_string();
    arp_table.lines().skip(1).find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        let (addr, flags, mac) = (cols.first()?, cols.get(2)?, cols.get(3)?);
        let mac = mac.to_ascii_lowercase();
        (*addr == want && *flags != "0x0" && super::valid_mac(&mac) && mac != "00:00:00:00:00:00")
            .then_some(mac)
    })
}

fn counter(name: &str) -> String {
    format!("cam_{}", name.replace('-', "_"))
}

fn ip_kw(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "ip" } else { "ip6" }
}

/// The plan as an nftables table for a Linux router.
pub fn nftables(plan: &Plan) -> String {
    let mut counters = String::new();
    let mut fwd = String::new();
    let mut input = String::new();
    for c in &plan.cameras {
        let n = counter(&c.name);
        let (k, ip, gw) = (ip_kw(&c.address), c.address, c.gateway);
        counters.push_str(&format!(
            "  counter {n} {{ comment \"camera {}\"; }}\n",
            c.name
        ));
        fwd.push_str(&format!(
            "    {k} saddr {ip} {k} daddr {gw} accept\n    {k} saddr {ip} counter name \"{n}\" drop\n    {k} daddr {ip} {k} saddr != {gw} counter name \"{n}\" drop\n"
        ));
        input.push_str(&format!(
            "    {k} saddr {ip} {k} daddr {gw} accept\n    {k} saddr {ip} udp dport 67 accept\n    {k} saddr {ip} counter name \"{n}\" drop\n"
        ));
        if let Some(mac) = &c.mac {
            fwd.push_str(&format!(
                "    ether saddr {mac} {k} daddr {gw} accept\n    ether saddr {mac} counter name \"{n}\" drop\n"
            ));
            input.push_str(&format!(
                "    ether saddr {mac} {k} daddr {gw} accept\n    ether saddr {mac} udp dport 67 accept\n    ether saddr {mac} counter name \"{n}\" drop\n"
            ));
        }
    }
    format!(
        "# Latchkey camera lockdown: each camera may talk to the Latchkey gateway only.\n\
         # Save as /etc/nftables.d/latchkey-lockdown.nft (or include it from /etc/nftables.conf)\n\
         # on the router the cameras' traffic passes through, then: nft -f /etc/nftables.d/latchkey-lockdown.nft\n\
         # Dropped packets per camera: nft list counters table inet latchkey_lockdown\n\
         table inet latchkey_lockdown {{}}\n\
         delete table inet latchkey_lockdown\n\
         table inet latchkey_lockdown {{\n{counters}\
         \x20 chain forward {{\n    type filter hook forward priority filter - 5; policy accept;\n{fwd}  }}\n\
         \x20 chain input {{\n    type filter hook input priority filter - 5; policy accept;\n    ct state established,related accept\n{input}  }}\n}}\n{}",
        skipped_note(plan, "# ")
    )
}

/// The plan as OpenWrt firewall rules (fw4 counts every rule's packets).
pub fn openwrt(plan: &Plan) -> String {
    let mut out = String::from(
        "# Latchkey camera lockdown for OpenWrt: each camera may talk to the Latchkey gateway only.\n\
         # Append to /etc/config/firewall on the router, then: /etc/init.d/firewall restart\n\
         # Dropped packets per camera: nft list chain inet fw4 forward_lan (one counter per rule)\n",
    );
    for c in &plan.cameras {
        let mac = c
            .mac
            .as_ref()
            .map(|m| format!("\toption src_mac '{m}'\n"))
            .unwrap_or_default();
        let fam = if c.address.is_ipv4() { "ipv4" } else { "ipv6" };
        let (n, ip, gw) = (&c.name, c.address, c.gateway);
        out.push_str(&format!(
            "\nconfig rule\n\toption name 'latchkey-{n}-dhcp'\n\toption src 'lan'\n\toption src_ip '{ip}'\n{mac}\toption proto 'udp'\n\toption dest_port '67'\n\toption target 'ACCEPT'\n\
             \nconfig rule\n\toption name 'latchkey-{n}-to-router'\n\toption src 'lan'\n\toption src_ip '{ip}'\n{mac}\toption family '{fam}'\n\toption proto 'all'\n\toption target 'DROP'\n\
             \nconfig rule\n\toption name 'latchkey-{n}-to-gateway'\n\toption src 'lan'\n\toption src_ip '{ip}'\n{mac}\toption dest '*'\n\toption dest_ip '{gw}'\n\toption proto 'all'\n\toption target 'ACCEPT'\n\
             \nconfig rule\n\toption name 'latchkey-{n}-out'\n\toption src 'lan'\n\toption src_ip '{ip}'\n{mac}\toption dest '*'\n\toption proto 'all'\n\toption target 'DROP'\n\
             \nconfig rule\n\toption name 'latchkey-{n}-in'\n\toption src '*'\n\toption dest 'lan'\n\toption dest_ip '{ip}'\n\toption proto 'all'\n\toption target 'DROP'\n"
        ));
    }
    out.push_str(&skipped_note(plan, "# "));
    out
}

fn skipped_note(plan: &Plan, prefix: &str) -> String {
    let mut out = String::new();
    for c in &plan.cameras {
        if c.mac.is_none() {
            out.push_str(&format!(
                "{prefix}{}: MAC not known yet (stream from it once, then print again); matched by address only\n",
                c.name
            ));
        }
    }
    for s in &plan.skipped {
        out.push_str(&format!("{prefix}left out: {s}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn plan() -> Plan {
        Plan {
            cameras: vec![LockedCamera {
                name: "front-door".into(),
                address: "192.168.1.10".parse().unwrap(),
                mac: Some("02:00:00:00:00:05".into()),
                gateway: "192.168.1.2".parse().unwrap(),
            }],
            skipped: vec!["garden (demo camera)".into()],
        }
    }

    #[test]
    fn rules_name_each_camera_by_ip_and_mac_with_a_counter() {
        let n = nftables(&plan());
        assert!(n.contains("counter cam_front_door"));
        assert!(n.contains("ip saddr 192.168.1.10 ip daddr 192.168.1.2 accept"));
        assert!(n.contains("ether saddr 02:00:00:00:00:05 counter name \"cam_front_door\" drop"));
        assert!(n.contains("left out: garden"));
        let o = openwrt(&plan());
        assert!(o.contains("option src_mac '02:00:00:00:00:05'"));
        assert!(o.contains("option name 'latchkey-front-door-out'"));
    }

    #[test]
    fn macs_come_from_complete_arp_entries_only() {
        let arp = "IP address HW type Flags HW address Mask Device\n\
                   192.168.1.10 0x1 0x2 02:00:00:00:00:05 * eth0\n\
                   192.168.1.11 0x1 0x0 00:00:00:00:00:00 * eth0\n";
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            mac_of(ip("192.168.1.10"), arp).as_deref(),
            Some("02:00:00:00:00:05")
        );
        assert_eq!(mac_of(ip("192.168.1.11"), arp), None);
        assert_eq!(mac_of(ip("192.168.1.12"), arp), None);
    }
}
