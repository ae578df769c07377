//! The camera port's test network for the attack tests (`atk3*` namespaces): a gateway's
//! box with a camera port and a wan side, and a camera namespace that can hold a second,
//! hostile camera on the same wire.

use std::process::Command;

use latchkey_tests::bin;

use super::output_ok;

/// `atk3X-gw` (camera port `cam0` 10.83.0.1/24, `wan0` 198.51.100.2/24), `atk3X-cam`
/// (a camera at 10.83.0.2, MAC 02:00:00:00:83:02) and `atk3X-wan` (198.51.100.1, with a route to the camera
/// subnet through the gateway's box, as any host beside the box can add): removed on drop.
pub struct Net {
    pfx: String,
}

impl Net {
    pub fn up(pfx: &str) -> Self {
        let net = Self {
            pfx: pfx.to_string(),
        };
        net.down();
        let (gw, cam, wan) = (net.ns("gw"), net.ns("cam"), net.ns("wan"));
        let script = format!(
            "set -e
for n in {gw} {cam} {wan}; do ip netns add $n; ip -n $n link set lo up; done
ip link add {p}c netns {gw} type veth peer name {p}e netns {cam}
ip -n {gw} link set {p}c name cam0; ip -n {cam} link set {p}e name eth0
ip -n {cam} link set eth0 address 02:00:00:00:83:02
ip -n {gw} addr add 10.83.0.1/24 dev cam0; ip -n {gw} link set cam0 up
ip -n {cam} addr add 10.83.0.2/24 dev eth0; ip -n {cam} link set eth0 up
ip -n {cam} route add default via 10.83.0.1
ip link add {p}w netns {gw} type veth peer name {p}x netns {wan}
ip -n {gw} link set {p}w name wan0; ip -n {wan} link set {p}x name wan1
ip -n {gw} addr add 198.51.100.2/24 dev wan0; ip -n {wan} addr add 198.51.100.1/24 dev wan1
ip -n {gw} link set wan0 up; ip -n {wan} link set wan1 up
ip -n {gw} route add default via 198.51.100.1
ip -n {wan} route add 10.83.0.0/24 via 198.51.100.2",
            p = net.pfx
        );
        output_ok(Command::new("sh").args(["-c", &script]));
        net
    }

    pub fn ns(&self, which: &str) -> String {
        format!("{}-{which}", self.pfx)
    }

    fn down(&self) {
        for which in ["cam", "wan", "gw"] {
            let ns = self.ns(which);
            let pids = Command::new("ip")
                .args(["netns", "pids", &ns])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").arg(pid).status();
            }
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.down();
    }
}

/// `latchkey cameras report --json`.
pub fn report(state: &std::path::Path) -> String {
    output_ok(
        Command::new("timeout")
            .arg("60")
            .arg(bin("latchkey").unwrap())
            .arg("--state")
            .arg(state)
            .args(["cameras", "report", "--json"]),
    )
}

/// A second camera on the camera namespace's wire: `bad0` (MAC 02:00:00:00:83:03) with
/// `addr`/24 if given and its own default route; each interface answers ARP only for its
/// own addresses, so the gateway sees each camera's address with its own MAC.
pub fn second_camera(cam: &str, addr: Option<&str>) {
    let mut script = "set -e
ip netns exec {cam} sysctl -qw net.ipv4.conf.all.arp_ignore=1
ip -n {cam} link add bad0 link eth0 type macvlan mode bridge
ip -n {cam} link set bad0 address 02:00:00:00:83:03
ip -n {cam} link set bad0 up
ip -n {cam} route add 10.83.0.0/24 dev bad0 metric 100
ip -n {cam} route add default via 10.83.0.1 dev bad0 metric 100"
        .replace("{cam}", cam);
    if let Some(a) = addr {
        script.push_str(&format!("\nip -n {cam} addr add {a}/24 dev bad0"));
    }
    output_ok(Command::new("sh").args(["-c", &script]));
}

/// The MAC of `dev` in namespace `ns`.
pub fn mac_of(ns: &str, dev: &str) -> String {
    let out = output_ok(Command::new("ip").args(["-n", ns, "-j", "link", "show", dev]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v[0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no MAC for {dev} in {ns}: {out}"))
        .to_string()
}

/// A third camera on the camera namespace's wire: `name` (a macvlan with `mac`), its
/// address from the gateway's DHCP server (busybox udhcpc); returns the address.
pub fn dhcp_camera(cam: &str, name: &str, mac: &str) -> String {
    let script = format!(
        "set -e
ip netns exec {cam} sysctl -qw net.ipv4.conf.all.arp_ignore=1
ip -n {cam} link add {name} link eth0 type macvlan mode bridge
ip -n {cam} link set {name} address {mac}
ip -n {cam} link set {name} up"
    );
    output_ok(Command::new("sh").args(["-c", &script]));
    udhcpc(cam, name)
}

/// An address for `dev` in namespace `cam` from the gateway's DHCP server (busybox
/// udhcpc, configured on `dev`).
pub fn udhcpc(cam: &str, dev: &str) -> String {
    let lease = output_ok(
        Command::new("ip")
            .args(["netns", "exec", cam, "timeout", "30", "busybox", "udhcpc"])
            .args(["-f", "-q", "-n", "-t", "10", "-T", "1", "-i", dev, "-s"])
            .arg(super::peer_script("udhcpc-script.sh")),
    );
    lease
        .split_whitespace()
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("no lease for {dev}: {lease}"))
        .to_string()
}

/// Whether the gateway's table binds `ip` to `mac` (the lease is recorded as its own).
pub fn lease_bound(gw: &str, ip: &str, mac: &str) -> bool {
    let set = output_ok(Command::new("ip").args([
        "netns",
        "exec",
        gw,
        "nft",
        "list",
        "set",
        "inet",
        "latchkey_quarantine",
        "lease_macs4",
    ]));
    set.contains(&format!("{ip} . {mac}"))
}
