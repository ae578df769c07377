//! Pairing and connecting: the network half of the handshakes, with happy eyeballs.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use latchkey_pairing::frame::MAX_FRAME;
use latchkey_pairing::{
    ClientHello, DeviceState, Keypair, PairRequest, PairingInitiator, PairingUri, PeerMisbehaved,
    SessionInitiator, keys,
};
use rand::rngs::OsRng;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::ClientError;
use crate::api::Connection;
use crate::state::{ClientState, GatewayRecord, StateDir, merge_addresses};
use crate::status::{ConnectionObserver, ConnectionState, Refusal};
use latchkey_channel::{NoiseStream, read_frame, write_frame};

/// How long one address may take to connect and finish a handshake.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(8);

/// The outcome of pairing.
#[derive(Debug, Clone)]
pub struct PairOutcome {
    /// The id the gateway gave this phone.
    pub device_id: String,
    /// Active, or pending the owner's confirmation.
    pub state: DeviceState,
    /// The short code to compare with the gateway.
    pub code: String,
    /// The gateway's name.
    pub gateway_name: String,
    /// The gateway's key (unpadded base64url): the home's id on this phone.
    pub gateway_key: String,
}

/// Connects TCP to every address at once and returns the first stream that connects.
async fn first_tcp(addresses: &[SocketAddr]) -> Result<TcpStream, ClientError> {
    let mut attempts = JoinSet::new();
    for &addr in addresses {
        attempts.spawn(async move {
            let r = tokio::time::timeout(ATTEMPT_TIMEOUT, TcpStream::connect(addr)).await;
            (addr, r)
        });
    }
    let mut errors = Vec::new();
    while let Some(joined) = attempts.join_next().await {
        match joined {
            Ok((_, Ok(Ok(stream)))) => return Ok(stream),
            Ok((addr, Ok(Err(e)))) => errors.push(format!("{addr}: {e}")),
            Ok((addr, Err(_))) => errors.push(format!("{addr}: timed out")),
            Err(e) => errors.push(format!("connect task: {e}")),
        }
    }
    Err(ClientError::Unreachable(errors.join("; ")))
}

/// Reads the gateway's next pairing message. Silence (the connection closed or nothing
/// came) is how a gateway refuses, so both mean "refused".
async fn pairing_answer(stream: &mut TcpStream) -> Result<Vec<u8>, ClientError> {
    match tokio::time::timeout(ATTEMPT_TIMEOUT, read_frame(stream, MAX_FRAME)).await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(ClientError::PairingRefused)
        }
        Ok(Err(e)) => Err(ClientError::io("pairing with the gateway", e)),
        Err(_) => Err(ClientError::PairingRefused),
    }
}

/// What a successful pairing hands back to be stored.
pub(crate) struct Paired {
    /// The gateway record (addresses merged with the URI's).
    pub record: GatewayRecord,
    /// What to show.
    pub outcome: PairOutcome,
}

/// The pairing handshake with the gateway in `uri`, as the phone with `keypair`. Stores
/// nothing: the caller saves the result (after the last await, so a cancelled pairing
/// leaves nothing half-written).
pub(crate) async fn pair_with(
    uri: &PairingUri,
    keypair: &Keypair,
    name: &str,
) -> Result<Paired, ClientError> {
    // A gateway answers a bad name with silence, which looks like a refused code: refuse
    // it here, before the one-time code is spent on an attempt.
    latchkey_pairing::handshake::check_name(name).map_err(ClientError::BadName)?;
    let mut stream = first_tcp(&uri.addresses).await?;
    let origin = Instant::now();
    let (init, first) =
        PairingInitiator::start(&uri.gateway_key, &uri.secret, keypair, &mut OsRng)?;
    let io = |e: std::io::Error| ClientError::io("pairing with the gateway", e);
    write_frame(&mut stream, &first).await.map_err(io)?;
    let message2 = pairing_answer(&mut stream).await?;
    let request = PairRequest {
        name: name.to_string(),
    };
    let (awaiting, message3) = init
        .read_response(&message2, &request, origin.elapsed())
        .map_err(|_| ClientError::GatewayNotAuthentic)?;
    let code = awaiting.code().to_string();
    write_frame(&mut stream, &message3).await.map_err(io)?;
    let result_frame = pairing_answer(&mut stream).await?;
    let result = awaiting.read_result(&result_frame, origin.elapsed())?;
    keys::b64_key(&result.session_psk).map_err(|_| {
        ClientError::Protocol(
            latchkey_pairing::PeerMisbehaved::BadPayload {
                what: "pair result",
            }
            .into(),
        )
    })?;
    let record = GatewayRecord {
        name: result.gateway_name.clone(),
        public_key: uri.gateway_key.to_b64(),
        device_id: result.device_id.clone(),
        state: result.state,
        session_psk: result.session_psk.clone(),
        addresses: merge_addresses(&result.addresses, &uri.addresses),
        code: code.clone(),
    };
    let outcome = PairOutcome {
        device_id: result.device_id,
        state: result.state,
        code,
        gateway_name: result.gateway_name,
        gateway_key: record.public_key.clone(),
    };
    Ok(Paired { record, outcome })
}

/// Pairs this phone (the CLI's state directory) with the gateway in `uri`, generating the
/// phone's key on first use. The key never leaves the phone; only its public half travels,
/// encrypted.
pub async fn pair(
    dir: &StateDir,
    uri: &PairingUri,
    name: &str,
) -> Result<PairOutcome, ClientError> {
    let keypair = match dir.load()? {
        Some(state) => state.keypair()?,
        None => Keypair::generate(&mut OsRng)?,
    };
    let paired = pair_with(uri, &keypair, name).await?;
    dir.save(&ClientState {
        device_secret: keys::b64(keypair.secret_bytes()),
        gateway: Some(paired.record),
    })?;
    Ok(paired.outcome)
}

