//! End to end: camera quarantine (issue 13). Three namespaces of this test's own
//! (`tests/peers/quarantine-netns.sh`): a misbehaving camera (`peers/phone_home_cam.py`
//! beside the real gst-rtsp-server camera), the gateway's box with a camera port `cam0`
//! and a `wan0` side, and a fake vendor cloud (`peers/fake_cloud.py`) on TEST-NET
//! addresses. With quarantine off the cloud hears the camera; with the camera port on, a
//! capture on the wan side sees nothing from it, the camera gets its address by DHCP
//! (busybox udhcpc) and its clock from the gateway (ntpdate), the report's counts match
//! the camera's own log, it still streams to a paired phone, a flood of 100,000 names and
//! destinations leaves memory and storage bounded, and turning the port off restores the
//! plain router. The second test applies `cameras lockdown --print nftables` on the
//! router namespace and checks the same capture stays empty.

// Test code: a panic is a failed test, which is what these helpers are for.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)] // shared with the other end-to-end files
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use latchkey_tests::{Gateway, bin};
use serde_json::Value;
use support::{Proc, in_ns, output_ok, peer_script, until};

const CAM_IP: &str = "10.79.0.2";
const CAM_MAC: &str = "02:00:00:00:79:02";
/// The stand-in's hostile name as the gateway records it (`\DDD` for each odd byte).
const HOSTILE: &str = "\\060b\\062\\027\\09131m.vendor-cloud.example";

/// The namespaces, torn down (with every process in them) on drop.
struct Net {
    pfx: String,
}

impl Net {
    fn up(pfx: &str) -> Self {
        let net = Self {
            pfx: pfx.to_string(),
        };
        net.script("up");
        net
    }

    fn script(&self, what: &str) {
        output_ok(
            Command::new("bash")
                .arg(peer_script("quarantine-netns.sh"))
                .arg(what)
                .env("PFX", &self.pfx),
        );
    }

    fn ns(&self, which: &str) -> String {
        format!("{}-{which}", self.pfx)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(peer_script("quarantine-netns.sh"))
            .arg("down")
            .env("PFX", &self.pfx)
            .status();
    }
}

/// Every peer this test needs; a missing one fails the test (never a skip).
fn require_peers() {
    support::require(&["nft", "dnsmasq", "busybox", "ntpdate", "tcpdump", "ffprobe"]);
}

