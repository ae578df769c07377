//! WS-Discovery: who on the LAN is an ONVIF camera.
//!
//! On every LAN interface (an IPv4 address in 10/8, 172.16/12, 192.168/16 or 169.254/16)
//! the gateway sends two probes to 239.255.255.250:3702 with a multicast TTL of 1 (they
//! cannot leave the link): one for `dn:NetworkVideoTransmitter` and one for `tds:Device`,
//! because many cameras answer only one of them. `--address A` adds a unicast probe to
//! one address (a camera on another subnet). Only answers that relate to one of our
//! probes are read; each shows the packet's source address, not only what the camera
//! advertises. Maker, model and firmware come from the scopes and from an
//! unauthenticated `GetDeviceInformation`, which is asked only of the packet's source
//! address (a camera's advertised address cannot send the gateway elsewhere).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use tokio::net::UdpSocket;

use super::xml::{self, NS_ADDRESSING, NS_DISCOVERY, clean};
use super::{DeviceInfo, device_info};

/// The WS-Discovery multicast group and port.
pub const GROUP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(239, 255, 255, 250)), 3702);
/// Most distinct answers kept.
const MAX_FOUND: usize = 256;
/// Time for the unauthenticated `GetDeviceInformation` of each camera found.
const INFO_TIMEOUT: Duration = Duration::from_millis(1000);

/// One camera that answered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Found {
    /// The source address of its answer.
    pub source: IpAddr,
    /// The device service address it advertises.
    pub xaddr: Option<String>,
    /// Its endpoint id (`urn:uuid:…`).
    pub endpoint: String,
    /// Maker, model and firmware (scopes, then `GetDeviceInformation`).
    pub device: DeviceInfo,
    /// Why the advertised address was not asked, or what asking it gave.
    pub note: Option<String>,
}

/// Whether `a` is a LAN address the gateway probes from.
pub fn is_lan(a: Ipv4Addr) -> bool {
    a.is_private() || a.is_link_local()
}

fn probe(message_id: &str, types: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?><e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" "#,
            r#"xmlns:w="{wsa}" xmlns:d="{wsd}" xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">"#,
            r#"<e:Header><w:MessageID>{id}</w:MessageID><w:To e:mustUnderstand="true">urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>"#,
            r#"<w:Action e:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</w:Action></e:Header>"#,
            r#"<e:Body><d:Probe><d:Types>{types}</d:Types></d:Probe></e:Body></e:Envelope>"#
        ),
        wsa = NS_ADDRESSING,
        wsd = NS_DISCOVERY,
        id = message_id,
        types = types,
    )
}

fn new_id() -> String {
    let n: u128 = rand::random();
    format!(
        "uuid:{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        n >> 96,
        (n >> 80) & 0xffff,
        (n >> 64) & 0xffff,
        (n >> 48) & 0xffff,
        n & 0xffff_ffff_ffff
    )
}

/// Reads one answer; `None` for anything that is not a ProbeMatch to one of `ids`.
pub fn parse_match(packet: &[u8], ids: &HashSet<String>, source: IpAddr) -> Option<Found> {
    let doc = xml::parse(packet).ok()?;
    let body = xml::soap_body(&doc).ok()?;
    let root = doc.root_element();
    let relates = xml::find(root, NS_ADDRESSING, "RelatesTo")?
        .text()?
        .trim()
        .to_string();
    if !ids.contains(&relates) {
        return None;
    }
    let m = xml::find(body, NS_DISCOVERY, "ProbeMatch")?;
    let endpoint = xml::find(m, NS_ADDRESSING, "Address")
        .and_then(|a| a.text())
        .map_or_else(|| "-".to_string(), |t| clean(t.trim(), 128));
    let xaddr = xml::text_at(m, &[(NS_DISCOVERY, "XAddrs")]).and_then(|x| {
        x.split_whitespace()
            .find(|a| a.starts_with("http://"))
            .map(|a| clean(a, 256))
    });
    let scopes = xml::text_at(m, &[(NS_DISCOVERY, "Scopes")]).unwrap_or_default();
    let scope = |key: &str| {
        scopes.split_whitespace().find_map(|s| {
            let v = s
                .strip_prefix("onvif://www.onvif.org/")?
                .strip_prefix(key)?;
            let v = url::form_urlencoded::parse(format!("v={v}").as_bytes())
                .next()?
                .1
                .into_owned();
            Some(clean(&v, 64))
        })
    };
    Some(Found {
        source,
        xaddr,
        endpoint,
        device: DeviceInfo {
            maker: scope("mfr/").or_else(|| scope("name/")),
            model: scope("hardware/"),
            firmware: None,
            serial: None,
        },
        note: None,
    })
}

/// Binds one socket per LAN interface (and one for unicast probes) and sends the probes.
async fn send_probes(unicast: &[IpAddr], ids: &[String; 2]) -> Vec<UdpSocket> {
    let probes = [
        probe(&ids[0], "dn:NetworkVideoTransmitter"),
        probe(&ids[1], "tds:Device"),
    ];
    let mut sockets = Vec::new();
    let lan: Vec<Ipv4Addr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| match i.ip() {
            IpAddr::V4(a) if !i.is_loopback() && is_lan(a) => Some(a),
            _ => None,
        })
        .collect();
    for addr in lan {
        let Ok(sock) = UdpSocket::bind((addr, 0)).await else {
            continue;
        };
        if sock.set_multicast_ttl_v4(1).is_err() || sock.set_multicast_loop_v4(false).is_err() {
            continue;
        }
        for p in &probes {
            if let Err(e) = sock.send_to(p.as_bytes(), GROUP).await {
                tracing::debug!(%addr, "ws-discovery probe not sent: {e}");
            }
        }
        sockets.push(sock);
    }
    if !unicast.is_empty()
        && let Ok(sock) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await
    {
        for a in unicast {
            for p in &probes {
                let _ = sock.send_to(p.as_bytes(), (*a, 3702)).await;
            }
        }
        sockets.push(sock);
    }
    sockets
}

