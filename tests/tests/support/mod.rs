//! Helpers the streaming test needs beyond `latchkey_tests`: camera peers and the client's
//! `serve` as child processes (killed on drop) whose ready lines are awaited with deadlines,
//! and commands run inside a test's own network namespaces.

// Test code: a panic is a failed test, which is what these helpers are for.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)] // the attack tests use it, the streaming test does not
pub mod camera_net;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// A running child whose stdout lines can be awaited; killed and reaped on drop.
pub struct Proc {
    name: String,
    child: Child,
    lines: Mutex<Receiver<String>>,
    stderr: PathBuf,
}

impl Proc {
    /// Starts `cmd`, stdout piped line by line, stderr into `NAME.err` in `dir`.
    pub fn spawn(name: &str, cmd: &mut Command, dir: &Path) -> Self {
        let stderr = dir.join(format!("{name}.err"));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            name: name.to_string(),
            child,
            lines: Mutex::new(rx),
            stderr,
        }
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest of it.
    pub fn wait_line(&self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let lines = self.lines.lock().unwrap();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(_) => panic!(
                    "{} printed no {prefix:?} line within {limit:?}; stderr:\n{}",
                    self.name,
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                ),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path of a peer script in tests/peers.
pub fn peer_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(name)
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound by the OS, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Runs `cmd`, asserts success and returns its stdout.
pub fn output_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Polls `check` every 20 ms until it holds; panics after `limit`.
pub fn until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `program` run inside namespace `ns`.
#[allow(dead_code)] // the streaming test includes this module and uses no namespace
pub fn in_ns(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program);
    c
}

/// Fails the test unless every one of `peers` is installed (a missing peer is a failure,
/// never a skip).
#[allow(dead_code)] // the streaming test includes this module and needs no check
pub fn require(peers: &[&str]) {
    for p in peers {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .unwrap();
        assert!(
            found.status.success(),
            "{p} is missing: run tests/run-all.sh (it installs the test peers)"
        );
    }
}
