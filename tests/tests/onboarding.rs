//! End to end: adding cameras the way owners expect. A home LAN in two network namespaces
//! (`tests/peers/onvif-netns.sh`): the real gateway in one, the real gst-rtsp-server camera
//! and the project's ONVIF camera (`tests/peers/onvif_cam.py`) in the other. From a fresh
//! gateway: discovery, add from ONVIF with user and password, stream through
//! `latchkey-client serve` to ffprobe, rename (grants follow), a new source (viewers move
//! without a restart), removal (live streams end), and checks that the password appears
//! in no output, log or packet and that discovery reached only the LAN.

// Test code: a panic is a failed test, which is what these helpers are for.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)] // shared with streaming.rs, which uses all of it
mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use latchkey_tests::{Gateway, bin};
use serde_json::Value;
use support::{Proc, in_ns, output_ok, peer_script, until};

/// The camera's password: unusual enough that a grep for it finds only real leaks.
const PASSWORD: &str = "Zq7-onvif-Pw!x93";
const CAM_IP: &str = "10.78.0.2";

/// The two namespaces, torn down (with every process in them) on drop.
struct Lan {
    pfx: String,
}

impl Lan {
    fn up(pfx: &str) -> Self {
        let lan = Self {
            pfx: pfx.to_string(),
        };
        output_ok(
            Command::new("bash")
                .arg(peer_script("onvif-netns.sh"))
                .arg("up")
                .env("PFX", pfx),
        );
        lan
    }

    fn gw(&self) -> String {
        format!("{}-gw", self.pfx)
    }

    fn cam(&self) -> String {
        format!("{}-cam", self.pfx)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(peer_script("onvif-netns.sh"))
            .arg("down")
            .env("PFX", &self.pfx)
            .status();
    }
}

/// Everything the test saw, for the password grep at the end.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn keep(&mut self, out: &Output) -> (bool, String, String) {
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        self.0.push(o.clone());
        self.0.push(e.clone());
        (out.status.success(), o, e)
    }
}

/// `latchkey --state STATE ARGS`, with `stdin` fed in; (success, stdout, stderr).
fn latchkey(seen: &mut Seen, state: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new("timeout")
        .arg("60")
        .arg(bin("latchkey").unwrap())
        .arg("--state")
        .arg(state)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    seen.keep(&out)
}

fn ok(seen: &mut Seen, state: &Path, args: &[&str], stdin: &str) -> String {
    let (success, out, err) = latchkey(seen, state, args, stdin);
    assert!(success, "latchkey {args:?} failed:\n{out}\n{err}");
    out
}

fn cameras(seen: &mut Seen, state: &Path) -> Value {
    serde_json::from_str(&ok(seen, state, &["cameras", "--json"], "")).unwrap()
}

fn camera(seen: &mut Seen, state: &Path, id: &str) -> Option<Value> {
    cameras(seen, state)
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
}

fn device_grant(seen: &mut Seen, state: &Path) -> String {
    let devices: Value =
        serde_json::from_str(&ok(seen, state, &["devices", "--json"], "")).unwrap();
    devices[0]["cameras"].as_str().unwrap().to_string()
}

/// ffprobe through the phone's local front, inside the gateway's namespace.
/// The real RTSP camera (digest auth, so the password matters) in the camera namespace,
/// at `size` when given; returns the process and the URL it serves.
fn rtsp_camera(cam_ns: &str, dir: &Path, name: &str, size: Option<(u32, u32)>) -> (Proc, String) {
    let mut cmd = in_ns(cam_ns, "/usr/bin/python3");
    cmd.arg(peer_script("rtsp_cam.py"))
        .env("RTSP_HOST", CAM_IP)
        .env("RTSP_PORT", "0")
        .env("RTSP_USER", "admin")
        .env("RTSP_PASS", PASSWORD);
    if let Some((w, h)) = size {
        cmd.env("WIDTH", w.to_string()).env("HEIGHT", h.to_string());
    }
    let cam = Proc::spawn(name, &mut cmd, dir);
    let url = cam.wait_line("serving ", Duration::from_secs(30));
    (cam, url)
}

