//! End-to-end: a hostile or broken UPnP router (issue 4 "bad input"). A router in a
//! network namespace answers discovery and then serves endless, random, trickling or
//! malformed descriptions, or redirects outside the LAN. `remote status` must finish with
//! a clear message, the gateway's memory must stay bounded, and nothing is mapped.
//! Runs as root (as CI does), in namespaces it creates and removes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests fail loudly

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use latchkey_tests::{Gateway, latchkey};

static N: AtomicUsize = AtomicUsize::new(0);

/// Two namespaces joined by a veth pair: `lan` (the gateway) and `rtr` (the router).
struct Lan {
    pfx: String,
    router: Option<Child>,
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip").args(args).status().unwrap().success();
    assert!(ok, "ip {args:?} failed (needs root, as in CI)");
}

impl Lan {
    fn up() -> Self {
        let pfx = format!(
            "hr{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let (lan, rtr) = (format!("{pfx}-lan"), format!("{pfx}-rtr"));
        let (a, b) = (format!("{pfx}a"), format!("{pfx}b"));
        ip(&["netns", "add", &lan]);
        ip(&["netns", "add", &rtr]);
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        ip(&["link", "set", &a, "netns", &lan]);
        ip(&["link", "set", &b, "netns", &rtr]);
        ip(&["-n", &lan, "addr", "add", "192.168.77.2/24", "dev", &a]);
        ip(&["-n", &rtr, "addr", "add", "192.168.77.1/24", "dev", &b]);
        for (ns, dev) in [(&lan, &a), (&rtr, &b)] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&["-n", &lan, "route", "add", "default", "via", "192.168.77.1"]);
        Self { pfx, router: None }
    }

    fn lan(&self) -> String {
        format!("{}-lan", self.pfx)
    }

    fn start_router(&mut self, mode: &str, log: &std::path::Path) {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/hostile_router.py");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &format!("{}-rtr", self.pfx), "python3"])
            .arg(script)
            .args(["192.168.77.1", mode])
            .arg(log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert!(line.starts_with("serving"), "hostile router: {line:?}");
        self.router = Some(child);
    }

    fn stop_router(&mut self) {
        if let Some(mut c) = self.router.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.stop_router();
        for ns in [format!("{}-lan", self.pfx), format!("{}-rtr", self.pfx)] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

#[test]
fn a_hostile_router_gets_bounded_reads_timeouts_and_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Lan::up();
    let state = dir.path().join("G");
    let gw = Gateway::start_in_netns(&net.lan(), &state, &[]).unwrap();
    let (rss_start, _) = gw.rss_kib_and_threads().unwrap();
    for mode in ["huge", "garbage", "slow", "badxml", "redirect"] {
        let fetched = dir.path().join(format!("{mode}.log"));
        net.start_router(mode, &fetched);
        let started = Instant::now();
        let out = latchkey(&state, &["remote", "status", "--json"]).unwrap();
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(28),
            "{mode}: remote status took {took:?}"
        );
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(!text.trim().is_empty(), "{mode}: no message at all");
        if out.ok {
            let st: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            assert_ne!(st["verdict"], "reachable", "{mode}: {st:#}");
            assert!(
                st["diagnosis"].as_str().is_some_and(|d| !d.is_empty()),
                "{mode}: {st:#}"
            );
            assert!(
                st["mappings"].as_array().is_none_or(|m| m.is_empty()),
                "{mode}: {st:#}"
            );
        }
        let requests = std::fs::read_to_string(&fetched).unwrap_or_default();
        assert!(
            requests.contains("GET /rootDesc.xml"),
            "{mode}: the gateway never fetched the description"
        );
        let (rss, _) = gw.rss_kib_and_threads().unwrap();
        assert!(
            rss < rss_start + 64 * 1024,
            "{mode}: RSS grew from {rss_start} KiB to {rss} KiB"
        );
        net.stop_router();
    }
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
    let audit = latchkey(&state, &["audit", "--json"])
        .unwrap()
        .json()
        .unwrap();
    assert!(
        !audit.as_array().unwrap().iter().any(|a| a["kind"]
            .as_str()
            .is_some_and(|k| k.starts_with("remote-mapped"))),
        "nothing was mapped: {audit}"
    );
}
