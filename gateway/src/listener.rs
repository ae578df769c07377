//! The Noise listener: the only socket I/O for phones.
//!
//! Every connection gets [`HANDSHAKE_DEADLINE`] to present a first frame that proves
//! something: the pairing secret (pairing) or a key on the allow-list (session). Until
//! then the gateway sends nothing at all; anything that fails is dropped without a
//! byte, so a scanner cannot even tell that Latchkey listens here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use latchkey_channel::{H2_MAX_FRAME, NoiseStream, read_frame, write_frame};
use latchkey_pairing::frame::MAX_HANDSHAKE_FRAME;
use latchkey_pairing::handshake::{self, PAIRING_TYPE, SESSION_TYPE};
use latchkey_pairing::{PairResult, PairingResponder, ServerHello, SessionPsk, SessionResponder};
use rand::rngs::OsRng;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::api::DeviceContext;
use crate::preauth::{Pending, PreAuth};
use crate::store::PairingClaim;
use crate::{Gateway, net, unix_now};

/// Time a peer has to finish its part of a handshake.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

/// Accepts connections until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, gw: Arc<Gateway>, shutdown: CancellationToken) {
    let preauth = PreAuth::new(gw.preauth_limits);
    // One router for every session; each request gets its session's DeviceContext.
    let api = crate::api::router(gw.clone());
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let pending = preauth.enter();
        let (gw, shutdown, preauth, api) =
            (gw.clone(), shutdown.clone(), preauth.clone(), api.clone());
        tokio::spawn(async move {
            let evicted = pending.evicted.clone();
            let peer = net::canonical(peer);
            tokio::select! {
                _ = handle(stream, peer, gw, api, pending, &preauth, shutdown) => {}
                _ = evicted.cancelled() => tracing::debug!(%peer, "evicted from the handshake pool"),
            }
        });
    }
}

async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    gw: Arc<Gateway>,
    api: axum::Router,
    pending: Pending,
    preauth: &PreAuth,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let origin = Instant::now();
    let first = match tokio::time::timeout(
        HANDSHAKE_DEADLINE,
        read_frame(&mut stream, MAX_HANDSHAKE_FRAME),
    )
    .await
    {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "dropped before a handshake: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "dropped: no handshake within the deadline");
            return;
        }
    };
    if !preauth.allow(peer.ip(), Instant::now()) {
        tracing::debug!(%peer, "dropped: handshake rate limit for this source");
        return;
    }
    match handshake::split_type(&first) {
        Ok((PAIRING_TYPE, m1)) => {
            if pairing(stream, peer, &gw, m1, origin).await {
                preauth.refund(peer.ip());
            }
        }
        Ok((SESSION_TYPE, m1)) => {
            session(
                stream, peer, &gw, api, m1, origin, pending, preauth, shutdown,
            )
            .await;
        }
        Ok(_) | Err(_) => tracing::debug!(%peer, "dropped: not a Latchkey handshake"),
    }
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// Runs a pairing; true when a phone was paired.
async fn pairing(
    mut stream: TcpStream,
    peer: SocketAddr,
    gw: &Arc<Gateway>,
    m1: &[u8],
    origin: Instant,
) -> bool {
    let addr = peer.to_string();
    let store = gw.store.clone();
    let candidates = match blocking(move || store.pairing_candidates(unix_now())).await {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            tracing::error!("pairing refused: {e}");
            return false;
        }
        None => return false,
    };
    if candidates.is_empty() {
        tracing::debug!(%peer, "pairing attempt while no pairing code is open");
        return false;
    }
    let secrets: Vec<&latchkey_pairing::PairingSecret> =
        candidates.iter().map(|c| &c.secret).collect();
    let (responder, m2) = match PairingResponder::accept(&gw.keys, m1, &secrets, &mut OsRng) {
        Ok(r) => r,
        Err(_) => {
            let store = gw.store.clone();
            let a = addr.clone();
            if let Some(Ok(Some((n, closed)))) = blocking(move || {
                store.pairing_failed(unix_now(), &a, "the pairing code did not match")
            })
            .await
            {
                tracing::warn!(%peer, failures = n, closed, "failed pairing attempt");
            }
            return false;
        }
    };
    let Some(candidate) = candidates.get(responder.candidate()) else {
        return false;
    };
    if !candidate.open {
        tracing::warn!(%peer, "a pairing code that was already used was presented again");
        let store = gw.store.clone();
        let a = addr.clone();
        blocking(move || {
            store.audit(
                unix_now(),
                "pairing-reused",
                None,
                Some(&a),
                "ALARM: a pairing code that was already used was presented again; someone may have a photo of the QR code",
            )
        })
        .await;
        return false;
    }
    let Ok(_busy) = gw.pairing_busy.try_lock() else {
        let store = gw.store.clone();
        let a = addr.clone();
        blocking(move || {
            store.audit(
                unix_now(),
                "pairing-busy",
                None,
                Some(&a),
                "a second pairing attempt while one was in progress",
            )
        })
        .await;
        return false;
    };
    let window = candidate.window;
    let exchange = async {
        write_frame(&mut stream, &m2).await.ok()?;
        read_frame(&mut stream, MAX_HANDSHAKE_FRAME).await.ok()
    };
    let Ok(Some(m3)) = tokio::time::timeout(HANDSHAKE_DEADLINE * 2, exchange).await else {
        tracing::info!(%peer, "pairing abandoned by the phone");
        return false;
    };
    let phone = match responder.read_request(&m3, origin.elapsed()) {
        Ok(p) => p,
        Err(e) => {
            let store = gw.store.clone();
            let a = addr.clone();
            let why = format!("bad pairing message 3: {e}");
            blocking(move || store.pairing_failed(unix_now(), &a, &why)).await;
            return false;
        }
    };
    let Ok(psk) = SessionPsk::generate(&mut OsRng) else {
        return false;
    };
    let store = gw.store.clone();
    let (key, name, code, psk2, a) = (
        phone.public_key,
        phone.request.name.clone(),
        phone.code.to_string(),
        psk.clone(),
        addr.clone(),
    );
    let added = blocking(move || {
        let claim = PairingClaim {
            window,
            public_key: &key,
            suggested_name: &name,
            psk: &psk2,
            code: &code,
            addr: &a,
        };
        store.complete_pairing(&claim, unix_now())
    })
    .await;
    let device = match added {
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            tracing::warn!(%peer, "pairing not recorded: {e}");
            let store = gw.store.clone();
            let detail = format!("pairing refused: {e}");
            blocking(move || {
                store.audit(unix_now(), "pairing-refused", None, Some(&addr), &detail)
            })
            .await;
            return false;
        }
        None => return false,
    };
    tracing::info!(device = %device.record.id, name = %device.record.name, code = %device.code, state = device.record.state.as_str(), "phone paired");
    let result = PairResult {
        device_id: device.record.id.0.clone(),
        state: device.record.state,
        session_psk: psk.to_b64(),
        gateway_name: gw.config.name.clone(),
        addresses: gw.addresses(),
    };
    if let Ok(wire) = phone.finish(&result, origin.elapsed()) {
        use tokio::io::AsyncWriteExt as _;
        let _ = stream.write_all(&wire).await;
        let _ = stream.shutdown().await;
    }
    true
}

