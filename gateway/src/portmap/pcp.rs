//! IPv6 pinholes through PCP (RFC 6887) via crab_nat, for routers whose UPnP has no
//! WANIPv6FirewallControl (IGDv1) or that answer no UPnP over IPv6 at all.
//!
//! A PCP MAP for our global address opens a real pinhole (DESIGN §8 trap 7). crab_nat
//! retries on its own and gives up only after about 15 s when nothing answers, so every
//! call here has a short `TimeoutConfig` and a tokio timeout around it. A lifetime of 0
//! means "delete" in PCP: only [`delete`] ever sends it (inside crab_nat's `try_drop`).

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::num::NonZeroU16;
use std::time::Duration;

use crab_nat::{
    GatewayAddress, InternetProtocol, PortMapping, PortMappingOptions, PortMappingType,
    TimeoutConfig,
};

use super::PortmapError;

/// crab_nat's own retry schedule: 0.5 s, then 1 s, then 2 s (3.5 s in all).
const RETRIES: TimeoutConfig = TimeoutConfig {
    initial_timeout: Duration::from_millis(500),
    max_retries: 2,
    max_retry_timeout: Some(Duration::from_secs(2)),
};
/// The bound around each PCP exchange, above crab_nat's schedule.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where PCP requests go: the router's IPv6 address (and scope, if link-local).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcpRouter {
    /// The router's address.
    pub ip: Ipv6Addr,
    /// Interface index, needed only for a link-local router address.
    pub scope: Option<u32>,
}

impl PcpRouter {
    fn gateway(self) -> GatewayAddress {
        GatewayAddress::IpV6(self.ip, self.scope)
    }

    /// The PCP server's socket address, for messages and errors.
    pub fn addr(self) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(
            self.ip,
            crab_nat::GATEWAY_PORT,
            0,
            self.scope.unwrap_or(0),
        ))
    }
}

fn failed(op: &'static str, router: PcpRouter, e: impl std::fmt::Display) -> PortmapError {
    PortmapError::Pcp {
        op,
        router: router.addr(),
        detail: e.to_string(),
    }
}

fn timeout(op: &'static str, router: PcpRouter) -> PortmapError {
    PortmapError::Timeout {
        op,
        router: router.addr(),
        secs: CALL_TIMEOUT.as_secs(),
    }
}

fn options(to: SocketAddrV6, lease_secs: u32) -> PortMappingOptions {
    PortMappingOptions {
        // No NAT in IPv6: ask for the same port, so phones use our own address and port.
        external_port: NonZeroU16::new(to.port()),
        // Never 0 here: 0 would ask the router to delete.
        lifetime_seconds: Some(lease_secs.max(1)),
        timeout_config: Some(RETRIES),
    }
}

/// Asks the router for a TCP pinhole to `to` (our global address and Noise port).
pub async fn map(
    router: PcpRouter,
    to: SocketAddrV6,
    lease_secs: u32,
) -> Result<PortMapping, PortmapError> {
    const OP: &str = "mapping an IPv6 pinhole";
    let port = NonZeroU16::new(to.port()).ok_or_else(|| failed(OP, router, "port 0"))?;
    let asked = PortMapping::new(
        router.gateway(),
        IpAddr::V6(*to.ip()),
        InternetProtocol::Tcp,
        port,
        options(to, lease_secs),
    );
    let mapping = tokio::time::timeout(CALL_TIMEOUT, asked)
        .await
        .map_err(|_| timeout(OP, router))?
        .map_err(|e| failed(OP, router, e))?;
    check(router, mapping).await
}

/// Deletes the mapping (a MAP with lifetime 0). Ok means the router acknowledged it.
pub async fn delete(mapping: PortMapping) -> Result<(), (PortmapError, PortMapping)> {
    const OP: &str = "deleting an IPv6 pinhole";
    let router = router_of(&mapping);
    let keep = mapping.clone();
    match tokio::time::timeout(CALL_TIMEOUT, mapping.try_drop()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err((e, m))) => Err((failed(OP, router, e), m)),
        Err(_) => Err((timeout(OP, router), keep)),
    }
}

/// The router a mapping was made with.
pub fn router_of(m: &PortMapping) -> PcpRouter {
    match m.gateway() {
        GatewayAddress::IpV6(ip, scope) => PcpRouter { ip, scope },
        // Only IPv6 routers are ever given to crab_nat here.
        GatewayAddress::IpV4(v4) => PcpRouter {
            ip: v4.to_ipv6_mapped(),
            scope: None,
        },
    }
}