/// The ONVIF front of that camera (`user` unset: the peer's default user); returns the
/// process and its device-service URL.
fn onvif_front(cam_ns: &str, dir: &Path, rtsp_url: &str, user: Option<&str>) -> (Proc, String) {
    let mut cmd = in_ns(cam_ns, "/usr/bin/python3");
    cmd.arg(peer_script("onvif_cam.py"))
        .env("ONVIF_ADDR", CAM_IP)
        .env("ONVIF_PASS", PASSWORD)
        .env("ONVIF_RTSP", rtsp_url);
    if let Some(user) = user {
        cmd.env("ONVIF_USER", user);
    }
    let front = Proc::spawn("onvif-cam", &mut cmd, dir);
    let service = front.wait_line("serving ", Duration::from_secs(20));
    (front, service)
}

fn ffprobe(seen: &mut Seen, ns: &str, url: &str) -> String {
    let out = in_ns(ns, "timeout")
        .args(["30", "ffprobe", "-v", "error", "-show_entries"])
        .args(["stream=codec_name,width,height", "-of", "compact"])
        .arg(url)
        .output()
        .unwrap();
    seen.keep(&out).1
}

/// A running fMP4 viewer (curl) of `url` in `ns`, writing to `file`.
fn viewer(ns: &str, url: &str, file: &Path) -> std::process::Child {
    in_ns(ns, "curl")
        .args(["-sN", "--max-time", "120", "-o"])
        .arg(file)
        .arg(url)
        .spawn()
        .unwrap()
}

fn grows(file: &Path, past: u64) -> bool {
    std::fs::metadata(file).is_ok_and(|m| m.len() > past)
}

/// Starts tcpdump on every interface of `ns`; returns it once it listens.
fn capture(ns: &str, file: &Path, dir: &Path, name: &str) -> Proc {
    let cap = Proc::spawn(
        name,
        in_ns(ns, "tcpdump")
            .args(["-i", "any", "-n", "-U", "--immediate-mode", "-w"])
            .arg(file)
            .arg("udp or tcp"),
        dir,
    );
    until("tcpdump listening", Duration::from_secs(10), || {
        std::fs::read_to_string(dir.join(format!("{name}.err")))
            .is_ok_and(|e| e.contains("listening on"))
    });
    cap
}

/// The packets of a capture as tcpdump prints them (interface, direction, addresses),
/// read inside `ns` so the interface numbers in the file name that namespace's interfaces.
fn packets(ns: &str, file: &Path) -> Vec<String> {
    let text = output_ok(in_ns(ns, "tcpdump").args(["-n", "-r"]).arg(file));
    text.lines().map(String::from).collect()
}

