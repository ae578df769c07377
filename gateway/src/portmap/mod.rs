//! Remote access with the owner's consent: the port-mapping manager.
//!
//! Nothing is asked of the router unless a standing owner approval is in the store: a
//! fresh or restarted gateway, or a rediscovered router, sends no AddPortMapping and no
//! AddPinhole without one (discovery and status queries are allowed). With an approval,
//! the manager keeps a finite-lease IPv4 mapping (upnp.rs) and/or an IPv6 pinhole
//! (pinhole.rs) for the Noise port, renews them at half-life, re-adds them when the
//! router lost them (a reboot), removes them on `remote close` (checking the router's
//! table afterwards) and on shutdown, and restores them on start only while approved.
//!
//! ```text
//!  admin socket ──open/close──▶ store (approval, audited) ──▶ PortMapper::apply ──▶ router
//!  run() loop: every lease/2 ──▶ renew / repair ──┘       shutdown ──▶ remove (approval kept)
//! ```

pub mod audit;
pub mod diagnosis;
pub mod pcp;
pub mod pinhole;
pub mod upnp;

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use igd_next::PortMappingProtocol;
use igd_next::aio::Gateway as IgdGateway;
use igd_next::aio::tokio::Tokio;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::CameraConfig;
use crate::store::{RemoteApproval, Store};
use crate::unix_now;
use diagnosis::{Facts, diagnose, is_cgnat};
use pinhole::{GlobalV6, Renewed};
use upnp::Router;

/// Lease asked of the router unless the owner says otherwise.
pub const DEFAULT_LEASE_SECS: u32 = 3600;
/// Shortest lease accepted (tests use it; a router reboot is repaired within half of it).
pub const MIN_LEASE_SECS: u32 = 4;
/// Longest lease (the IGDv2 pinhole maximum).
pub const MAX_LEASE_SECS: u32 = 86_400;
/// Retry delay after a failed renewal (never longer than half the lease).
const RETRY: Duration = Duration::from_secs(15);

/// Everything that can go wrong talking to the router.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortmapError {
    /// No UPnP router answered on the LAN.
    #[error(
        "searching for a UPnP router on {lans}: {}{}",
        match failed { Some(why) => format!("a device answered, but it is not a usable router ({why})"), None => "none answered".to_string() },
        if *ignored > 0 { format!(" ({ignored} answers from outside the LAN subnet were ignored)") } else { String::new() }
    )]
    NoRouter {
        /// The LAN addresses searched from.
        lans: String,
        /// Answers ignored because they named a router off the LAN.
        ignored: usize,
        /// Why the last answer could not be used (a broken or hostile description).
        failed: Option<String>,
    },
    /// No router answered an IPv6 search.
    #[error("searching for the router over IPv6 from {from}: none answered")]
    NoRouterV6 {
        /// Our global address.
        from: Ipv6Addr,
    },
    /// The router has no WANIPv6FirewallControl.
    #[error(
        "the router at {router} offers no IPv6 firewall control (WANIPv6FirewallControl): allow inbound TCP to this gateway on its admin page"
    )]
    NoFirewallControl {
        /// The router.
        router: SocketAddr,
    },
    /// This host has no global IPv6 address.
    #[error(
        "finding this gateway's global IPv6 address: there is none, so no IPv6 pinhole can help"
    )]
    NoGlobalIpv6,
    /// The router did not answer in time.
    #[error("{op} at the router {router}: no answer within {secs} s")]
    Timeout {
        /// What was asked.
        op: &'static str,
        /// The router.
        router: SocketAddr,
        /// The timeout.
        secs: u64,
    },
    /// The router answered with an error.
    #[error("{op} at the router {router}: {source}")]
    Router {
        /// What was asked.
        op: &'static str,
        /// The router.
        router: SocketAddr,
        /// igd-next's error.
        #[source]
        source: Box<igd_next::Error>,
    },
    /// A hand-written request failed.
    #[error("{op} at the router {router}: {detail}")]
    Soap {
        /// What was asked.
        op: &'static str,
        /// The router.
        router: SocketAddr,
        /// What happened.
        detail: String,
    },
    /// A PCP request failed or was refused.
    #[error("{op} over PCP at the router {router}: {detail}")]
    Pcp {
        /// What was asked.
        op: &'static str,
        /// The router's PCP server.
        router: SocketAddr,
        /// What happened.
        detail: String,
    },
    /// Neither UPnP over IPv6 nor the routing table names an IPv6 router.
    #[error(
        "finding the IPv6 router for PCP: UPnP over IPv6 found none ({upnp}) and this host has no IPv6 default route"
    )]
    NoIpv6Router {
        /// Why UPnP over IPv6 did not help.
        upnp: String,
    },
    /// The host's interfaces could not be read.
    #[error("reading this host's network interfaces: {0}")]
    Interfaces(#[source] std::io::Error),
}