/// Probes for `wait` and returns every camera that answered, with its device information
/// where the camera gives it without a password.
pub async fn discover(unicast: &[IpAddr], wait: Duration) -> Vec<Found> {
    let ids = [new_id(), new_id()];
    let id_set: HashSet<String> = ids.iter().cloned().collect();
    let sockets = send_probes(unicast, &ids).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Vec<u8>, IpAddr)>(64);
    let mut readers = Vec::new();
    for sock in sockets {
        let tx = tx.clone();
        readers.push(super::AbortOnDrop(tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let packet = buf.get(..n).unwrap_or_default().to_vec();
                if tx.send((packet, from.ip())).await.is_err() {
                    return;
                }
            }
        })));
    }
    drop(tx);
    let mut found: Vec<Found> = Vec::new();
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            got = rx.recv() => match got {
                None => break,
                Some((packet, from)) => {
                    if let Some(f) = parse_match(&packet, &id_set, from)
                        && found.len() < MAX_FOUND
                        && !found.iter().any(|g| g.source == f.source && g.endpoint == f.endpoint)
                    {
                        found.push(f);
                    }
                }
            },
        }
    }
    drop(readers);
    // One question per advertised address, however many answers name it.
    let mut asked: Vec<&Found> = Vec::new();
    for f in &found {
        if !asked
            .iter()
            .any(|a| a.xaddr == f.xaddr && a.source == f.source)
        {
            asked.push(f);
        }
    }
    let answers = futures_util::future::join_all(asked.iter().map(|f| ask_info(f))).await;
    let keys: Vec<(IpAddr, Option<String>)> =
        asked.iter().map(|f| (f.source, f.xaddr.clone())).collect();
    let infos: Vec<(Option<DeviceInfo>, Option<String>)> = found
        .iter()
        .map(|f| {
            keys.iter()
                .zip(&answers)
                .find(|((s, x), _)| *s == f.source && *x == f.xaddr)
                .map_or((None, None), |(_, a)| a.clone())
        })
        .collect();
    for (f, (info, note)) in found.iter_mut().zip(infos) {
        if let Some(i) = info {
            f.device.maker = i.maker.or(f.device.maker.take());
            f.device.model = i.model.or(f.device.model.take());
            f.device.firmware = i.firmware;
            f.device.serial = i.serial;
        }
        f.note = note;
    }
    found
}

async fn ask_info(f: &Found) -> (Option<DeviceInfo>, Option<String>) {
    let Some(xaddr) = f.xaddr.as_deref() else {
        return (None, Some("advertised no device service address".into()));
    };
    let Ok(url) = url::Url::parse(xaddr) else {
        return (None, Some("advertised an unusable address".into()));
    };
    let same_host = url
        .host_str()
        .and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok())
        == Some(f.source);
    if !same_host {
        return (
            None,
            Some(format!(
                "advertises {} but answered from {}: not asked",
                clean(xaddr, 80),
                f.source
            )),
        );
    }
    match tokio::time::timeout(INFO_TIMEOUT, device_info(&url, None, 0)).await {
        Ok(Ok(info)) => (Some(info), None),
        Ok(Err(super::OnvifError::NotAuthorized { .. })) => (
            None,
            Some("firmware: the camera shows it only with its password".into()),
        ),
        Ok(Err(e)) => (None, Some(clean(&e.to_string(), 160))),
        Err(_) => (None, Some("no device information within 1 s".into())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MATCH: &str = r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><s:Header><a:RelatesTo>uuid:1</a:RelatesTo></s:Header><s:Body><d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:cam</a:Address></a:EndpointReference><d:Scopes>onvif://www.onvif.org/name/Acme%20Cam onvif://www.onvif.org/hardware/X1</d:Scopes><d:XAddrs>http://10.0.0.5/onvif/device_service</d:XAddrs></d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"#;

    #[test]
    fn reads_matches_to_our_probes_only() {
        let ids: HashSet<String> = ["uuid:1".to_string()].into();
        let src: IpAddr = "10.0.0.5".parse().unwrap();
        let f = parse_match(MATCH.as_bytes(), &ids, src).unwrap();
        assert_eq!(f.device.maker.as_deref(), Some("Acme Cam"));
        assert_eq!(f.device.model.as_deref(), Some("X1"));
        assert_eq!(
            f.xaddr.as_deref(),
            Some("http://10.0.0.5/onvif/device_service")
        );
        let other: HashSet<String> = ["uuid:2".to_string()].into();
        assert!(parse_match(MATCH.as_bytes(), &other, src).is_none());
        assert!(parse_match(b"<junk", &ids, src).is_none());
        assert!(probe("uuid:x", "tds:Device").contains("<d:Types>tds:Device</d:Types>"));
        assert!(is_lan("192.168.1.2".parse().unwrap()) && !is_lan("8.8.8.8".parse().unwrap()));
    }
}
