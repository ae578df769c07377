//! End-to-end: remote access with the owner's consent, against a real UPnP router
//! (miniupnpd) in network namespaces this test creates and removes. The gateway runs in
//! the `lan` namespace, the remote phone in `wan`. Runs as root (as CI does); a missing
//! miniupnpd fails the test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests fail loudly

use std::path::Path;
use std::time::Duration;

use latchkey_tests::netns::{LAN_CAM, LAN_HOST, LAN6_HOST, Netns, RouterKind, WAN_RTR};
use latchkey_tests::{Gateway, latchkey, wait_for};

const PHONE: Duration = Duration::from_secs(20);

fn remote(state: &Path, args: &[&str]) -> latchkey_tests::Run {
    let mut all = vec!["remote"];
    all.extend_from_slice(args);
    latchkey(state, &all).unwrap()
}

fn status(state: &Path) -> serde_json::Value {
    remote(state, &["status", "--json"])
        .expect_ok("remote status")
        .unwrap()
        .json()
        .unwrap()
}

/// Pairs a phone from the LAN namespace and returns its state directory.
fn pair_on_lan(net: &Netns, gw: &Gateway, dir: &Path) -> std::path::PathBuf {
    let phone = dir.join("phone");
    let uri = gw.pair_uri(&["--auto-confirm", "--name", "phone"]).unwrap();
    let p = phone.to_string_lossy().to_string();
    net.exec(
        &net.lan(),
        "latchkey-client",
        &["--state", &p, "pair", &uri],
        PHONE,
    )
    .unwrap()
    .expect_ok("pair on the LAN")
    .unwrap();
    phone
}

fn phone_cameras(net: &Netns, ns: &str, phone: &Path) -> latchkey_tests::Run {
    let p = phone.to_string_lossy().to_string();
    net.exec(
        ns,
        "latchkey-client",
        &["--state", &p, "cameras", "--json"],
        PHONE,
    )
    .unwrap()
}

