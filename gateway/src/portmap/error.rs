//! Everything that can go wrong talking to the router, in words the owner can act on.

use std::net::{Ipv6Addr, SocketAddr};

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
    /// The approval could not be read or written.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A store call was interrupted (the gateway is shutting down).
    #[error("the gateway is shutting down: try again once it has restarted")]
    Interrupted,
    /// `remote audit --remove N` named no mapping on the router.
    #[error("the router lists no mapping with index {0} (see `latchkey remote audit`)")]
    NoSuchMapping(u32),
    /// `remote audit --remove N` named Latchkey's own mapping.
    #[error("mapping {0} is Latchkey's own; use `latchkey remote close`")]
    OwnMapping(u32),
    /// The host's interfaces could not be read.
    #[error("reading this host's network interfaces: {0}")]
    Interfaces(#[source] std::io::Error),
}
