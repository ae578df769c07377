//! The camera port's DHCP server: Debian's dnsmasq, DHCP only (`--port=0` turns its DNS
//! off; the gateway answers DNS itself), run and stopped by the gateway. It hands out the
//! gateway as router, DNS and NTP server, and the owner's fixed leases per camera MAC.
//! dnsmasq rather than a DHCP server of our own: it is small, packaged everywhere, and
//! decades of cameras' odd DHCP clients have been tested against it.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;

use anyhow::Context as _;
use tokio::process::{Child, Command};

use super::Lease;

/// The lease time dnsmasq hands out.
const LEASE: &str = "12h";

/// The default address range on a /24 or larger subnet: hosts .100 to .199.
pub fn default_range(gw: Ipv4Addr, prefix: u8) -> anyhow::Result<(Ipv4Addr, Ipv4Addr)> {
    if prefix > 24 {
        anyhow::bail!(
            "the camera port's subnet /{prefix} is smaller than a /24: set camera_port.dhcp_range = \"FIRST-LAST\" in the config"
        );
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    let net = u32::from(gw) & mask;
    Ok((Ipv4Addr::from(net + 100), Ipv4Addr::from(net + 199)))
}

/// dnsmasq's lease file in the gateway's state directory.
pub fn lease_file(state: &Path) -> std::path::PathBuf {
    state.join("quarantine-dhcp.leases")
}

/// dnsmasq's arguments.
pub fn args(
    iface: &str,
    gw: Ipv4Addr,
    range: (Ipv4Addr, Ipv4Addr),
    leases: &[Lease],
    state: &Path,
) -> Vec<String> {
    let mut a = vec![
        "--keep-in-foreground".to_string(),
        "--conf-file=/dev/null".into(),
        "--port=0".into(),
        format!("--interface={iface}"),
        "--bind-interfaces".into(),
        "--dhcp-authoritative".into(),
        format!("--dhcp-range={},{},{LEASE}", range.0, range.1),
        format!("--dhcp-option=option:router,{gw}"),
        format!("--dhcp-option=option:dns-server,{gw}"),
        format!("--dhcp-option=option:ntp-server,{gw}"),
        format!("--dhcp-leasefile={}", lease_file(state).display()),
        format!("--pid-file={}", state.join("quarantine-dhcp.pid").display()),
        "--log-facility=-".into(),
    ];
    for l in leases {
        a.push(format!("--dhcp-host={},{}", l.mac, l.address));
    }
    a
}

/// Stops a dnsmasq this gateway started before a crash (its pid file names it, and the
/// process is a dnsmasq using this state directory's lease file): the new one needs the
/// port. Anything else the pid file might name is left alone.
pub fn stop_stale(state: &Path) {
    let pid_file = state.join("quarantine-dhcp.pid");
    let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    let leases = lease_file(state);
    let ours = cmdline.starts_with("dnsmasq")
        && cmdline.contains(&format!("--dhcp-leasefile={}", leases.display()));
    if ours {
        tracing::warn!(
            pid,
            "stopping the camera port's DHCP server left by an earlier run"
        );
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for _ in 0..50 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let _ = std::fs::remove_file(pid_file);
}

/// Starts dnsmasq; it is killed when the returned child is dropped.
pub fn start(args: &[String]) -> anyhow::Result<Child> {
    Command::new("dnsmasq")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context(
            "starting dnsmasq for the camera port's DHCP (install dnsmasq-base, or set camera_port.dhcp = false and give the cameras fixed addresses)",
        )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ranges_and_arguments() {
        let gw: Ipv4Addr = "10.78.0.1".parse().unwrap();
        let r = default_range(gw, 24).unwrap();
        assert_eq!(r.0.to_string(), "10.78.0.100");
        assert_eq!(r.1.to_string(), "10.78.0.199");
        assert!(default_range(gw, 28).is_err());
        let leases = [Lease {
            mac: "02:00:00:00:00:05".into(),
            address: "10.78.0.5".parse().unwrap(),
            camera: Some("front".into()),
        }];
        let a = args("cam0", gw, r, &leases, Path::new("/s"));
        assert!(a.contains(&"--port=0".to_string()));
        assert!(a.contains(&"--dhcp-host=02:00:00:00:00:05,10.78.0.5".to_string()));
        assert!(a.contains(&"--dhcp-option=option:ntp-server,10.78.0.1".to_string()));
    }
}
