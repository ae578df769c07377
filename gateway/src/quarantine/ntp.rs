//! The camera port's time server: SNTP server mode (RFC 4330), hand-written because a
//! server reply is one fixed 48-byte packet: the gateway's own clock, stratum 3 (it is
//! somebody's client, not a reference), leap indicator "no warning".

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// The size of an NTP packet without extensions.
pub const PACKET: usize = 48;

/// `t` as a 64-bit NTP timestamp (seconds since 1900, 32.32 fixed point).
pub fn timestamp(t: SystemTime) -> [u8; 8] {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs().wrapping_add(NTP_UNIX_OFFSET) & 0xffff_ffff;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    ((secs << 32) | frac).to_be_bytes()
}

/// The server reply to `request` received at `received`, sent at `now`; `None` unless the
/// request is a client (mode 3) packet of at least 48 bytes.
pub fn reply(request: &[u8], received: SystemTime, now: SystemTime) -> Option<[u8; PACKET]> {
    let first = *request.first()?;
    if request.len() < PACKET || first & 0x07 != 3 {
        return None;
    }
    let version = (first >> 3) & 0x07;
    let mut out = [0u8; PACKET];
    // LI 0, the client's version (1..=4), mode 4 (server).
    out[0] = (version.clamp(1, 4) << 3) | 4;
    out[1] = 3; // stratum
    out[2] = request.get(2).copied().unwrap_or(6).clamp(4, 17); // poll
    out[3] = 0xec; // precision: about 2^-20 s
    // Root delay and dispersion: small (one LAN hop), 16.16 seconds.
    out[4..8].copy_from_slice(&0x0000_0010u32.to_be_bytes());
    out[8..12].copy_from_slice(&0x0000_0010u32.to_be_bytes());
    out[12..16].copy_from_slice(b"LOCL");
    out[16..24].copy_from_slice(&timestamp(now));
    // Originate = the client's transmit timestamp, then receive and transmit.
    out[24..32].copy_from_slice(request.get(40..48)?);
    out[32..40].copy_from_slice(&timestamp(received));
    out[40..48].copy_from_slice(&timestamp(now));
    Some(out)
}

/// Answers time requests on `sock` until `shutdown`.
pub async fn serve(sock: UdpSocket, shutdown: CancellationToken) {
    let mut buf = [0u8; 512];
    loop {
        let (n, from): (usize, SocketAddr) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!("camera port NTP: {e}");
                    continue;
                }
            },
        };
        let received = SystemTime::now();
        let Some(out) = buf
            .get(..n)
            .and_then(|r| reply(r, received, SystemTime::now()))
        else {
            continue;
        };
        if let Err(e) = sock.send_to(&out, from).await {
            tracing::debug!("camera port NTP reply: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_client_request_gets_the_gateway_time_in_server_mode() {
        let mut req = [0u8; PACKET];
        req[0] = (4 << 3) | 3;
        req[40..48].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let r = reply(&req, t, t).unwrap();
        assert_eq!(r[0], (4 << 3) | 4);
        assert_eq!(r[1], 3);
        assert_eq!(&r[24..32], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let secs = u32::from_be_bytes(r[40..44].try_into().unwrap());
        assert_eq!(u64::from(secs), 1_700_000_000 + NTP_UNIX_OFFSET);
        assert!(reply(&req[..47], t, t).is_none());
        let mut server = req;
        server[0] = (4 << 3) | 4;
        assert!(reply(&server, t, t).is_none());
    }
}