#[test]
fn onvif_camera_is_discovered_added_streamed_renamed_moved_and_removed_live() {
    let dir = tempfile::tempdir().unwrap();
    let lan = Lan::up("onv1");
    let (gw_ns, cam_ns) = (lan.gw(), lan.cam());
    let mut seen = Seen::default();

    // The real camera (digest auth, so the password matters) and its ONVIF front.
    let (rtsp, rtsp_url) = rtsp_camera(&cam_ns, dir.path(), "rtsp-cam", None);
    let (onvif, device_service) = onvif_front(&cam_ns, dir.path(), &rtsp_url, Some("admin"));
    let onvif_addr = device_service
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();

    let gw_state = dir.path().join("gateway");
    let gateway = Gateway::start_in_netns(&gw_ns, &gw_state, &["--camera-grace", "2s"]).unwrap();
    let pcap = dir.path().join("discovery.pcap");
    let tcpdump = capture(&gw_ns, &pcap, dir.path(), "tcpdump");

    // Discovery from a fresh gateway lists the camera, with the packet's source address.
    let started = Instant::now();
    let found: Value = serde_json::from_str(&ok(
        &mut seen,
        &gw_state,
        &["cameras", "discover", "--json"],
        "",
    ))
    .unwrap();
    let took = started.elapsed();
    eprintln!("discover took {took:?}: {found}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let cam = found
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["source"] == CAM_IP)
        .unwrap_or_else(|| panic!("camera not discovered: {found}"));
    assert_eq!(cam["device"]["maker"], "Latchkey Test Optics", "{cam}");
    assert_eq!(cam["device"]["model"], "LK-ONVIF-1", "{cam}");
    assert_eq!(cam["device"]["firmware"], "V5.7.3 build 251130", "{cam}");
    assert_eq!(cam["already_added"], serde_json::json!([]));
    // A direct probe of one address (a camera on another subnet) finds it too.
    let table = ok(
        &mut seen,
        &gw_state,
        &["cameras", "discover", "--address", CAM_IP],
        "",
    );
    eprintln!("{table}");
    assert!(
        table.contains(CAM_IP) && table.contains("LK-ONVIF-1"),
        "{table}"
    );
    drop(tcpdump);
    for probe in [
        "probe 10.78.0.1 239.255.255.250 dn:NetworkVideoTransmitter".to_string(),
        "probe 10.78.0.1 239.255.255.250 tds:Device".to_string(),
        format!("probe 10.78.0.1 {CAM_IP} dn:NetworkVideoTransmitter"),
        format!("probe 10.78.0.1 {CAM_IP} tds:Device"),
    ] {
        onvif.wait_line(&probe, Duration::from_secs(5));
    }

    // The capture: every packet the gateway sent while discovering went to the
    // WS-Discovery group or to the camera, on the LAN interface; nothing on wan0.
    let lines = packets(&gw_ns, &pcap);
    eprintln!("capture during discovery:\n{}", lines.join("\n"));
    assert!(
        lines.iter().any(|l| l.contains("> 239.255.255.250.3702")),
        "no multicast probe captured"
    );
    for l in &lines {
        assert!(
            !l.contains("wan0"),
            "discovery reached the internet side: {l}"
        );
        let to_lan = l.contains("> 239.255.255.250.3702")
            || l.contains(&format!("> {CAM_IP}."))
            || l.contains("> 10.78.0.1.");
        assert!(to_lan && l.contains("lan0"), "left the LAN: {l}");
    }

    // Everything from here on is captured too, to show no password crosses in the clear.
    let pcap_all = dir.path().join("all.pcap");
    let tcpdump_all = capture(&gw_ns, &pcap_all, dir.path(), "tcpdump-all");

    // Add from ONVIF with the user and password: profiles read, main stream chosen,
    // test-connected, saved, served without a restart.
    let added = ok(
        &mut seen,
        &gw_state,
        &[
            "cameras",
            "add",
            "front",
            "--onvif",
            &onvif_addr,
            "--user",
            "admin",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    eprintln!("{added}");
    assert!(
        added.contains("main stream: profile main (MainStream) H264 640x480"),
        "{added}"
    );
    assert!(
        added.contains("sub-stream : profile sub (SubStream) H264 320x240"),
        "{added}"
    );
    assert!(
        added.contains(&format!("at {rtsp_url}")),
        "NAT host fixed: {added}"
    );
    assert!(added.contains("streams h264 640x480"), "{added}");
    let front = camera(&mut seen, &gw_state, "front").unwrap();
    assert_eq!(
        (front["origin"].clone(), front["has_password"].clone()),
        ("store".into(), true.into())
    );
    assert_eq!(front["url"], rtsp_url.as_str());
    assert_eq!(
        camera(&mut seen, &gw_state, "demo").unwrap()["origin"],
        "config"
    );
    let again = ok(&mut seen, &gw_state, &["cameras", "discover", "--json"], "");
    assert!(again.contains("\"front\""), "already added: {again}");

    // Wrong credentials are refused with a clear reason, and nothing is saved.
    let (success, _, err) = latchkey(
        &mut seen,
        &gw_state,
        &[
            "cameras",
            "add",
            "bad",
            "--onvif",
            &onvif_addr,
            "--password-stdin",
        ],
        "not-the-password\n",
    );
    assert!(
        !success && err.contains("refused the user name or password"),
        "{err}"
    );
    assert!(camera(&mut seen, &gw_state, "bad").is_none());

    // A phone granted only `front` watches it through the channel.
    let phone = dir.path().join("phone");
    let uri = ok(
        &mut seen,
        &gw_state,
        &["pair", "--uri-only", "--auto-confirm", "--cameras", "front"],
        "",
    );
    output_ok(
        in_ns(&gw_ns, bin("latchkey-client").unwrap())
            .arg("--state")
            .arg(&phone)
            .args(["pair", uri.trim()]),
    );
    let serve = Proc::spawn(
        "serve",
        in_ns(&gw_ns, bin("latchkey-client").unwrap())
            .arg("--state")
            .arg(&phone)
            .args(["serve", "--listen", "127.0.0.1:0"]),
        dir.path(),
    );
    let base = serve.wait_line("listening ", Duration::from_secs(10));
    let probe = ffprobe(&mut seen, &gw_ns, &format!("{base}/cameras/front/live.mp4"));
    eprintln!("ffprobe front: {probe}");
    assert!(
        probe.contains("codec_name=h264|width=640|height=480"),
        "{probe}"
    );

    // Rename: the grant follows and the phone watches it under its new name.
    ok(
        &mut seen,
        &gw_state,
        &["cameras", "edit", "front", "--rename", "porch"],
        "",
    );
    assert_eq!(device_grant(&mut seen, &gw_state), "porch");
    let probe = ffprobe(&mut seen, &gw_ns, &format!("{base}/cameras/porch/live.mp4"));
    assert!(probe.contains("codec_name=h264"), "{probe}");

    // A new source (a second camera, 320x240): the running viewer's upstream moves to it
    // without a restart, and a new viewer sees the new picture size.
    let (rtsp2, rtsp2_url) = rtsp_camera(&cam_ns, dir.path(), "rtsp-cam-2", Some((320, 240)));
    let watching = dir.path().join("watching.mp4");
    let mut curl = viewer(&gw_ns, &format!("{base}/cameras/porch/live.mp4"), &watching);
    until("viewer receiving", Duration::from_secs(20), || {
        grows(&watching, 20_000)
    });
    ok(
        &mut seen,
        &gw_state,
        &["cameras", "edit", "porch", "--url", &rtsp2_url],
        "",
    );
    let probe = ffprobe(&mut seen, &gw_ns, &format!("{base}/cameras/porch/live.mp4"));
    eprintln!("ffprobe after the new source: {probe}");
    assert!(
        probe.contains("codec_name=h264|width=320|height=240"),
        "{probe}"
    );
    let porch = camera(&mut seen, &gw_state, "porch").unwrap();
    assert_eq!(porch["width"], 320, "{porch}");
    // The old stream's track ended (players reconnect); no connection to the old camera.
    until("the old viewer to end", Duration::from_secs(10), || {
        curl.try_wait().unwrap().is_some()
    });
    let old_port = rtsp_url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let ss = output_ok(in_ns(&gw_ns, "ss").args(["-Htn", "state", "established"]));
    assert!(
        !ss.contains(&format!("{CAM_IP}:{old_port}")),
        "still connected to the old source:\n{ss}"
    );

    // Removal ends the live stream and drops the camera from the grant.
    let watching = dir.path().join("removed.mp4");
    let mut curl = viewer(&gw_ns, &format!("{base}/cameras/porch/live.mp4"), &watching);
    until("viewer receiving", Duration::from_secs(20), || {
        grows(&watching, 20_000)
    });
    let removed = ok(&mut seen, &gw_state, &["cameras", "remove", "porch"], "");
    assert!(removed.contains("(1 live streams ended)"), "{removed}");
    until("the live stream to end", Duration::from_secs(5), || {
        curl.try_wait().unwrap().is_some()
    });
    assert_eq!(device_grant(&mut seen, &gw_state), "");
    assert!(camera(&mut seen, &gw_state, "porch").is_none());
    let gone = in_ns(&gw_ns, "curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .arg(format!("{base}/cameras/porch/live.mp4"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&gone.stdout), "404");

    // The password is nowhere: outputs, the daemon's log (debug level), peers' logs.
    drop((serve, gateway));
    let mut places: Vec<(String, String)> = seen
        .0
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("output {i}"), s.clone()))
        .collect();
    for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let p: PathBuf = f.path();
        if p.extension().is_some_and(|e| e == "log" || e == "err") {
            places.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap_or_default(),
            ));
        }
    }
    assert!(
        places.iter().any(|(_, t)| t.contains("camera front added")),
        "log kept"
    );
    for (place, text) in &places {
        assert!(!text.contains(PASSWORD), "the password leaked into {place}");
    }
    // Nor did it cross the wire in the clear (WS-Security and RTSP both send digests).
    drop(tcpdump_all);
    let raw = std::fs::read(&pcap_all).unwrap();
    assert!(raw.len() > 100_000, "the capture saw the streams");
    assert!(
        !raw.windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes())
    );
    eprintln!("password grep: {} places clean", places.len() + 1);
    drop((rtsp, rtsp2, onvif, lan));
}