/// Rejects what would not open our pinhole: a NAT-PMP fallback (IPv4 only) or a
/// lifetime of 0 (the router deleted rather than mapped).
async fn check(router: PcpRouter, m: PortMapping) -> Result<PortMapping, PortmapError> {
    if matches!(m.mapping_type(), PortMappingType::NatPmp) {
        let _ = tokio::time::timeout(CALL_TIMEOUT, m.try_drop()).await;
        return Err(failed(
            "mapping an IPv6 pinhole",
            router,
            "the router speaks only NAT-PMP, which cannot open IPv6",
        ));
    }
    if m.lifetime() == 0 {
        return Err(failed(
            "mapping an IPv6 pinhole",
            router,
            "the router granted a lifetime of 0",
        ));
    }
    Ok(m)
}

/// Where the mapping is reachable from outside: the router's answer, unless it is not a
/// global IPv6 address (then our own address and the granted port).
pub fn external(m: &PortMapping, to: SocketAddrV6) -> SocketAddrV6 {
    let ip = match m.mapping_type() {
        PortMappingType::Pcp {
            external_ip: IpAddr::V6(ip),
            ..
        } if super::pinhole::is_global(&ip) => ip,
        _ => *to.ip(),
    };
    SocketAddrV6::new(ip, m.external_port().get(), 0, 0)
}

/// True when the router's epoch says it restarted since the last answer (RFC 6887
/// §8.5): its clock went back, or advanced much less than ours (7/8 of our elapsed
/// time, less 2 s of slack for rounding and delay).
pub fn router_restarted(prev_epoch: u32, elapsed_secs: u64, epoch: u32) -> bool {
    if epoch < prev_epoch {
        return true;
    }
    let expected = u64::from(prev_epoch) + elapsed_secs * 7 / 8;
    u64::from(epoch) + 2 < expected
}

/// The IPv6 default gateway from /proc/net/ipv6_route, when UPnP over IPv6 named none.
pub fn default_router() -> Option<PcpRouter> {
    let text = std::fs::read_to_string("/proc/net/ipv6_route").ok()?;
    let (ip, dev) = parse_default_route(&text)?;
    let scope = if (ip.segments().first().copied().unwrap_or(0) & 0xffc0) == 0xfe80 {
        // A link-local next hop is reachable only with its interface as the scope.
        if_addrs::get_if_addrs()
            .ok()?
            .into_iter()
            .find(|i| i.name == dev)
            .and_then(|i| i.index)
    } else {
        None
    };
    Some(PcpRouter { ip, scope })
}

/// The next hop and device of the lowest-metric IPv6 default route (::/0 via a non-zero
/// gateway) in the /proc/net/ipv6_route format: dest, dest prefix length, source, source
/// prefix length, next hop, metric, refcount, use, flags, device; all hex but the device.
pub fn parse_default_route(text: &str) -> Option<(Ipv6Addr, String)> {
    let hex6 = |s: &str| -> Option<Ipv6Addr> {
        if s.len() != 32 {
            return None;
        }
        u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from)
    };
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [
                dest,
                plen,
                _src,
                _splen,
                hop,
                metric,
                _ref,
                _use,
                _flags,
                dev,
            ] = f.as_slice()
            else {
                return None;
            };
            let hop = hex6(hop)?;
            let default = hex6(dest)?.is_unspecified() && *plen == "00";
            (default && !hop.is_unspecified() && *dev != "lo").then(|| {
                (
                    u32::from_str_radix(metric, 16).unwrap_or(u32::MAX),
                    hop,
                    dev.to_string(),
                )
            })
        })
        .min_by_key(|(metric, ..)| *metric)
        .map(|(_, hop, dev)| (hop, dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_route_is_found_in_proc_ipv6_route() {
        let text = "\
20010db8007700000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8007700000000000000000001 00000400 00000001 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe80000000000000000000000000abcd 00000200 00000001 00000000 00000003     wlan0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
garbage line
00000000000000000000000000000000 00 00000000000000000000000000000000 00 zz
";
        let (hop, dev) = parse_default_route(text).unwrap();
        assert_eq!(
            hop,
            "fe80::abcd".parse::<Ipv6Addr>().unwrap(),
            "lowest metric"
        );
        assert_eq!(dev, "wlan0");
        let only_lo = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
        assert_eq!(parse_default_route(only_lo), None);
        assert_eq!(parse_default_route(""), None);
    }

    #[test]
    fn a_router_epoch_going_back_means_it_restarted() {
        assert!(!router_restarted(1000, 60, 1060));
        assert!(!router_restarted(1000, 60, 1053), "within 7/8 and slack");
        assert!(router_restarted(1000, 60, 30), "went back");
        assert!(router_restarted(1000, 600, 1100), "advanced too little");
    }
}
