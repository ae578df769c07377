//! The Noise listener: the only socket I/O for phones.
//!
//! Every connection gets [`HANDSHAKE_DEADLINE`] to present a first frame that proves
//! something: the pairing secret (pairing) or a key on the allow-list (session). Until
//! then the gateway sends nothing at all; anything that fails gets no byte and ends the
//! way every refusal ends (`refuse.rs`: held to the same time, drained, closed with a
//! FIN), so a scanner cannot even tell that Latchkey listens here. A session counts as
//! started only once the phone's first transport message decrypts (`first_message.rs`),
//! and each device holds at most `limits::MAX_SESSIONS_PER_DEVICE` sessions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use latchkey_channel::{H2_MAX_FRAME, NoiseStream, read_frame, write_frame};
use latchkey_pairing::frame::MAX_HANDSHAKE_FRAME;
use latchkey_pairing::handshake::{self, PAIRING_TYPE, SESSION_TYPE};
use latchkey_pairing::text::escape;
use latchkey_pairing::{ServerHello, SessionPsk, SessionResponder};
use rand::rngs::OsRng;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::api::DeviceContext;
use crate::first_message::FirstRead;
use crate::hibernate::{self, Activity, H2, Serving};
use crate::preauth::{Pending, PreAuth};
use crate::{Gateway, limits, net, refuse};

mod pairing;

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
        // `handle`'s own future is the task: a wrapping block would keep a second copy
        // of these arguments in every session's task for as long as it lasts.
        tokio::spawn(handle(
            stream,
            net::canonical(peer),
            gw.clone(),
            api.clone(),
            pending,
            preauth.clone(),
            shutdown.clone(),
        ));
    }
}

/// What the unauthenticated stage of a connection came to.
enum Admission {
    /// Nothing proved: the peer gets silence and the common ending (`refuse`).
    Refused,
    /// A pairing ran past message 2; the connection is finished.
    Paired(bool),
    /// A session hello from a device that may connect.
    Session(Box<Accepted>),
}

async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    gw: Arc<Gateway>,
    api: axum::Router,
    pending: Pending,
    preauth: PreAuth,
    shutdown: CancellationToken,
) {
    let preauth = &preauth;
    let _ = stream.set_nodelay(true);
    // The refusal hold is socket timing and stays on the system clock; the handshake's
    // and session's time (rekeying, expiry) is the gateway's clock.
    let accepted_at = Instant::now();
    let origin = gw.clock.instant();
    let evicted = pending.evicted.clone();
    // Boxed: a session's task need not keep the handshake's state while it lasts.
    let admission = tokio::select! {
        a = Box::pin(admit(&mut stream, peer, &gw, origin, preauth)) => a,
        _ = evicted.cancelled() => {
            tracing::debug!(%peer, "evicted from the handshake pool");
            Box::pin(refuse::close_quietly(stream)).await;
            return;
        }
    };
    match admission {
        Admission::Refused => {
            Box::pin(refuse::hold_then_close(stream, accepted_at, &evicted)).await;
        }
        Admission::Paired(paired) => {
            if paired {
                preauth.refund(peer.ip());
            }
        }
        Admission::Session(accepted) => {
            // A session is past eviction: its token is not kept for the session's life.
            drop(evicted);
            // Boxed, like every phase, so the task's own state stays small; the handshake's
            // state is freed once the session is proven, and only what a session holds
            // (`hibernate::Live`) stays.
            let proving = Box::pin(session(
                stream,
                peer,
                &gw,
                api,
                accepted,
                origin,
                pending,
                preauth,
                shutdown.clone(),
            ));
            // The box a proven session lives in is taken now, before its HTTP/2
            // connection's buffers: taken after them, it would sit between their pages
            // once they are freed (BENCHMARKS.md, round six). It holds `proving`'s box,
            // not its state.
            Box::pin(async move {
                if let Some(live) = proving.await {
                    hibernate::run(live, shutdown).await;
                }
            })
            .await;
        }
    }
}

