//! The gateway's side of a pairing on the Noise listener: message 1 checked against the
//! open pairing windows, then messages 2 and 3, the device recorded, and the result sent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use latchkey_channel::{read_frame, write_frame};
use latchkey_pairing::frame::MAX_HANDSHAKE_FRAME;
use latchkey_pairing::handshake::PairedPhone;
use latchkey_pairing::text::escape;
use latchkey_pairing::{PairResult, PairingResponder, SessionPsk};
use rand::rngs::OsRng;
use tokio::net::TcpStream;

use super::HANDSHAKE_DEADLINE;
use crate::store::{AuditKind, Candidate, NewDevice, PairingClaim};
use crate::{Gateway, audit_flood};

/// Runs a pairing: `None` when refused before message 2 (the peer got nothing), else
/// whether a phone was paired.
pub(super) async fn run(
    stream: &mut TcpStream,
    peer: SocketAddr,
    gw: &Arc<Gateway>,
    m1: &[u8],
    origin: Instant,
) -> Option<bool> {
    let addr = peer.to_string();
    let (responder, m2, window) = accept(peer, gw, m1, &addr).await?;
    let Ok(_busy) = gw.pairing_busy.try_lock() else {
        let row = audit_flood::Row {
            kind: AuditKind::PairingBusy,
            device: None,
            addr: &addr,
            detail: "a second pairing attempt while one was in progress",
        };
        audit_flood::limited(gw, &format!("source {}", peer.ip()), row).await;
        return None;
    };
    let exchange = async {
        write_frame(&mut *stream, &m2).await.ok()?;
        read_frame(&mut *stream, MAX_HANDSHAKE_FRAME).await.ok()
    };
    let Ok(Some(m3)) = tokio::time::timeout(HANDSHAKE_DEADLINE * 2, exchange).await else {
        tracing::info!(%peer, "pairing abandoned by the phone");
        return Some(false);
    };
    let since = gw.clock.since(origin);
    let phone = match responder.read_request(&m3, since()) {
        Ok(p) => p,
        Err(e) => {
            let (why, now) = (format!("bad pairing message 3: {e}"), gw.clock.unix_now());
            let failed = gw.store.run(move |s| s.pairing_failed(now, &addr, &why));
            if let Err(e) = failed.await {
                tracing::error!("recording a failed pairing: {e}");
            }
            return Some(false);
        }
    };
    let Ok(psk) = SessionPsk::generate(&mut OsRng) else {
        return Some(false);
    };
    let Some(device) = record(peer, gw, &phone, &psk, window, addr).await else {
        return Some(false);
    };
    tracing::info!(device = %device.record.id, name = %escape(&device.record.name), code = %device.code, state = device.record.state.as_str(), "phone paired");
    let result = PairResult {
        device_id: device.record.id.0.clone(),
        state: device.record.state,
        session_psk: psk.to_b64(),
        gateway_name: gw.config.name.clone(),
        addresses: gw.addresses(),
    };
    if let Ok(wire) = phone.finish(&result, since()) {
        use tokio::io::AsyncWriteExt as _;
        let _ = stream.write_all(&wire).await;
        let _ = stream.shutdown().await;
    }
    Some(true)
}

/// Checks message 1 against the open (and recently used) pairing secrets: the responder,
/// message 2 and the pairing window, or `None` (nothing is sent).
async fn accept(
    peer: SocketAddr,
    gw: &Arc<Gateway>,
    m1: &[u8],
    addr: &str,
) -> Option<(PairingResponder, Vec<u8>, i64)> {
    let now = gw.clock.unix_now();
    let candidates: Vec<Candidate> = match gw.store.run(move |s| s.pairing_candidates(now)).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("pairing refused: {e}");
            return None;
        }
    };
    if candidates.is_empty() {
        tracing::debug!(%peer, "pairing attempt while no pairing code is open");
        return None;
    }
    let secrets: Vec<&latchkey_pairing::PairingSecret> =
        candidates.iter().map(|c| &c.secret).collect();
    let Ok((responder, m2)) = PairingResponder::accept(&gw.keys, m1, &secrets, &mut OsRng) else {
        let a = addr.to_string();
        let failed = gw
            .store
            .run(move |s| s.pairing_failed(now, &a, "the pairing code did not match"));
        if let Ok(Some((n, closed))) = failed.await {
            tracing::warn!(%peer, failures = n, closed, "failed pairing attempt");
        }
        return None;
    };
    let candidate = candidates.get(responder.candidate())?;
    if !candidate.open {
        tracing::warn!(%peer, "a pairing code that was already used was presented again");
        // Rate-limited per source like every row a peer can trigger at will: a replay
        // loop costs a few rows and one flood summary, never older security events.
        let row = audit_flood::Row {
            kind: AuditKind::PairingReused,
            device: None,
            addr,
            detail: "ALARM: a pairing code that was already used was presented again; someone may have a photo of the QR code",
        };
        audit_flood::limited(gw, &format!("source {}", peer.ip()), row).await;
        return None;
    }
    Some((responder, m2, candidate.window))
}

/// Records the paired phone in the store (audited if refused).
async fn record(
    peer: SocketAddr,
    gw: &Arc<Gateway>,
    phone: &PairedPhone,
    psk: &SessionPsk,
    window: i64,
    addr: String,
) -> Option<NewDevice> {
    let now = gw.clock.unix_now();
    let (key, name, code, psk2, a) = (
        phone.public_key,
        phone.request.name.clone(),
        phone.code.to_string(),
        psk.clone(),
        addr.clone(),
    );
    let added = gw.store.run(move |store| {
        let claim = PairingClaim {
            window,
            public_key: &key,
            suggested_name: &name,
            psk: &psk2,
            code: &code,
            addr: &a,
        };
        store.complete_pairing(&claim, now)
    });
    match added.await {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(%peer, "pairing not recorded: {e}");
            let detail = format!("pairing refused: {e}");
            let kind = AuditKind::PairingRefused;
            gw.store
                .audit_async(now, kind, None, Some(addr), detail)
                .await;
            None
        }
    }
}
