//! Adversarial cases 39 and on (tests/README.md's attack map): the camera quarantine,
//! the phone library's player endpoint and the shared types, attacked from a camera on
//! the camera port, from the other side of the gateway's box, and from other local apps.
//! Namespaces here are this file's own (`atk3*`), created and removed by each test.

// Test code: a panic is a failed test, which is what these helpers are for.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)] // shared with the other end-to-end files
mod support;

use std::process::Command;
use std::time::Duration;

use latchkey_tests::{Gateway, bin};
use support::camera_net::{Net, dhcp_camera, lease_bound, mac_of, report, second_camera, udhcpc};
use support::{Proc, output_ok, until};

/// One DNS question for `name` and one SNTP request, sent from namespace `ns` to the
/// camera port's address; prints `dns yes|no` and `ntp yes|no` (answered or not).
fn ask_dns_and_ntp(ns: &str, name: &str) -> String {
    let script = r#"
import socket, struct, sys
name = sys.argv[1]
q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
for l in name.split("."):
    q += bytes([len(l)]) + l.encode()
q += b"\0" + struct.pack(">HH", 1, 1)
for what, port, msg in (("dns", 53, q), ("ntp", 123, bytes([0x23]) + bytes(47))):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(msg, ("10.83.0.1", port))
    try:
        s.recvfrom(4096)
        print(what, "yes")
    except socket.timeout:
        print(what, "no")
"#;
    output_ok(Command::new("ip").args(["netns", "exec", ns, "python3", "-c", script, name]))
}

/// ATTACKS 39: the camera port's DNS and NTP servers answer only the camera port. A host
/// on the other side of the gateway's box (the home LAN, or the WAN of a box that routes)
/// that sends to the camera port's address got answers and wrote any name it liked into
/// the owner's phone-home report, under its own address or a camera's.
#[test]
fn the_camera_ports_dns_and_ntp_answer_only_the_camera_port() {
    support::require(&["nft", "python3"]);
    let dir = tempfile::tempdir().unwrap();
    let net = Net::up("atk3a");
    let (_gateway, state) = gateway_with(&net.ns("gw"), dir.path(), FRONT_LEASE);

    // The camera on the port is served (the control).
    let cam = ask_dns_and_ntp(&net.ns("cam"), "p2p.vendor.example");
    assert!(cam.contains("dns yes") && cam.contains("ntp yes"), "{cam}");
    // The other side of the box is not.
    let wan = ask_dns_and_ntp(&net.ns("wan"), "injected-from-wan.example");
    assert!(
        wan.contains("dns no") && wan.contains("ntp no"),
        "the camera port's servers answered the wan side: {wan}"
    );
    let mut last = String::new();
    until(
        "the camera's name in the report",
        Duration::from_secs(10),
        || {
            last = report(&state);
            last.contains("p2p.vendor.example")
        },
    );
    assert!(
        !last.contains("injected-from-wan") && !last.contains("198.51.100.1"),
        "the wan side wrote into the report: {last}"
    );
}

/// `GET path` with `Host: host` on a new connection; the status line, or what went wrong.
fn get(addr: std::net::SocketAddr, host: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return "connect failed".into();
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return "write failed".into();
    }
    let mut head = [0u8; 64];
    match s.read(&mut head) {
        Ok(0) => "closed without an answer".into(),
        Ok(n) => String::from_utf8_lossy(&head[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        Err(e) => format!("no answer: {e}"),
    }
}

/// ATTACKS 40: any local app can connect to the phone library's player endpoint. Held
/// silent connections (no token needed) used to take a descriptor each until the
/// process ran out (the app's own player, its reconnects to the gateway and its key
/// files with it) and kept it for the 30 s header timeout. Now at most 64 are open and a
/// new connection closes the oldest one that never showed the token.
#[test]
fn silent_local_connections_cannot_starve_the_player_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=256")
        .arg(bin("latchkey-client").unwrap())
        .arg("--state")
        .arg(dir.path().join("phone"))
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let serve = Proc::spawn("serve", &mut cmd, dir.path());
    let url = serve.wait_line("listening", Duration::from_secs(20));
    let rest = url.strip_prefix("http://").unwrap();
    let (host, token) = rest.split_once('/').unwrap();
    let addr: std::net::SocketAddr = host.parse().unwrap();
    let page = format!("/{token}/");
    assert!(get(addr, host, &page).contains("200"), "the page before");

    // Another app holds 400 silent connections (more than the process's 256 descriptors).
    let started = std::time::Instant::now();
    let held: Vec<std::net::TcpStream> = (0..400)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .collect();
    eprintln!("{} connections held in {:?}", held.len(), started.elapsed());
    assert!(held.len() > 200, "{} connections", held.len());
    std::thread::sleep(Duration::from_millis(500));
    let answer = get(addr, host, &page);
    assert!(
        answer.contains("200"),
        "the app's own player was starved by held connections: {answer}"
    );
    // Without the token, or with a foreign Host, still nothing.
    assert_eq!(get(addr, host, "/wrong/"), "closed without an answer");
    assert_eq!(
        get(addr, &format!("rebind.example:{}", addr.port()), &page),
        "closed without an answer"
    );
    drop(held);
}

