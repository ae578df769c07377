//! Test harness: start the real `latchkey` and `latchkey-client` binaries on OS-chosen
//! ports in temporary directories, wait for them with deadlines, and clean up.
//!
//! The binaries must be built first; `cargo test --workspace` builds them.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub mod netns;

/// Where cargo put the binaries: next to the test executable's `deps/` folder.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    let deps = exe.parent().context("test executable has no parent")?;
    let dir = if deps.ends_with("deps") {
        deps.parent().context("deps has no parent")?
    } else {
        deps
    };
    Ok(dir.to_path_buf())
}

/// Path of a workspace binary, failing clearly if it was not built.
pub fn bin(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir()?.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build the workspace first (`cargo test --workspace` does)",
            path.display()
        );
    }
    Ok(path)
}

/// The result of running a command to completion.
#[derive(Debug)]
pub struct Run {
    /// Exit success.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// The result of a finished process.
    pub fn from(out: Output) -> Self {
        Self {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Fails with both streams shown unless the command succeeded.
    pub fn expect_ok(self, what: &str) -> anyhow::Result<Self> {
        if !self.ok {
            bail!(
                "{what} failed\nstdout: {}\nstderr: {}",
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }

    /// Parses stdout as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.stdout)
            .with_context(|| format!("stdout is not JSON: {}", self.stdout))
    }
}

/// Runs `cmd` to completion with a deadline, no stdin and no backtraces; `what` names it
/// in errors. Every way the tests run a short-lived command goes through here.
pub fn run_command(mut cmd: Command, what: &str, deadline: Duration) -> anyhow::Result<Run> {
    let mut child = cmd
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let start = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            return Ok(Run::from(child.wait_with_output()?));
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            bail!(
                "{what} did not finish within {deadline:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a binary with a deadline, no stdin, and quiet logs.
pub fn run_bin(name: &str, args: &[&str], deadline: Duration) -> anyhow::Result<Run> {
    let mut cmd = Command::new(bin(name)?);
    cmd.args(args);
    run_command(cmd, &format!("{name} {args:?}"), deadline)
}

/// `latchkey --state DIR ARGS...`
pub fn latchkey(state: &Path, args: &[&str]) -> anyhow::Result<Run> {
    let state = state.to_string_lossy();
    let mut all = vec!["--state", &state];
    all.extend_from_slice(args);
    run_bin("latchkey", &all, Duration::from_secs(30))
}

/// `latchkey-client --state DIR ARGS...`
pub fn client(state: &Path, args: &[&str]) -> anyhow::Result<Run> {
    let state = state.to_string_lossy();
    let mut all = vec!["--state", &state];
    all.extend_from_slice(args);
    run_bin("latchkey-client", &all, Duration::from_secs(30))
}

/// A running gateway daemon, stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    /// The Noise listener.
    pub noise: SocketAddr,
    /// The admin HTTPS listener.
    pub admin: SocketAddr,
    /// The admin certificate's SHA-256 fingerprint, as printed.
    pub cert_fingerprint: String,
    /// The one-time admin UI setup link, printed while no password is set.
    pub setup_link: Option<String>,
    /// The state directory.
    pub state: PathBuf,
    log: PathBuf,
}

impl Gateway {
    /// Starts `latchkey run` on 127.0.0.1 port 0 with `extra` arguments and waits until
    /// it prints its listening lines.
    pub fn start(state: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_on(state, "127.0.0.1:0", extra)
    }

    /// Stops the daemon and starts it again (outside any namespace) on the same Noise
    /// address, as a reboot would.
    pub fn restart(&mut self, extra: &[&str]) -> anyhow::Result<()> {
        self.stop()?;
        let noise = self.noise.to_string();
        *self = Self::start_on(&self.state.clone(), &noise, extra)?;
        Ok(())
    }

    /// Starts `latchkey run` with its Noise listener on `noise` (admin on port 0).
    pub fn start_on(state: &Path, noise: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_cmd(
            Command::new(bin("latchkey")?),
            noise,
            "127.0.0.1:0",
            state,
            extra,
        )
    }

    /// Starts `latchkey run` inside the network namespace `ns` (`ip netns exec`), with
    /// Noise on every address of the namespace (`[::]:0`, so both the LAN IPv4 and the
    /// global IPv6 address answer) and admin HTTPS on its loopback.
    pub fn start_in_netns(ns: &str, state: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_in_netns_admin(ns, state, "127.0.0.1:0", extra)
    }

    /// Like [`Self::start_in_netns`], with the admin HTTPS listener on `admin`.
    pub fn start_in_netns_admin(
        ns: &str,
        state: &Path,
        admin: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(bin("latchkey")?);
        Self::start_cmd(cmd, "[::]:0", admin, state, extra)
    }

    /// Starts `cmd` (the `latchkey` binary, or a wrapper such as `setpriv ... latchkey`,
    /// with any environment the caller set) as `latchkey run` on 127.0.0.1 port 0.
    pub fn start_command(cmd: Command, state: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_cmd(cmd, "127.0.0.1:0", "127.0.0.1:0", state, extra)
    }

    fn start_cmd(
        mut cmd: Command,
        listen: &str,
        admin: &str,
        state: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(state)?;
        let log = state.with_extension("log");
        let log_file = std::fs::File::create(&log)?;
        let mut child = cmd
            .arg("--state")
            .arg(state)
            .args(["run", "--listen", listen, "--admin-listen", admin])
            .args(extra)
            .env("LATCHKEY_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .context("starting latchkey run")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut noise, mut admin, mut fp, mut setup_link) = (None, None, None, None);
        while noise.is_none() || admin.is_none() || fp.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "gateway did not become ready; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            };
            if let Some(a) = line.strip_prefix("listening noise ") {
                noise = Some(a.parse()?);
            } else if let Some(a) = line.strip_prefix("listening admin https://") {
                admin = Some(a.parse()?);
            } else if let Some(l) = line.strip_prefix("setup ") {
                setup_link = Some(l.to_string());
            } else if let Some(f) = line.strip_prefix("admin certificate sha256 ") {
                fp = Some(f.to_string());
            }
        }
        let (Some(noise), Some(admin), Some(cert_fingerprint)) = (noise, admin, fp) else {
            bail!("unreachable")
        };
        Ok(Self {
            child,
            noise,
            admin,
            cert_fingerprint,
            setup_link,
            state: state.to_path_buf(),
            log,
        })
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors of the daemon.
    pub fn open_fds(&self) -> anyhow::Result<usize> {
        Ok(std::fs::read_dir(format!("/proc/{}/fd", self.pid()))?.count())
    }

    /// Resident memory of the daemon, in KiB, and its thread count.
    pub fn rss_kib_and_threads(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{name} missing from /proc status"))
        };
        Ok((field("VmRSS:")?, field("Threads:")?))
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the daemon with SIGTERM and waits for it (SIGKILL after 10 s).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("gateway ignored SIGTERM for 10 s")
    }

    /// Kills the daemon at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Mints a pairing URI with `latchkey pair --uri-only` and extra flags.
    pub fn pair_uri(&self, flags: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["pair", "--uri-only"];
        args.extend_from_slice(flags);
        let out = latchkey(&self.state, &args)?.expect_ok("latchkey pair")?;
        Ok(out.stdout.trim().to_string())
    }

    /// The id of the device named `name`.
    pub fn device_id(&self, name: &str) -> anyhow::Result<String> {
        let list = latchkey(&self.state, &["devices", "--json"])?
            .expect_ok("latchkey devices")?
            .json()?;
        list.as_array()
            .into_iter()
            .flatten()
            .find(|d| d.get("name").and_then(|n| n.as_str()) == Some(name))
            .and_then(|d| d.get("id").and_then(|i| i.as_str()).map(String::from))
            .with_context(|| format!("no device named {name} in {list}"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.stop().is_err() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `f` until it returns `Some` or `deadline` passes.
pub fn wait_for<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