#[derive(Clone, Debug)]
struct V4Map {
    internal: SocketAddrV4,
    external_port: u16,
    permanent: bool,
    lease_secs: u32,
    renewed_at: u64,
}

/// How the IPv6 opening was made; renewal, repair, removal and status follow it.
#[derive(Clone, Debug)]
enum Opening {
    /// An IGDv2 WANIPv6FirewallControl pinhole, by its id.
    Pinhole { id: u16 },
    /// A PCP MAP, with when its epoch was last seen (for restart detection).
    Pcp {
        mapping: Box<crab_nat::PortMapping>,
        seen: Instant,
    },
}

#[derive(Clone, Debug)]
struct V6Hole {
    via: Opening,
    to: SocketAddrV6,
    lease_secs: u32,
    renewed_at: u64,
}

impl V6Hole {
    fn via(&self) -> &'static str {
        match self.via {
            Opening::Pinhole { .. } => "upnp",
            Opening::Pcp { .. } => "pcp",
        }
    }

    /// Where phones reach it.
    fn external(&self) -> SocketAddrV6 {
        match &self.via {
            Opening::Pinhole { .. } => self.to,
            Opening::Pcp { mapping, .. } => pcp::external(mapping, self.to),
        }
    }

    fn describe(&self) -> String {
        match &self.via {
            Opening::Pinhole { id } => format!("IPv6 pinhole {id} to {}", self.to),
            Opening::Pcp { mapping, .. } => format!(
                "IPv6 PCP mapping to {} at {}",
                self.to,
                pcp::router_of(mapping).addr()
            ),
        }
    }
}

#[derive(Debug, Default)]
struct Live {
    router: Option<Router>,
    router6: Option<IgdGateway<Tokio>>,
    external_ip: Option<IpAddr>,
    v4: Option<V4Map>,
    v6: Option<V6Hole>,
    v4_error: Option<String>,
    v6_error: Option<String>,
    next_due: Option<Instant>,
}

/// The manager; one per gateway, shared by the admin socket and its own renewal task.
#[derive(Debug)]
pub struct PortMapper {
    store: Store,
    noise_port: u16,
    description: String,
    cameras: Vec<CameraConfig>,
    live: tokio::sync::Mutex<Live>,
    published: std::sync::Mutex<Vec<SocketAddr>>,
    wake: tokio::sync::Notify,
}

async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> anyhow::Result<T> {
    let store = store.clone();
    Ok(tokio::task::spawn_blocking(move || f(&store)).await??)
}

fn audit(store: &Store, kind: &str, detail: &str) {
    if let Err(e) = store.audit(unix_now(), kind, None, None, detail) {
        tracing::error!("writing the audit log: {e}");
    }
}