/// Runs the misbehaving camera to the end; returns its log (one line per packet sent).
fn phone_home(ns: &str, env: &[(&str, &str)]) -> Vec<String> {
    let mut cmd = in_ns(ns, "timeout");
    cmd.args(["120", "python3"])
        .arg(peer_script("phone_home_cam.py"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = output_ok(&mut cmd);
    eprintln!("camera log:\n{out}");
    out.lines().map(String::from).collect()
}

/// How many times the camera's log says it sent each thing ("udp 203.0.113.50 32100",
/// "dns p2p.vendor-cloud.example").
fn sent(log: &[String]) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for l in log {
        if let Some(what) = l.strip_prefix("sent ") {
            *out.entry(what.to_string()).or_default() += 1;
        }
    }
    out
}

/// The same counts as the report has them for one camera.
fn reported(report: &Value, camera: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let Some(cam) = report["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["camera"] == camera)
    else {
        return out;
    };
    for d in cam["destinations"].as_array().unwrap() {
        let key = format!(
            "{} {} {}",
            d["proto"].as_str().unwrap(),
            d["address"].as_str().unwrap(),
            d["port"]
        );
        out.insert(key, d["count"].as_u64().unwrap());
    }
    for n in cam["names"].as_array().unwrap() {
        let key = format!("dns {}", n["name"].as_str().unwrap());
        out.insert(key, n["count"].as_u64().unwrap());
    }
    out
}

fn latchkey(state: &Path, args: &[&str]) -> String {
    output_ok(
        Command::new("timeout")
            .arg("60")
            .arg(bin("latchkey").unwrap())
            .arg("--state")
            .arg(state)
            .args(args),
    )
}

fn report(state: &Path) -> Value {
    serde_json::from_str(&latchkey(state, &["cameras", "report", "--json"])).unwrap()
}

/// Starts tcpdump on every interface of `ns`; returns it once it listens.
fn capture(ns: &str, file: &Path, dir: &Path, name: &str) -> Proc {
    let cap = Proc::spawn(
        name,
        in_ns(ns, "tcpdump")
            .args(["-i", "any", "-n", "-U", "--immediate-mode", "-w"])
            .arg(file),
        dir,
    );
    until("tcpdump listening", Duration::from_secs(10), || {
        std::fs::read_to_string(dir.join(format!("{name}.err")))
            .is_ok_and(|e| e.contains("listening on"))
    });
    cap
}

/// The captured packets that came from the camera's subnet.
fn from_camera(ns: &str, file: &Path) -> Vec<String> {
    let text = output_ok(in_ns(ns, "tcpdump").args(["-n", "-r"]).arg(file));
    text.lines()
        .filter(|l| l.contains(" 10.79.0.") || l.contains(" 2001:db8:79::"))
        .map(String::from)
        .collect()
}

/// A DHCP lease for the camera from a real client (busybox udhcpc); its event script
/// prints what the server handed out.
fn dhcp_lease(cam_ns: &str) -> String {
    let lease = output_ok(
        in_ns(cam_ns, "timeout")
            .args([
                "30", "busybox", "udhcpc", "-f", "-q", "-n", "-t", "10", "-T", "1",
            ])
            .args(["-i", "eth0", "-O", "ntpsrv", "-s"])
            .arg(peer_script("udhcpc-script.sh")),
    );
    eprintln!("{lease}");
    lease
}

/// Waits (in whatever order the cloud's threads print them) until the fake cloud has
/// heard the camera's P2P hellos (IPv4 and IPv6) and its TCP connection.
fn cloud_heard_the_camera(cloud: &Proc) {
    let mut heard = std::collections::HashSet::new();
    while heard.len() < 3 {
        let line = cloud.wait_line("got ", Duration::from_secs(10));
        for want in [
            "udp 203.0.113.50 32100 from 10.79.0.2",
            "udp 2001:db8:50::50 32100 from 2001:db8:79::2",
            "tcp 198.51.100.7 443 from 10.79.0.2",
        ] {
            if line == want {
                heard.insert(want);
            }
        }
    }
}

/// Pairs a phone in `ns` and returns its `serve` front (ffprobe goes through it).
fn phone(ns: &str, state: &Path, dir: &Path) -> (Proc, String) {
    let phone = dir.join("phone");
    let uri = latchkey(
        state,
        &["pair", "--uri-only", "--auto-confirm", "--cameras", "front"],
    );
    output_ok(
        in_ns(ns, bin("latchkey-client").unwrap())
            .arg("--state")
            .arg(&phone)
            .args(["pair", uri.trim()]),
    );
    let serve = Proc::spawn(
        "serve",
        in_ns(ns, bin("latchkey-client").unwrap())
            .arg("--state")
            .arg(&phone)
            .args(["serve", "--listen", "127.0.0.1:0"]),
        dir,
    );
    let base = serve.wait_line("listening ", Duration::from_secs(10));
    (serve, base)
}

fn ffprobe(ns: &str, url: &str) -> String {
    output_ok(
        in_ns(ns, "timeout")
            .args(["30", "ffprobe", "-v", "error", "-show_entries"])
            .args(["stream=codec_name", "-of", "compact"])
            .arg(url),
    )
}

fn rtsp_camera(ns: &str, dir: &Path) -> (Proc, String) {
    let rtsp = Proc::spawn(
        "rtsp-cam",
        in_ns(ns, "/usr/bin/python3")
            .arg(peer_script("rtsp_cam.py"))
            .env("RTSP_HOST", CAM_IP)
            .env("RTSP_PORT", "0"),
        dir,
    );
    let url = rtsp.wait_line("serving ", Duration::from_secs(30));
    (rtsp, url)
}

#[test]
fn a_quarantined_camera_reaches_only_the_gateway_and_the_owner_sees_what_it_tried() {
    require_peers();
    let dir = tempfile::tempdir().unwrap();
    let net = Net::up("qr1");
    let (gw_ns, cam_ns, wan_ns) = (net.ns("gw"), net.ns("cam"), net.ns("wan"));
    let cloud = Proc::spawn(
        "cloud",
        in_ns(&wan_ns, "python3").arg(peer_script("fake_cloud.py")),
        dir.path(),
    );
    cloud.wait_line("ready", Duration::from_secs(10));

    // Quarantine off: the gateway's box is a plain router, and the cloud hears the camera.
    net.script("static");
    let log = phone_home(&cam_ns, &[("DNS", "198.51.100.53"), ("ROUNDS", "1")]);
    assert!(log.iter().any(|l| l == "connected tcp 198.51.100.7 443"));
    cloud_heard_the_camera(&cloud);

    // The camera port on, with a fixed lease for the camera's MAC.
    let config = dir.path().join("latchkey.toml");
    std::fs::write(
        &config,
        format!(
            "[camera_port]\ninterface = \"cam0\"\n[[camera_port.lease]]\nmac = \"{CAM_MAC}\"\naddress = \"{CAM_IP}\"\ncamera = \"front\"\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("gateway");
    let mut gateway =
        Gateway::start_in_netns(&gw_ns, &state, &["--config", config.to_str().unwrap()]).unwrap();
    let table = output_ok(in_ns(&gw_ns, "nft").args(["list", "tables"]));
    assert!(table.contains("latchkey_quarantine"), "{table}");
    let pcap = dir.path().join("wan.pcap");
    let tcpdump = capture(&wan_ns, &pcap, dir.path(), "tcpdump");

    // A real DHCP client gets the fixed lease, with the gateway as router, DNS and NTP.
    let lease = dhcp_lease(&cam_ns);
    assert!(
        lease.contains(&format!(
            "lease {CAM_IP}/24 router 10.79.0.1 dns 10.79.0.1 ntp 10.79.0.1"
        )),
        "{lease}"
    );
    // Its clock from the gateway (a real NTP client; stratum 3, the gateway's time).
    let ntp = output_ok(in_ns(&cam_ns, "timeout").args(["30", "ntpdate", "-q", "10.79.0.1"]));
    eprintln!("{ntp}");
    assert!(ntp.contains("10.79.0.1") && ntp.contains(" s3 "), "{ntp}");
    // A fixed IPv6 address and route, as some firmwares have (no advertisements come).
    net.script("v6");

    // The camera streams; the gateway pulls it over the camera port.
    let (_rtsp, rtsp_url) = rtsp_camera(&cam_ns, dir.path());
    latchkey(&state, &["cameras", "add", "front", "--url", &rtsp_url]);

    // The camera phones home; the report matches its own log.
    let log = phone_home(
        &cam_ns,
        &[
            ("DNS", "10.79.0.1"),
            ("ROUTER", "10.79.0.1"),
            ("ROUNDS", "3"),
        ],
    );
    assert!(
        log.iter()
            .any(|l| l.contains("answer p2p.vendor-cloud.example rcode 3"))
    );
    assert!(!log.iter().any(|l| l.starts_with("connected ")), "{log:?}");
    let mut want = sent(&log);
    assert_eq!(want["udp 203.0.113.50 32100"], 3);
    assert_eq!(want["udp 2001:db8:50::50 32100"], 3);
    assert_eq!(want.remove("hostile-dns"), Some(3));
    want.insert(format!("dns {HOSTILE}"), 3);
    let mut got = HashMap::new();
    for _ in 0..60 {
        got = reported(&report(&state), "front");
        if got == want {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(got, want, "the report against the camera's own log");
    let words = latchkey(&state, &["cameras", "report", "front"]);
    eprintln!("{words}");
    assert!(
        words.contains("front tried to reach 203.0.113.50 on UDP 32100 3 times since "),
        "{words}"
    );
    assert!(words.contains("front asked for 4 names"), "{words}");
    assert!(!words.contains('\x1b') && !words.contains("<b>"), "{words}");

    // ONVIF discovery still finds the camera on the camera port.
    let _onvif = Proc::spawn(
        "onvif-cam",
        in_ns(&cam_ns, "/usr/bin/python3")
            .arg(peer_script("onvif_cam.py"))
            .env("ONVIF_ADDR", CAM_IP)
            .env("ONVIF_RTSP", &rtsp_url),
        dir.path(),
    );
    _onvif.wait_line("serving ", Duration::from_secs(20));
    let found = latchkey(&state, &["cameras", "discover", "--json"]);
    assert!(
        found.contains(&format!("\"source\": \"{CAM_IP}\"")),
        "{found}"
    );

    // It still streams to a paired phone.
    let (serve, base) = phone(&gw_ns, &state, dir.path());
    let probe = ffprobe(&gw_ns, &format!("{base}/cameras/front/live.mp4"));
    assert!(probe.contains("codec_name=h264"), "{probe}");
    drop(serve);

    // The capture on the wan side: nothing from the camera.
    std::thread::sleep(Duration::from_millis(500));
    drop(tcpdump);
    let leaked = from_camera(&wan_ns, &pcap);
    assert!(
        leaked.is_empty(),
        "the camera reached the wan side:\n{}",
        leaked.join("\n")
    );

    // Floods of 100,000 distinct names and destinations: memory and storage bounded.
    // Two more, different floods show the first one's growth was a one-off, not a leak.
    let other_names = |state: &Path| -> u64 {
        let r = report(state);
        let cam = r["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["camera"] == "front")
            .cloned();
        cam.map_or(0, |c| c["other_names"]["count"].as_u64().unwrap_or(0))
    };
    let mut rss = vec![gateway.rss_kib_and_threads().unwrap().0];
    for start in ["0", "100000", "200000"] {
        let before = other_names(&state);
        phone_home(
            &cam_ns,
            &[
                ("DNS", "10.79.0.1"),
                ("FLOOD", "100000"),
                ("FLOOD_START", start),
            ],
        );
        until("the flood in the report", Duration::from_secs(30), || {
            other_names(&state) > before
        });
        // Until the gateway has taken in all that arrived (two reads alike, 1 s apart).
        let mut last = 0;
        until("the flood taken in", Duration::from_secs(60), || {
            std::thread::sleep(Duration::from_secs(1));
            let now = other_names(&state);
            std::mem::replace(&mut last, now) == now
        });
        rss.push(gateway.rss_kib_and_threads().unwrap().0);
    }
    // Measured: about 22 MiB before, 36 to 48 MiB after the first flood, then flat (the
    // allocator keeps what the first flood's transient buffers used; tallies are capped).
    eprintln!("gateway RSS (KiB) before and after each flood: {rss:?}");
    assert!(rss[1] < rss[0] + 48 * 1024, "{rss:?}");
    assert!(rss[2].max(rss[3]) < rss[1] + 16 * 1024, "{rss:?}");
    let r = report(&state);
    let cam = r["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["camera"] == "front")
        .unwrap();
    assert!(cam["names"].as_array().unwrap().len() <= 128);
    assert!(cam["destinations"].as_array().unwrap().len() <= 128);
    // The counts from before the flood are intact.
    assert_eq!(
        cam["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["port"] == 32100)
            .unwrap()["count"],
        3
    );

    // Turning the port off: rules removed, the report kept (bounded on disk), and the
    // plain router is back: the cloud hears the camera again.
    // A crash leaves the rules in place (the cameras stay locked in) and dnsmasq behind;
    // the next start takes the port over, DHCP included.
    gateway.kill().unwrap();
    let tables = output_ok(in_ns(&gw_ns, "nft").args(["list", "tables"]));
    assert!(tables.contains("latchkey_quarantine"), "{tables}");
    let mut gateway =
        Gateway::start_in_netns(&gw_ns, &state, &["--config", config.to_str().unwrap()]).unwrap();
    assert!(dhcp_lease(&cam_ns).contains(&format!("lease {CAM_IP}/24 ")));
    gateway.stop().unwrap();
    let tables = output_ok(in_ns(&gw_ns, "nft").args(["list", "tables"]));
    assert!(!tables.contains("latchkey_quarantine"), "{tables}");
    let db = std::fs::metadata(state.join("latchkey.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!("store after the flood: {db} bytes");
    assert!(db < 4 * 1024 * 1024, "{db} bytes");
    net.script("static");
    let log = phone_home(&cam_ns, &[("DNS", "198.51.100.53"), ("ROUNDS", "2")]);
    assert!(
        log.iter().any(|l| l == "connected tcp 198.51.100.7 443"),
        "{log:?}"
    );
    cloud_heard_the_camera(&cloud);
}

#[test]
fn lockdown_rules_on_the_router_keep_the_camera_to_the_gateway() {
    require_peers();
    let dir = tempfile::tempdir().unwrap();
    let net = Net::up("qr2");
    let (gw_ns, cam_ns, wan_ns) = (net.ns("gw"), net.ns("cam"), net.ns("wan"));
    let _cloud = Proc::spawn(
        "cloud",
        in_ns(&wan_ns, "python3").arg(peer_script("fake_cloud.py")),
        dir.path(),
    );
    net.script("static");
    let (_rtsp, rtsp_url) = rtsp_camera(&cam_ns, dir.path());
    let state = dir.path().join("gateway");
    let _gateway = Gateway::start_in_netns(&gw_ns, &state, &[]).unwrap();
    latchkey(&state, &["cameras", "add", "front", "--url", &rtsp_url]);

    // The rules, applied on the router (the gateway's box is the router here).
    let rules = latchkey(&state, &["cameras", "lockdown", "--print", "nftables"]);
    eprintln!("{rules}");
    assert!(
        rules.contains(&format!("ether saddr {CAM_MAC}")),
        "MAC known: {rules}"
    );
    let file = dir.path().join("lockdown.nft");
    std::fs::write(&file, &rules).unwrap();
    output_ok(in_ns(&gw_ns, "nft").arg("-f").arg(&file));
    let openwrt = latchkey(&state, &["cameras", "lockdown", "--print", "openwrt"]);
    assert!(
        openwrt.contains("option name 'latchkey-front-out'"),
        "{openwrt}"
    );

    let pcap = dir.path().join("wan.pcap");
    let tcpdump = capture(&wan_ns, &pcap, dir.path(), "tcpdump");
    let log = phone_home(&cam_ns, &[("DNS", "198.51.100.53"), ("ROUNDS", "2")]);
    assert!(
        !log.iter().any(|l| l == "connected tcp 198.51.100.7 443"),
        "{log:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    drop(tcpdump);
    let leaked = from_camera(&wan_ns, &pcap);
    assert!(
        leaked.is_empty(),
        "the camera reached the wan side:\n{}",
        leaked.join("\n")
    );
    let counter = output_ok(in_ns(&gw_ns, "nft").args([
        "list",
        "counter",
        "inet",
        "latchkey_lockdown",
        "cam_front",
    ]));
    eprintln!("{counter}");
    let packets: u64 = counter
        .split("packets ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    // Per round: the fallback DNS, the P2P hello, the cloud SYN and the SSDP search.
    assert!(packets >= 8, "{counter}");

    // The gateway still streams the camera to a paired phone.
    let (_serve, base) = phone(&gw_ns, &state, dir.path());
    let probe = ffprobe(&gw_ns, &format!("{base}/cameras/front/live.mp4"));
    assert!(probe.contains("codec_name=h264"), "{probe}");
}