/// The check, step by step: nothing before approval, the mapping after `remote
/// open --yes`, a LAN-paired phone reaching the gateway from the internet through it,
/// nothing after `remote close`, then the same over an IPv6 pinhole.
#[test]
fn open_reach_close_over_ipv4_then_ipv6() {
    let dir = tempfile::tempdir().unwrap();
    let net = Netns::up(dir.path(), RouterKind::default()).unwrap();
    let state = dir.path().join("G");
    let mut gw = Gateway::start_in_netns(&net.lan(), &state, &[]).unwrap();
    let port = gw.noise.port();

    assert_eq!(
        net.table().unwrap(),
        Vec::<String>::new(),
        "nothing before approval"
    );
    let st = status(&state);
    assert_eq!(st["external_ipv4"], WAN_RTR, "{st:#}");
    assert_eq!(st["verdict"], "closed", "{st:#}");
    assert!(st["approval"].is_null());
    assert_eq!(st["router"]["igd"], "IGDv2");

    let phone = pair_on_lan(&net, &gw, dir.path());
    assert!(phone_cameras(&net, &net.lan(), &phone).ok);
    assert!(
        !phone_cameras(&net, &net.wan(), &phone).ok,
        "closed: no way in from the internet"
    );

    // No terminal and no --yes: refused, and the router is asked nothing.
    let refused = remote(&state, &["open", "--ipv4"]);
    assert!(!refused.ok);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert!(
        refused.stdout.contains("AddPortMapping TCP"),
        "the plan is shown: {}",
        refused.stdout
    );
    assert_eq!(net.table().unwrap(), Vec::<String>::new());

    let opened = remote(&state, &["open", "--ipv4", "--yes", "--json"])
        .expect_ok("remote open")
        .unwrap();
    assert!(
        opened.stdout.contains(&format!("external port {port}")),
        "{}",
        opened.stdout
    );
    let table = net.table().unwrap();
    assert_eq!(table, [format!("TCP {port}->{LAN_HOST}:{port}")]);
    let st = status(&state);
    assert_eq!(st["verdict"], "reachable", "{st:#}");
    assert_eq!(st["diagnosis"], format!("reachable at {WAN_RTR}:{port}"));
    assert!(st["mappings"][0]["lease_secs"].as_u64().unwrap() > 0);

    // A pairing URI minted now carries the external address.
    let uri = gw.pair_uri(&[]).unwrap();
    assert!(uri.contains(&format!("a={WAN_RTR}%3A{port}")), "{uri}");
    // The phone paired before learns it on its next LAN connection, then works outside.
    assert!(phone_cameras(&net, &net.lan(), &phone).ok);
    let outside = phone_cameras(&net, &net.wan(), &phone);
    assert!(
        outside.ok,
        "from the wan through the mapping: {}",
        outside.stderr
    );
    assert!(outside.stdout.contains("\"demo\""), "{}", outside.stdout);

    let closed = remote(&state, &["close", "--json"])
        .expect_ok("remote close")
        .unwrap();
    let closed: serde_json::Value = serde_json::from_str(&closed.stdout).unwrap();
    assert_eq!(closed["ipv4"]["verified_gone"], true, "{closed:#}");
    assert_eq!(
        net.table().unwrap(),
        Vec::<String>::new(),
        "nothing after close"
    );
    assert!(!phone_cameras(&net, &net.wan(), &phone).ok, "closed again");

    // IPv6: a pinhole for the gateway's global address; no IPv4 mapping.
    remote(&state, &["open", "--ipv6", "--yes"])
        .expect_ok("remote open --ipv6")
        .unwrap();
    assert_eq!(
        net.table().unwrap(),
        Vec::<String>::new(),
        "--ipv6 maps no IPv4 port"
    );
    let st = status(&state);
    assert_eq!(st["mappings"][0]["kind"], "ipv6", "{st:#}");
    let outside = phone_cameras(&net, &net.wan(), &phone);
    assert!(
        outside.ok,
        "from the wan through the IPv6 pinhole: {}",
        outside.stderr
    );
    let closed = remote(&state, &["close", "--json"])
        .expect_ok("close")
        .unwrap();
    let closed: serde_json::Value = serde_json::from_str(&closed.stdout).unwrap();
    assert_eq!(closed["ipv6"]["verified_gone"], true, "{closed:#}");
    assert!(
        !phone_cameras(&net, &net.wan(), &phone).ok,
        "pinhole closed"
    );

    let audit = latchkey(&state, &["audit", "--json"])
        .unwrap()
        .json()
        .unwrap();
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    for k in [
        "remote-approved",
        "remote-mapped",
        "remote-unmapped",
        "remote-pinhole",
        "remote-pinhole-closed",
        "remote-closed",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    gw.stop().unwrap();
}

/// Shutdown removes the mappings but keeps the approval; a restart restores them; a
/// router reboot is repaired within one renewal interval; a gateway without approval
/// asks for nothing, however often it restarts.
#[test]
fn restart_restore_and_router_reboot_repair() {
    let dir = tempfile::tempdir().unwrap();
    let net = Netns::up(dir.path(), RouterKind::default()).unwrap();
    let state = dir.path().join("G");
    for _ in 0..2 {
        let mut gw = Gateway::start_in_netns(&net.lan(), &state, &[]).unwrap();
        status(&state);
        gw.stop().unwrap();
    }
    assert_eq!(
        net.table().unwrap(),
        Vec::<String>::new(),
        "no approval, no mapping"
    );
    assert!(
        !net.router_log().contains("AddPortMapping"),
        "no AddPortMapping was ever sent"
    );

    let mut gw = Gateway::start_in_netns(&net.lan(), &state, &[]).unwrap();
    let port = gw.noise.port();
    remote(&state, &["open", "--ipv4", "--lease", "6s", "--yes"])
        .expect_ok("open")
        .unwrap();
    assert_eq!(net.table().unwrap().len(), 1);
    assert!(
        net.router_log().contains("AddPortMapping"),
        "the log check above can see requests"
    );
    gw.stop().unwrap();
    assert_eq!(
        net.table().unwrap(),
        Vec::<String>::new(),
        "removed on shutdown"
    );

    let gw = Gateway::start_in_netns(&net.lan(), &state, &[]).unwrap();
    let port2 = gw.noise.port();
    let restored = wait_for(Duration::from_secs(10), || {
        let t = net.table().unwrap();
        (t.len() == 1).then_some(t)
    })
    .expect("the approved mapping comes back on start");
    assert_eq!(
        restored,
        [format!("TCP {port2}->{LAN_HOST}:{port2}")],
        "was {port}"
    );

    net.reboot_router().unwrap();
    assert_eq!(
        net.table().unwrap(),
        Vec::<String>::new(),
        "the reboot emptied the table"
    );
    // Lease 6 s: renewal (and repair) every 3 s.
    let repaired = wait_for(Duration::from_secs(8), || {
        let t = net.table().unwrap();
        (t.len() == 1).then_some(t)
    });
    assert!(repaired.is_some(), "not repaired; log:\n{}", gw.log());
    let audit = latchkey(&state, &["audit", "--json"])
        .unwrap()
        .json()
        .unwrap();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "remote-repaired"),
        "{audit:#}"
    );
    remote(&state, &["close"]).expect_ok("close").unwrap();
    assert_eq!(net.table().unwrap(), Vec::<String>::new());
}

