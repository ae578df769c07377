//! The owner's remote-access commands: `status`, `plan`, `open`, `close` and `audit`,
//! each answering with a typed report (report.rs).

use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};

use igd_next::PortMappingProtocol;

use super::diagnosis::{Facts, diagnose, is_cgnat};
use super::report::{
    Closed, Mapping, Plan, PlannedRequest, Removal, RouterAudit, RouterInfo, Status, external_v4,
};
use super::v6::{Opening, V6Hole};
use super::{Live, PortMapper, PortmapError, blocking, lease, pcp, pinhole, upnp};
use crate::store::AuditKind;

impl PortMapper {
    fn mappings(&self, live: &Live) -> Vec<Mapping> {
        let mut out = Vec::new();
        if let Some(m) = &live.v4 {
            out.push(Mapping::Ipv4 {
                protocol: "TCP".into(),
                external: live
                    .external_ip
                    .map(|ip| SocketAddr::new(ip, m.external_port)),
                external_port: m.external_port,
                internal: m.internal,
                lease_secs: m.lease_secs,
                renewed_at: m.renewed_at,
                expires_at: (!m.permanent).then(|| m.renewed_at + u64::from(m.lease_secs)),
                permanent_on_router: m.permanent,
            });
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
            out.push(Mapping::Ipv6 {
                via: h.via().into(),
                protocol: "TCP".into(),
                external: h.external(),
                internal: h.to,
                router,
                pinhole_id: id,
                pcp_epoch: epoch,
                lease_secs: h.lease_secs,
                renewed_at: h.renewed_at,
                expires_at: h.renewed_at + u64::from(h.lease_secs),
            });
        }
        out
    }

    /// `latchkey remote status`: what the router says and a plain diagnosis. Sends only
    /// discovery and status queries.
    pub async fn status(&self) -> Result<Status, PortmapError> {
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
        let mut router_info = None;
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
            router_info = Some(RouterInfo {
                address: r.addr(),
                control_url: r.gw.to_string(),
                igd: r.igd_version().to_string(),
                service: r.gw.service_type.clone(),
                ipv6_firewall_control: r.gw.ipv6_firewall_control_url.is_some(),
                lan_address: r.local_ip,
            });
        } else {
            facts.lan = upnp::lan_interfaces()
                .ok()
                .and_then(|l| l.first().map(|i| SocketAddr::from((i.ip, self.noise_port))));
        }
        facts.external_ipv4 = external_v4(live.external_ip);
        facts.mapped_ipv4 = live
            .v4
            .as_ref()
            .zip(facts.external_ipv4)
            .map(|(m, ip)| SocketAddr::from((ip, m.external_port)));
        facts.pinhole_ipv6 = live.v6.as_ref().map(|h| SocketAddr::V6(h.external()));
        facts.pinhole_via = live.v6.as_ref().map(V6Hole::via);
        let (verdict, text) = diagnose(&facts);
        Ok(Status {
            router: router_info,
            router_error,
            external_ipv4: facts.external_ipv4,
            global_ipv6: pinhole::global_addresses().iter().map(|g| g.ip).collect(),
            noise_port: self.noise_port,
            approval,
            mappings: self.mappings(&live),
            ipv4_error: live.v4_error.clone(),
            ipv6_error: live.v6_error.clone(),
            published_addresses: self.published(),
            verdict,
            diagnosis: text,
        })
    }

    /// What `remote open` would ask the router, without asking it anything but discovery.
    pub async fn plan(
        &self,
        ipv4: bool,
        ipv6: bool,
        lease_secs: u32,
    ) -> Result<Plan, PortmapError> {
        let lease = lease::clamp_lease(lease_secs);
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
                    requests.push(PlannedRequest::AddPortMapping {
                        router: r.addr(),
                        protocol: "TCP".into(),
                        external_port: self.noise_port,
                        external_port_note: "or any free port the router offers if it is taken"
                            .into(),
                        internal: SocketAddrV4::new(r.local_ip, self.noise_port),
                        lease_secs: lease,
                        renewal: format!("every {} s while approved", lease / 2),
                        description: self.description.clone(),
                    });
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if ipv6 {
            match pinhole::global_addresses().first() {
                Some(g) => requests.push(PlannedRequest::AddPinhole {
                    router: live.router.as_ref().map(upnp::Router::addr),
                    protocol: "TCP".into(),
                    remote: "any host, any port".into(),
                    internal: SocketAddrV6::new(g.ip, self.noise_port, 0, 0),
                    lease_secs: lease,
                    renewal: format!("every {} s while approved", lease / 2),
                    fallback:
                        "a PCP MAP to the router instead, if its UPnP has no IPv6 firewall control"
                            .into(),
                }),
                None => problems.push(PortmapError::NoGlobalIpv6.to_string()),
            }
        }
        Ok(Plan { requests, problems })
    }

    /// `latchkey remote open`: records the approval durably, then maps.
    pub async fn open(
        &self,
        ipv4: bool,
        ipv6: bool,
        lease_secs: u32,
        by: &str,
    ) -> Result<Status, PortmapError> {
        let lease = lease::clamp_lease(lease_secs);
        let (by, now) = (by.to_string(), self.clock.unix_now());
        let approval = blocking(&self.store, move |s| {
            s.approve_remote(ipv4, ipv6, lease, now, &by)
        })
        .await?;
        {
            let mut live = self.live.lock().await;
            self.apply(&mut live, Some(&approval)).await;
        }
        self.wake.notify_one();
        self.status().await
    }

    /// `latchkey remote close`: ends the approval durably first, then removes everything
    /// and checks the router's table.
    pub async fn close(&self, by: &str) -> Result<Closed, PortmapError> {
        let by = by.to_string();
        let now = self.clock.unix_now();
        let ended = blocking(&self.store, move |s| s.end_remote_approval(now, &by)).await?;
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
        let held = lease::Holding {
            v4: live.v4.is_some(),
            v6: live.v6.is_some(),
        };
        let start = self.clock.instant();
        live.next_due =
            lease::next_round(None, None, true, held).and_then(|d| start.checked_add(d));
        self.publish(&live);
        drop(live);
        self.wake.notify_one();
        Ok(Closed {
            approval_ended: ended,
            ipv4: v4.map(Removal::from_outcome),
            ipv6: v6.map(Removal::from_outcome),
            leftovers_removed: leftovers,
        })
    }

    /// `latchkey remote audit [--remove N]`: every mapping on the router, classified.
    pub async fn audit(&self, remove: Option<u32>) -> Result<RouterAudit, PortmapError> {
        let mut live = self.live.lock().await;
        let router = self.router(&mut live).await?.clone();
        drop(live);
        let classify =
            |t| super::audit::classify(t, Some(router.local_ip), self.noise_port, &self.cameras);
        let mut removed = None;
        if let Some(index) = remove {
            let table = classify(router.table().await?);
            let Some(target) = table.iter().find(|m| m.entry.index == index) else {
                return Err(PortmapError::NoSuchMapping(index));
            };
            if target.owner == super::audit::Owner::Latchkey {
                return Err(PortmapError::OwnMapping(index));
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
            super::audit(
                &self.store,
                &self.clock,
                AuditKind::RouterMappingRemoved,
                &detail,
            );
            removed = Some(detail);
        }
        let table = classify(router.table().await?);
        for m in &table {
            if let Some(w) = &m.warning {
                tracing::warn!("{w}");
            }
        }
        Ok(RouterAudit {
            router: router.addr(),
            removed,
            mappings: table,
        })
    }
}
