//! The camera port's DNS responder: answers every query itself and never asks upstream.
//!
//! Each question gets NXDOMAIN, or the owner's configured local answer (an A or AAAA
//! record) for that exact name; the name is recorded against the asking camera. Parsing
//! and answering use `simple-dns`; a query is refused unparsed unless its header says one
//! question and no answers, so a hostile count cannot make the parser allocate.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use simple_dns::rdata::{A, AAAA, RData};
use simple_dns::{CLASS, Name, Packet, PacketFlag, QTYPE, RCODE, ResourceRecord, TYPE};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::counters::Counters;

/// Longest name recorded (DNS names are at most 255 bytes; escaping can triple that).
const MAX_NAME: usize = 800;
/// TTL of answers: short, so a changed configuration is seen soon.
const TTL: u32 = 60;

/// A name as the camera asked it, made safe to store and show: lower-case, labels joined
/// by dots, every byte outside `a-z 0-9 - _` written `\DDD` (as `dig` does).
pub fn name_text(name: &Name<'_>) -> String {
    let mut out = String::new();
    for label in name.as_bytes() {
        if !out.is_empty() {
            out.push('.');
        }
        for &b in label {
            let b = b.to_ascii_lowercase();
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("\\{b:03}"));
            }
        }
        if out.len() > MAX_NAME {
            out.truncate(MAX_NAME);
            break;
        }
    }
    if out.is_empty() { ".".into() } else { out }
}

/// The reply to `query` and the name it asked, or `None` for anything that is not one
/// plain question (dropped without an answer).
pub fn answer(query: &[u8], local: &HashMap<String, IpAddr>) -> Option<(Vec<u8>, String)> {
    // Header: id, flags, then question/answer/authority/additional counts.
    let count = |i: usize| {
        Some(u16::from_be_bytes([
            *query.get(4 + 2 * i)?,
            *query.get(5 + 2 * i)?,
        ]))
    };
    if count(0)? != 1 || count(1)? != 0 || count(2)? != 0 || count(3)? > 1 {
        return None;
    }
    let packet = Packet::parse(query).ok()?;
    if packet.has_flags(PacketFlag::RESPONSE) {
        return None;
    }
    let question = packet.questions.first()?;
    let name = name_text(&question.qname);
    let mut reply = Packet::new_reply(packet.id());
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
    if packet.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    reply.questions.push(question.clone());
    let rdata = match (local.get(&name), question.qtype) {
        (Some(IpAddr::V4(a)), QTYPE::TYPE(TYPE::A)) => Some(RData::A(A {
            address: u32::from(*a),
        })),
        (Some(IpAddr::V6(a)), QTYPE::TYPE(TYPE::AAAA)) => Some(RData::AAAA(AAAA {
            address: u128::from(*a),
        })),
        _ => None,
    };
    match (rdata, local.contains_key(&name)) {
        (Some(rdata), _) => reply.answers.push(ResourceRecord::new(
            question.qname.clone(),
            CLASS::IN,
            TTL,
            rdata,
        )),
        // The name exists locally, just not with this type: an empty answer.
        (None, true) => {}
        (None, false) => *reply.rcode_mut() = RCODE::NameError,
    }
    let bytes = reply.build_bytes_vec().ok()?;
    Some((bytes, name))
}

/// Answers queries on `sock` until `shutdown`, recording each name in `counters`.
pub async fn serve(
    sock: UdpSocket,
    local: HashMap<String, IpAddr>,
    counters: Arc<Mutex<Counters>>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from): (usize, SocketAddr) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!("camera port DNS: {e}");
                    continue;
                }
            },
        };
        let Some((reply, name)) = buf.get(..n).and_then(|q| answer(q, &local)) else {
            continue;
        };
        let now = crate::unix_now();
        counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .camera(from.ip())
            .name(&name, 1, now);
        if let Err(e) = sock.send_to(&reply, from).await {
            tracing::debug!("camera port DNS reply: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use simple_dns::Question;

    fn query(name: &str, qtype: TYPE) -> Vec<u8> {
        let mut q = Packet::new_query(0x1234);
        q.set_flags(PacketFlag::RECURSION_DESIRED);
        q.questions.push(Question::new(
            Name::new_unchecked(name),
            QTYPE::TYPE(qtype),
            simple_dns::QCLASS::CLASS(CLASS::IN),
            false,
        ));
        q.build_bytes_vec().unwrap()
    }

    #[test]
    fn every_name_is_nxdomain_unless_configured_and_recorded_safely() {
        let mut local = HashMap::new();
        local.insert(
            "ntp.vendor.example".to_string(),
            "10.78.0.1".parse().unwrap(),
        );
        let (r, name) = answer(&query("P2P.Vendor.example", TYPE::A), &local).unwrap();
        assert_eq!(name, "p2p.vendor.example");
        let r = Packet::parse(&r).unwrap();
        assert_eq!(r.id(), 0x1234);
        assert_eq!(r.rcode(), RCODE::NameError);
        assert!(r.answers.is_empty());
        let (r, _) = answer(&query("ntp.vendor.example", TYPE::A), &local).unwrap();
        let r = Packet::parse(&r).unwrap();
        assert_eq!(r.rcode(), RCODE::NoError);
        assert_eq!(r.answers.len(), 1);
        let (r, _) = answer(&query("ntp.vendor.example", TYPE::AAAA), &local).unwrap();
        let r = Packet::parse(&r).unwrap();
        assert_eq!((r.rcode(), r.answers.len()), (RCODE::NoError, 0));
    }

    #[test]
    fn hostile_queries_are_dropped_or_escaped() {
        let local = HashMap::new();
        assert!(answer(&[], &local).is_none());
        assert!(answer(&[0u8; 11], &local).is_none());
        let mut many = query("a.example", TYPE::A);
        many[5] = 0xff; // 255 questions claimed
        assert!(answer(&many, &local).is_none());
        let mut bad = query("abc.example", TYPE::A);
        bad[13] = b'<'; // a byte inside the first label
        let (_, name) = answer(&bad, &local).unwrap();
        assert_eq!(name, "\\060bc.example");
        // A name that points at itself, and one that points forward past the end.
        let mut lp = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        lp.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(answer(&lp, &local).is_none());
        let mut fwd = lp.clone();
        fwd[13] = 0xff;
        assert!(answer(&fwd, &local).is_none());
        let mut two = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        two.extend_from_slice(&[1, b'a', 0xc0, 12, 0, 1, 0, 1]);
        assert!(answer(&two, &local).is_none());
        let mut resp = query("a.example", TYPE::A);
        resp[2] |= 0x80;
        assert!(answer(&resp, &local).is_none());
    }
}