/// The router reports 100.64.0.1: the owner reads a plain explanation and the IPv6 way.
#[test]
fn cgnat_gets_a_plain_diagnosis() {
    let dir = tempfile::tempdir().unwrap();
    let net = Netns::up(
        dir.path(),
        RouterKind {
            cgnat: true,
            ..RouterKind::default()
        },
    )
    .unwrap();
    let state = dir.path().join("G");
    let _gw = Gateway::start_in_netns(&net.lan(), &state, &[]).unwrap();
    let st = status(&state);
    assert_eq!(st["external_ipv4"], "100.64.0.1");
    assert_eq!(st["verdict"], "cgnat", "{st:#}");
    let text = st["diagnosis"].as_str().unwrap();
    assert!(
        text.contains("carrier-grade NAT") && text.contains("IPv6 is the way in"),
        "{text}"
    );
    let plain = remote(&state, &["status"]).expect_ok("status").unwrap();
    assert!(
        plain.stdout.contains("carrier-grade NAT"),
        "{}",
        plain.stdout
    );
}

/// An older IGDv1 router: found, mapped (AddPortMapping), listed and cleaned up.
#[test]
fn igdv1_router_works() {
    let dir = tempfile::tempdir().unwrap();
    let net = Netns::up(
        dir.path(),
        RouterKind {
            igd_v1: true,
            ..RouterKind::default()
        },
    )
    .unwrap();
    let state = dir.path().join("G");
    let gw = Gateway::start_in_netns(&net.lan(), &state, &[]).unwrap();
    let port = gw.noise.port();
    let st = status(&state);
    assert_eq!(st["router"]["igd"], "IGDv1", "{st:#}");
    assert_eq!(st["external_ipv4"], WAN_RTR);
    remote(&state, &["open", "--ipv4", "--yes"])
        .expect_ok("open")
        .unwrap();
    assert_eq!(
        net.table().unwrap(),
        [format!("TCP {port}->{LAN_HOST}:{port}")]
    );
    remote(&state, &["close"]).expect_ok("close").unwrap();
    assert_eq!(net.table().unwrap(), Vec::<String>::new());
}