/// The session hello timestamp: wall-clock milliseconds, but strictly increasing within
/// this process, because the gateway refuses a hello not newer than the last (replays).
fn now_ms() -> u64 {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    loop {
        let next = wall.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(
            last,
            next,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        ) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// One session handshake on one address.
async fn handshake(
    addr: SocketAddr,
    record: GatewayRecord,
    keypair: Keypair,
    timestamp_ms: u64,
) -> Result<Connection, ClientError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| ClientError::io(format!("connecting to {addr}"), e))?;
    let _ = stream.set_nodelay(true);
    let origin = Instant::now();
    let hello = ClientHello { timestamp_ms };
    let (init, first) = SessionInitiator::start(
        &record.gateway_key()?,
        &keypair,
        &record.psk()?,
        &hello,
        &mut OsRng,
    )?;
    write_frame(&mut stream, &first)
        .await
        .map_err(|e| ClientError::io(format!("sending hello to {addr}"), e))?;
    let message2 = match read_frame(&mut stream, MAX_FRAME).await {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(ClientError::SessionRefused);
        }
        Err(e) => {
            return Err(ClientError::io(
                format!("reading the answer from {addr}"),
                e,
            ));
        }
    };
    // Only the gateway's key can produce message 2, and it mixes in the session PSK it
    // holds for this phone: a message 2 that does not decrypt means the two PSKs differ.
    let (server_hello, session) = init
        .read_response(&message2, origin.elapsed())
        .map_err(|e| match e {
            latchkey_pairing::Error::PeerMisbehaved(PeerMisbehaved::BadHandshake) => {
                ClientError::SessionKeyMismatch
            }
            other => ClientError::Protocol(other),
        })?;
    let noise = NoiseStream::new(stream, session, origin);
    Connection::start(noise, addr, server_hello).await
}

/// Connects to the gateway in `record` as the phone with `keypair`: a handshake on every
/// known address at once, the first to finish wins (the others are dropped, and so is
/// everything when this future is dropped). Tells `observer` how it goes.
pub(crate) async fn connect_to(
    record: &GatewayRecord,
    keypair: &Keypair,
    observer: Option<&dyn ConnectionObserver>,
) -> Result<Connection, ClientError> {
    let tell = |state| {
        if let Some(o) = observer {
            o.on_state(state);
        }
    };
    tell(ConnectionState::Connecting);
    let ts = now_ms();
    let mut attempts = JoinSet::new();
    for &addr in &record.addresses {
        let (record, keypair) = (record.clone(), keypair.clone());
        attempts.spawn(async move {
            match tokio::time::timeout(ATTEMPT_TIMEOUT, handshake(addr, record, keypair, ts)).await
            {
                Ok(r) => (addr, r),
                Err(_) => (
                    addr,
                    Err(ClientError::Unreachable(format!("{addr}: timed out"))),
                ),
            }
        });
    }
    let mut errors = Vec::new();
    let mut refused = false;
    let mut mismatch = false;
    while let Some(joined) = attempts.join_next().await {
        match joined {
            Ok((addr, Ok(conn))) => {
                attempts.abort_all();
                tell(ConnectionState::Connected { addr });
                return Ok(conn);
            }
            Ok((_, Err(ClientError::SessionRefused))) => refused = true,
            Ok((_, Err(ClientError::SessionKeyMismatch))) => mismatch = true,
            Ok((addr, Err(e))) => errors.push(format!("{addr}: {e}")),
            Err(e) => errors.push(format!("connect task: {e}")),
        }
    }
    let (state, error) = if mismatch {
        (Refusal::StaleKey, ClientError::SessionKeyMismatch)
    } else if refused {
        // Silence tells no reason; a phone never admitted is waiting for the owner.
        match record.state {
            DeviceState::Pending => (Refusal::Pending, ClientError::Refused(Refusal::Pending)),
            _ => (Refusal::Unknown, ClientError::SessionRefused),
        }
    } else {
        tell(ConnectionState::Unreachable);
        return Err(ClientError::Unreachable(errors.join("; ")));
    };
    tell(ConnectionState::Refused { reason: state });
    Err(error)
}

/// Connects to the gateway paired in the CLI's state directory. Saves any new addresses
/// the gateway reports.
pub async fn connect(dir: &StateDir) -> Result<Connection, ClientError> {
    let mut state = dir.load()?.ok_or(ClientError::NotPaired)?;
    let record = state.gateway.clone().ok_or(ClientError::NotPaired)?;
    let conn = connect_to(&record, &state.keypair()?, None).await?;
    if let Some(gw) = state.gateway.as_mut()
        && learn(gw, conn.server_hello())
    {
        dir.save(&state)?;
    }
    Ok(conn)
}

/// Takes what a ServerHello says into `record` (its addresses first; admitted now).
/// True if anything changed and the record must be saved.
pub(crate) fn learn(record: &mut GatewayRecord, hello: &latchkey_pairing::ServerHello) -> bool {
    let merged = merge_addresses(&hello.addresses, &record.addresses);
    if merged == record.addresses && record.state == DeviceState::Active {
        return false;
    }
    record.addresses = merged;
    record.state = DeviceState::Active;
    true
}
