//! What remote access reports to the owner: typed answers of `status`, `plan`, `close` and
//! `audit`, shared by the admin socket, the web UI and the CLI that renders them.
//!
//! These are the JSON shapes of `latchkey remote … --json` (README): the gateway
//! serialises them and the CLI reads them back into the same types, so neither side
//! reaches into the other through string keys.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use serde::{Deserialize, Serialize};

use super::audit::AuditedMapping;
use super::diagnosis::Verdict;
use crate::store::RemoteApproval;

/// `remote status`: the router, the approval, what is mapped, and a plain diagnosis.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// The UPnP router, when one answered.
    pub router: Option<RouterInfo>,
    /// Why no router is usable, when none is.
    pub router_error: Option<String>,
    /// The router's external IPv4 address.
    pub external_ipv4: Option<Ipv4Addr>,
    /// This host's global IPv6 addresses.
    pub global_ipv6: Vec<Ipv6Addr>,
    /// The Noise port phones connect to.
    pub noise_port: u16,
    /// The owner's standing approval, if any.
    pub approval: Option<RemoteApproval>,
    /// What is mapped on the router right now.
    pub mappings: Vec<Mapping>,
    /// Why the approved IPv4 mapping is not in place.
    pub ipv4_error: Option<String>,
    /// Why the approved IPv6 opening is not in place.
    pub ipv6_error: Option<String>,
    /// The addresses remote phones are told about.
    pub published_addresses: Vec<SocketAddr>,
    /// The diagnosis as a machine-readable verdict.
    pub verdict: Verdict,
    /// The diagnosis in plain words.
    pub diagnosis: String,
}

/// The UPnP router as it described itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RouterInfo {
    /// Its control address.
    pub address: SocketAddr,
    /// Its control URL.
    pub control_url: String,
    /// `IGDv1` or `IGDv2`.
    pub igd: String,
    /// The WAN service type it offers.
    pub service: String,
    /// Whether it offers WANIPv6FirewallControl.
    pub ipv6_firewall_control: bool,
    /// This gateway's address on the router's LAN.
    pub lan_address: Ipv4Addr,
}

/// One opening Latchkey holds on the router.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Mapping {
    /// An IPv4 port mapping.
    Ipv4 {
        /// Always `TCP`.
        protocol: String,
        /// Where phones reach it, when the external address is known.
        external: Option<SocketAddr>,
        /// The external port.
        external_port: u16,
        /// This gateway's LAN address and Noise port.
        internal: SocketAddrV4,
        /// The lease asked for, in seconds.
        lease_secs: u32,
        /// When it was last renewed (Unix seconds).
        renewed_at: u64,
        /// When the lease runs out (Unix seconds); `null` when the router only takes
        /// permanent mappings.
        expires_at: Option<u64>,
        /// The router took it only as permanent: Latchkey removes it itself.
        permanent_on_router: bool,
    },
    /// An IPv6 pinhole.
    Ipv6 {
        /// `upnp` (WANIPv6FirewallControl) or `pcp`.
        via: String,
        /// Always `TCP`.
        protocol: String,
        /// Where phones reach it.
        external: SocketAddrV6,
        /// This gateway's global address and Noise port.
        internal: SocketAddrV6,
        /// The router that holds it.
        router: Option<SocketAddr>,
        /// The UPnP pinhole id.
        pinhole_id: Option<u16>,
        /// The PCP server's epoch when last seen.
        pcp_epoch: Option<u32>,
        /// The lease in seconds (as granted).
        lease_secs: u32,
        /// When it was last renewed (Unix seconds).
        renewed_at: u64,
        /// When the lease runs out (Unix seconds).
        expires_at: u64,
    },
}

/// `remote open` dry run: every request the gateway would make, and what stands in the way.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Plan {
    /// The requests, in order.
    pub requests: Vec<PlannedRequest>,
    /// Problems in plain words (CGNAT, no router, no global IPv6).
    pub problems: Vec<String>,
}

impl Plan {
    /// Whether an IPv4 mapping would be asked for.
    pub fn maps_ipv4(&self) -> bool {
        self.requests
            .iter()
            .any(|r| matches!(r, PlannedRequest::AddPortMapping { .. }))
    }

    /// Whether an IPv6 pinhole would be asked for.
    pub fn opens_ipv6(&self) -> bool {
        self.requests
            .iter()
            .any(|r| matches!(r, PlannedRequest::AddPinhole { .. }))
    }
}