/// An IGDv1 router has no WANIPv6FirewallControl: `remote open --ipv6` falls back to PCP
/// (miniupnpd's PCP server), the phone in the wan reaches the gateway over IPv6 through
/// that pinhole, status says "pcp", and `remote close` deletes it.
#[test]
fn ipv6_through_pcp_when_the_router_has_no_firewall_control() {
    let dir = tempfile::tempdir().unwrap();
    let net = Netns::up(
        dir.path(),
        RouterKind {
            igd_v1: true,
            ..RouterKind::default()
        },
    )
    .unwrap();
    let state = dir.path().join("G");
    let mut gw = Gateway::start_in_netns(&net.lan(), &state, &[]).unwrap();
    let port = gw.noise.port();
    let pcp_maps = |log: &str| log.lines().filter(|l| pcp_map_line(l)).count();

    let st = status(&state);
    assert_eq!(st["router"]["igd"], "IGDv1", "{st:#}");
    assert_eq!(st["router"]["ipv6_firewall_control"], false, "{st:#}");
    let phone = pair_on_lan(&net, &gw, dir.path());
    assert!(
        !phone_cameras(&net, &net.wan(), &phone).ok,
        "closed: no way in from the internet"
    );
    assert_eq!(pcp_maps(&net.router_log()), 0, "nothing before approval");

    // A short lease, so the test sees a renewal (at half-life) before it closes.
    let opened = remote(&state, &["open", "--ipv6", "--yes", "--lease", "6s"]);
    assert!(
        opened.ok,
        "{}\n{}\n{}",
        opened.stdout,
        opened.stderr,
        gw.log()
    );
    let st = status(&state);
    assert_eq!(st["mappings"][0]["kind"], "ipv6", "{st:#}");
    assert_eq!(st["mappings"][0]["via"], "pcp", "{st:#}");
    assert_eq!(
        st["mappings"][0]["external"],
        format!("[{LAN6_HOST}]:{port}"),
        "{st:#}"
    );
    assert!(st["mappings"][0]["lease_secs"].as_u64().unwrap() > 0);
    assert!(
        st["diagnosis"].as_str().unwrap().contains("over PCP"),
        "{st:#}"
    );
    assert!(
        pcp_maps(&net.router_log()) > 0,
        "the router saw a PCP MAP:\n{}",
        net.router_log()
    );
    assert_eq!(net.table().unwrap(), Vec::<String>::new(), "no IPv4 port");

    // The phone learns the IPv6 address on the LAN, then comes in from the wan.
    assert!(phone_cameras(&net, &net.lan(), &phone).ok);
    let outside = phone_cameras(&net, &net.wan(), &phone);
    assert!(
        outside.ok,
        "from the wan through the PCP pinhole: {}",
        outside.stderr
    );
    assert!(outside.stdout.contains("\"demo\""), "{}", outside.stdout);

    // A renewal, then the phone still gets in; afterwards `close` must still delete it
    // (miniupnpd refuses to delete a pinhole renewed with the same nonce, so renewing is
    // a delete and a fresh MAP).
    let maps_before = pcp_maps(&net.router_log());
    assert!(
        wait_for(Duration::from_secs(12), || (pcp_maps(&net.router_log())
            >= maps_before + 2)
            .then_some(()))
        .is_some(),
        "no renewal within 12 s:\n{}",
        net.router_log()
    );
    assert!(
        phone_cameras(&net, &net.wan(), &phone).ok,
        "after the renewal"
    );

    let closed = remote(&state, &["close", "--json"])
        .expect_ok("close")
        .unwrap();
    let closed: serde_json::Value = serde_json::from_str(&closed.stdout).unwrap();
    assert_eq!(closed["ipv6"]["verified_gone"], true, "{closed:#}");
    assert!(status(&state)["mappings"].as_array().unwrap().is_empty());
    assert!(
        !phone_cameras(&net, &net.wan(), &phone).ok,
        "the PCP pinhole is closed"
    );
    let audit = latchkey(&state, &["audit", "--json"])
        .unwrap()
        .json()
        .unwrap();
    let details: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "remote-pinhole" || a["kind"] == "remote-pinhole-closed")
        .map(|a| a["detail"].to_string())
        .collect();
    assert_eq!(details.len(), 2, "{audit:#}");
    assert!(details.iter().all(|d| d.contains("PCP")), "{details:?}");
    gw.stop().unwrap();
}