/// Reads the first frame and decides what the connection is, writing nothing unless a
/// pairing secret was proved.
async fn admit(
    stream: &mut TcpStream,
    peer: SocketAddr,
    gw: &Arc<Gateway>,
    origin: Instant,
    preauth: &PreAuth,
) -> Admission {
    let first = match tokio::time::timeout(
        HANDSHAKE_DEADLINE,
        read_frame(&mut *stream, MAX_HANDSHAKE_FRAME),
    )
    .await
    {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "refused before a handshake: {e}");
            return Admission::Refused;
        }
        Err(_) => {
            tracing::debug!(%peer, "refused: no handshake within the deadline");
            return Admission::Refused;
        }
    };
    if !preauth.allow(peer.ip(), gw.clock.instant()) {
        tracing::debug!(%peer, "refused: handshake rate limit for this source");
        return Admission::Refused;
    }
    match handshake::split_type(&first) {
        Ok((PAIRING_TYPE, m1)) => match pairing::run(stream, peer, gw, m1, origin).await {
            Some(paired) => Admission::Paired(paired),
            None => Admission::Refused,
        },
        Ok((SESSION_TYPE, m1)) => match check_session(peer, gw, m1).await {
            Some(a) => Admission::Session(Box::new(a)),
            None => Admission::Refused,
        },
        Ok(_) | Err(_) => {
            tracing::debug!(%peer, "refused: not a Latchkey handshake");
            Admission::Refused
        }
    }
}

/// Serves `router` over HTTP/2 inside an established Noise channel until the phone
/// goes away. The gateway's one way of running HTTP/2 (the relay benchmark measures it).
/// Flow-control windows, streams per session, send buffers and header sizes are the
/// per-session budgets of `limits`.
pub async fn serve_channel<S>(
    noise: S,
    router: axum::Router,
    device: Option<DeviceContext>,
) -> Result<(), hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    serve_channel_with(noise, router, device, None, None).await
}

/// [`serve_channel`], counting open streams in `activity` and ending the connection
/// gracefully (GOAWAY NO_ERROR; streams in flight finish) once `stop` is cancelled.
pub async fn serve_channel_with<S>(
    noise: S,
    router: axum::Router,
    device: Option<DeviceContext>,
    activity: Option<Activity>,
    stop: Option<CancellationToken>,
) -> Result<(), hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    // Attach the session's identity to each request (the router itself is shared), and
    // count the stream as open until its response body is done.
    let service = tower::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        if let Some(device) = &device {
            req.extensions_mut().insert(device.clone());
        }
        let open = activity.as_ref().map(Activity::open);
        let call = router.clone().oneshot(req);
        async move {
            let response = call.await?;
            Ok::<_, std::convert::Infallible>(match open {
                None => response,
                Some(open) => response.map(|body| {
                    axum::body::Body::new(body.map_frame(move |frame| {
                        let _counted = &open;
                        frame
                    }))
                }),
            })
        }
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_frame_size(H2_MAX_FRAME)
        .max_concurrent_streams(limits::MAX_H2_STREAMS_PER_SESSION)
        .initial_stream_window_size(limits::H2_STREAM_WINDOW)
        .initial_connection_window_size(limits::H2_CONN_WINDOW)
        .max_send_buf_size(limits::H2_MAX_SEND_BUF)
        .max_header_list_size(limits::H2_MAX_HEADER_LIST);
    let conn = builder.serve_connection(TokioIo::new(noise), TowerToHyperService::new(service));
    tokio::pin!(conn);
    if let Some(stop) = stop {
        tokio::select! {
            r = conn.as_mut() => return r,
            () = stop.cancelled() => conn.as_mut().graceful_shutdown(),
        }
    }
    conn.await
}

/// A session hello that passed every check: the device may connect.
struct Accepted {
    responder: SessionResponder,
    record: latchkey_pairing::DeviceRecord,
    psk: SessionPsk,
}

