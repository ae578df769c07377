//! The router, as seen through UPnP IGD (igd-next): discovery on the LAN, external
//! address, port mappings with finite leases, and the full mapping table.
//!
//! Every call is wrapped in a tokio timeout (igd-next's own search timeout is not
//! reliable), responses are size-bounded (igd-next caps bodies at 1 MiB; our one
//! hand-written call at 64 KiB), and a router that answers from outside the LAN subnet
//! is ignored.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use igd_next::aio::Gateway;
use igd_next::aio::tokio::Tokio;
use igd_next::{
    AddAnyPortError, AddPortError, GetGenericPortMappingEntryError, PortMappingProtocol,
    SearchOptions,
};
use serde::{Deserialize, Serialize};

use super::PortmapError;

/// Longest wait for one request to the router.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// One SSDP round; repeated because a single lost M-SEARCH would cost the whole search.
const SEARCH_ROUND: Duration = Duration::from_millis(1200);
/// SSDP rounds per interface.
const SEARCH_ROUNDS: u32 = 3;
/// Most mapping-table entries read (a router's table is small; a hostile one is not).
pub const MAX_ENTRIES: u32 = 512;
/// Consecutive unreadable entries after which listing stops.
const MAX_BAD_ENTRIES: u32 = 8;
/// Largest answer read for the DeletePortMappingRange call.
const MAX_SOAP_ANSWER: usize = 64 * 1024;

/// A LAN interface the router is searched on.
#[derive(Clone, Copy, Debug)]
pub struct LanInterface {
    /// This host's address on it.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
}

impl LanInterface {
    /// True when `other` is on this interface's subnet.
    pub fn contains(&self, other: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix.min(32)))
            .unwrap_or(0);
        (u32::from(self.ip) & mask) == (u32::from(other) & mask)
    }
}

/// This host's IPv4 LAN interfaces (up, not loopback, not link-local).
pub fn lan_interfaces() -> Result<Vec<LanInterface>, PortmapError> {
    let mut out = Vec::new();
    for i in if_addrs::get_if_addrs().map_err(PortmapError::Interfaces)? {
        if let if_addrs::IfAddr::V4(v4) = i.addr
            && !v4.ip.is_loopback()
            && !v4.ip.is_link_local()
        {
            out.push(LanInterface {
                ip: v4.ip,
                prefix: v4.prefixlen,
            });
        }
    }
    Ok(out)
}

/// A router found on the LAN.
#[derive(Clone, Debug)]
pub struct Router {
    /// igd-next's handle.
    pub gw: Gateway<Tokio>,
    /// This host's address on the router's LAN (the internal client of our mappings).
    pub local_ip: Ipv4Addr,
}

/// One entry of the router's mapping table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableEntry {
    /// Its index in GetGenericPortMappingEntry.
    pub index: u32,
    /// TCP or UDP.
    pub protocol: String,
    /// External port.
    pub external_port: u16,
    /// The LAN host it points to.
    pub internal_client: String,
    /// Port on that host.
    pub internal_port: u16,
    /// The description its maker gave.
    pub description: String,
    /// Lease in seconds (0: permanent).
    pub lease_secs: u32,
    /// Enabled flag.
    pub enabled: bool,
}

/// Runs a router call with [`CALL_TIMEOUT`].
pub async fn timed<T, E>(
    op: &'static str,
    router: SocketAddr,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, PortmapError>
where
    igd_next::Error: From<E>,
{
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(PortmapError::Router {
            op,
            router,
            source: Box::new(igd_next::Error::from(e)),
        }),
        Err(_) => Err(PortmapError::Timeout {
            op,
            router,
            secs: CALL_TIMEOUT.as_secs(),
        }),
    }
}