/// A PCP MAP request as miniupnpd logs it.
fn pcp_map_line(line: &str) -> bool {
    line.contains("PCP MAP:")
}

/// A camera maps a port to itself: the audit flags it as the camera's, and the owner
/// removes it by index.
#[test]
fn camera_mapping_is_flagged_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let net = Netns::up(dir.path(), RouterKind::default()).unwrap();
    let state = dir.path().join("G");
    let cam = format!("front=rtsp://admin:pw@{LAN_CAM}:554/stream1");
    let _gw = Gateway::start_in_netns(&net.lan(), &state, &["--camera", &cam]).unwrap();
    net.camera_maps(10554, 554).unwrap();
    assert_eq!(net.table().unwrap(), [format!("TCP 10554->{LAN_CAM}:554")]);

    let audit = remote(&state, &["audit", "--json"])
        .expect_ok("audit")
        .unwrap()
        .json()
        .unwrap();
    let m = &audit["mappings"][0];
    assert_eq!(m["owner"], "camera", "{audit:#}");
    assert_eq!(m["camera"], "front");
    assert!(
        m["warning"].as_str().unwrap().contains("camera front"),
        "{m:#}"
    );
    let plain = remote(&state, &["audit"]).expect_ok("audit").unwrap();
    assert!(
        plain.stdout.contains("WARNING: camera front"),
        "{}",
        plain.stdout
    );

    let index = m["index"].as_u64().unwrap().to_string();
    remote(&state, &["audit", "--remove", &index])
        .expect_ok("audit --remove")
        .unwrap();
    assert_eq!(
        net.table().unwrap(),
        Vec::<String>::new(),
        "the camera's mapping is gone"
    );
    let log = latchkey(&state, &["audit", "--json"])
        .unwrap()
        .json()
        .unwrap();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "router-mapping-removed")
    );
}

/// Issue 4 item 7, DESIGN §3: over a whole scenario (start, pair, view, open, view from
/// the internet, close, revoke) every packet the gateway's host sends goes to the router,
/// the phone, or link-scoped discovery (SSDP, IPv6 neighbour discovery). Captured with
/// tcpdump on every interface of the LAN namespace.
#[test]
fn the_gateway_talks_only_to_the_router_and_the_phone() {
    use latchkey_tests::netns::LAN6_HOST;
    let dir = tempfile::tempdir().unwrap();
    let net = Netns::up(dir.path(), RouterKind::default()).unwrap();
    let capture = dir.path().join("capture.txt");
    let mut tcpdump = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.lan(),
            "tcpdump",
            "-i",
            "any",
            "-nn",
            "-l",
            "-q",
            "-t",
        ])
        .stdout(std::fs::File::create(&capture).unwrap())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tcpdump (Debian package tcpdump) must be installed");
    std::thread::sleep(Duration::from_millis(700));

    let state = dir.path().join("G");
    let gw = Gateway::start_in_netns(&net.lan(), &state, &[]).unwrap();
    let phone = pair_on_lan(&net, &gw, dir.path());
    assert!(phone_cameras(&net, &net.lan(), &phone).ok);
    assert_eq!(status(&state)["external_ipv4"], WAN_RTR);
    remote(&state, &["open", "--yes"])
        .expect_ok("remote open")
        .unwrap();
    assert!(
        phone_cameras(&net, &net.lan(), &phone).ok,
        "learn the external address"
    );
    let outside = phone_cameras(&net, &net.wan(), &phone);
    assert!(outside.ok, "{}", outside.stderr);
    remote(&state, &["close"])
        .expect_ok("remote close")
        .unwrap();
    latchkey(&state, &["revoke", "phone"])
        .unwrap()
        .expect_ok("revoke")
        .unwrap();
    drop(gw);
    std::thread::sleep(Duration::from_millis(500));
    let _ = std::process::Command::new("kill")
        .arg("-INT")
        .arg(tcpdump.id().to_string())
        .status();
    let _ = tcpdump.wait();

    let ours = [LAN_HOST, LAN6_HOST];
    let allowed_exact = [
        LAN_HOST,
        LAN6_HOST,
        "192.168.77.1",
        "2001:db8:77::1", // itself and the router
        "203.0.113.2",
        "2001:db8:113::2", // the phone, outside
        "239.255.255.250",
        "ff02::c",
        "ff02::f", // SSDP discovery
    ];
    let text = std::fs::read_to_string(&capture).unwrap();
    let mut seen = 0;
    let mut offenders = Vec::new();
    for line in text.lines() {
        // e.g. "eth0  Out IP 192.168.77.2.41234 > 192.168.77.1.5555: tcp 120"
        // Only what this host sends: tcpdump marks it "Out" on `-i any`.
        if line.split_whitespace().nth(1) != Some("Out") {
            continue;
        }
        let Some((left, right)) = line.split_once(" > ") else {
            continue;
        };
        let src = left.split_whitespace().last().unwrap_or("");
        let dst = right.split(": ").next().unwrap_or("").trim();
        let host = |endpoint: &str| -> String {
            // Strip the ".port" tcpdump appends (IPv4 a.b.c.d.port, IPv6 x:y::z.port).
            match endpoint.rsplit_once('.') {
                Some((h, p))
                    if p.chars().all(|c| c.is_ascii_digit())
                        && (h.contains(':') || h.matches('.').count() == 3) =>
                {
                    h.to_string()
                }
                _ => endpoint.to_string(),
            }
        };
        let (src, dst) = (host(src), host(dst));
        if !ours.contains(&src.as_str()) && !src.starts_with("fe80:") {
            continue; // another address of this namespace (the camera alias)
        }
        seen += 1;
        let ok = allowed_exact.contains(&dst.as_str())
            || dst.starts_with("ff02:") // link-local multicast: neighbour discovery, MLD
            || dst.starts_with("fe80:"); // the router's link-local address
        if !ok {
            offenders.push(line.to_string());
        }
    }
    assert!(
        seen > 50,
        "the capture saw only {seen} packets from the gateway:\n{text}"
    );
    assert!(
        offenders.is_empty(),
        "packets to someone else:\n{}",
        offenders.join("\n")
    );
}