impl PortMapper {
    /// A manager for the Noise listener on `noise_port`.
    pub fn new(
        store: Store,
        noise_port: u16,
        gateway_name: &str,
        cameras: Vec<CameraConfig>,
    ) -> Self {
        Self {
            store,
            noise_port,
            description: upnp::description(gateway_name),
            cameras,
            live: tokio::sync::Mutex::default(),
            published: std::sync::Mutex::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The addresses remote phones can use right now (external IPv4:port, global IPv6),
    /// for pairing URIs and each session's hello.
    pub fn published(&self) -> Vec<SocketAddr> {
        self.published.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn publish(&self, live: &Live) {
        let mut out = Vec::new();
        if let (Some(IpAddr::V4(ip)), Some(m)) = (live.external_ip, &live.v4) {
            // A CGNAT or private external address is no use to a phone outside.
            if !is_cgnat(ip) && !ip.is_private() && !ip.is_unspecified() {
                out.push(SocketAddr::from((ip, m.external_port)));
            }
        }
        if let Some(h) = &live.v6 {
            out.push(SocketAddr::V6(h.external()));
        }
        if let Ok(mut p) = self.published.lock() {
            *p = out;
        }
    }

    async fn router<'a>(&self, live: &'a mut Live) -> Result<&'a Router, PortmapError> {
        if live.router.is_none() {
            live.router = Some(upnp::discover().await?);
        }
        live.router.as_ref().ok_or(PortmapError::NoRouter {
            lans: String::new(),
            ignored: 0,
            failed: None,
        })
    }

    /// Brings the router in line with `approval` (add, renew, repair). Only ever called
    /// with a standing approval read from the store.
    async fn apply(&self, live: &mut Live, approval: &RemoteApproval) {
        let now = unix_now();
        let lease = approval.lease_secs.clamp(MIN_LEASE_SECS, MAX_LEASE_SECS);
        let mut ok = true;
        if approval.ipv4 {
            match self.apply_v4(live, lease, now).await {
                Ok(()) => live.v4_error = None,
                Err(e) => {
                    tracing::warn!("keeping the IPv4 mapping: {e}");
                    live.v4_error = Some(e.to_string());
                    // Rediscover next time: the router may have moved or restarted.
                    live.router = None;
                    ok = false;
                }
            }
        } else {
            self.remove_v4(live).await;
        }
        if approval.ipv6 {
            match self.apply_v6(live, lease, now).await {
                Ok(()) => live.v6_error = None,
                Err(e) => {
                    tracing::warn!("keeping the IPv6 pinhole: {e}");
                    live.v6_error = Some(e.to_string());
                    live.router6 = None;
                    ok = false;
                }
            }
        } else {
            self.remove_v6(live).await;
        }
        // A router may grant a PCP lifetime shorter than asked: renew at half of that.
        let granted = live.v6.as_ref().map_or(lease, |h| h.lease_secs.min(lease));
        let half = Duration::from_secs(u64::from(lease.min(granted) / 2).max(1));
        live.next_due = Some(Instant::now() + if ok { half } else { half.min(RETRY) });
        self.publish(live);
    }

    async fn apply_v4(&self, live: &mut Live, lease: u32, now: u64) -> Result<(), PortmapError> {
        let router = self.router(live).await?.clone();
        let external_ip = router.external_ip().await?;
        live.external_ip = Some(external_ip);
        let internal = SocketAddrV4::new(router.local_ip, self.noise_port);
        let (preferred, repaired) = match &live.v4 {
            Some(m) => {
                // Look before renewing: a mapping the router lost (a reboot) is a repair,
                // and the owner reads about it in the audit log.
                let table = router.table().await?;
                let present = table.iter().any(|e| {
                    e.external_port == m.external_port
                        && e.internal_port == self.noise_port
                        && e.internal_client == router.local_ip.to_string()
                });
                (m.external_port, !present)
            }
            None => (self.noise_port, false),
        };
        let mapped = router
            .map(internal, preferred, lease, &self.description)
            .await?;
        let fresh = live.v4.is_none();
        live.v4 = Some(V4Map {
            internal,
            external_port: mapped.external_port,
            permanent: mapped.permanent,
            lease_secs: lease,
            renewed_at: now,
        });
        let ext = SocketAddr::new(external_ip, mapped.external_port);
        let perm = if mapped.permanent {
            " (the router takes only permanent mappings: Latchkey removes it itself)"
        } else {
            ""
        };
        if fresh {
            tracing::info!(%ext, %internal, lease, "IPv4 port mapping added");
            audit(
                &self.store,
                "remote-mapped",
                &format!(
                    "router {} maps TCP {ext} to {internal}, lease {lease} s{perm}",
                    router.addr()
                ),
            );
        } else if repaired {
            tracing::warn!(%ext, "the router had lost the approved mapping; re-added");
            audit(
                &self.store,
                "remote-repaired",
                &format!(
                    "router {} had lost TCP {ext} -> {internal}; re-added, lease {lease} s",
                    router.addr()
                ),
            );
        } else {
            tracing::debug!(%ext, lease, "IPv4 port mapping renewed");
        }
        Ok(())
    }

    async fn apply_v6(&self, live: &mut Live, lease: u32, now: u64) -> Result<(), PortmapError> {
        let global: GlobalV6 = pinhole::global_addresses()
            .into_iter()
            .next()
            .ok_or(PortmapError::NoGlobalIpv6)?;
        let to = SocketAddrV6::new(global.ip, self.noise_port, 0, 0);
        if let Some(h) = live.v6.clone() {
            if h.to == to {
                // Keep an opening the way it was made: renewal and repair follow it.
                return match h.via {
                    Opening::Pinhole { id } => {
                        self.renew_pinhole(live, global, id, to, lease, now).await
                    }
                    Opening::Pcp { mapping, seen } => {
                        self.renew_pcp(live, &mapping, seen, to, lease, now).await
                    }
                };
            }
            // Our global address changed: the old opening points nowhere useful.
            match h.via {
                Opening::Pinhole { id } => {
                    if let Some(gw6) = live.router6.clone() {
                        let _ = pinhole::close(&gw6, id).await;
                    }
                }
                Opening::Pcp { mapping, .. } => {
                    let _ = pcp::delete(*mapping).await;
                }
            }
            live.v6 = None;
        }
        // A new opening: UPnP's IPv6 firewall control first, PCP where there is none.
        let found = match live.router6.clone() {
            Some(gw6) => Ok(gw6),
            None => pinhole::discover(global).await,
        };
        let gw6 = match found {
            Ok(gw6) => gw6,
            Err(e @ (PortmapError::NoFirewallControl { .. } | PortmapError::NoRouterV6 { .. })) => {
                return self.open_pcp(live, global, &e, to, lease, now).await;
            }
            Err(e) => return Err(e),
        };
        live.router6 = Some(gw6.clone());
        let id = pinhole::open(&gw6, to, lease).await?;
        live.v6 = Some(V6Hole {
            via: Opening::Pinhole { id },
            to,
            lease_secs: lease,
            renewed_at: now,
        });
        tracing::info!(%to, id, lease, "IPv6 pinhole opened via UPnP");
        audit(
            &self.store,
            "remote-pinhole",
            &format!(
                "router {} lets TCP in to {to} (UPnP pinhole {id}), lease {lease} s",
                gw6.addr
            ),
        );
        Ok(())
    }

    async fn renew_pinhole(
        &self,
        live: &mut Live,
        global: GlobalV6,
        id: u16,
        to: SocketAddrV6,
        lease: u32,
        now: u64,
    ) -> Result<(), PortmapError> {
        let gw6 = match live.router6.clone() {
            Some(gw6) => gw6,
            None => pinhole::discover(global).await?,
        };
        live.router6 = Some(gw6.clone());
        match pinhole::renew(&gw6, id, lease).await? {
            Renewed::Extended => {
                tracing::debug!(%to, "IPv6 pinhole renewed");
                if let Some(h) = live.v6.as_mut() {
                    h.renewed_at = now;
                }
            }
            Renewed::Gone => {
                let id = pinhole::open(&gw6, to, lease).await?;
                live.v6 = Some(V6Hole {
                    via: Opening::Pinhole { id },
                    to,
                    lease_secs: lease,
                    renewed_at: now,
                });
                tracing::warn!(%to, "the router had lost the approved pinhole; reopened");
                audit(
                    &self.store,
                    "remote-repaired",
                    &format!(
                        "router {} had lost the IPv6 pinhole to {to}; reopened (UPnP pinhole {id}), lease {lease} s",
                        gw6.addr
                    ),
                );
            }
        }
        Ok(())
    }

    /// The fallback: a PCP MAP at the router UPnP named, else the IPv6 default gateway.
    async fn open_pcp(
        &self,
        live: &mut Live,
        global: GlobalV6,
        why: &PortmapError,
        to: SocketAddrV6,
        lease: u32,
        now: u64,
    ) -> Result<(), PortmapError> {
        let router = match why {
            PortmapError::NoFirewallControl {
                router: SocketAddr::V6(a),
            } => {
                let link_local =
                    (a.ip().segments().first().copied().unwrap_or(0) & 0xffc0) == 0xfe80;
                pcp::PcpRouter {
                    ip: *a.ip(),
                    scope: link_local.then_some(global.ifindex),
                }
            }
            _ => pcp::default_router().ok_or_else(|| PortmapError::NoIpv6Router {
                upnp: why.to_string(),
            })?,
        };
        tracing::info!(router = %router.addr(), "{why}; asking for the IPv6 pinhole over PCP");
        let mapping = pcp::map(router, to, lease).await?;
        let granted = mapping.lifetime();
        let hole = V6Hole {
            via: Opening::Pcp {
                mapping: Box::new(mapping),
                seen: Instant::now(),
            },
            to,
            lease_secs: granted,
            renewed_at: now,
        };
        let ext = hole.external();
        live.v6 = Some(hole);
        tracing::info!(%ext, granted, "IPv6 pinhole opened via PCP");
        audit(
            &self.store,
            "remote-pinhole",
            &format!(
                "router {} lets TCP in to {ext} (PCP MAP; UPnP offers no IPv6 firewall control), lease {granted} s",
                router.addr()
            ),
        );
        Ok(())
    }

    async fn renew_pcp(
        &self,
        live: &mut Live,
        old: &crab_nat::PortMapping,
        seen: Instant,
        to: SocketAddrV6,
        lease: u32,
        now: u64,
    ) -> Result<(), PortmapError> {
        let router = pcp::router_of(old).addr();
        // miniupnpd refuses to delete a PCP pinhole once it has been renewed with the same
        // nonce ("not authorized"), which would leave it open after `remote close` until
        // its lease ran out. So a renewal is a delete and a fresh MAP: every mapping we
        // hold was never renewed and can always be deleted. Established connections live
        // through the moment in between (the firewall tracks them).
        if let Err((e, _)) = pcp::delete(old.clone()).await {
            tracing::debug!("deleting the PCP pinhole before renewing it: {e}");
        }
        let (mapping, repaired) = match pcp::map(pcp::router_of(old), to, lease).await {
            Ok(m) => {
                let restarted = pcp::router_restarted(
                    old.gateway_epoch(),
                    seen.elapsed().as_secs(),
                    m.gateway_epoch(),
                );
                // The same-nonce MAP has already re-made what a restart dropped.
                let why = restarted.then(|| {
                    format!(
                        "the router restarted (its PCP epoch went from {} to {})",
                        old.gateway_epoch(),
                        m.gateway_epoch()
                    )
                });
                (m, why)
            }
            Err(e) => {
                // A router that forgot us may refuse the old nonce: map afresh.
                tracing::warn!("{e}; mapping the IPv6 pinhole again");
                let m = pcp::map(pcp::router_of(old), to, lease).await?;
                (m, Some(format!("renewing failed ({e})")))
            }
        };
        let granted = mapping.lifetime();
        live.v6 = Some(V6Hole {
            via: Opening::Pcp {
                mapping: Box::new(mapping),
                seen: Instant::now(),
            },
            to,
            lease_secs: granted,
            renewed_at: now,
        });
        match repaired {
            Some(why) => {
                tracing::warn!(%to, "{why}; the IPv6 PCP mapping was re-made");
                audit(
                    &self.store,
                    "remote-repaired",
                    &format!(
                        "router {router}: {why}; the IPv6 pinhole to {to} was re-made over PCP, lease {granted} s"
                    ),
                );
            }
            None => tracing::debug!(%to, granted, "IPv6 PCP mapping renewed"),
        }
        Ok(())
    }

    /// Removes the IPv4 mapping and checks the router's table; `Some(true)` when verified gone.
    async fn remove_v4(&self, live: &mut Live) -> Option<Result<bool, String>> {
        let m = live.v4.take()?;
        let result = async {
            let router = self.router(live).await?.clone();
            router
                .unmap(PortMappingProtocol::TCP, m.external_port)
                .await?;
            let table = router.table().await?;
            Ok::<_, PortmapError>(!table.iter().any(|e| {
                e.external_port == m.external_port
                    && e.internal_client == m.internal.ip().to_string()
            }))
        }
        .await;
        let result = result.map_err(|e| e.to_string());
        match &result {
            Ok(true) => audit(
                &self.store,
                "remote-unmapped",
                &format!(
                    "TCP port {} -> {} removed; the router's table no longer lists it",
                    m.external_port, m.internal
                ),
            ),
            Ok(false) => {
                tracing::error!(
                    port = m.external_port,
                    "the router still lists the mapping after removal"
                );
                audit(
                    &self.store,
                    "remote-unmap-failed",
                    &format!("the router still lists TCP port {}", m.external_port),
                );
            }
            Err(e) => {
                tracing::error!("removing the IPv4 mapping: {e}");
                audit(
                    &self.store,
                    "remote-unmap-failed",
                    &format!(
                        "TCP port {}: {e}; it ends with its lease ({} s){}",
                        m.external_port,
                        m.lease_secs,
                        if m.permanent {
                            " — the router keeps it permanently: remove it on its admin page"
                        } else {
                            ""
                        }
                    ),
                );
                // Keep trying: a mapping that outlives the approval is the worst case.
                live.v4 = Some(m);
            }
        }
        Some(result)
    }

    async fn remove_v6(&self, live: &mut Live) -> Option<Result<bool, String>> {
        let h = live.v6.take()?;
        let what = h.describe();
        let result = match h.via.clone() {
            Opening::Pinhole { id } => match live.router6.clone() {
                Some(gw6) => pinhole::close(&gw6, id).await.map_err(|e| e.to_string()),
                None => Err("the router's IPv6 firewall control is not known".to_string()),
            },
            // PCP has no way to list mappings: the router's acknowledgement of the delete
            // (lifetime 0 in its answer) is the check.
            Opening::Pcp { mapping, .. } => match pcp::delete(*mapping).await {
                Ok(()) => Ok(true),
                Err((e, _)) => Err(e.to_string()),
            },
        };
        match &result {
            Ok(true) => audit(
                &self.store,
                "remote-pinhole-closed",
                &format!("{what} deleted; the router no longer knows it"),
            ),
            Ok(false) => audit(
                &self.store,
                "remote-unmap-failed",
                &format!("{what} still known to the router"),
            ),
            Err(e) => {
                tracing::error!("removing the {what}: {e}");
                audit(
                    &self.store,
                    "remote-unmap-failed",
                    &format!("{what}: {e}; it ends with its lease"),
                );
                live.v6 = Some(h);
            }
        }
        Some(result)
    }

    /// One round of the renewal loop: renew/repair while approved, remove otherwise.
    async fn tick(&self) {
        let approval = match blocking(&self.store, |s| s.remote_approval()).await {
            Ok(a) => a,
            Err(e) => {
                // An unreadable store approves nothing.
                tracing::error!("reading the remote-access approval: {e:#}");
                None
            }
        };
        let mut live = self.live.lock().await;
        match approval {
            Some(a) => self.apply(&mut live, &a).await,
            None => {
                self.remove_v4(&mut live).await;
                self.remove_v6(&mut live).await;
                live.next_due =
                    (live.v4.is_some() || live.v6.is_some()).then(|| Instant::now() + RETRY);
                self.publish(&live);
            }
        }
    }

    /// The renewal task: restores approved mappings at start, renews at half-life,
    /// removes everything (keeping the approval) on shutdown.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let approved = matches!(
            blocking(&self.store, |s| s.remote_approval()).await,
            Ok(Some(_))
        );
        if approved {
            tracing::info!("remote access is approved: restoring the router mappings");
            self.tick().await;
        }
        loop {
            let due = self.live.lock().await.next_due;
            let sleep = async {
                match due {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => continue,
                _ = sleep => self.tick().await,
            }
        }
        let mut live = self.live.lock().await;
        if live.v4.is_some() || live.v6.is_some() {
            tracing::info!("shutting down: removing the router mappings (the approval stands)");
            let _ = tokio::time::timeout(Duration::from_secs(8), async {
                self.remove_v4(&mut live).await;
                self.remove_v6(&mut live).await;
            })
            .await;
        }
    }