/// Searches each LAN interface for a UPnP IGD, in a bounded time. Answers naming a
/// router outside the interface's subnet are ignored (a LAN host could otherwise point
/// the gateway anywhere).
pub async fn discover() -> Result<Router, PortmapError> {
    let lans = lan_interfaces()?;
    let mut ignored = Vec::new();
    let mut failed = None;
    for lan in lans.iter().take(4) {
        for _ in 0..SEARCH_ROUNDS {
            let mut opts = SearchOptions::default();
            // Binding to the LAN address picks the interface and works without a
            // default route (DESIGN §8 trap 3).
            opts.bind_addr = SocketAddr::from((lan.ip, 0));
            opts.timeout = Some(SEARCH_ROUND);
            opts.single_search_timeout = Some(SEARCH_ROUND);
            opts.gateway_ip_version = igd_next::GatewayIpVersion::V4;
            let found = tokio::time::timeout(
                SEARCH_ROUND + Duration::from_millis(300),
                igd_next::aio::tokio::search_gateway(opts),
            )
            .await;
            match found {
                Ok(Ok(gw)) => match gw.addr.ip() {
                    IpAddr::V4(ip) if lan.contains(ip) => {
                        tracing::debug!(router = %gw.addr, lan = %lan.ip, "found a UPnP router");
                        return Ok(Router {
                            gw,
                            local_ip: lan.ip,
                        });
                    }
                    other => {
                        tracing::warn!(
                            answer = %other,
                            lan = %lan.ip,
                            "ignored an SSDP answer naming a router outside the LAN subnet"
                        );
                        ignored.push(other);
                    }
                },
                Ok(Err(e)) => {
                    tracing::debug!(lan = %lan.ip, "SSDP search: {e}");
                    // A timeout means nobody answered; anything else came from an answer.
                    if !matches!(e, igd_next::SearchError::NoResponseWithinTimeout) {
                        let mut why = e.to_string();
                        why.truncate(200);
                        failed = Some(why);
                    }
                }
                Err(_) => tracing::debug!(lan = %lan.ip, "SSDP search timed out"),
            }
        }
    }
    Err(PortmapError::NoRouter {
        lans: lans
            .iter()
            .map(|l| l.ip.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        ignored: ignored.len(),
        failed,
    })
}

/// What a mapping request ended with.
#[derive(Clone, Copy, Debug)]
pub struct Mapped {
    /// The external port the router gave.
    pub external_port: u16,
    /// The router took only a permanent lease (UPnP error 725): the gateway must remove
    /// the mapping itself.
    pub permanent: bool,
}

impl Router {
    /// The router's address.
    pub fn addr(&self) -> SocketAddr {
        self.gw.addr
    }

    /// `IGDv2` or `IGDv1`, from the WAN connection service version.
    pub fn igd_version(&self) -> &'static str {
        if self.gw.service_type.ends_with(":2") {
            "IGDv2"
        } else {
            "IGDv1"
        }
    }

    /// The external IPv4 address the router reports.
    pub async fn external_ip(&self) -> Result<IpAddr, PortmapError> {
        timed(
            "asking the external address",
            self.addr(),
            self.gw.get_external_ip(),
        )
        .await
    }

    /// Maps `internal` with a finite lease, on `preferred` if free, else on any port the
    /// router picks. A lease of 0 is only sent after the router answered 725 (it takes
    /// nothing else); the caller then owns the removal.
    pub async fn map(
        &self,
        internal: SocketAddrV4,
        preferred: u16,
        lease_secs: u32,
        description: &str,
    ) -> Result<Mapped, PortmapError> {
        let lease = lease_secs.max(1);
        let tcp = PortMappingProtocol::TCP;
        let local = SocketAddr::V4(internal);
        let first = tokio::time::timeout(
            CALL_TIMEOUT,
            self.gw.add_port(tcp, preferred, local, lease, description),
        )
        .await;
        match first {
            Ok(Ok(())) => {
                return Ok(Mapped {
                    external_port: preferred,
                    permanent: false,
                });
            }
            Ok(Err(AddPortError::OnlyPermanentLeasesSupported)) => {
                tracing::warn!(
                    router = %self.addr(),
                    "the router accepts only permanent mappings (UPnP 725); mapping permanently and removing it ourselves"
                );
                timed(
                    "adding a permanent port mapping after error 725",
                    self.addr(),
                    self.gw.add_port(tcp, preferred, local, 0, description),
                )
                .await?;
                return Ok(Mapped {
                    external_port: preferred,
                    permanent: true,
                });
            }
            Ok(Err(e)) => tracing::debug!(
                port = preferred,
                "AddPortMapping refused: {e}; trying any port"
            ),
            Err(_) => {
                return Err(PortmapError::Timeout {
                    op: "adding a port mapping",
                    router: self.addr(),
                    secs: CALL_TIMEOUT.as_secs(),
                });
            }
        }
        match tokio::time::timeout(
            CALL_TIMEOUT * 4,
            self.gw.add_any_port(tcp, local, lease, description),
        )
        .await
        {
            Ok(Ok(port)) => Ok(Mapped {
                external_port: port,
                permanent: false,
            }),
            Ok(Err(AddAnyPortError::OnlyPermanentLeasesSupported)) => timed(
                "adding a permanent port mapping after error 725",
                self.addr(),
                self.gw.add_any_port(tcp, local, 0, description),
            )
            .await
            .map(|port| Mapped {
                external_port: port,
                permanent: true,
            }),
            Ok(Err(e)) => Err(PortmapError::Router {
                op: "adding a port mapping",
                router: self.addr(),
                source: Box::new(e.into()),
            }),
            Err(_) => Err(PortmapError::Timeout {
                op: "adding a port mapping on any port",
                router: self.addr(),
                secs: (CALL_TIMEOUT * 4).as_secs(),
            }),
        }
    }

    /// Removes the TCP mapping on `external_port`.
    pub async fn unmap(
        &self,
        protocol: PortMappingProtocol,
        external_port: u16,
    ) -> Result<(), PortmapError> {
        timed(
            "removing a port mapping",
            self.addr(),
            self.gw.remove_port(protocol, external_port),
        )
        .await
    }

    /// Reads the whole mapping table (bounded), skipping entries the router cannot
    /// serialise (long descriptions come back corrupted from some routers).
    pub async fn table(&self) -> Result<Vec<TableEntry>, PortmapError> {
        let mut out = Vec::new();
        let mut bad = 0;
        for index in 0..MAX_ENTRIES {
            let got =
                tokio::time::timeout(CALL_TIMEOUT, self.gw.get_generic_port_mapping_entry(index))
                    .await;
            match got {
                Ok(Ok(e)) => {
                    bad = 0;
                    out.push(TableEntry {
                        index,
                        protocol: e.protocol.to_string(),
                        external_port: e.external_port,
                        internal_client: e.internal_client,
                        internal_port: e.internal_port,
                        description: e.port_mapping_description,
                        lease_secs: e.lease_duration,
                        enabled: e.enabled,
                    });
                }
                Ok(Err(GetGenericPortMappingEntryError::SpecifiedArrayIndexInvalid)) => break,
                Ok(Err(GetGenericPortMappingEntryError::ActionNotAuthorized)) => {
                    return Err(PortmapError::Router {
                        op: "listing port mappings",
                        router: self.addr(),
                        source: Box::new(
                            GetGenericPortMappingEntryError::ActionNotAuthorized.into(),
                        ),
                    });
                }
                Ok(Err(e)) => {
                    tracing::debug!(index, "unreadable mapping entry: {e}");
                    bad += 1;
                    if bad >= MAX_BAD_ENTRIES {
                        break;
                    }
                }
                Err(_) => {
                    return Err(PortmapError::Timeout {
                        op: "listing port mappings",
                        router: self.addr(),
                        secs: CALL_TIMEOUT.as_secs(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Deletes another host's mapping. Under the router's secure mode DeletePortMapping
    /// only works for the host that made it (606), so this falls back to IGDv2's
    /// DeletePortMappingRange with NewManage=1, which igd-next lacks: one SOAP call
    /// through hyper's client ([`soap_post`]).
    pub async fn remove_foreign(
        &self,
        protocol: PortMappingProtocol,
        external_port: u16,
    ) -> Result<(), PortmapError> {
        match self.unmap(protocol, external_port).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::debug!("DeletePortMapping refused ({e}); trying DeletePortMappingRange")
            }
        }
        if self.igd_version() != "IGDv2" {
            return Err(PortmapError::Soap {
                op: "removing another host's port mapping",
                router: self.addr(),
                detail: "the router refused, and IGDv1 has no DeletePortMappingRange; remove it on the router's admin page".into(),
            });
        }
        let body = format!(
            "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:DeletePortMappingRange xmlns:u=\"{svc}\"><NewStartPort>{p}</NewStartPort><NewEndPort>{p}</NewEndPort><NewProtocol>{protocol}</NewProtocol><NewManage>1</NewManage></u:DeletePortMappingRange></s:Body></s:Envelope>",
            svc = self.gw.service_type,
            p = external_port,
        );
        let action = format!("\"{}#DeletePortMappingRange\"", self.gw.service_type);
        let answer = tokio::time::timeout(
            CALL_TIMEOUT,
            soap_post(self.addr(), &self.control_path(), &action, body),
        )
        .await
        .map_err(|_| PortmapError::Timeout {
            op: "removing another host's port mapping",
            router: self.addr(),
            secs: CALL_TIMEOUT.as_secs(),
        })?
        .map_err(|e| PortmapError::Soap {
            op: "removing another host's port mapping",
            router: self.addr(),
            detail: e.to_string(),
        })?;
        let (status, answer) = answer;
        if status.is_success() {
            Ok(())
        } else {
            let answer = String::from_utf8_lossy(&answer);
            let code = answer
                .split("<errorCode>")
                .nth(1)
                .and_then(|s| s.split('<').next())
                .unwrap_or("?")
                .chars()
                .take(8)
                .collect::<String>();
            Err(PortmapError::Soap {
                op: "removing another host's port mapping",
                router: self.addr(),
                detail: format!(
                    "the router refused (UPnP error {code}); remove it on the router's admin page"
                ),
            })
        }
    }

    /// The control URL's path (igd-next keeps either a path or an absolute URL).
    fn control_path(&self) -> String {
        let url = &self.gw.control_url;
        match url.strip_prefix("http://") {
            Some(rest) => rest
                .find('/')
                .and_then(|i| rest.get(i..))
                .unwrap_or("/")
                .to_string(),
            None => url.clone(),
        }
    }
}

/// One HTTP/1.1 SOAP POST to the router (to its own address only) through hyper's
/// client: the answer's status and at most [`MAX_SOAP_ANSWER`] bytes of its body.
async fn soap_post(
    router: SocketAddr,
    path: &str,
    action: &str,
    body: String,
) -> Result<(hyper::StatusCode, bytes::Bytes), Box<dyn std::error::Error + Send + Sync>> {
    use http_body_util::{BodyExt as _, Full, Limited};
    let tcp = tokio::net::TcpStream::connect(router).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    let conn = tokio::spawn(conn);
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, router.to_string())
        .header(hyper::header::CONTENT_TYPE, "text/xml; charset=\"utf-8\"")
        .header("SOAPAction", action)
        .body(Full::new(bytes::Bytes::from(body)))?;
    let answer = sender.send_request(request).await;
    let read = match answer {
        Ok(response) => {
            let status = response.status();
            Limited::new(response.into_body(), MAX_SOAP_ANSWER)
                .collect()
                .await
                .map(|b| (status, b.to_bytes()))
        }
        Err(e) => Err(e.into()),
    };
    conn.abort();
    read
}

/// A mapping description the router stores intact: printable ASCII, at most 63 bytes
/// (longer ones come back corrupted from miniupnpd, DESIGN §8 trap 5).
pub fn description(gateway_name: &str) -> String {
    let clean: String = gateway_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
        .collect();
    let mut d = format!("Latchkey {}", clean.trim());
    d.truncate(63);
    d.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_stay_short_and_plain() {
        assert_eq!(description("Home"), "Latchkey Home");
        assert_eq!(description("<x>&\"é"), "Latchkey x");
        assert!(description(&"a".repeat(200)).len() <= 63);
    }

    #[test]
    fn subnet_membership() {
        let lan = LanInterface {
            ip: "192.168.77.2".parse().unwrap(),
            prefix: 24,
        };
        assert!(lan.contains("192.168.77.1".parse().unwrap()));
        assert!(!lan.contains("192.168.78.1".parse().unwrap()));
        assert!(!lan.contains("203.0.113.1".parse().unwrap()));
        let all = LanInterface {
            ip: "10.0.0.1".parse().unwrap(),
            prefix: 0,
        };
        assert!(all.contains("1.2.3.4".parse().unwrap()));
    }
}