/// ATTACKS 45 and 42 (in part). The gateway's box here does not forward (Debian's
/// default): packets to the internet were dropped by the kernel before the forward hook
/// that recorded them, so the report held no destination at all; they are now recorded
/// at prerouting. Then a camera floods the port with packets from thousands of spoofed
/// source addresses after filling the shared record of destinations: spoofed sources
/// filled the kernel's per-source set too, and from then on every other camera's new
/// attempts were dropped unrecorded. Sources the port does not route back to are now
/// dropped before recording, so the other camera's packets are still counted.
#[test]
fn a_box_that_does_not_forward_and_spoofed_sources_cannot_blind_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::up("atk3b");
    let cam = net.ns("cam");
    output_ok(Command::new("ip").args(["-n", &cam, "addr", "add", "10.83.0.3/24", "dev", "eth0"]));
    let (_gateway, state) = gateway_with(&net.ns("gw"), dir.path(), FRONT_LEASE);
    let gw_forward = output_ok(Command::new("ip").args([
        "netns",
        "exec",
        &net.ns("gw"),
        "sysctl",
        "-n",
        "net.ipv4.ip_forward",
    ]));
    assert_eq!(gw_forward.trim(), "0", "the box must not forward");
    // Front phones home first: the attempt is in the report, with its destination.
    let hello = r#"
import socket
f = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
f.bind(("10.83.0.2", 0))
for _ in range(3):
    f.sendto(b"hello", ("203.0.113.50", 32100))
"#;
    output_ok(Command::new("ip").args(["netns", "exec", &cam, "python3", "-c", hello]));
    let mut last = String::new();
    let listed = latchkey_tests::wait_for(Duration::from_secs(15), || {
        last = report(&state);
        (last.contains("203.0.113.50") && last.contains("32100")).then_some(())
    });
    assert!(listed.is_some(), "front's attempt not recorded: {last}");
    // The hostile camera at 10.83.0.3: 4,200 distinct destinations, then 1,100 packets
    // from spoofed sources; then "front" (10.83.0.2) tries a new destination 7 times.
    let flood = r#"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.83.0.3", 0))
for i in range(4200):
    s.sendto(b"x", ("203.0.113.%d" % (1 + i % 250), 1000 + i // 250))
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(1100):
    src = "10.100.%d.%d" % (i >> 8, i & 255)
    udp = struct.pack(">HHHH", 40000, 9999, 9, 0) + b"x"
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 29, 1, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton("203.0.113.9"))
    raw.sendto(ip + udp, ("203.0.113.9", 0))
f = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
f.bind(("10.83.0.2", 0))
for _ in range(7):
    f.sendto(b"hello", ("198.51.100.7", 443))
print("sent")
"#;
    output_ok(Command::new("ip").args(["netns", "exec", &cam, "python3", "-c", flood]));
    let mut front_packets = 0;
    let mut last = serde_json::Value::Null;
    // The counters are read every 2 s; give it a few reads.
    let _ = latchkey_tests::wait_for(Duration::from_secs(15), || {
        last = serde_json::from_str(&report(&state)).unwrap();
        let front = last["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["camera"] == "front")?;
        let listed: u64 = front["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["address"] == "198.51.100.7")
            .map(|d| d["count"].as_u64().unwrap())
            .sum();
        front_packets = listed + front["other_destinations"]["count"].as_u64().unwrap();
        (front_packets >= 7).then_some(())
    });
    assert_eq!(
        front_packets, 7,
        "front's packets lost from the report: {last}"
    );
    let spoofed = last["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["address"].as_str().unwrap().starts_with("10.100."));
    assert!(!spoofed, "spoofed sources in the report: {last}");
}

/// ATTACKS 43: a camera sends DNS questions and packets from another camera's address
/// (its own MAC) to put names and destinations in that camera's report. For cameras with
/// a fixed lease, a packet from the lease's address with another MAC is now dropped
/// before it is answered or recorded.
#[test]
fn a_camera_cannot_blame_a_leased_camera_by_spoofing_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::up("atk3c");
    let cam = net.ns("cam");
    // The hostile camera: another MAC on the same wire, at 10.83.0.3.
    second_camera(&cam, Some("10.83.0.3"));
    let (_gateway, state) = gateway_with(&net.ns("gw"), dir.path(), TWO_LEASES);
    let spoof = r#"
import socket, struct
def dns(name):
    q = struct.pack(">HHHHHH", 0x4243, 0x0100, 1, 0, 0, 0)
    for l in name.split("."):
        q += bytes([len(l)]) + l.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)
def packet(src, dst, dport, payload):
    udp = struct.pack(">HHHH", 40000, dport, 8 + len(payload), 0) + payload
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + udp
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
raw.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"bad0")
for _ in range(3):
    raw.sendto(packet("10.83.0.2", "10.83.0.1", 53, dns("framed-by-back.example")), ("10.83.0.1", 0))
    raw.sendto(packet("10.83.0.2", "203.0.113.66", 6666, b"x"), ("203.0.113.66", 0))
own = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
own.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"bad0")
own.bind(("10.83.0.3", 0))
own.sendto(dns("back-own.example"), ("10.83.0.1", 53))
real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
real.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
real.bind(("10.83.0.2", 0))
real.sendto(dns("front-own.example"), ("10.83.0.1", 53))
print("sent")
"#;
    output_ok(Command::new("ip").args(["netns", "exec", &cam, "python3", "-c", spoof]));
    let mut last = String::new();
    until("both cameras' own names", Duration::from_secs(15), || {
        last = report(&state);
        last.contains("back-own.example") && last.contains("front-own.example")
    });
    // Let the drop counters be read once more (every 2 s).
    std::thread::sleep(Duration::from_secs(3));
    last = report(&state);
    assert!(
        !last.contains("framed-by-back") && !last.contains("203.0.113.66"),
        "a spoofed packet was recorded as front's: {last}"
    );
}