/// Checks a session hello (message 1): a key on the allow-list, a device that may
/// connect now, a timestamp newer than the last one accepted (remembered across
/// restarts) and not too far ahead. Writes nothing to the peer.
async fn check_session(peer: SocketAddr, gw: &Arc<Gateway>, m1: &[u8]) -> Option<Accepted> {
    let responder = SessionResponder::read_hello(&gw.keys, m1, &mut OsRng).ok()?;
    let key = responder.remote_key();
    let looked_up = gw.store.run(move |store| {
        let found = store.device_by_key(&key)?;
        let stored = match &found {
            Some((record, _)) => store.last_hello(&record.id.0)?,
            None => 0,
        };
        Ok((found, stored))
    });
    let (found, stored) = match looked_up.await {
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
    if gw.sessions.is_blocked(&record.id.0) {
        tracing::info!(%peer, device = %record.id, "session refused: revoked (not yet saved to disk)");
        return None;
    }
    if let Err(denied) = record.admit(gw.clock.unix_now()) {
        tracing::info!(%peer, device = %record.id, "session refused: {denied}");
        return None;
    }
    {
        let now_ms = gw.clock.unix_now_ms();
        let hello = responder.hello().timestamp_ms;
        let mut seen = gw.hello_times.lock().unwrap_or_else(|p| p.into_inner());
        let last = seen.entry(record.id.0.clone()).or_insert(0);
        // A guard above what could ever be accepted (a clock that ran ahead once) is
        // lowered to that bound, so it can never lock the phone out for long.
        let floor = (*last)
            .max(stored)
            .min(now_ms.saturating_add(limits::HELLO_MAX_AHEAD_MS));
        if let Err(why) = limits::hello_fresh(hello, floor, now_ms) {
            tracing::warn!(%peer, device = %record.id, hello_ms = hello, now_ms, "session refused: {why}");
            return None;
        }
        *last = hello;
    }
    Some(Accepted {
        responder,
        record,
        psk,
    })
}

/// Answers an accepted hello with message 2 and serves the session. It counts as
/// started (logged, last-seen and the replay guard written) only once the phone's first
/// transport message decrypts: a phone with a wrong or stale PSK gets message 2 but
/// nothing more.
#[allow(clippy::too_many_arguments)]
async fn session(
    mut stream: TcpStream,
    peer: SocketAddr,
    gw: &Arc<Gateway>,
    api: axum::Router,
    accepted: Box<Accepted>,
    origin: Instant,
    pending: Pending,
    preauth: &PreAuth,
    shutdown: CancellationToken,
) -> Option<hibernate::Live> {
    // Taken out of its box (freed here): an argument stays in the session's state.
    let Accepted {
        responder,
        record,
        psk,
    } = {
        let boxed = accepted;
        *boxed
    };
    let now = gw.clock.unix_now();
    let hello_ms = responder.hello().timestamp_ms;
    let hello = ServerHello {
        device_id: record.id.0.clone(),
        gateway_name: gw.config.name.clone(),
        addresses: gw.addresses(),
        rekey_after_secs: gw.config.rekey_after_secs,
    };
    let since = gw.clock.since(origin);
    let (m2, session) = responder.accept(&psk, &hello, since()).ok()?;
    write_frame(&mut stream, &m2).await.ok()?;
    // Locals of this function live as long as the session: free what it no longer needs.
    drop((m2, hello, psk));
    // Past message 2: leave the pre-auth pool (and its eviction) for good, and give the
    // handshake budget back (only a key on the allow-list gets here; the per-device
    // session cap bounds what that key can hold).
    drop(pending);
    preauth.refund(peer.ip());
    hibernate::keep_alive(&stream);
    let (guard, closed) =
        gw.sessions
            .register_capped(&record.id.0, limits::MAX_SESSIONS_PER_DEVICE, &shutdown);
    if closed > 0 {
        tracing::info!(%peer, device = %record.id, closed, "closed the device's oldest session: at most {} per device", limits::MAX_SESSIONS_PER_DEVICE);
    }
    let (noise, proven) = FirstRead::new(NoiseStream::with_clock(stream, session, since));
    let ctx = DeviceContext {
        id: guard.device().clone(),
        peer,
        // The one token a session waits on: the registry's (revocation, the session
        // cap), a child of the gateway's shutdown; a live stream left unread cancels it
        // too.
        cut: guard.token.clone(),
    };
    let serving = Serving {
        api,
        ctx,
        clock: gw.clock.clone(),
        hibernate_after: gw.config.hibernate_after,
    };
    let mut h2 = H2::start(noise, &serving);
    // Each phase's futures are boxed: a hibernated session's state is only what it holds.
    let mut proven = proven;
    Box::pin(async {
        tokio::select! {
            r = tokio::time::timeout(HANDSHAKE_DEADLINE, &mut proven) => {
                if !matches!(r, Ok(Ok(()))) {
                    tracing::debug!(%peer, device = %record.id, "no valid transport message: a wrong or stale session key?");
                    return None;
                }
            }
            () = h2.run() => {
                // A connection that proved the key and ended at once (the phone's first
                // bytes, then a boundary or its end) still counts as a session.
                if proven.try_recv().is_err() {
                    tracing::debug!(%peer, device = %record.id, "channel ended before the phone proved its session key");
                    return None;
                }
            }
            _ = guard.token.cancelled() => return None,
        }
        Some(())
    })
    .await?;
    // Proven: only now is this a session (log, last-seen, replay guard on disk).
    if gw.should_record_session(&record.id.0, peer, now) {
        let store = gw.store.clone();
        let (id, a) = (record.id.clone(), peer.to_string());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.touch(&id, &a, now) {
                tracing::warn!("recording last-seen: {e}");
            }
            if let Err(e) = store.record_hellos(&[(id.0, hello_ms)]) {
                tracing::warn!("saving the session replay guard: {e}");
            }
        });
    }
    tracing::info!(%peer, device = %record.id, name = %escape(&record.name), "session started");
    let start = gw.clock.instant();
    let deadline = record.expires_at.map(|end| {
        let expiry = Duration::from_secs(end.saturating_sub(now));
        start.checked_add(expiry).unwrap_or(start)
    });
    Some(hibernate::Live {
        guard,
        h2,
        serving,
        deadline,
    })
}