/// A hostile ONVIF camera: every trick is refused with a clear reason within the call
/// deadline, memory stays bounded, discovery ignores junk, caps a flood and never
/// contacts an address a camera advertises off the LAN, and the gateway keeps serving.
#[test]
fn hostile_onvif_peers_are_refused_with_reasons_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let lan = Lan::up("onv2");
    let (gw_ns, cam_ns) = (lan.gw(), lan.cam());
    let mut seen = Seen::default();
    let hostile = Proc::spawn(
        "onvif-hostile",
        in_ns(&cam_ns, "/usr/bin/python3")
            .arg(peer_script("onvif_hostile.py"))
            .env("ONVIF_ADDR", CAM_IP),
        dir.path(),
    );
    let modes = [
        ("oversized", "larger than 256 KiB"),
        ("endless", "larger than 256 KiB"),
        ("laughs", "declares a DTD"),
        ("xxe", "declares a DTD"),
        ("wrong-ns", "not a SOAP 1.2 envelope"),
        (
            "wrong-onvif",
            "no valid UTCDateTime in the ONVIF namespaces",
        ),
        ("slow", "did not answer within 5 s"),
        ("trickle", "did not answer within 5 s"),
        ("deep", "more than 20000 XML nodes"),
    ];
    let ports: Vec<(String, &str)> = modes
        .iter()
        .map(|(mode, why)| {
            let port = hostile.wait_line(&format!("serving {mode} "), Duration::from_secs(10));
            (format!("{CAM_IP}:{port}"), *why)
        })
        .collect();
    hostile.wait_line("discovery ready", Duration::from_secs(10));
    let gw_state = dir.path().join("gateway");
    let gateway = Gateway::start_in_netns(&gw_ns, &gw_state, &[]).unwrap();
    let (rss_before, _) = gateway.rss_kib_and_threads().unwrap();

    // Discovery: junk, entity bombs and replies to other probes are dropped; the flood
    // is capped; the camera that advertises an off-LAN address is listed, not contacted.
    let pcap = dir.path().join("hostile.pcap");
    let tcpdump = capture(&gw_ns, &pcap, dir.path(), "tcpdump");
    let started = Instant::now();
    let found: Value = serde_json::from_str(&ok(
        &mut seen,
        &gw_state,
        &["cameras", "discover", "--json"],
        "",
    ))
    .unwrap();
    let took = started.elapsed();
    drop(tcpdump);
    let found = found.as_array().unwrap();
    eprintln!(
        "hostile discovery: {} answers kept in {took:?}",
        found.len()
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(!found.is_empty() && found.len() <= 256, "{}", found.len());
    assert!(found.iter().all(|f| f["endpoint"] != "urn:uuid:other"));
    let off_lan = found
        .iter()
        .find(|f| f["xaddr"] == "http://198.51.100.7/onvif/device_service")
        .expect("the off-LAN advertiser is listed");
    assert!(
        off_lan["note"].as_str().unwrap().contains("not asked"),
        "{off_lan}"
    );
    let maker = off_lan["device"]["maker"].as_str().unwrap();
    assert!(
        !maker.contains('\u{1b}'),
        "control characters cleaned: {maker:?}"
    );
    let lines = packets(&gw_ns, &pcap);
    assert!(
        lines.iter().all(|l| !l.contains("198.51.100.7")),
        "contacted off-LAN"
    );
    let table = ok(&mut seen, &gw_state, &["cameras", "discover"], "");
    assert!(
        !table.contains('\u{1b}'),
        "terminal escapes reached the table"
    );

    // Every HTTP trick at once: each refused with its reason, within the deadline.
    let started = Instant::now();
    let children: Vec<_> = ports
        .iter()
        .map(|(addr, _)| {
            let mut c = Command::new("timeout")
                .arg("60")
                .arg(bin("latchkey").unwrap())
                .arg("--state")
                .arg(&gw_state)
                .args([
                    "cameras",
                    "add",
                    "evil",
                    "--onvif",
                    addr,
                    "--password-stdin",
                ])
                .env("RUST_BACKTRACE", "0")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(b"whatever\n").unwrap();
            c
        })
        .collect();
    // Meanwhile the gateway keeps serving: its demo camera answers a test connection.
    let demo = ok(&mut seen, &gw_state, &["cameras", "test", "demo"], "");
    assert!(demo.contains("streams mjpeg"), "{demo}");
    for (child, (addr, why)) in children.into_iter().zip(&ports) {
        let out = child.wait_with_output().unwrap();
        let (success, _, err) = seen.keep(&out);
        eprintln!("{addr}: {}", err.trim());
        assert!(
            !success && err.contains(why),
            "{addr}: expected {why:?}, got {err}"
        );
    }
    let took = started.elapsed();
    eprintln!("all hostile answers refused in {took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    let (rss_after, _) = gateway.rss_kib_and_threads().unwrap();
    eprintln!("gateway RSS {rss_before} KiB -> {rss_after} KiB");
    assert!(
        rss_after < rss_before + 64 * 1024,
        "{rss_before} -> {rss_after} KiB"
    );
    assert!(camera(&mut seen, &gw_state, "evil").is_none());
    drop((gateway, hostile, lan));
}

/// The same by clicking: headless Chromium (tests/browser/onvif.mjs) in the gateway's
/// namespace finds the camera in the "Find cameras" panel, checks the choice and adds it
/// with its password. Screenshots go to target/browser-shots/onvif-*.png; the pages it
/// saw are grepped for the password.
#[test]
fn a_real_browser_finds_and_adds_the_onvif_camera() {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "/usr/bin/chromium is missing: apt-get install chromium (tests/run-all.sh does)"
    );
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    if !browser_dir.join("node_modules/playwright-core").exists() {
        output_ok(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&browser_dir),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let lan = Lan::up("onv3");
    let (gw_ns, cam_ns) = (lan.gw(), lan.cam());
    let (rtsp, rtsp_url) = rtsp_camera(&cam_ns, dir.path(), "rtsp-cam", None);
    let (onvif, _) = onvif_front(&cam_ns, dir.path(), &rtsp_url, None);
    let gw_state = dir.path().join("gateway");
    let gateway = Gateway::start_in_netns(&gw_ns, &gw_state, &[]).unwrap();
    // Without a session, every camera route is refused and changes nothing.
    let origin = format!("https://{}", gateway.admin);
    for path in [
        "/api/cameras/discover",
        "/api/cameras/add",
        "/api/cameras/onvif/inspect",
        "/api/cameras/onvif/add",
        "/api/cameras/demo/edit",
        "/api/cameras/demo/remove",
        "/api/cameras/demo/test",
    ] {
        let code = output_ok(
            in_ns(&gw_ns, "curl")
                .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
                .args(["-H", &format!("Origin: {origin}")])
                .args(["-H", "Content-Type: application/json", "-d", "{}"])
                .arg(format!("{origin}{path}")),
        );
        assert_eq!(code, "401", "POST {path} without a session");
    }
    let shots = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("browser-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = in_ns(&gw_ns, "timeout")
        .args(["180", "node"])
        .arg(browser_dir.join("onvif.mjs"))
        .env("ADMIN_URL", format!("https://{}", gateway.admin))
        .env("SETUP_LINK", gateway.setup_link.as_deref().unwrap())
        .env("PASSWORD", "correct horse battery staple")
        .env("CAM_PASSWORD", PASSWORD)
        .env("CAM_IP", CAM_IP)
        .env("SHOTS", &shots)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{stdout}");
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        gateway.log()
    );
    let mut seen = Seen::default();
    let yard = camera(&mut seen, &gw_state, "garden")
        .expect("the browser added yard and renamed it garden");
    assert_eq!(
        (yard["origin"].clone(), yard["url"].clone()),
        ("store".into(), rtsp_url.as_str().into())
    );
    let tested = ok(&mut seen, &gw_state, &["cameras", "test", "garden"], "");
    assert!(tested.contains("streams h264 640x480"), "{tested}");
    let mut places = vec![
        ("browser output".to_string(), stdout),
        ("gateway log".to_string(), gateway.log()),
    ];
    for page in ["cameras.html", "api-cameras.json"] {
        places.push((
            page.into(),
            std::fs::read_to_string(shots.join(page)).unwrap(),
        ));
    }
    places.extend(seen.0.into_iter().map(|s| ("cli".to_string(), s)));
    for (place, text) in &places {
        assert!(!text.contains(PASSWORD), "the password leaked into {place}");
    }
    drop((gateway, onvif, rtsp, lan));
}

/// Owner phones manage cameras inside the channel (PROTOCOL.md §7): add by URL with a
/// password, list (no password), rename, test, remove; a viewer's attempt is refused
/// with 403 and audited; wrong credentials are refused without echoing them.
#[test]
fn owner_phone_manages_cameras_and_a_viewer_is_refused() {
    use latchkey_client::{ClientError, StateDir, connect};
    let dir = tempfile::tempdir().unwrap();
    let rtsp = Proc::spawn(
        "rtsp-cam",
        Command::new("/usr/bin/python3")
            .arg(peer_script("rtsp_cam.py"))
            .env("RTSP_PORT", "0")
            .env("RTSP_USER", "admin")
            .env("RTSP_PASS", PASSWORD),
        dir.path(),
    );
    let rtsp_url = rtsp.wait_line("serving ", Duration::from_secs(30));
    let gw_state = dir.path().join("gateway");
    let gateway = Gateway::start(&gw_state, &[]).unwrap();
    let (owner, viewer) = (dir.path().join("owner"), dir.path().join("viewer"));
    for (state, role) in [(&owner, "owner"), (&viewer, "viewer")] {
        let uri = gateway
            .pair_uri(&["--role", role, "--auto-confirm"])
            .unwrap();
        latchkey_tests::client(state, &["pair", &uri, "--name", role])
            .unwrap()
            .expect_ok("pair")
            .unwrap();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (listed, status_of_viewer, wrong) = rt.block_on(async {
        let o = connect(&StateDir::open(&owner).unwrap()).await.unwrap();
        let v = connect(&StateDir::open(&viewer).unwrap()).await.unwrap();
        let body = serde_json::json!({ "id": "garage", "url": rtsp_url, "username": "admin", "password": PASSWORD });
        let added: Value = o.post_json("/v1/cameras/add", &body).await.unwrap();
        assert_eq!(added["test"]["codec"], "h264", "{added}");
        let refused = v.post_json::<Value>("/v1/cameras/add", &body).await.unwrap_err();
        let status_of_viewer = match refused {
            ClientError::Api { status, .. } => status,
            other => panic!("{other:?}"),
        };
        let renamed: Value = o
            .post_json("/v1/cameras/garage/edit", &serde_json::json!({ "id": "shed" }))
            .await
            .unwrap();
        assert_eq!(renamed["id"], "shed");
        let tested: Value = o.post_json("/v1/cameras/shed/test", &serde_json::json!({})).await.unwrap();
        assert_eq!(tested["width"], 640, "{tested}");
        let listed: Value = o.get_json("/v1/cameras/manage").await.unwrap();
        let bad = serde_json::json!({ "id": "bad", "url": rtsp_url, "username": "admin", "password": "wr0ng-Pw" });
        let wrong = format!("{:?}", o.post_json::<Value>("/v1/cameras/add", &bad).await.unwrap_err());
        let removed: Value = o.post_json("/v1/cameras/shed/remove", &serde_json::json!({})).await.unwrap();
        assert_eq!(removed["id"], "shed");
        (listed, status_of_viewer, wrong)
    });
    assert_eq!(status_of_viewer, 403);
    let shed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "shed")
        .unwrap();
    assert_eq!(
        (shed["origin"].clone(), shed["has_password"].clone()),
        ("store".into(), true.into())
    );
    assert!(!listed.to_string().contains(PASSWORD));
    assert!(
        wrong.contains("409") && wrong.contains("401") && !wrong.contains("wr0ng-Pw"),
        "{wrong}"
    );
    let mut seen = Seen::default();
    let audit = ok(&mut seen, &gw_state, &["audit", "--json"], "");
    assert!(
        audit.contains("owner-action-refused") && audit.contains("asked to add a camera"),
        "{audit}"
    );
    assert!(audit.contains("camera-removed"), "{audit}");
    assert!(camera(&mut seen, &gw_state, "shed").is_none());
    assert!(!gateway.log().contains(PASSWORD) && !audit.contains(PASSWORD));
    drop((gateway, rtsp));
}