    fn mappings_json(&self, live: &Live) -> Vec<Value> {
        let mut out = Vec::new();
        if let Some(m) = &live.v4 {
            out.push(json!({
                "kind": "ipv4",
                "protocol": "TCP",
                "external": live.external_ip.map(|ip| SocketAddr::new(ip, m.external_port).to_string()),
                "external_port": m.external_port,
                "internal": m.internal.to_string(),
                "lease_secs": m.lease_secs,
                "renewed_at": m.renewed_at,
                "expires_at": if m.permanent { None } else { Some(m.renewed_at + u64::from(m.lease_secs)) },
                "permanent_on_router": m.permanent,
            }));
        }
        if let Some(h) = &live.v6 {
            let (id, router, epoch) = match &h.via {
                Opening::Pinhole { id } => (Some(*id), live.router6.as_ref().map(|g| g.addr), None),
                Opening::Pcp { mapping, .. } => (
                    None,
                    Some(pcp::router_of(mapping).addr()),
                    Some(mapping.gateway_epoch()),
                ),
            };
            out.push(json!({
                "kind": "ipv6",
                "via": h.via(),
                "protocol": "TCP",
                "external": h.external().to_string(),
                "internal": h.to.to_string(),
                "router": router.map(|r| r.to_string()),
                "pinhole_id": id,
                "pcp_epoch": epoch,
                "lease_secs": h.lease_secs,
                "renewed_at": h.renewed_at,
                "expires_at": h.renewed_at + u64::from(h.lease_secs),
            }));
        }
        out
    }