/// Starts the gateway in namespace `ns` with `config` as its config file (written into
/// `dir`); returns it and its state directory.
fn gateway_with(ns: &str, dir: &std::path::Path, config: &str) -> (Gateway, std::path::PathBuf) {
    let file = dir.join("latchkey.toml");
    std::fs::write(&file, config).unwrap();
    let state = dir.join("gateway");
    let gateway =
        Gateway::start_in_netns(ns, &state, &["--config", file.to_str().unwrap()]).unwrap();
    (gateway, state)
}

/// The gateway's lease for `camera_port`: front at 10.83.0.2 (eth0's MAC), no DHCP server.
const FRONT_LEASE: &str = "[camera_port]\ninterface = \"cam0\"\ndhcp = false\n\
     [[camera_port.lease]]\nmac = \"02:00:00:00:83:02\"\naddress = \"10.83.0.2\"\ncamera = \"front\"\n";

/// The gateway's leases for `camera_port`: front at 10.83.0.2 (eth0's MAC) and back at
/// 10.83.0.3 (bad0's), no DHCP server.
const TWO_LEASES: &str = "[camera_port]\ninterface = \"cam0\"\ndhcp = false\n\
     [[camera_port.lease]]\nmac = \"02:00:00:00:83:02\"\naddress = \"10.83.0.2\"\ncamera = \"front\"\n\
     [[camera_port.lease]]\nmac = \"02:00:00:00:83:03\"\naddress = \"10.83.0.3\"\ncamera = \"back\"\n";

/// One camera's entry in a `--json` report.
fn camera<'a>(report: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    report["cameras"]
        .as_array()?
        .iter()
        .find(|c| c["camera"] == name)
}

/// Packets listed one by one for `cam`, and those past its detail.
fn listed_and_other(cam: &serde_json::Value) -> (u64, u64) {
    let listed = cam["destinations"].as_array().map_or(0, |d| {
        d.iter().map(|d| d["count"].as_u64().unwrap_or(0)).sum()
    });
    (
        listed,
        cam["other_destinations"]["count"].as_u64().unwrap_or(0),
    )
}

