//! Plain-language diagnosis of remote reachability from what the router reports.
//!
//! Pure functions, so every case (CGNAT, double NAT, no router, reachable) is tested
//! without a router.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// What kind of situation the home is in, as a stable keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A mapping or pinhole is open and the external address is public.
    Reachable,
    /// The router could map, but remote access is not open.
    Closed,
    /// The router's external address is in 100.64.0.0/10.
    Cgnat,
    /// The router's external address is private: another NAT sits in front.
    DoubleNat,
    /// The router reports no usable external address (not connected).
    NotConnected,
    /// No UPnP router answered.
    NoRouter,
}

/// Everything the diagnosis looks at.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The router's address on the LAN, if one answered.
    pub router: Option<IpAddr>,
    /// The external IPv4 address it reports.
    pub external_ipv4: Option<Ipv4Addr>,
    /// Our IPv4 mapping's external address, when open.
    pub mapped_ipv4: Option<SocketAddr>,
    /// Our IPv6 pinhole's address, when open.
    pub pinhole_ipv6: Option<SocketAddr>,
    /// How the pinhole was opened: "upnp" (WANIPv6FirewallControl) or "pcp".
    pub pinhole_via: Option<&'static str>,
    /// The gateway's own LAN IPv4 address and Noise port, for the "forward by hand" advice.
    pub lan: Option<SocketAddr>,
    /// The Noise port.
    pub port: u16,
}

/// True for 100.64.0.0/10, the carrier-grade NAT range (RFC 6598). Written by hand
/// because `Ipv4Addr::is_shared` is unstable.
pub fn is_cgnat(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 100 && (64..=127).contains(&b)
}

/// Sums the facts up in one sentence a homeowner can act on.
pub fn diagnose(f: &Facts) -> (Verdict, String) {
    // The owner sees which way the router was asked, so they know what to look for on it.
    let how = match f.pinhole_via {
        Some("pcp") => " (pinhole opened over PCP: the router's UPnP has no IPv6 firewall control)",
        Some(_) => " (pinhole opened over UPnP IPv6 firewall control)",
        None => "",
    };
    let v6 = f
        .pinhole_ipv6
        .map(|a| format!("; over IPv6 reachable at {a}{how}"))
        .unwrap_or_default();
    let Some(router) = f.router else {
        let by_hand = match f.lan {
            Some(lan) => format!("forward TCP port {} to {lan} by hand", f.port),
            None => format!("forward TCP port {} to this gateway by hand", f.port),
        };
        return (
            Verdict::NoRouter,
            format!(
                "no UPnP router found: enable UPnP on the router for this gateway only, or {by_hand}{v6}"
            ),
        );
    };
    match f.external_ipv4 {
        Some(ip) if is_cgnat(ip) => (
            Verdict::Cgnat,
            format!(
                "the router at {router} reports external address {ip}: your ISP uses carrier-grade NAT, so IPv4 remote access cannot work; IPv6 is the way in (`latchkey remote open --ipv6`), or ask the ISP for a public address{v6}"
            ),
        ),
        Some(ip) if ip.is_private() => (
            Verdict::DoubleNat,
            format!(
                "double NAT: the router at {router} reports the private external address {ip}, so another router sits between it and the internet; a mapping here is not reachable from outside. Put the outer router in bridge mode, forward the port there too, or use IPv6 (`latchkey remote open --ipv6`){v6}"
            ),
        ),
        Some(ip) if ip.is_unspecified() || ip.is_loopback() || ip.is_link_local() => (
            Verdict::NotConnected,
            format!(
                "the router at {router} reports no usable external address ({ip}): it does not seem connected to the internet{v6}"
            ),
        ),
        None if f.mapped_ipv4.is_none() && f.pinhole_ipv6.is_none() => (
            Verdict::NotConnected,
            format!("the router at {router} did not report an external address{v6}"),
        ),
        _ => match (f.mapped_ipv4, f.pinhole_ipv6) {
            (Some(m), _) => (Verdict::Reachable, format!("reachable at {m}{v6}")),
            (None, Some(p)) => (
                Verdict::Reachable,
                format!("reachable over IPv6 at {p}{how}"),
            ),
            (None, None) => (
                Verdict::Closed,
                format!(
                    "remote access is closed: the router at {router}{} can map port {} when you run `latchkey remote open`",
                    f.external_ipv4
                        .map(|ip| format!(" (external address {ip})"))
                        .unwrap_or_default(),
                    f.port
                ),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(ext: Option<&str>) -> Facts {
        Facts {
            router: Some("192.168.77.1".parse().unwrap()),
            external_ipv4: ext.map(|e| e.parse().unwrap()),
            port: 7447,
            ..Facts::default()
        }
    }

    #[test]
    fn each_situation_gets_its_plain_sentence() {
        let cases: &[(Facts, Verdict, &str)] = &[
            (
                Facts {
                    port: 7447,
                    ..Facts::default()
                },
                Verdict::NoRouter,
                "no UPnP router found",
            ),
            (
                facts(Some("100.64.3.7")),
                Verdict::Cgnat,
                "carrier-grade NAT",
            ),
            (
                facts(Some("100.127.255.255")),
                Verdict::Cgnat,
                "IPv6 is the way in",
            ),
            (
                facts(Some("192.168.1.20")),
                Verdict::DoubleNat,
                "double NAT",
            ),
            (
                facts(Some("10.0.0.2")),
                Verdict::DoubleNat,
                "private external address",
            ),
            (
                facts(Some("0.0.0.0")),
                Verdict::NotConnected,
                "no usable external address",
            ),
            (
                facts(Some("203.0.113.1")),
                Verdict::Closed,
                "remote access is closed",
            ),
            (
                Facts {
                    mapped_ipv4: Some("203.0.113.1:41234".parse().unwrap()),
                    ..facts(Some("203.0.113.1"))
                },
                Verdict::Reachable,
                "reachable at 203.0.113.1:41234",
            ),
            (
                Facts {
                    pinhole_ipv6: Some("[2001:db8:77::2]:7447".parse().unwrap()),
                    pinhole_via: Some("pcp"),
                    ..facts(Some("203.0.113.1"))
                },
                Verdict::Reachable,
                "reachable over IPv6 at [2001:db8:77::2]:7447 (pinhole opened over PCP",
            ),
        ];
        for (f, verdict, text) in cases {
            let (v, msg) = diagnose(f);
            assert_eq!(v, *verdict, "{msg}");
            assert!(msg.contains(text), "{msg:?} lacks {text:?}");
        }
        assert!(!is_cgnat("100.128.0.1".parse().unwrap()));
        assert!(!is_cgnat("100.63.255.255".parse().unwrap()));
    }
}