    /// `latchkey remote status`: what the router says and a plain diagnosis. Sends only
    /// discovery and status queries.
    pub async fn status(&self) -> anyhow::Result<Value> {
        let approval = blocking(&self.store, |s| s.remote_approval()).await?;
        let mut live = self.live.lock().await;
        let mut router_error = None;
        let router = match self.router(&mut live).await {
            Ok(r) => Some(r.clone()),
            Err(e) => {
                router_error = Some(e.to_string());
                None
            }
        };
        let mut facts = Facts {
            port: self.noise_port,
            ..Facts::default()
        };
        let mut router_json = Value::Null;
        if let Some(r) = &router {
            facts.router = Some(r.addr().ip());
            facts.lan = Some(SocketAddr::from((r.local_ip, self.noise_port)));
            match r.external_ip().await {
                Ok(ip) => live.external_ip = Some(ip),
                Err(e) => {
                    router_error = Some(e.to_string());
                    live.router = None;
                }
            }
            router_json = json!({
                "address": r.addr().to_string(),
                "control_url": r.gw.to_string(),
                "igd": r.igd_version(),
                "service": r.gw.service_type,
                "ipv6_firewall_control": r.gw.ipv6_firewall_control_url.is_some(),
                "lan_address": r.local_ip.to_string(),
            });
        } else {
            facts.lan = upnp::lan_interfaces()
                .ok()
                .and_then(|l| l.first().map(|i| SocketAddr::from((i.ip, self.noise_port))));
        }
        facts.external_ipv4 = match live.external_ip {
            Some(IpAddr::V4(ip)) => Some(ip),
            _ => None,
        };
        facts.mapped_ipv4 = live
            .v4
            .as_ref()
            .zip(facts.external_ipv4)
            .map(|(m, ip)| SocketAddr::from((ip, m.external_port)));
        facts.pinhole_ipv6 = live.v6.as_ref().map(|h| SocketAddr::V6(h.external()));
        facts.pinhole_via = live.v6.as_ref().map(V6Hole::via);
        let (verdict, text) = diagnose(&facts);
        let globals: Vec<String> = pinhole::global_addresses()
            .iter()
            .map(|g| g.ip.to_string())
            .collect();
        Ok(json!({
            "router": router_json,
            "router_error": router_error,
            "external_ipv4": facts.external_ipv4.map(|ip| ip.to_string()),
            "global_ipv6": globals,
            "noise_port": self.noise_port,
            "approval": approval,
            "mappings": self.mappings_json(&live),
            "ipv4_error": live.v4_error,
            "ipv6_error": live.v6_error,
            "published_addresses": self.published().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "verdict": verdict,
            "diagnosis": text,
        }))
    }

