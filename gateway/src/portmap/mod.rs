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
mod error;
pub mod lease;
mod owner;
pub mod pcp;
pub mod pinhole;
pub mod report;
mod rounds;
pub mod upnp;
mod v6;

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use igd_next::PortMappingProtocol;
use igd_next::aio::Gateway as IgdGateway;
use igd_next::aio::tokio::Tokio;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::CameraConfig;
use crate::store::AuditKind;
use crate::store::{RemoteApproval, Store};
use diagnosis::is_cgnat;
pub use error::PortmapError;
use upnp::Router;
use v6::V6Hole;

/// Lease asked of the router unless the owner says otherwise.
pub const DEFAULT_LEASE_SECS: u32 = 3600;
use lease::{Approved, Holding, Step};
pub use lease::{MAX_LEASE_SECS, MIN_LEASE_SECS};

#[derive(Clone, Debug)]
struct V4Map {
    internal: SocketAddrV4,
    external_port: u16,
    permanent: bool,
    lease_secs: u32,
    renewed_at: u64,
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
    /// Where lease times, renewal rounds and audit rows take their time from.
    clock: Clock,
}

async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, PortmapError> {
    store.run(f).await.map_err(PortmapError::from)
}

fn audit(store: &Store, clock: &Clock, kind: AuditKind, detail: &str) {
    if let Err(e) = store.audit(clock.unix_now(), kind, None, None, detail) {
        tracing::error!("writing the audit log: {e}");
    }
}

impl PortMapper {
    /// A manager for the Noise listener on `noise_port`, on `clock`.
    pub fn new(
        store: Store,
        noise_port: u16,
        gateway_name: &str,
        cameras: Vec<CameraConfig>,
        clock: Clock,
    ) -> Self {
        Self {
            store,
            noise_port,
            description: upnp::description(gateway_name),
            cameras,
            live: tokio::sync::Mutex::default(),
            published: std::sync::Mutex::default(),
            wake: tokio::sync::Notify::new(),
            clock,
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

    /// Brings the router in line with `approval` (add, renew, repair, or remove what is no
    /// longer approved), as the lease planner (lease.rs) says, and sets the next round.
    async fn apply(&self, live: &mut Live, approval: Option<&RemoteApproval>) {
        let approved = approval.map(Approved::from);
        let now = self.clock.unix_now();
        let lease = approved.map_or(MIN_LEASE_SECS, |a| a.lease_secs);
        let held = Holding {
            v4: live.v4.is_some(),
            v6: live.v6.is_some(),
        };
        let mut ok = true;
        for step in lease::steps(approved.as_ref(), held) {
            match step {
                Step::MapV4 => match self.apply_v4(live, lease, now).await {
                    Ok(()) => live.v4_error = None,
                    Err(e) => {
                        tracing::warn!("keeping the IPv4 mapping: {e}");
                        live.v4_error = Some(e.to_string());
                        // Rediscover next time: the router may have moved or restarted.
                        live.router = None;
                        ok = false;
                    }
                },
                Step::OpenV6 => match self.apply_v6(live, lease, now).await {
                    Ok(()) => live.v6_error = None,
                    Err(e) => {
                        tracing::warn!("keeping the IPv6 pinhole: {e}");
                        live.v6_error = Some(e.to_string());
                        live.router6 = None;
                        ok = false;
                    }
                },
                Step::UnmapV4 => ok &= !matches!(self.remove_v4(live).await, Some(Err(_))),
                Step::CloseV6 => ok &= !matches!(self.remove_v6(live).await, Some(Err(_))),
            }
        }
        let held = Holding {
            v4: live.v4.is_some(),
            v6: live.v6.is_some(),
        };
        let granted = live.v6.as_ref().map(|h| h.lease_secs);
        let start = self.clock.instant();
        live.next_due = lease::next_round(approved.as_ref(), granted, ok, held)
            .and_then(|d| start.checked_add(d));
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
                &self.clock,
                AuditKind::RemoteMapped,
                &format!(
                    "router {} maps TCP {ext} to {internal}, lease {lease} s{perm}",
                    router.addr()
                ),
            );
        } else if repaired {
            tracing::warn!(%ext, "the router had lost the approved mapping; re-added");
            audit(
                &self.store,
                &self.clock,
                AuditKind::RemoteRepaired,
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
                &self.clock,
                AuditKind::RemoteUnmapped,
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
                    &self.clock,
                    AuditKind::RemoteUnmapFailed,
                    &format!("the router still lists TCP port {}", m.external_port),
                );
            }
            Err(e) => {
                tracing::error!("removing the IPv4 mapping: {e}");
                audit(
                    &self.store,
                    &self.clock,
                    AuditKind::RemoteUnmapFailed,
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
        self.apply(&mut live, approval.as_ref()).await;
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
        rounds::run(&self.clock, self.as_ref(), &self.wake, &shutdown).await;
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