/// Waits until back's record holds `back_total` packets and front's lists `front_listed`,
/// then checks both: front's `count` packets to `address`:443 listed, nothing of front's
/// in "other", back's total exact. Returns the report.
fn flood_recorded(
    state: &std::path::Path,
    back_total: u64,
    front_listed: u64,
    address: &str,
    count: u64,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let settled = latchkey_tests::wait_for(Duration::from_secs(20), || {
        last = serde_json::from_str(&report(state)).unwrap();
        let (back, front) = (camera(&last, "back")?, camera(&last, "front")?);
        let (listed, other) = listed_and_other(back);
        (listed + other >= back_total && listed_and_other(front).0 >= front_listed).then_some(())
    });
    assert!(
        settled.is_some(),
        "the flood or front's packets to {address} missing: {last}"
    );
    let front = camera(&last, "front").unwrap();
    let to_it: u64 = front["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["address"] == address && d["port"] == 443)
        .map(|d| d["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        to_it, count,
        "front's new destination {address} not listed: {last}"
    );
    assert_eq!(listed_and_other(front), (front_listed, 0), "{last}");
    let (listed, other) = listed_and_other(camera(&last, "back").unwrap());
    assert_eq!(listed + other, back_total, "{last}");
    last
}

/// ATTACKS 42: one camera sending to thousands of destinations filled the kernel's one
/// shared record (4,096 entries), and from then on every other camera's new attempts were
/// only "other destinations". Each leased camera now records into a set of its own: the
/// flooding camera loses only its own detail (its total still exact, the report saying
/// "detail truncated"), and the other camera's new destination is listed with its count;
/// the same over IPv6.
/// IPv6: DNS and NTP sent to the gateway's IPv6 link-local address are not answered, and
/// are recorded as front's attempts (IPv6 is recorded by MAC, and front's MAC is leased).
#[test]
fn a_flooding_camera_loses_only_its_own_detail() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::up("atk3d");
    let cam = net.ns("cam");
    second_camera(&cam, Some("10.83.0.3"));
    // The gateway's MAC is known in advance: packets waiting for an ARP answer are
    // dropped past the kernel's small queue, and the count below must be exact.
    let link =
        output_ok(Command::new("ip").args(["-n", &net.ns("gw"), "-j", "link", "show", "cam0"]));
    let link: serde_json::Value = serde_json::from_str(&link).unwrap();
    let gw_mac = link[0]["address"].as_str().unwrap().to_string();
    for dev in ["eth0", "bad0"] {
        output_ok(Command::new("ip").args([
            "-n",
            &cam,
            "neigh",
            "replace",
            "10.83.0.1",
            "lladdr",
            &gw_mac,
            "dev",
            dev,
            "nud",
            "permanent",
        ]));
    }
    let (_gateway, state) = gateway_with(&net.ns("gw"), dir.path(), TWO_LEASES);
    // Back sends to 4,200 distinct destinations (in bursts of 100, so that no packet is
    // lost on the way), then front tries one new destination 7 times.
    let flood = r#"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"bad0")
s.bind(("10.83.0.3", 0))
for i in range(4200):
    s.sendto(b"x", ("203.0.113.%d" % (1 + i % 250), 1000 + i // 250))
    if i % 100 == 99:
        time.sleep(0.01)
f = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
f.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
f.bind(("10.83.0.2", 0))
for _ in range(7):
    f.sendto(b"hello", ("198.51.100.7", 443))
print("sent")
"#;
    output_ok(Command::new("ip").args(["netns", "exec", &cam, "python3", "-c", flood]));
    let last = flood_recorded(&state, 4200, 7, "198.51.100.7", 7);
    let back = camera(&last, "back").unwrap();
    assert!(back["destinations"].as_array().unwrap().len() <= 128);
    let words = output_ok(
        Command::new(bin("latchkey").unwrap())
            .arg("--state")
            .arg(&state)
            .args(["cameras", "report", "back"]),
    );
    assert!(words.contains("detail truncated"), "{words}");

    // The same over IPv6 (recorded by MAC, each leased camera's MAC with its own set):
    // back to 4,200 more destinations, then front to a new one 7 times.
    let (gw, six) = (net.ns("gw"), "2001:db8:83::1");
    output_ok(Command::new("ip").args([
        "-n",
        &gw,
        "addr",
        "add",
        "2001:db8:83::1/64",
        "dev",
        "cam0",
        "nodad",
    ]));
    for (dev, addr) in [("eth0", "2001:db8:83::2/64"), ("bad0", "2001:db8:83::3/64")] {
        let script = format!(
            "set -e
ip -n {cam} addr add {addr} dev {dev} nodad
ip -n {cam} -6 neigh replace {six} lladdr {gw_mac} dev {dev} nud permanent
ip -n {cam} -6 route add default via {six} dev {dev} metric {}",
            if dev == "eth0" { 100 } else { 200 }
        );
        output_ok(Command::new("sh").args(["-c", &script]));
    }
    let flood6 = r#"
import socket, time
def sock(dev, addr):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev)
    s.bind((addr, 0))
    return s
s = sock(b"bad0", "2001:db8:83::3")
for i in range(4200):
    s.sendto(b"x", ("2001:db8:99::%x" % i, 1000 + i // 250))
    if i % 100 == 99:
        time.sleep(0.01)
f = sock(b"eth0", "2001:db8:83::2")
for _ in range(7):
    f.sendto(b"hello", ("2001:db8:77::7", 443))
print("sent")
"#;
    output_ok(Command::new("ip").args(["netns", "exec", &cam, "python3", "-c", flood6]));
    flood_recorded(&state, 8400, 14, "2001:db8:77::7", 7);

    // DNS and NTP to the gateway's IPv6 link-local address: no answer, recorded.
    let gw_ll = link_local(&net.ns("gw"), &[(&cam, "eth0")]);
    let ask = r#"
import socket, struct, sys
q = struct.pack(">HHHHHH", 0x4244, 0x0100, 1, 0, 0, 0) + b"\x06ipv6dn\x07example\x00" + struct.pack(">HH", 1, 1)
for what, port, msg in (("dns", 53, q), ("ntp", 123, bytes([0x23]) + bytes(47))):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(msg, (sys.argv[1], port, 0, socket.if_nametoindex("eth0")))
    try:
        s.recvfrom(4096)
        print(what, "yes")
    except OSError:
        print(what, "no")
"#;
    let asked =
        output_ok(Command::new("ip").args(["netns", "exec", &cam, "python3", "-c", ask, &gw_ll]));
    assert!(
        asked.contains("dns no") && asked.contains("ntp no"),
        "{asked}"
    );
    let mut text = String::new();
    until(
        "the IPv6 DNS and NTP attempts, under front (by its MAC's lease)",
        Duration::from_secs(15),
        || {
            text = report(&state);
            let r: serde_json::Value = serde_json::from_str(&text).unwrap();
            let Some(front) = camera(&r, "front") else {
                return false;
            };
            let ports: Vec<u64> = front["destinations"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["address"] == gw_ll.as_str())
                .filter_map(|d| d["port"].as_u64())
                .collect();
            ports.contains(&53) && ports.contains(&123)
        },
    );
    assert!(
        !text.contains("ipv6dn"),
        "an IPv6 question was answered: {text}"
    );
}

/// The camera port's IPv6 link-local address once it and each of `others` (namespace,
/// interface) have theirs (no longer tentative).
fn link_local(gw: &str, others: &[(&str, &str)]) -> String {
    let ll = |ns: &str, dev: &str| {
        let out = output_ok(Command::new("ip").args([
            "-n", ns, "-6", "-o", "addr", "show", "dev", dev, "scope", "link",
        ]));
        if out.contains("tentative") {
            return None;
        }
        let addr = out.split_whitespace().nth(3)?.split('/').next()?;
        Some(addr.to_string())
    };
    let found = latchkey_tests::wait_for(Duration::from_secs(10), || {
        for (ns, dev) in others {
            ll(ns, dev)?;
        }
        ll(gw, "cam0")
    });
    found.expect("IPv6 link-local addresses on the camera port")
}

/// ATTACKS 43 for cameras with a dynamic lease: a camera took the address of a camera
/// that got its address from the gateway's DHCP server (only fixed leases were bound to
/// their MAC), or an address nobody leased. Every lease dnsmasq hands out is now bound to
/// its MAC in the table within a moment, and with the DHCP server on, a packet whose
/// address and MAC are not a lease (or an IPv6 packet from a MAC without a lease) is
/// dropped and counted (`spoofed`), never recorded.
#[test]
fn a_camera_cannot_blame_a_camera_with_a_dynamic_lease() {
    support::require(&["dnsmasq", "busybox"]);
    let dir = tempfile::tempdir().unwrap();
    let net = Net::up("atk3e");
    let (cam, gw) = (net.ns("cam"), net.ns("gw"));
    let (_gateway, state) = gateway_with(&gw, dir.path(), "[camera_port]\ninterface = \"cam0\"\n");
    // The victim's address comes from the gateway's DHCP server.
    output_ok(Command::new("ip").args(["-n", &cam, "addr", "flush", "dev", "eth0"]));
    let ip = udhcpc(&cam, "eth0");
    assert!(ip.starts_with("10.83.0.1"), "{ip}");
    until(
        "the dynamic lease bound to its MAC",
        Duration::from_secs(10),
        || lease_bound(&gw, &ip, "02:00:00:00:83:02"),
    );
    // The hostile camera (another MAC, an address nobody leased) sends DNS questions and
    // packets from the victim's address and from its own.
    second_camera(&cam, Some("10.83.0.77"));
    let spoof = r#"
import socket, struct, sys
victim = sys.argv[1]
def dns(name):
    q = struct.pack(">HHHHHH", 0x4245, 0x0100, 1, 0, 0, 0)
    for l in name.split("."):
        q += bytes([len(l)]) + l.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)
def packet(src, dst, dport, payload):
    udp = struct.pack(">HHHH", 40000, dport, 8 + len(payload), 0) + payload
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + udp
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
raw.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"bad0")
for _ in range(3):
    raw.sendto(packet(victim, "10.83.0.1", 53, dns("framed-dynamic.example")), ("10.83.0.1", 0))
    raw.sendto(packet(victim, "203.0.113.66", 6666, b"x"), ("203.0.113.66", 0))
own = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
own.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"bad0")
own.bind(("10.83.0.77", 0))
own.sendto(dns("unleased.example"), ("10.83.0.1", 53))
own.sendto(b"x", ("203.0.113.67", 7777))
six = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
six.sendto(b"x", (sys.argv[2], 9999, 0, socket.if_nametoindex("bad0")))
real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
real.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
real.bind((victim, 0))
real.sendto(dns("victim-own.example"), ("10.83.0.1", 53))
real.sendto(b"x", ("203.0.113.68", 8888))
print("sent")
"#;
    let gw_ll = link_local(&gw, &[(&cam, "bad0")]);
    output_ok(
        Command::new("ip").args(["netns", "exec", &cam, "python3", "-c", spoof, &ip, &gw_ll]),
    );
    let mut last = String::new();
    until("the victim's own attempts", Duration::from_secs(15), || {
        last = report(&state);
        last.contains("victim-own.example") && last.contains("203.0.113.68")
    });
    // Let the drop counters be read once more (every 2 s).
    std::thread::sleep(Duration::from_secs(3));
    last = report(&state);
    for unwanted in [
        "framed-dynamic",
        "203.0.113.66",
        "unleased.example",
        "203.0.113.67",
        "10.83.0.77",
    ] {
        assert!(!last.contains(unwanted), "{unwanted} recorded: {last}");
    }
    let r: serde_json::Value = serde_json::from_str(&last).unwrap();
    let ipv6_recorded = r["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["destinations"].as_array().unwrap().iter())
        .any(|d| d["port"] == 9999);
    assert!(
        !ipv6_recorded,
        "IPv6 from a MAC without a lease recorded: {last}"
    );
    let counter = output_ok(Command::new("ip").args([
        "netns",
        "exec",
        &gw,
        "nft",
        "-j",
        "list",
        "counter",
        "inet",
        "latchkey_quarantine",
        "spoofed",
    ]));
    let v: serde_json::Value = serde_json::from_str(&counter).unwrap();
    let packets = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| o["counter"]["packets"].as_u64())
        .unwrap();
    assert!(packets >= 9, "spoofed packets not counted: {counter}");
}

/// The camera port with the gateway's DHCP server on and front's fixed lease (10.83.0.2,
/// eth0's MAC).
const FRONT_AND_DHCP: &str = "[camera_port]\ninterface = \"cam0\"\n\
     [[camera_port.lease]]\nmac = \"02:00:00:00:83:02\"\naddress = \"10.83.0.2\"\ncamera = \"front\"\n";

/// Starts the gateway in `net` with [`FRONT_AND_DHCP`]; the hostile camera `bad0` on the
/// wire; returns the gateway, its state directory and the camera port's MAC.
fn dhcp_port(net: &Net, dir: &std::path::Path) -> (Gateway, std::path::PathBuf, String) {
    support::require(&["dnsmasq", "busybox"]);
    let (gateway, state) = gateway_with(&net.ns("gw"), dir, FRONT_AND_DHCP);
    second_camera(&net.ns("cam"), None);
    let gw_mac = mac_of(&net.ns("gw"), "cam0");
    (gateway, state, gw_mac)
}

/// Runs `dhcp_churn.py` on `bad0` in the camera namespace with `args`.
fn churn(cam: &str, gw_mac: &str, args: &[&str]) -> String {
    output_ok(
        Command::new("ip")
            .args(["netns", "exec", cam, "timeout", "180", "python3"])
            .arg(support::peer_script("dhcp_churn.py"))
            .args(["bad0", gw_mac])
            .args(args),
    )
}

/// Sends one UDP packet from `dev` (bound to `src`) to `dst`:`port`, and one DNS
/// question for `name` to the camera port.
fn send_from(cam: &str, dev: &str, src: &str, dst: &str, port: &str, name: &str) {
    let script = r#"
import socket, struct, sys
dev, src, dst, port, name = sys.argv[1:6]
q = struct.pack(">HHHHHH", 0x4246, 0x0100, 1, 0, 0, 0)
for l in name.split("."):
    q += bytes([len(l)]) + l.encode()
q += b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
s.bind((src, 0))
s.sendto(b"x", (dst, int(port)))
s.sendto(q, ("10.83.0.1", 53))
print("sent")
"#;
    output_ok(Command::new("ip").args([
        "netns", "exec", cam, "python3", "-c", script, dev, src, dst, port, name,
    ]));
}

/// ATTACKS 46: a camera cycling MACs through one slotted address. Every MAC that held a
/// slotted address kept an element in the table's MAC-to-slot map (32 elements at most);
/// the 33rd made every later lease update fail as one transaction, so no lease dnsmasq
/// handed out afterwards was ever bound: a new camera's attempts were all dropped as
/// `spoofed`, never in the report. The maps are now rebuilt from the current leases on
/// every change.
#[test]
fn a_camera_cycling_macs_cannot_stop_new_leases_from_being_bound() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::up("atk3f");
    let (cam, gw) = (net.ns("cam"), net.ns("gw"));
    let (_gateway, state, gw_mac) = dhcp_port(&net, dir.path());
    let out = churn(&cam, &gw_mac, &["churn", "10.83.0.150", "36"]);
    assert!(out.contains("done 36"), "{out}");
    // Each MAC got the address the one before released (a release is sent from the lease,
    // so it is dropped as `spoofed` once leases are no longer bound).
    assert_eq!(out.matches("10.83.0.150").count(), 36, "{out}");
    // A camera plugged in after the churn.
    let late_mac = "02:00:00:00:83:04";
    let ip = dhcp_camera(&cam, "late0", late_mac);
    until(
        "the new camera's lease bound to its MAC",
        Duration::from_secs(10),
        || lease_bound(&gw, &ip, late_mac),
    );
    send_from(
        &cam,
        "late0",
        &ip,
        "203.0.113.201",
        "7001",
        "late-cam.example",
    );
    let mut last = String::new();
    until(
        "the new camera's attempts in the report",
        Duration::from_secs(15),
        || {
            last = report(&state);
            let r: serde_json::Value = serde_json::from_str(&last).unwrap();
            let row = r["cameras"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["address"] == ip.as_str())
                .cloned();
            row.is_some_and(|c| {
                let s = c.to_string();
                s.contains("203.0.113.201") && s.contains("late-cam.example")
            })
        },
    );
}

