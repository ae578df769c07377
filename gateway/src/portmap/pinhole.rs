//! IPv6 pinholes through the router's WANIPv6FirewallControl (IGDv2), via igd-next.
//!
//! IPv6 has no NAT: the gateway's global address is reachable once the router's firewall
//! lets inbound TCP to the Noise port through. The router only opens a pinhole for the
//! address that asks (606 otherwise), so the request must travel over IPv6 from that very
//! address (DESIGN §8 trap 1): the router is searched over IPv6 with the socket bound to
//! the global address, which also avoids igd-next dropping an answer whose LOCATION names
//! another address than the link-local sender (trap 2).

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use igd_next::aio::Gateway;
use igd_next::aio::tokio::Tokio;
use igd_next::{PinholeError, PortMappingProtocol, SearchOptions};

use super::PortmapError;
use super::upnp::timed;

/// One SSDP round over IPv6.
const SEARCH_ROUND: Duration = Duration::from_millis(1200);

/// A global IPv6 address of this host and the interface that carries it.
#[derive(Clone, Copy, Debug)]
pub struct GlobalV6 {
    /// The address.
    pub ip: Ipv6Addr,
    /// Interface index (the scope of the ff02::c search).
    pub ifindex: u32,
}

/// True for addresses reachable from the internet: not loopback, link-local, unique-local
/// (fc00::/7), multicast or unspecified.
pub fn is_global(ip: &Ipv6Addr) -> bool {
    let first = ip.segments().first().copied().unwrap_or(0);
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xffc0) == 0xfe80
        || (first & 0xfe00) == 0xfc00
        || ip.to_ipv4_mapped().is_some())
}

/// This host's global IPv6 addresses.
pub fn global_addresses() -> Vec<GlobalV6> {
    let mut out: Vec<GlobalV6> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| match (i.addr, i.index) {
            (if_addrs::IfAddr::V6(v6), Some(ifindex)) if is_global(&v6.ip) => {
                Some(GlobalV6 { ip: v6.ip, ifindex })
            }
            _ => None,
        })
        .collect();
    out.sort_by_key(|g| g.ip);
    out.dedup_by_key(|g| g.ip);
    out
}

/// Finds the router's IPv6 firewall control from `from`, in a bounded time.
pub async fn discover(from: GlobalV6) -> Result<Gateway<Tokio>, PortmapError> {
    for _ in 0..3 {
        let mut opts = SearchOptions::ipv6(from.ifindex);
        opts.bind_addr = SocketAddr::V6(SocketAddrV6::new(from.ip, 0, 0, 0));
        opts.timeout = Some(SEARCH_ROUND);
        opts.single_search_timeout = Some(SEARCH_ROUND);
        opts.gateway_ip_version = igd_next::GatewayIpVersion::V6;
        let found = tokio::time::timeout(
            SEARCH_ROUND + Duration::from_millis(300),
            igd_next::aio::tokio::search_gateway(opts),
        )
        .await;
        match found {
            Ok(Ok(gw)) => {
                // Only a router on our own link may be asked (an answer naming a far
                // address could make the gateway call out of the LAN).
                if !same_prefix64(gw.addr.ip(), from.ip) && !is_link_local(gw.addr.ip()) {
                    tracing::warn!(answer = %gw.addr, "ignored an IPv6 SSDP answer from outside the LAN prefix");
                    continue;
                }
                if gw.ipv6_firewall_control_url.is_none() {
                    return Err(PortmapError::NoFirewallControl { router: gw.addr });
                }
                return Ok(gw);
            }
            Ok(Err(e)) => tracing::debug!("IPv6 SSDP search: {e}"),
            Err(_) => tracing::debug!("IPv6 SSDP search timed out"),
        }
    }
    Err(PortmapError::NoRouterV6 { from: from.ip })
}

fn same_prefix64(a: IpAddr, b: Ipv6Addr) -> bool {
    match a {
        IpAddr::V6(a) => a.segments().get(..4) == b.segments().get(..4),
        IpAddr::V4(_) => false,
    }
}

fn is_link_local(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if (v6.segments().first().copied().unwrap_or(0) & 0xffc0) == 0xfe80)
}

/// Opens a pinhole for TCP to `to`; returns its id.
pub async fn open(
    gw: &Gateway<Tokio>,
    to: SocketAddrV6,
    lease_secs: u32,
) -> Result<u16, PortmapError> {
    timed(
        "opening an IPv6 pinhole",
        gw.addr,
        gw.add_pinhole(PortMappingProtocol::TCP, to, lease_secs.clamp(1, 86_400)),
    )
    .await
}

/// What renewing a pinhole found.
#[derive(Debug)]
pub enum Renewed {
    /// Still there, lease extended.
    Extended,
    /// The router no longer knows it (rebooted): it must be opened again.
    Gone,
}

/// Extends a pinhole's lease.
pub async fn renew(gw: &Gateway<Tokio>, id: u16, lease_secs: u32) -> Result<Renewed, PortmapError> {
    match tokio::time::timeout(
        super::upnp::CALL_TIMEOUT,
        gw.update_pinhole(id, lease_secs.clamp(1, 86_400)),
    )
    .await
    {
        Ok(Ok(())) => Ok(Renewed::Extended),
        Ok(Err(PinholeError::NoSuchEntry)) => Ok(Renewed::Gone),
        // miniupnpd answers 402 (Invalid Args) for an id it does not know rather than the
        // standard 704 (DESIGN §8 trap 6).
        Ok(Err(PinholeError::RequestError(igd_next::RequestError::ErrorCode(402 | 704, _)))) => {
            Ok(Renewed::Gone)
        }
        Ok(Err(e)) => Err(PortmapError::Router {
            op: "renewing an IPv6 pinhole",
            router: gw.addr,
            source: Box::new(e.into()),
        }),
        Err(_) => Err(PortmapError::Timeout {
            op: "renewing an IPv6 pinhole",
            router: gw.addr,
            secs: super::upnp::CALL_TIMEOUT.as_secs(),
        }),
    }
}

/// Deletes a pinhole and checks it is gone: the router no longer knows its id.
pub async fn close(gw: &Gateway<Tokio>, id: u16) -> Result<bool, PortmapError> {
    match tokio::time::timeout(super::upnp::CALL_TIMEOUT, gw.remove_pinhole(id)).await {
        Ok(Ok(()))
        | Ok(Err(PinholeError::NoSuchEntry))
        | Ok(Err(PinholeError::RequestError(igd_next::RequestError::ErrorCode(402 | 704, _)))) => {}
        Ok(Err(e)) => {
            return Err(PortmapError::Router {
                op: "deleting an IPv6 pinhole",
                router: gw.addr,
                source: Box::new(e.into()),
            });
        }
        Err(_) => {
            return Err(PortmapError::Timeout {
                op: "deleting an IPv6 pinhole",
                router: gw.addr,
                secs: super::upnp::CALL_TIMEOUT.as_secs(),
            });
        }
    }
    // UpdatePinhole on a deleted id answers "no such entry": that is the check.
    Ok(matches!(renew(gw, id, 1).await, Ok(Renewed::Gone)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_global_addresses_count() {
        for (a, global) in [
            ("2001:db8:77::2", true),
            ("2a01:4f8::1", true),
            ("fe80::1", false),
            ("fd00::1", false),
            ("::1", false),
            ("ff02::c", false),
            ("::ffff:192.168.1.2", false),
        ] {
            assert_eq!(is_global(&a.parse().unwrap()), global, "{a}");
        }
    }
}
