//! A real UPnP IGD router (Debian's miniupnpd) in three network namespaces of this test's
//! own (`PFX-wan`, `PFX-rtr`, `PFX-lan`), built by `tests/peers/netns-upnp.sh` and always
//! torn down on drop. Needs root (CI runs as root) and the packages `tests/run-all.sh`
//! installs; a missing miniupnpd is an error, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;

use crate::{Run, bin};

/// The router's external address in the normal topology.
pub const WAN_RTR: &str = "203.0.113.1";
/// The gateway's address in the LAN namespace.
pub const LAN_HOST: &str = "192.168.77.2";
/// The "camera" address in the LAN namespace.
pub const LAN_CAM: &str = "192.168.77.3";
/// The gateway's global IPv6 address.
pub const LAN6_HOST: &str = "2001:db8:77::2";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// How the router behaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct RouterKind {
    /// Describe itself as IGDv1 (`force_igd_desc_v1`).
    pub igd_v1: bool,
    /// Its WAN side is 100.64.0.0/10: it reports a carrier-grade NAT address.
    pub cgnat: bool,
}

/// One router topology, removed on drop.
#[derive(Debug)]
pub struct Netns {
    /// Namespace prefix, unique to this test run.
    pub pfx: String,
    state: PathBuf,
    kind: RouterKind,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/netns-upnp.sh")
}

/// One `(mapping)` line of the router's table as `upnpc -l` prints it, e.g.
/// `TCP 41234->192.168.77.2:41234`.
pub type TableLine = String;

impl Netns {
    /// Builds the namespaces and starts miniupnpd; files go under `dir`.
    pub fn up(dir: &Path, kind: RouterKind) -> anyhow::Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pfx = format!("lk{}x{n}", std::process::id());
        let me = Self {
            pfx,
            state: dir.join("netns"),
            kind,
        };
        me.script(&["up"])
            .context("building the router namespaces")?;
        Ok(me)
    }

    fn script(&self, args: &[&str]) -> anyhow::Result<Run> {
        let out = Command::new("bash")
            .arg(script())
            .args(args)
            .env("PFX", &self.pfx)
            .env("STATE", &self.state)
            .env("IGD_V1", if self.kind.igd_v1 { "1" } else { "0" })
            .env("CGNAT", if self.kind.cgnat { "1" } else { "0" })
            .stdin(Stdio::null())
            .output()
            .context("running tests/peers/netns-upnp.sh")?;
        let run = Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        run.expect_ok(&format!("netns-upnp.sh {args:?}"))
    }

    /// The LAN namespace (run the gateway here).
    pub fn lan(&self) -> String {
        format!("{}-lan", self.pfx)
    }

    /// The internet namespace (the remote phone).
    pub fn wan(&self) -> String {
        format!("{}-wan", self.pfx)
    }

    /// The router's mapping table, read with miniupnpc's `upnpc -l` from the LAN.
    pub fn table(&self) -> anyhow::Result<Vec<TableLine>> {
        let run = self.script(&["list"])?;
        Ok(run
            .stdout
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let index = words.next()?;
                let proto = words.next()?;
                let map = words.next()?;
                (index.parse::<u32>().is_ok() && (proto == "TCP" || proto == "UDP"))
                    .then(|| format!("{proto} {map}"))
            })
            .collect())
    }

    /// Restarts miniupnpd with an empty table, as a router reboot does.
    pub fn reboot_router(&self) -> anyhow::Result<()> {
        self.script(&["reboot-router"]).map(|_| ())
    }

    /// A camera at [`LAN_CAM`] maps external port `ext` to its own port `int`.
    pub fn camera_maps(&self, ext: u16, int: u16) -> anyhow::Result<()> {
        self.script(&["cam-map", &ext.to_string(), &int.to_string()])
            .map(|_| ())
    }

    /// Runs a workspace binary inside namespace `ns` with a deadline.
    pub fn exec(
        &self,
        ns: &str,
        name: &str,
        args: &[&str],
        deadline: Duration,
    ) -> anyhow::Result<Run> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(bin(name)?).args(args);
        crate::run_command(cmd, &format!("{name} {args:?} in {ns}"), deadline)
    }

    /// The router's log so far.
    pub fn router_log(&self) -> String {
        std::fs::read_to_string(self.state.join("miniupnpd.log")).unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = self.script(&["down"]) {
            eprintln!("tearing down namespaces {}: {e:#}", self.pfx);
        }
    }
}
