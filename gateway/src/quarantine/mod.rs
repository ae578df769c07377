//! Camera quarantine: the gateway owns a second interface (the camera port) on which the
//! cameras live, cut off from everything but the gateway, and keeps the evidence of what
//! they tried.
//!
//! On the camera port the gateway gives addresses (`dhcp.rs`: dnsmasq, DHCP only, with
//! fixed leases per MAC), answers DNS itself without asking upstream (`dns.rs`: NXDOMAIN
//! or a configured local answer, every name recorded), serves the time (`ntp.rs`), and
//! forwards nothing anywhere (`nft.rs`: an nftables table that drops and records every
//! TCP/UDP attempt per camera and destination, IPv4 and IPv6, and drops router
//! advertisements). The cameras' streams are still pulled by the gateway (it opens those
//! connections) and ONVIF discovery still probes the port (it is a private LAN interface).
//! `neigh.rs` tallies a camera's IPv6 attempts (recorded by MAC) under its IPv4 address.
//! `counters.rs` keeps the tallies bounded whatever a camera sends; the store keeps the
//! same tallies (`store/quarantine.rs`); `report.rs` turns them into the phone-home report;
//! `lockdown.rs` prints rules for the owner's own router where the cameras stay on the LAN.

pub mod counters;
pub mod dhcp;
pub mod dns;
pub mod leases;
pub mod lockdown;
pub mod neigh;
pub mod nft;
pub mod ntp;
pub mod report;
pub mod slots;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Gateway;
use crate::store::Store;
use counters::Counters;

/// How often the drop counters are read.
const READ_EVERY: Duration = Duration::from_secs(2);
/// How often changed tallies are saved.
const SAVE_EVERY: Duration = Duration::from_secs(10);

/// Where the latchkey service gets the camera port's privileges (in error messages).
pub const SERVICE_HINT: &str = "; as the latchkey service: copy /usr/share/doc/latchkey/examples/camera-port.conf to /etc/systemd/system/latchkey.service.d/ and restart it";

/// A fixed address for one camera's MAC.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// The camera's MAC, `02:00:00:00:00:05`.
    pub mac: String,
    /// Its address on the camera port.
    pub address: Ipv4Addr,
    /// The camera's name in the report (default: a camera whose URL names this address).
    pub camera: Option<String>,
}

/// `[camera_port]` in the config, or `latchkey run --camera-port IFACE`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// The interface the cameras live on (`eth1`, `eth0.20`, `br-cam`). It must already
    /// have the gateway's IPv4 address (e.g. 192.168.50.1/24).
    pub interface: String,
    /// Run the DHCP server (dnsmasq) on it [default: true].
    #[serde(default = "yes")]
    pub dhcp: bool,
    /// DHCP addresses, `FIRST-LAST` [default: .100 to .199 of the port's /24].
    pub dhcp_range: Option<String>,
    /// Fixed leases.
    #[serde(default, rename = "lease")]
    pub leases: Vec<Lease>,
    /// Local DNS answers: name → address; every other name gets NXDOMAIN.
    #[serde(default)]
    pub dns_answers: HashMap<String, IpAddr>,
}

fn yes() -> bool {
    true
}

impl PortConfig {
    /// Only the interface, everything else by default.
    pub fn interface(name: &str) -> Self {
        Self {
            interface: name.to_string(),
            dhcp: true,
            dhcp_range: None,
            leases: Vec::new(),
            dns_answers: HashMap::new(),
        }
    }

    /// Checks what goes into nft and dnsmasq arguments.
    pub fn check(&self) -> anyhow::Result<()> {
        let i = &self.interface;
        if i.is_empty()
            || i.len() > 15
            || !i
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            anyhow::bail!(
                "camera port {i:?} is not an interface name: use 1 to 15 of a-z A-Z 0-9 . _ -"
            );
        }
        for l in &self.leases {
            if !valid_mac(&l.mac) {
                anyhow::bail!(
                    "camera_port lease MAC {:?}: write it as 02:00:00:00:00:05",
                    l.mac
                );
            }
        }
        Ok(())
    }
}