/// ATTACKS 47: a camera holding dozens of leases (a MAC each) took every one of the
/// report's per-source rows (64), and a named camera's first attempt afterwards went to
/// "other cameras": the owner could not see what front tried. The cameras the owner named
/// (a fixed lease, a camera's address) now always have a row of their own; only unnamed
/// sources share "other cameras" past the cap.
#[test]
fn a_camera_holding_many_leases_cannot_push_a_named_camera_out_of_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::up("atk3g");
    let cam = net.ns("cam");
    let (_gateway, state, gw_mac) = dhcp_port(&net, dir.path());
    let out = churn(&cam, &gw_mac, &["hold", "72"]);
    assert!(out.contains("done 72"), "{out}");
    let mut last = String::new();
    until(
        "the hostile camera's 72 packets in the report",
        Duration::from_secs(15),
        || {
            last = report(&state);
            let r: serde_json::Value = serde_json::from_str(&last).unwrap();
            let packets: u64 = r["cameras"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let (a, b) = listed_and_other(c);
                    a + b
                })
                .sum();
            packets >= 72
        },
    );
    let r: serde_json::Value = serde_json::from_str(&last).unwrap();
    // ATTACKS 48: the gateway's own DHCP answers (broadcast, as these requests ask) looped
    // back to it are not recorded as a camera's attempts from its address.
    assert!(
        !r["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["address"] == "10.83.0.1"),
        "the gateway's own packets in the report: {last}"
    );
    assert!(
        r["cameras"].as_array().unwrap().len() > 64,
        "the hostile camera's leases did not fill the report's rows: {last}"
    );
    send_from(
        &cam,
        "eth0",
        "10.83.0.2",
        "203.0.113.200",
        "7000",
        "front-late.example",
    );
    until(
        "front's attempts under its name",
        Duration::from_secs(15),
        || {
            last = report(&state);
            let r: serde_json::Value = serde_json::from_str(&last).unwrap();
            camera(&r, "front").is_some_and(|c| {
                let s = c.to_string();
                s.contains("203.0.113.200") && s.contains("front-late.example")
            })
        },
    );
    let r: serde_json::Value = serde_json::from_str(&last).unwrap();
    let other = r["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "other")
        .map(|c| c.to_string())
        .unwrap_or_default();
    assert!(
        !other.contains("203.0.113.200") && !other.contains("front-late"),
        "front's attempts in other cameras: {other}"
    );
}

/// ATTACKS 49: without the DHCP server, a camera's IPv6 attempts are put under the IPv4
/// address the gateway's neighbour table gives its MAC, and any camera can write that
/// table with one ARP request naming a leased camera's address as its own: its attempts
/// went into front's report. A leased address is now only ever its lease's MAC's.
#[test]
fn a_camera_cannot_blame_a_leased_camera_through_the_neighbour_table() {
    support::require(&["python3"]);
    let dir = tempfile::tempdir().unwrap();
    let net = Net::up("atk3h");
    let (cam, gw) = (net.ns("cam"), net.ns("gw"));
    let (_gateway, state) = gateway_with(&gw, dir.path(), TWO_LEASES);
    let evil = "02:00:00:00:83:09";
    let script = format!(
        "set -e
ip netns exec {cam} sysctl -qw net.ipv4.conf.all.arp_ignore=1
ip -n {cam} link add evil0 link eth0 type macvlan mode bridge
ip -n {cam} link set evil0 address {evil}
ip -n {cam} link set evil0 up"
    );
    output_ok(Command::new("sh").args(["-c", &script]));
    let gw_ll = link_local(&gw, &[(&cam, "evil0")]);
    let attack = r#"
import socket, struct, sys, time
mac = bytes.fromhex(sys.argv[1].replace(":", ""))
arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, socket.inet_aton("10.83.0.2"),
                  bytes(6), socket.inet_aton("10.83.0.1"))
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind(("evil0", 0))
raw.send(b"\xff" * 6 + mac + b"\x08\x06" + arp)
time.sleep(0.5)
six = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for _ in range(3):
    six.sendto(b"x", (sys.argv[2], 6001, 0, socket.if_nametoindex("evil0")))
print("sent")
"#;
    output_ok(
        Command::new("ip").args(["netns", "exec", &cam, "python3", "-c", attack, evil, &gw_ll]),
    );
    let neigh = output_ok(Command::new("ip").args(["-n", &gw, "neigh", "show", "dev", "cam0"]));
    assert!(
        neigh.contains(&format!("10.83.0.2 lladdr {evil}")),
        "the ARP request did not name front's address: {neigh}"
    );
    let mut last = String::new();
    until(
        "the IPv6 attempt in the report",
        Duration::from_secs(15),
        || {
            last = report(&state);
            last.contains("6001")
        },
    );
    let r: serde_json::Value = serde_json::from_str(&last).unwrap();
    let front = camera(&r, "front")
        .map(|c| c.to_string())
        .unwrap_or_default();
    assert!(
        !front.contains("6001"),
        "another camera's IPv6 attempt in front's report: {last}"
    );
}

