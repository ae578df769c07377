//! Which addresses the gateway can be reached at on the LAN.

use std::net::{IpAddr, SocketAddr};

/// The listener's own address, or, when it listens on all addresses, each address of
/// each interface that is up (IPv4 first, link-local left out: they need a scope id).
pub fn reachable_addresses(listen: SocketAddr) -> Vec<SocketAddr> {
    if !listen.ip().is_unspecified() {
        return vec![listen];
    }
    let port = listen.port();
    let mut out: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| !ip.is_loopback() && !is_link_local(ip))
        .filter(|ip| listen.is_ipv6() || ip.is_ipv4())
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    out.sort_by_key(|a| (a.is_ipv6(), *a));
    out.dedup();
    if out.is_empty() {
        out.push(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port));
    }
    out
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments().first().copied().unwrap_or(0) & 0xffc0) == 0xfe80,
    }
}

/// Folds an IPv4-mapped IPv6 address (from a dual-stack listener) back to IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