/// The camera port to run: the config's, with `--camera-port IFACE` naming the interface.
pub fn port_config(file: Option<PortConfig>, flag: Option<String>) -> Option<PortConfig> {
    match (file, flag) {
        (Some(mut f), Some(i)) => {
            f.interface = i;
            Some(f)
        }
        (f, None) => f,
        (None, Some(i)) => Some(PortConfig::interface(&i)),
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn valid_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The quarantine's shared state: tallies (loaded from the store) and whether the port is on.
#[derive(Debug)]
pub struct Quarantine {
    counters: Arc<Mutex<Counters>>,
    store: Store,
    port: Mutex<Option<PortConfig>>,
}

impl Quarantine {
    /// The tallies kept in `store` (none if they cannot be read: the report starts again).
    pub fn new(store: Store) -> Self {
        let counters = store.load_quarantine().unwrap_or_else(|e| {
            tracing::warn!("reading the quarantine report: {e}; starting a new one");
            Counters::default()
        });
        Self {
            counters: Arc::new(Mutex::new(counters)),
            store,
            port: Mutex::new(None),
        }
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Saves the tallies if they changed.
    pub fn save(&self) {
        let snapshot = {
            let mut c = self.counters();
            if !c.dirty {
                return;
            }
            c.dirty = false;
            c.clone()
        };
        if let Err(e) = self.store.save_quarantine(&snapshot) {
            tracing::warn!("saving the quarantine report: {e}");
        }
    }

    /// Entries held in memory (names and destinations).
    pub fn entries(&self) -> usize {
        self.counters().entries()
    }

    /// The report, naming sources by the cameras at their addresses.
    pub fn report(
        &self,
        cameras: &[crate::config::CameraConfig],
        only: Option<&str>,
        since: Option<u64>,
    ) -> report::Report {
        let port = self.port.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut names = HashMap::new();
        for c in cameras {
            if let Some(ip) = camera_ip(&c.source) {
                names.insert(ip, c.id.clone());
            }
        }
        for l in port.iter().flat_map(|p| p.leases.iter()) {
            if let Some(name) = &l.camera {
                names.insert(IpAddr::V4(l.address), name.clone());
            }
        }
        let iface = port.map(|p| p.interface);
        report::build(&self.counters(), &names, iface, only, since)
    }
}

/// The address a camera source connects to, when it is a literal IP.
pub fn camera_ip(source: &crate::camera::CameraSource) -> Option<IpAddr> {
    use crate::camera::CameraSource;
    let url = match source {
        CameraSource::Rtsp { url, .. } => url.as_str(),
        CameraSource::Mjpeg(u) | CameraSource::Snapshot(u) => u.as_str(),
        CameraSource::Demo => return None,
    };
    let host = url::Url::parse(url).ok()?.host_str()?.to_string();
    host.trim_matches(|c| c == '[' || c == ']').parse().ok()
}

/// The addresses of the cameras the owner named: the fixed leases and the cameras whose
/// URL is an address (their rows in the report are kept, `counters.rs`).
fn named(gw: &Gateway) -> std::collections::HashSet<IpAddr> {
    let port = gw.quarantine.port.lock().unwrap_or_else(|p| p.into_inner());
    let leases = port.iter().flat_map(|p| p.leases.iter());
    let cameras = gw.cameras.configs();
    leases
        .map(|l| IpAddr::V4(l.address))
        .chain(cameras.iter().filter_map(|c| camera_ip(&c.source)))
        .collect()
}

/// The interface's first IPv4 address and prefix length.
fn port_address(iface: &str) -> anyhow::Result<(Ipv4Addr, u8)> {
    let addrs = if_addrs::get_if_addrs().context("listing network interfaces")?;
    addrs
        .into_iter()
        .filter(|a| a.name == iface)
        .find_map(|a| match a.addr {
            if_addrs::IfAddr::V4(v4) => Some((v4.ip, v4.prefixlen)),
            if_addrs::IfAddr::V6(_) => None,
        })
        .with_context(|| {
            format!(
                "camera port {iface} has no IPv4 address: give it one (e.g. `ip addr add 192.168.50.1/24 dev {iface}`) and start again"
            )
        })
}

fn dhcp_range(cfg: &PortConfig, gw: Ipv4Addr, prefix: u8) -> anyhow::Result<(Ipv4Addr, Ipv4Addr)> {
    match &cfg.dhcp_range {
        None => dhcp::default_range(gw, prefix),
        Some(r) => {
            let parsed = r
                .split_once('-')
                .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
            parsed.with_context(|| {
                format!(
                    "camera_port.dhcp_range {r:?}: write it as \"192.168.50.100-192.168.50.199\""
                )
            })
        }
    }
}

/// A socket for one of the camera port's servers, bound to the port's interface too: the
/// kernel would otherwise hand it packets for `addr` that came in on any interface (the
/// LAN, the WAN of a box that routes), and those would be answered and put in the report.
async fn bind_udp(addr: SocketAddr, iface: &str, what: &str) -> anyhow::Result<UdpSocket> {
    let sock = UdpSocket::bind(addr).await.with_context(|| {
        format!("binding the camera port's {what} server on {addr} (nothing else may serve it there, and the gateway needs CAP_NET_BIND_SERVICE{})", SERVICE_HINT)
    })?;
    sock.bind_device(Some(iface.as_bytes())).with_context(|| {
        format!("binding the camera port's {what} server to {iface} (the gateway needs Linux 5.7 or CAP_NET_RAW{})", SERVICE_HINT)
    })?;
    Ok(sock)
}

/// Turns the camera port on: firewall, DNS, NTP and DHCP; returns the task that records
/// what the cameras try and, once `shutdown` is cancelled, turns everything off again.
pub async fn start(
    gw: Arc<Gateway>,
    cfg: PortConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    cfg.check()?;
    let iface = cfg.interface.clone();
    let (addr, prefix) = port_address(&iface)?;
    let dns = bind_udp(SocketAddr::from((addr, 53)), &iface, "DNS").await?;
    let ntp = bind_udp(SocketAddr::from((addr, 123)), &iface, "NTP").await?;
    let dhcp = if cfg.dhcp {
        let range = dhcp_range(&cfg, addr, prefix)?;
        let args = dhcp::args(&iface, addr, range, &cfg.leases, &gw.state_dir);
        dhcp::stop_stale(&gw.state_dir);
        let mut child = dhcp::start(&args)?;
        // dnsmasq checks its sockets before it settles: an early exit is a failed start
        // (another DHCP server on the port, or a dnsmasq left behind by a crash).
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!(
                "the camera port's DHCP server (dnsmasq) stopped at once ({status}): is another DHCP server running on {iface}? Stop it, or set camera_port.dhcp = false"
            );
        }
        Some(child)
    } else {
        None
    };
    let lease_file = cfg.dhcp.then(|| dhcp::lease_file(&gw.state_dir));
    let mut binding = leases::Binding::new(&cfg.leases, lease_file);
    nft::apply(&iface, &binding).await?;
    let q = &gw.quarantine;
    *q.port.lock().unwrap_or_else(|p| p.into_inner()) = Some(cfg.clone());
    let named = named(&gw);
    q.counters().named = named;
    let local: HashMap<String, IpAddr> = cfg
        .dns_answers
        .iter()
        .map(|(k, v)| (k.trim_end_matches('.').to_ascii_lowercase(), *v))
        .collect();
    let dns_task = tokio::spawn(dns::serve(dns, local, q.counters.clone(), shutdown.clone()));
    let ntp_task = tokio::spawn(ntp::serve(ntp, shutdown.clone()));
    tracing::info!(interface = %iface, address = %addr, "camera port on");
    println!("camera port {iface} {addr}/{prefix}");
    Ok(tokio::spawn(async move {
        record(&gw, &iface, &mut binding, shutdown).await;
        let _ = dns_task.await;
        let _ = ntp_task.await;
        if let Some(mut child) = dhcp {
            let _ = child.kill().await;
        }
        if let Err(e) = nft::remove().await {
            tracing::warn!("removing the camera port's firewall rules: {e:#}");
        }
        *gw.quarantine.port.lock().unwrap_or_else(|p| p.into_inner()) = None;
        gw.quarantine.save();
        tracing::info!("camera port off");
    }))
}

/// Reads the drop counters into the tallies until `shutdown`, saving as it goes, and
/// keeps the table's leases and slots up to date.
async fn record(
    gw: &Gateway,
    iface: &str,
    binding: &mut leases::Binding,
    shutdown: CancellationToken,
) {
    let q = &gw.quarantine;
    let mut before = nft::Reading::default();
    let mut read = tokio::time::interval(READ_EVERY);
    let mut watch = tokio::time::interval(leases::WATCH_EVERY);
    let mut last_save = tokio::time::Instant::now();
    loop {
        let stop = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = watch.tick() => {
                if let Some(cmds) = binding.refresh(nft::TABLE)
                    && !apply_or_warn(&cmds).await
                {
                    binding.failed();
                }
                continue;
            }
            _ = read.tick() => false,
        };
        match nft::read().await {
            Ok(now_reading) => {
                let d = nft::delta(&before, &now_reading);
                before = now_reading;
                let sources = d.seen.keys().map(|(s, _)| *s).chain(d.over.keys().copied());
                let cmds = binding.assign_seen(nft::TABLE, sources);
                if !cmds.is_empty() && !apply_or_warn(&cmds).await {
                    binding.failed();
                }
                tally(gw, iface, binding.bound(), d).await;
            }
            Err(e) => tracing::warn!("reading the camera port's drop counters: {e:#}"),
        }
        if stop {
            return;
        }
        if last_save.elapsed() >= SAVE_EVERY {
            q.save();
            last_save = tokio::time::Instant::now();
        }
    }
}

/// Runs `cmds`; whether they were applied.
async fn apply_or_warn(cmds: &str) -> bool {
    match nft::run(cmds).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("updating the camera port's leases and records: {e:#}");
            false
        }
    }
}