/// Held: DHCP hostnames and client ids a camera chooses (a newline and a whole lease line
/// naming front's address with another MAC, terminal escapes, bytes that are not UTF-8,
/// 255 bytes) reach dnsmasq's lease file, which the gateway reads every 250 ms: no lease
/// is bound that dnsmasq did not hand out, every real one is, and no escape byte reaches
/// the gateway's log or the report.
#[test]
fn dhcp_hostnames_cannot_write_leases_or_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::up("atk3i");
    let (cam, gw) = (net.ns("cam"), net.ns("gw"));
    let (_gateway, state, gw_mac) = dhcp_port(&net, dir.path());
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let names = [
        hex(b"x\n1764700000 02:00:00:00:83:09 10.83.0.2 evil *\n"),
        hex(b"\x1b]0;pwned\x07\x1b[2Jcam"),
        hex(b"\xff\xfe\x00cam"),
        hex(&[b'a'; 255]),
    ];
    let mut args = vec!["named"];
    args.extend(names.iter().map(String::as_str));
    args.push("4");
    let out = churn(&cam, &gw_mac, &args);
    assert!(out.contains("done 4"), "{out}");
    let leases: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| {
            let mut f = l.strip_prefix("lease ")?.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect();
    assert_eq!(leases.len(), 4, "{out}");
    for (mac, ip) in &leases {
        until("each lease bound", Duration::from_secs(10), || {
            lease_bound(&gw, ip, mac)
        });
    }
    assert!(!lease_bound(&gw, "10.83.0.2", "02:00:00:00:83:09"));
    // dnsmasq refuses such hostnames ("*") and writes client ids in hex: one line a lease.
    let file = std::fs::read_to_string(state.join("quarantine-dhcp.leases")).unwrap();
    assert_eq!(file.lines().count(), 4, "{file:?}");
    let log = std::fs::read(state.with_extension("log")).unwrap();
    assert!(!log.contains(&0x1b), "an escape byte in the gateway's log");
    assert!(!report(&state).contains('\u{1b}'));
}