#[cfg(test)]
mod tests {
    use latchkey_pairing::Session;
    use latchkey_pairing::session::Opened;
    use tokio::io::{AsyncWriteExt as _, duplex};

    use super::*;
    use crate::clock::Clock;

    /// A session pair made at `since()` with the gateway's rekey interval of `secs`.
    fn session_pair(secs: u64, since: &dyn Fn() -> Duration) -> (Session, Session) {
        latchkey_pairing::testing::session_pair(&mut OsRng, secs, since()).unwrap()
    }

    /// What the phone finds in the gateway's next message(s): `true` if the gateway
    /// rotated its key before the data.
    async fn rotated_before(
        gw: &mut NoiseStream<tokio::io::DuplexStream>,
        phone: &mut Session,
        pipe: &mut tokio::io::DuplexStream,
    ) -> bool {
        gw.write_all(b"frame").await.unwrap();
        gw.flush().await.unwrap();
        let mut rotated = false;
        loop {
            let body = read_frame(pipe, usize::MAX).await.unwrap();
            let mut out = Vec::new();
            match phone.open(Duration::ZERO, &body, &mut out).unwrap() {
                Opened::Rekeyed => rotated = true,
                Opened::Data(_) => return rotated,
            }
        }
    }

    #[tokio::test]
    async fn a_session_rotates_its_key_at_its_interval_on_the_gateways_clock() {
        let clock = Clock::simulated(1_000_000);
        clock.advance(Duration::from_secs(7));
        let origin = clock.instant();
        let since = clock.since(origin);
        let (mut phone, gw_session) = session_pair(120, &since);
        let (near, mut far) = duplex(1 << 16);
        let mut gw = NoiseStream::with_clock(near, gw_session, since);
        assert!(!rotated_before(&mut gw, &mut phone, &mut far).await);
        clock.advance(Duration::from_secs(119));
        assert!(
            !rotated_before(&mut gw, &mut phone, &mut far).await,
            "1 s before the interval"
        );
        clock.advance(Duration::from_secs(1));
        assert!(
            rotated_before(&mut gw, &mut phone, &mut far).await,
            "at 120 s"
        );
        clock.advance(Duration::from_secs(60));
        assert!(!rotated_before(&mut gw, &mut phone, &mut far).await);
        clock.advance(Duration::from_secs(60));
        assert!(
            rotated_before(&mut gw, &mut phone, &mut far).await,
            "every interval"
        );
    }
}