/// One request the gateway would send to the router.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "action")]
pub enum PlannedRequest {
    /// An IPv4 mapping (UPnP AddPortMapping).
    AddPortMapping {
        /// The router.
        router: SocketAddr,
        /// Always `TCP`.
        protocol: String,
        /// The external port asked for.
        external_port: u16,
        /// What happens when it is taken.
        external_port_note: String,
        /// This gateway's LAN address and Noise port.
        internal: SocketAddrV4,
        /// The lease, in seconds.
        lease_secs: u32,
        /// When it is renewed, in plain words.
        renewal: String,
        /// The description the router will show.
        description: String,
    },
    /// An IPv6 pinhole (UPnP AddPinhole, or PCP).
    AddPinhole {
        /// The UPnP router, when known.
        router: Option<SocketAddr>,
        /// Always `TCP`.
        protocol: String,
        /// Who may come in.
        remote: String,
        /// This gateway's global address and Noise port.
        internal: SocketAddrV6,
        /// The lease, in seconds.
        lease_secs: u32,
        /// When it is renewed, in plain words.
        renewal: String,
        /// What is tried when UPnP cannot.
        fallback: String,
    },
}

/// `remote close`: the approval ended and what became of each opening.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Closed {
    /// An approval stood and is now ended.
    pub approval_ended: bool,
    /// The IPv4 mapping, if one was held.
    pub ipv4: Option<Removal>,
    /// The IPv6 opening, if one was held.
    pub ipv6: Option<Removal>,
    /// External ports of earlier runs' mappings found on the router and removed.
    pub leftovers_removed: Vec<u16>,
}

/// What became of one opening on removal.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Removal {
    /// The router accepted the removal.
    pub removed: bool,
    /// The router no longer lists it (absent when the removal failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_gone: Option<bool>,
    /// Why the removal failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Removal {
    /// From the removal's outcome: `Ok(verified_gone)` or the error in words.
    pub fn from_outcome(r: Result<bool, String>) -> Self {
        match r {
            Ok(gone) => Self {
                removed: true,
                verified_gone: Some(gone),
                error: None,
            },
            Err(e) => Self {
                removed: false,
                verified_gone: None,
                error: Some(e),
            },
        }
    }
}

/// `remote audit`: every mapping on the router, classified.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RouterAudit {
    /// The router.
    pub router: SocketAddr,
    /// What was removed on the owner's word, in plain words.
    pub removed: Option<String>,
    /// The router's table, each entry with its owner.
    pub mappings: Vec<AuditedMapping>,
}

/// An external address for reports: the IPv4 one when the router gave one.
pub fn external_v4(ip: Option<IpAddr>) -> Option<Ipv4Addr> {
    match ip {
        Some(IpAddr::V4(ip)) => Some(ip),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_back_from_its_json_and_keeps_the_documented_keys() {
        let status = Status {
            router: None,
            router_error: Some("searching for a UPnP router on 192.168.1.2: none answered".into()),
            external_ipv4: None,
            global_ipv6: vec![],
            noise_port: 7447,
            approval: None,
            mappings: vec![Mapping::Ipv4 {
                protocol: "TCP".into(),
                external: Some("203.0.113.1:7447".parse().unwrap()),
                external_port: 7447,
                internal: "192.168.1.2:7447".parse().unwrap(),
                lease_secs: 3600,
                renewed_at: 10,
                expires_at: Some(3610),
                permanent_on_router: false,
            }],
            ipv4_error: None,
            ipv6_error: None,
            published_addresses: vec!["203.0.113.1:7447".parse().unwrap()],
            verdict: Verdict::NoRouter,
            diagnosis: "no router".into(),
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["mappings"][0]["kind"], "ipv4");
        assert_eq!(json["mappings"][0]["external"], "203.0.113.1:7447");
        assert_eq!(json["verdict"], "no-router");
        assert_eq!(json["published_addresses"][0], "203.0.113.1:7447");
        let back: Status = serde_json::from_value(json).unwrap();
        assert!(matches!(
            back.mappings[0],
            Mapping::Ipv4 {
                expires_at: Some(3610),
                ..
            }
        ));
    }

    #[test]
    fn a_removal_says_verified_gone_only_when_it_was_removed() {
        let ok = serde_json::to_value(Removal::from_outcome(Ok(true))).unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"removed": true, "verified_gone": true})
        );
        let failed = serde_json::to_value(Removal::from_outcome(Err("timeout".into()))).unwrap();
        assert_eq!(
            failed,
            serde_json::json!({"removed": false, "error": "timeout"})
        );
    }

    #[test]
    fn a_plan_names_its_requests_by_action() {
        let plan = Plan {
            requests: vec![PlannedRequest::AddPinhole {
                router: None,
                protocol: "TCP".into(),
                remote: "any host, any port".into(),
                internal: "[2001:db8::2]:7447".parse().unwrap(),
                lease_secs: 60,
                renewal: "every 30 s while approved".into(),
                fallback: "PCP".into(),
            }],
            problems: vec![],
        };
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["requests"][0]["action"], "AddPinhole");
        let back: Plan = serde_json::from_value(json).unwrap();
        assert!(back.opens_ipv6() && !back.maps_ipv4());
    }
}
