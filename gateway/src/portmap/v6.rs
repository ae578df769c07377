//! The IPv6 opening: a UPnP WANIPv6FirewallControl pinhole, or a PCP MAP where the
//! router's UPnP has none; opened, renewed, repaired and removed the way it was made.

use std::net::{SocketAddr, SocketAddrV6};

use std::time::Instant;

use super::pinhole::{self, GlobalV6, Renewed};
use super::{Live, PortMapper, PortmapError, audit, pcp};
use crate::store::AuditKind;

/// How the IPv6 opening was made; renewal, repair, removal and status follow it.
#[derive(Clone, Debug)]
pub(super) enum Opening {
    /// An IGDv2 WANIPv6FirewallControl pinhole, by its id.
    Pinhole { id: u16 },
    /// A PCP MAP, with when its epoch was last seen (for restart detection).
    Pcp {
        mapping: Box<crab_nat::PortMapping>,
        seen: Instant,
    },
}

#[derive(Clone, Debug)]
pub(super) struct V6Hole {
    pub(super) via: Opening,
    pub(super) to: SocketAddrV6,
    pub(super) lease_secs: u32,
    pub(super) renewed_at: u64,
}

impl V6Hole {
    pub(super) fn via(&self) -> &'static str {
        match self.via {
            Opening::Pinhole { .. } => "upnp",
            Opening::Pcp { .. } => "pcp",
        }
    }

    /// Where phones reach it.
    pub(super) fn external(&self) -> SocketAddrV6 {
        match &self.via {
            Opening::Pinhole { .. } => self.to,
            Opening::Pcp { mapping, .. } => pcp::external(mapping, self.to),
        }
    }

    pub(super) fn describe(&self) -> String {
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

impl PortMapper {
    pub(super) async fn apply_v6(
        &self,
        live: &mut Live,
        lease: u32,
        now: u64,
    ) -> Result<(), PortmapError> {
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
            &self.clock,
            AuditKind::RemotePinhole,
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
                    &self.clock,
                    AuditKind::RemoteRepaired,
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
                seen: self.clock.instant(),
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
            &self.clock,
            AuditKind::RemotePinhole,
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
                    self.clock
                        .instant()
                        .saturating_duration_since(seen)
                        .as_secs(),
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
                seen: self.clock.instant(),
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
                    &self.clock,
                    AuditKind::RemoteRepaired,
                    &format!(
                        "router {router}: {why}; the IPv6 pinhole to {to} was re-made over PCP, lease {granted} s"
                    ),
                );
            }
            None => tracing::debug!(%to, granted, "IPv6 PCP mapping renewed"),
        }
        Ok(())
    }

    pub(super) async fn remove_v6(&self, live: &mut Live) -> Option<Result<bool, String>> {
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
                &self.clock,
                AuditKind::RemotePinholeClosed,
                &format!("{what} deleted; the router no longer knows it"),
            ),
            Ok(false) => audit(
                &self.store,
                &self.clock,
                AuditKind::RemoteUnmapFailed,
                &format!("{what} still known to the router"),
            ),
            Err(e) => {
                tracing::error!("removing the {what}: {e}");
                audit(
                    &self.store,
                    &self.clock,
                    AuditKind::RemoteUnmapFailed,
                    &format!("{what}: {e}; it ends with its lease"),
                );
                live.v6 = Some(h);
            }
        }
        Some(result)
    }
}