/// Adds one reading's new packets to the tallies (IPv6 sources, their MACs, under their
/// IPv4 address).
async fn tally(
    gw: &Gateway,
    iface: &str,
    bound: &std::collections::BTreeSet<(Ipv4Addr, String)>,
    d: nft::Reading,
) {
    let alias = if d.seen.keys().any(|(s, _)| s.is_ipv6()) || d.over.keys().any(IpAddr::is_ipv6) {
        neigh::read(iface, bound).await
    } else {
        HashMap::new()
    };
    let who = |ip: IpAddr| alias.get(&ip).copied().unwrap_or(ip);
    let now = crate::unix_now();
    let named = named(gw);
    let mut c = gw.quarantine.counters();
    c.named = named;
    for ((src, dest), n) in d.seen {
        c.camera(who(src)).dest(dest, n, now);
    }
    for (src, n) in d.over {
        c.camera(who(src)).other_dests.add(n, now);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_packaged_example_parses_uncommented_and_the_flag_names_the_port() {
        let example = include_str!("../../debian/latchkey.toml");
        let block: String = example
            .lines()
            .skip_while(|l| !l.starts_with("#[camera_port]"))
            .map(|l| format!("{}\n", l.trim_start_matches('#')))
            .collect();
        let file: crate::config::FileConfig = toml::from_str(&block).unwrap();
        let port = file.camera_port.unwrap();
        port.check().unwrap();
        assert_eq!(port.leases[0].camera.as_deref(), Some("front"));
        assert_eq!(port.dns_answers.len(), 1);
        assert!(port.dhcp);
        let flagged = port_config(Some(port), Some("eth2".into())).unwrap();
        assert_eq!(flagged.interface, "eth2");
        assert_eq!(port_config(None, None), None);
    }

    #[test]
    fn port_config_is_checked() {
        assert!(PortConfig::interface("eth0.20").check().is_ok());
        assert!(PortConfig::interface("eth0; drop").check().is_err());
        assert!(PortConfig::interface("").check().is_err());
        assert!(valid_mac("02:00:00:00:00:0a"));
        assert!(!valid_mac("02:00:00:00:00"));
        assert!(!valid_mac("02:00:00:00:00:0g"));
    }
}