/// ATTACKS 19: the admin UI is for the LAN only. Even through a router mapping someone
/// opened to it, a request from the internet gets no response at all, while the LAN
/// gets the login page.
#[test]
fn the_admin_ui_gives_the_internet_nothing_even_through_a_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let net = Netns::up(dir.path(), RouterKind::default()).unwrap();
    let state = dir.path().join("G");
    let gw = Gateway::start_in_netns_admin(&net.lan(), &state, "0.0.0.0:0", &[]).unwrap();
    let port = gw.admin.port().to_string();
    let curl = |ns: &str, host: &str| -> String {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "curl",
                "-sk",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg(format!("https://{host}:{port}/login"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        curl(&net.lan(), LAN_HOST),
        "200",
        "the LAN gets the login page"
    );
    // Someone on the LAN maps the admin port on the router (the gateway host itself, so
    // the router's secure mode allows it).
    let mapped = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.lan(),
            "upnpc",
            "-i",
            "-a",
            LAN_HOST,
            &port,
            &port,
            "TCP",
            "600",
        ])
        .output()
        .unwrap();
    assert!(
        mapped.status.success(),
        "{}",
        String::from_utf8_lossy(&mapped.stdout)
    );
    assert!(
        net.table()
            .unwrap()
            .iter()
            .any(|l| l.contains(&format!("{port}->"))),
        "mapping in place"
    );
    assert_eq!(
        curl(&net.wan(), WAN_RTR),
        "000",
        "the internet got an answer from the admin UI"
    );
    // The connection did reach the gateway, which closed it: refused, not unreachable.
    assert!(
        wait_for(Duration::from_secs(5), || gw
            .log()
            .contains("refused a connection from outside the LAN")
            .then_some(()))
        .is_some(),
        "the mapping never delivered the connection:\n{}",
        gw.log()
    );
    drop(gw);
}