/// Serves `router` over HTTP/2 inside an established Noise channel until the phone
/// goes away. The gateway's one way of running HTTP/2 (the relay benchmark measures it).
pub async fn serve_channel(
    noise: NoiseStream<TcpStream>,
    router: axum::Router,
    device: Option<DeviceContext>,
) -> Result<(), hyper::Error> {
    use tower::ServiceExt as _;
    // Attach the session's identity to each request; the router itself is shared.
    let service = router.map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
        if let Some(device) = &device {
            req.extensions_mut().insert(device.clone());
        }
        req
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_frame_size(H2_MAX_FRAME);
    builder
        .serve_connection(TokioIo::new(noise), TowerToHyperService::new(service))
        .await
}

#[allow(clippy::too_many_arguments)]
async fn session(
    mut stream: TcpStream,
    peer: SocketAddr,
    gw: &Arc<Gateway>,
    api: axum::Router,
    m1: &[u8],
    origin: Instant,
    pending: Pending,
    preauth: &PreAuth,
    shutdown: CancellationToken,
) -> Option<()> {
    let responder = SessionResponder::read_hello(&gw.keys, m1, &mut OsRng).ok()?;
    let key = responder.remote_key();
    let store = gw.store.clone();
    let found = match blocking(move || store.device_by_key(&key)).await? {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(%peer, "session refused, the store is unreadable: {e}");
            return None;
        }
    };
    let Some((record, psk)) = found else {
        tracing::debug!(%peer, key = %key.fingerprint(), "session from an unknown key");
        return None;
    };
    let now = unix_now();
    if gw.sessions.is_blocked(&record.id.0) {
        tracing::info!(%peer, device = %record.id, "session refused: revoked (not yet saved to disk)");
        return None;
    }
    if let Err(denied) = record.admit(now) {
        tracing::info!(%peer, device = %record.id, "session refused: {denied}");
        return None;
    }
    {
        let mut seen = gw.hello_times.lock().unwrap_or_else(|p| p.into_inner());
        let last = seen.entry(record.id.0.clone()).or_insert(0);
        if responder.hello().timestamp_ms <= *last {
            tracing::warn!(%peer, device = %record.id, "replayed or stale session hello");
            return None;
        }
        *last = responder.hello().timestamp_ms;
    }
    let hello = ServerHello {
        device_id: record.id.0.clone(),
        gateway_name: gw.config.name.clone(),
        addresses: gw.addresses(),
        rekey_after_secs: gw.config.rekey_after_secs,
    };
    let (m2, session) = responder.accept(&psk, &hello, origin.elapsed()).ok()?;
    write_frame(&mut stream, &m2).await.ok()?;
    // Authenticated: leave the pre-auth pool (and its eviction) for good.
    drop(pending);
    preauth.refund(peer.ip());
    let guard = gw.sessions.register(&record.id.0);
    if gw.should_record_session(&record.id.0, peer, now) {
        let store = gw.store.clone();
        let (id, a) = (record.id.0.clone(), peer.to_string());
        tokio::task::spawn_blocking(move || store.touch(&id, &a, now));
    }
    tracing::info!(%peer, device = %record.id, name = %record.name, "session started");

    let noise = NoiseStream::new(stream, session, origin);
    let ctx = DeviceContext {
        id: record.id.0.clone(),
        peer,
    };
    let conn = serve_channel(noise, api, Some(ctx));
    let expiry = record
        .expires_at
        .map(|end| Duration::from_secs(end.saturating_sub(now)))
        .unwrap_or(Duration::from_secs(100 * 365 * 24 * 3600));
    tokio::select! {
        r = conn => if let Err(e) = r { tracing::debug!(%peer, "session ended: {e}") },
        _ = guard.token.cancelled() => tracing::info!(%peer, device = %record.id, "session cut: device revoked"),
        _ = tokio::time::sleep(expiry) => tracing::info!(%peer, device = %record.id, "session cut: access expired"),
        _ = shutdown.cancelled() => {},
    }
    drop(guard);
    Some(())
}