    /// What `remote open` would ask the router, without asking it anything but discovery.
    pub async fn plan(&self, ipv4: bool, ipv6: bool, lease_secs: u32) -> anyhow::Result<Value> {
        let lease = lease_secs.clamp(MIN_LEASE_SECS, MAX_LEASE_SECS);
        let mut live = self.live.lock().await;
        let mut requests = Vec::new();
        let mut problems = Vec::new();
        if ipv4 {
            match self.router(&mut live).await {
                Ok(r) => {
                    let r = r.clone();
                    if let Ok(IpAddr::V4(ip)) = r.external_ip().await
                        && (is_cgnat(ip) || ip.is_private())
                    {
                        let (_, text) = diagnose(&Facts {
                            router: Some(r.addr().ip()),
                            external_ipv4: Some(ip),
                            port: self.noise_port,
                            ..Facts::default()
                        });
                        problems.push(text);
                    }
                    requests.push(json!({
                        "action": "AddPortMapping",
                        "router": r.addr().to_string(),
                        "protocol": "TCP",
                        "external_port": self.noise_port,
                        "external_port_note": "or any free port the router offers if it is taken",
                        "internal": SocketAddrV4::new(r.local_ip, self.noise_port).to_string(),
                        "lease_secs": lease,
                        "renewal": format!("every {} s while approved", lease / 2),
                        "description": self.description,
                    }));
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if ipv6 {
            match pinhole::global_addresses().first() {
                Some(g) => requests.push(json!({
                    "action": "AddPinhole",
                    "router": live.router.as_ref().map(|r| r.addr().to_string()),
                    "protocol": "TCP",
                    "remote": "any host, any port",
                    "internal": SocketAddrV6::new(g.ip, self.noise_port, 0, 0).to_string(),
                    "lease_secs": lease,
                    "renewal": format!("every {} s while approved", lease / 2),
                    "fallback": "a PCP MAP to the router instead, if its UPnP has no IPv6 firewall control",
                })),
                None => problems.push(PortmapError::NoGlobalIpv6.to_string()),
            }
        }
        Ok(json!({ "requests": requests, "problems": problems }))
    }

    /// `latchkey remote open`: records the approval durably, then maps.
    pub async fn open(
        &self,
        ipv4: bool,
        ipv6: bool,
        lease_secs: u32,
        by: &str,
    ) -> anyhow::Result<Value> {
        let lease = lease_secs.clamp(MIN_LEASE_SECS, MAX_LEASE_SECS);
        let by = by.to_string();
        let approval = blocking(&self.store, move |s| {
            s.approve_remote(ipv4, ipv6, lease, unix_now(), &by)
        })
        .await?;
        {
            let mut live = self.live.lock().await;
            self.apply(&mut live, &approval).await;
        }
        self.wake.notify_one();
        self.status().await
    }

    /// `latchkey remote close`: ends the approval durably first, then removes everything
    /// and checks the router's table.
    pub async fn close(&self, by: &str) -> anyhow::Result<Value> {
        let by = by.to_string();
        let ended = blocking(&self.store, move |s| s.end_remote_approval(unix_now(), &by)).await?;
        let mut live = self.live.lock().await;
        let v4 = self.remove_v4(&mut live).await;
        let v6 = self.remove_v6(&mut live).await;
        // A mapping left from an earlier run (or a crash) is ours too: look for it.
        let mut leftovers = Vec::new();
        if let Ok(r) = self.router(&mut live).await.cloned()
            && let Ok(table) = r.table().await
        {
            for e in table.iter().filter(|e| {
                e.internal_client == r.local_ip.to_string()
                    && e.internal_port == self.noise_port
                    && e.description == self.description
            }) {
                match r.unmap(PortMappingProtocol::TCP, e.external_port).await {
                    Ok(()) => leftovers.push(e.external_port),
                    Err(err) => tracing::warn!("removing a leftover mapping: {err}"),
                }
            }
        }
        live.next_due = (live.v4.is_some() || live.v6.is_some()).then(|| Instant::now() + RETRY);
        self.publish(&live);
        drop(live);
        self.wake.notify_one();
        let verdict = |r: Option<Result<bool, String>>| match r {
            None => json!(null),
            Some(Ok(v)) => json!({ "removed": true, "verified_gone": v }),
            Some(Err(e)) => json!({ "removed": false, "error": e }),
        };
        Ok(json!({
            "approval_ended": ended,
            "ipv4": verdict(v4),
            "ipv6": verdict(v6),
            "leftovers_removed": leftovers,
        }))
    }

    /// `latchkey remote audit [--remove N]`: every mapping on the router, classified.
    pub async fn audit(&self, remove: Option<u32>) -> anyhow::Result<Value> {
        let mut live = self.live.lock().await;
        let router = self.router(&mut live).await?.clone();
        drop(live);
        let classify =
            |t| audit::classify(t, Some(router.local_ip), self.noise_port, &self.cameras);
        let mut removed = Value::Null;
        if let Some(index) = remove {
            let table = classify(router.table().await?);
            let Some(target) = table.iter().find(|m| m.entry.index == index) else {
                anyhow::bail!(
                    "the router lists no mapping with index {index} (see `latchkey remote audit`)"
                );
            };
            if target.owner == audit::Owner::Latchkey {
                anyhow::bail!("mapping {index} is Latchkey's own; use `latchkey remote close`");
            }
            let protocol = if target.entry.protocol.eq_ignore_ascii_case("UDP") {
                PortMappingProtocol::UDP
            } else {
                PortMappingProtocol::TCP
            };
            router
                .remove_foreign(protocol, target.entry.external_port)
                .await?;
            let detail = format!(
                "{} port {} -> {}:{} ({:?}) removed from the router on the owner's word",
                target.entry.protocol,
                target.entry.external_port,
                target.entry.internal_client,
                target.entry.internal_port,
                target.entry.description
            );
            audit(&self.store, "router-mapping-removed", &detail);
            removed = json!(detail);
        }
        let table = classify(router.table().await?);
        for m in &table {
            if let Some(w) = &m.warning {
                tracing::warn!("{w}");
            }
        }
        Ok(json!({
            "router": router.addr().to_string(),
            "removed": removed,
            "mappings": table,
        }))
    }
}

/// Parses `--lease` values for the CLI: finite and within bounds.
pub fn check_lease(d: Duration) -> Result<u32, String> {
    let secs = u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    if !(MIN_LEASE_SECS..=MAX_LEASE_SECS).contains(&secs) {
        return Err(format!(
            "a lease must be between {MIN_LEASE_SECS} s and {MAX_LEASE_SECS} s (24 h); it is renewed at half-life while remote access stays open"
        ));
    }
    Ok(secs)
}
