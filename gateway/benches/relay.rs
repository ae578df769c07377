//! The relay benchmark: Latchkey's channel against OpenSSH, plain TCP and the crypto limit.
//!
//! `cargo bench -p latchkey-gateway --bench relay` (add `-- --quick` or set
//! `LATCHKEY_BENCH_QUICK=1` for the short CI mode). Everything runs on loopback through the
//! real code: the Noise handshake and `NoiseStream`, HTTP/2 (hyper) as the listener serves
//! it, the camera hub and its fan-out, the fMP4 bodies, and for the memory figures the
//! real `latchkey` binary. Prints a table, then one `metric NAME VALUE` line per figure.
//!
//! Gateway CPU is read from `/proc/self/task/*/stat` for the threads of the in-process
//! gateway runtime (named `lk-gw`), so the clients' work in the same process is not
//! counted; memory is the `latchkey` child's `VmRSS`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "relay/daemon.rs"]
mod daemon;
#[path = "relay/fanout.rs"]
mod fanout;
#[path = "relay/micro.rs"]
mod micro;

use std::convert::Infallible;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use axum::body::Body;
use axum::extract::Path as UrlPath;
use axum::routing::get;
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use http_body_util::BodyExt as _;
use hyper::Method;
use latchkey_channel::{NoiseStream, read_frame, write_frame};
use latchkey_client::{Connection, LiveFormat, StateDir};
use latchkey_gateway::Gateway;
use latchkey_gateway::camera::{
    CameraOpener, CameraSource, Frame, FrameStream, SourceError, Track, VideoFrame,
};
use latchkey_gateway::mp4::VideoTrack;
use latchkey_pairing::frame::{MAX_FRAME, MAX_HANDSHAKE_FRAME};
use latchkey_pairing::handshake::split_type;
use latchkey_pairing::{
    CameraGrant, ClientHello, Keypair, PublicKey, Role, ServerHello, SessionInitiator, SessionPsk,
    SessionResponder,
};
use rand::rngs::OsRng;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

/// Clock origin shared by the synthetic camera and the viewers.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Clone, Debug)]
struct Plan {
    /// Bytes per bulk transfer.
    bulk: u64,
    /// Bulk transfers per path (median reported).
    repeats: usize,
    /// Seconds of handshakes.
    handshake_secs: f64,
    /// Seconds the fan-out is measured.
    fanout_secs: f64,
    /// New viewers sampled for the first frame.
    first_frame_samples: usize,
    /// Idle sessions held open.
    idle_sessions: usize,
    /// Fan-out scenarios: (viewers, cameras).
    fanouts: Vec<(usize, usize)>,
    /// Viewers attached for `viewer_kib`.
    memory_viewers: usize,
    /// New phone processes for `cold_first_frame_ms`.
    cold_samples: usize,
}

/// 10, 100 and 500 viewers of one camera, and 100 viewers over 10 cameras.
const FANOUTS: &[(usize, usize)] = &[(10, 1), (100, 1), (500, 1), (100, 10)];
/// The quick mode leaves out 500 viewers: the CI's debug build cannot feed them.
const QUICK_FANOUTS: &[(usize, usize)] = &[(10, 1), (100, 1), (100, 10)];

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                bulk: 128 << 20,
                repeats: 1,
                handshake_secs: 2.0,
                fanout_secs: 3.0,
                first_frame_samples: 8,
                idle_sessions: 200,
                fanouts: QUICK_FANOUTS.to_vec(),
                memory_viewers: 100,
                cold_samples: 3,
            }
        } else {
            Self {
                bulk: 1 << 30,
                repeats: 3,
                handshake_secs: 10.0,
                fanout_secs: 20.0,
                first_frame_samples: 40,
                idle_sessions: 1000,
                fanouts: FANOUTS.to_vec(),
                memory_viewers: 100,
                cold_samples: 15,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Gateway CPU: the lk-gw threads of this process.

/// Total user+system CPU of this process's threads whose name starts with `prefix`.
fn threads_cpu(prefix: &str) -> Duration {
    let mut ticks = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            if !stat[open + 1..close].starts_with(prefix) {
                continue;
            }
            // Fields after the name: state is field 3; utime and stime are 14 and 15.
            let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
            let utime: u64 = rest.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
            let stime: u64 = rest.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
            ticks += utime + stime;
        }
    }
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// CPU of a whole process (`/proc/PID/stat`).
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return Duration::ZERO;
    };
    let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
    let utime: u64 = rest.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = rest.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis((utime + stime) * 10)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// A synthetic 8 Mbit/s, 30 fps H.264 camera. Each frame carries, right after its NAL
// header, the time it entered the gateway (nanoseconds since `origin()`).

const FPS: u64 = 30;
const GOP: u32 = 30;
const KEYFRAME_BYTES: usize = 121_212;
const PFRAME_BYTES: usize = 30_303;

#[derive(Debug)]
struct SyntheticCamera;

fn sample_entry() -> Vec<u8> {
    let avcc: &[u8] = &[
        0, 0, 0, 15, b'a', b'v', b'c', b'C', 1, 0x42, 0xc0, 0x1e, 0xff, 0xe0, 0,
    ];
    let mut e = Vec::new();
    e.extend_from_slice(&0u32.to_be_bytes());
    e.extend_from_slice(b"avc1");
    e.extend_from_slice(&[0; 6]);
    e.extend_from_slice(&1u16.to_be_bytes());
    e.extend_from_slice(&[0; 16]);
    e.extend_from_slice(&1280u16.to_be_bytes());
    e.extend_from_slice(&720u16.to_be_bytes());
    e.extend_from_slice(&0x0048_0000u32.to_be_bytes());
    e.extend_from_slice(&0x0048_0000u32.to_be_bytes());
    e.extend_from_slice(&[0; 4]);
    e.extend_from_slice(&1u16.to_be_bytes());
    e.extend_from_slice(&[0; 32]);
    e.extend_from_slice(&0x18u16.to_be_bytes());
    e.extend_from_slice(&(-1i16).to_be_bytes());
    e.extend_from_slice(avcc);
    let len = e.len() as u32;
    e[..4].copy_from_slice(&len.to_be_bytes());
    e
}

impl CameraOpener for SyntheticCamera {
    fn open(&self, _: &CameraSource) -> BoxFuture<'static, Result<FrameStream, SourceError>> {
        Box::pin(async {
            let track = Arc::new(Track {
                mp4: VideoTrack {
                    sample_entry: sample_entry(),
                    width: 1280,
                    height: 720,
                    timescale: 90_000,
                },
                codec: "h264",
                codec_string: "avc1.42C01E".into(),
            });
            let ticks = tokio::time::interval(Duration::from_nanos(1_000_000_000 / FPS));
            let frames = futures_util::stream::unfold((0u32, ticks), move |(i, mut ticks)| {
                let track = track.clone();
                async move {
                    ticks.tick().await;
                    let keyframe = i % GOP == 0;
                    let len = if keyframe {
                        KEYFRAME_BYTES
                    } else {
                        PFRAME_BYTES
                    };
                    let mut data = vec![0u8; len];
                    data[..4].copy_from_slice(&(len as u32 - 4).to_be_bytes());
                    data[4] = if keyframe { 0x65 } else { 0x41 };
                    let stamp = origin().elapsed().as_nanos() as u64;
                    data[5..13].copy_from_slice(&stamp.to_be_bytes());
                    let frame = Frame::Video(VideoFrame {
                        track,
                        pts: i64::from(i) * 3000,
                        duration: 3000,
                        keyframe,
                        data: Bytes::from(data),
                    });
                    Some((Ok(frame), (i + 1, ticks)))
                }
            });
            Ok(frames.boxed())
        })
    }
}

/// Splits an fMP4 byte stream into boxes; yields each complete `mdat`'s first bytes.
/// Only box headers and the first bytes of each `mdat` are kept, not the payload.
#[derive(Default)]
struct Mp4Reader {
    /// Bytes of the current box header (and `mdat` head) seen so far.
    head: Vec<u8>,
    /// Bytes of the current box still to skip after its head.
    skip: usize,
}

/// Bytes of an `mdat` payload the reader hands out: length prefix, NAL header, stamp.
const MDAT_HEAD: usize = 13;

impl Mp4Reader {
    fn push(&mut self, mut data: &[u8], mut on_mdat: impl FnMut(&[u8])) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let want = if self.head.len() >= 8 && &self.head[4..8] == b"mdat" {
                8 + MDAT_HEAD
            } else {
                8
            };
            let n = (want - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.head.len() < want {
                continue;
            }
            let size = u32::from_be_bytes(self.head[..4].try_into().unwrap()) as usize;
            if &self.head[4..8] == b"mdat" && want == 8 && size >= 8 + MDAT_HEAD {
                continue; // read the mdat head too
            }
            if &self.head[4..8] == b"mdat" {
                on_mdat(&self.head[8..]);
            }
            self.skip = size.saturating_sub(self.head.len());
            self.head.clear();
        }
    }
}

/// The time a synthetic frame entered the gateway, from its `mdat` head.
fn stamp_of(mdat: &[u8]) -> Duration {
    mdat.get(5..13)
        .and_then(|b| b.try_into().ok())
        .map_or(Duration::MAX, |b| {
            Duration::from_nanos(u64::from_be_bytes(b))
        })
}

// ---------------------------------------------------------------------------------------
// Devices and sessions.

/// A paired phone identity, used for raw session handshakes.
struct Device {
    /// The device id, learnt at the first handshake.
    id: OnceLock<String>,
    key: Keypair,
    gateway: PublicKey,
    psk: SessionPsk,
    /// Strictly increasing hello timestamps (the gateway refuses replays).
    last_ts: AtomicU64,
}

impl Device {
    fn load(dir: &StateDir) -> anyhow::Result<Self> {
        let state = dir.load()?.context("not paired")?;
        let gw = state.gateway.clone().context("not paired")?;
        let wall = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
        Ok(Self {
            id: OnceLock::new(),
            key: state.keypair()?,
            gateway: gw.gateway_key()?,
            psk: gw.psk()?,
            last_ts: AtomicU64::new(wall),
        })
    }

    async fn handshake(
        &self,
        addr: SocketAddr,
    ) -> anyhow::Result<(NoiseStream<TcpStream>, ServerHello)> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let started = Instant::now();
        let hello = ClientHello {
            timestamp_ms: self.last_ts.fetch_add(1, Ordering::Relaxed) + 1,
        };
        let (init, first) =
            SessionInitiator::start(&self.gateway, &self.key, &self.psk, &hello, &mut OsRng)?;
        write_frame(&mut stream, &first).await?;
        let m2 = read_frame(&mut stream, MAX_FRAME).await?;
        let (server_hello, session) = init.read_response(&m2, started.elapsed())?;
        let _ = self.id.set(server_hello.device_id.clone());
        Ok((NoiseStream::new(stream, session, started), server_hello))
    }

    async fn connect(&self, addr: SocketAddr) -> anyhow::Result<Connection> {
        let (noise, hello) = self.handshake(addr).await?;
        Ok(Connection::start(noise, addr, hello).await?)
    }
}

fn runtime(name: &str, workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        // Threads that exit take their CPU time with them: keep them for the run.
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .unwrap()
}

/// The in-process gateway: real store, listener and hub, with a synthetic camera `cam`.
struct InProcess {
    gw: Arc<Gateway>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

fn start_gateway(rt: &Runtime) -> anyhow::Result<InProcess> {
    let dir = tempfile::tempdir()?;
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let config = latchkey_gateway::config::Config {
        name: "bench".into(),
        cameras: latchkey_gateway::config::cameras(
            &[],
            &camera_ids()
                .iter()
                .map(|id| format!("{id}=rtsp://synthetic/{id}"))
                .collect::<Vec<_>>(),
        )?,
        camera_grace: Duration::from_secs(30),
        rekey_after_secs: latchkey_gateway::config::DEFAULT_REKEY_AFTER_SECS,
    };
    let gw = {
        let _guard = rt.enter();
        Gateway::open_with(
            dir.path().join("gw"),
            config,
            addr,
            Arc::new(SyntheticCamera),
        )?
    };
    let shutdown = CancellationToken::new();
    rt.spawn(latchkey_gateway::listener::serve(
        listener,
        gw.clone(),
        shutdown.clone(),
    ));
    Ok(InProcess {
        gw,
        addr,
        shutdown,
        _dir: dir,
    })
}

/// Pairs a new phone with the in-process gateway through the real pairing handshake.
fn pair_in_process(
    gw_rt: &Runtime,
    cl_rt: &Runtime,
    g: &InProcess,
    dir: &Path,
) -> anyhow::Result<Device> {
    let params = latchkey_gateway::store::PairingParams {
        name: None,
        role: Role::Viewer,
        cameras: CameraGrant::All,
        device_expires_at: None,
        auto_confirm: true,
        window_expires_at: latchkey_gateway::unix_now() + 300,
    };
    let uri = gw_rt.block_on(latchkey_gateway::admin::actions::open_pairing(
        &g.gw, params,
    ))?;
    let state = StateDir::open(dir)?;
    cl_rt.block_on(latchkey_client::pair(&state, &uri, "bench"))?;
    Device::load(&state)
}

// ---------------------------------------------------------------------------------------
// Bulk transfers: Latchkey channel, SSH tunnel, plain TCP.

/// Serves `/bench/bulk/{bytes}` over the real channel (`listener::serve_channel`) after a
/// real session handshake: the gateway's Noise + HTTP/2 stack with a large body.
async fn bulk_server(listener: TcpListener, gw: Arc<Gateway>) {
    let router = axum::Router::new().route("/bench/bulk/{bytes}", get(bulk));
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let (gw, router) = (gw.clone(), router.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let started = Instant::now();
            let first = read_frame(&mut stream, MAX_HANDSHAKE_FRAME).await.ok()?;
            let (_, m1) = split_type(&first).ok()?;
            let responder = SessionResponder::read_hello(&gw.keys, m1, &mut OsRng).ok()?;
            let key = responder.remote_key();
            let (_, psk) = gw.store.device_by_key(&key).ok()??;
            let hello = ServerHello {
                device_id: String::new(),
                gateway_name: String::new(),
                addresses: vec![],
                rekey_after_secs: latchkey_gateway::config::DEFAULT_REKEY_AFTER_SECS,
            };
            let (m2, session) = responder.accept(&psk, &hello, started.elapsed()).ok()?;
            write_frame(&mut stream, &m2).await.ok()?;
            let noise = NoiseStream::new(stream, session, started);
            latchkey_gateway::listener::serve_channel(noise, router, None)
                .await
                .ok()
        });
    }
}

const BULK_CHUNK: usize = 256 << 10;

async fn bulk(UrlPath(bytes): UrlPath<u64>) -> Body {
    let chunk = Bytes::from(vec![0x5a; BULK_CHUNK]);
    let full = bytes / BULK_CHUNK as u64;
    let tail = (bytes % BULK_CHUNK as u64) as usize;
    let chunks = (0..full)
        .map(move |_| chunk.clone())
        .chain((tail > 0).then(|| Bytes::from(vec![0x5a; tail])));
    Body::from_stream(futures_util::stream::iter(chunks).map(Ok::<_, Infallible>))
}

/// MiB/s from the first body byte to the end, like the SSH recipe's bench.py.
async fn pull_channel(conn: &Connection, bytes: u64) -> anyhow::Result<f64> {
    let response = conn
        .request(Method::GET, &format!("/bench/bulk/{bytes}"))
        .await?;
    anyhow::ensure!(response.status() == 200, "bulk: {}", response.status());
    let mut body = response.into_body();
    let (mut got, mut first) = (0u64, None);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            first.get_or_insert_with(Instant::now);
            got += data.len() as u64;
        }
    }
    anyhow::ensure!(got == bytes, "bulk: got {got} of {bytes} bytes");
    let secs = first.map_or(f64::NAN, |t| t.elapsed().as_secs_f64());
    Ok(bytes as f64 / secs / (1 << 20) as f64)
}

/// A plain TCP sender: reads an 8-byte count, writes that many bytes, closes.
fn tcp_sender() -> anyhow::Result<SocketAddr> {
    let listener = StdListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        // The reference's sending side sits with the gateway.
        pin_self(0);
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut stream = stream;
                let mut n = [0u8; 8];
                stream.read_exact(&mut n)?;
                let mut left = u64::from_be_bytes(n);
                let chunk = vec![0x5au8; 1 << 20];
                while left > 0 {
                    let k = left.min(chunk.len() as u64) as usize;
                    stream.write_all(&chunk[..k])?;
                    left -= k as u64;
                }
                stream.shutdown(std::net::Shutdown::Write)
            });
        }
    });
    Ok(addr)
}

fn pull_tcp(addr: SocketAddr, bytes: u64) -> anyhow::Result<f64> {
    let mut stream = StdStream::connect(addr)?;
    stream.write_all(&bytes.to_be_bytes())?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut got, mut first) = (0u64, None);
    loop {
        let k = stream.read(&mut buf)?;
        if k == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        got += k as u64;
    }
    anyhow::ensure!(got == bytes, "tcp: got {got} of {bytes} bytes");
    let secs = first.map_or(f64::NAN, |t| t.elapsed().as_secs_f64());
    Ok(bytes as f64 / secs / (1 << 20) as f64)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// sshd on 127.0.0.1 with fresh keys, and `ssh -L` with chacha20-poly1305 to `target`.
/// Returns the tunnel's local address and the two children (killed on drop).
struct SshTunnel {
    local: SocketAddr,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for SshTunnel {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn ssh_tunnel(target: SocketAddr) -> anyhow::Result<SshTunnel> {
    let dir = tempfile::tempdir()?;
    let d = dir.path().to_path_buf();
    let d = d.as_path();
    for key in ["host_ed25519", "client_ed25519"] {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(d.join(key))
            .status()
            .context("running ssh-keygen (apt-get install openssh-client)")?;
        anyhow::ensure!(ok.success(), "ssh-keygen failed");
    }
    std::fs::copy(d.join("client_ed25519.pub"), d.join("authorized_keys"))?;
    let port = free_port()?;
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_ed25519\nPidFile {dir}/sshd.pid\n\
         AuthorizedKeysFile {dir}/authorized_keys\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
         PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nAllowTcpForwarding yes\n\
         Ciphers chacha20-poly1305@openssh.com\n",
        dir = d.display()
    );
    std::fs::write(d.join("sshd_config"), config)?;
    let _ = std::fs::create_dir_all("/run/sshd");
    let mut children = Vec::new();
    let sshd = pin_cmd("/usr/sbin/sshd", 0)
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("sshd.log"))?)
        .spawn()
        .context("starting /usr/sbin/sshd (apt-get install openssh-server)")?;
    children.push(sshd);
    let local_port = free_port()?;
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let mut tunnel = SshTunnel {
        local: SocketAddr::from(([127, 0, 0, 1], local_port)),
        children,
        _dir: dir,
    };
    // Wait for sshd to listen.
    let deadline = Instant::now() + Duration::from_secs(10);
    while StdStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "sshd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ssh = pin_cmd("ssh", 1)
        .args(["-F", "/dev/null", "-p", &port.to_string(), "-i"])
        .arg(d.join("client_ed25519"))
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "Compression=no",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}/known_hosts", d.display()))
        .args(["-c", "chacha20-poly1305@openssh.com", "-N", "-L"])
        .arg(format!("127.0.0.1:{local_port}:{target}"))
        .arg(format!("{user}@127.0.0.1"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("ssh.log"))?)
        .spawn()
        .context("starting ssh")?;
    tunnel.children.push(ssh);
    // Wait until the forward carries a zero-byte request end to end.
    loop {
        if let Ok(mut s) = StdStream::connect(tunnel.local)
            && s.write_all(&0u64.to_be_bytes()).is_ok()
            && s.read(&mut [0u8; 1]).is_ok_and(|n| n == 0)
        {
            break;
        }
        if Instant::now() > deadline || tunnel.children[1].try_wait()?.is_some() {
            let log = std::fs::read_to_string(d.join("ssh.log")).unwrap_or_default();
            let slog = std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
            bail!("ssh -L did not come up\nssh: {log}\nsshd: {slog}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(tunnel)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `openssl speed -evp chacha20-poly1305`, one core, 16 KiB blocks, in MiB/s.
fn crypto_limit(secs: u32) -> anyhow::Result<f64> {
    let out = pin_cmd("openssl", 0)
        .args([
            "speed",
            "-mr",
            "-evp",
            "chacha20-poly1305",
            "-bytes",
            "16384",
        ])
        .args(["-seconds", &secs.to_string()])
        .stderr(Stdio::null())
        .output()
        .context("running openssl speed")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("+F:"))
        .with_context(|| format!("no +F line in openssl output: {text}"))?;
    let bytes_per_s: f64 = line
        .rsplit(':')
        .next()
        .and_then(|v| v.trim().parse().ok())
        .context("unparsable openssl speed line")?;
    Ok(bytes_per_s / (1 << 20) as f64)
}

/// Seal+open throughput of snow transport messages (64 KiB, both ends with the
/// resolver `make` gives), MiB/s: how snow's resolver is chosen.
fn resolver_speed(make: fn() -> snow::resolvers::BoxedCryptoResolver, bytes: usize) -> f64 {
    let params: snow::params::NoiseParams = "Noise_NN_25519_ChaChaPoly_BLAKE2s".parse().unwrap();
    let mut init = snow::Builder::with_resolver(params.clone(), make())
        .build_initiator()
        .unwrap();
    let mut resp = snow::Builder::with_resolver(params, make())
        .build_responder()
        .unwrap();
    let (mut m, mut p) = (vec![0u8; 65535], vec![0u8; 65535]);
    let n = init.write_message(&[], &mut m).unwrap();
    resp.read_message(&m[..n], &mut p).unwrap();
    let n = resp.write_message(&[], &mut m).unwrap();
    init.read_message(&m[..n], &mut p).unwrap();
    let mut a = init.into_transport_mode().unwrap();
    let mut b = resp.into_transport_mode().unwrap();
    let plain = vec![0x5au8; 65519];
    // This thread's CPU time, not wall time: other processes may share the cores.
    let started = thread_cpu();
    let mut done = 0;
    while done < bytes {
        let n = a.write_message(&plain, &mut m).unwrap();
        b.read_message(&m[..n], &mut p).unwrap();
        done += plain.len();
    }
    done as f64 / (thread_cpu() - started).as_secs_f64() / (1 << 20) as f64
}

/// CPU time of the calling thread (`/proc/thread-self/stat`).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return Duration::ZERO;
    };
    let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
    let utime: u64 = rest.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = rest.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis((utime + stime) * 10)
}

fn ring_resolver() -> snow::resolvers::BoxedCryptoResolver {
    use snow::resolvers::{DefaultResolver, FallbackResolver, RingResolver};
    Box::new(FallbackResolver::new(
        Box::new(RingResolver),
        Box::new(DefaultResolver),
    ))
}

/// snow's pure-Rust ciphers and hashes (ring only supplies the random numbers, which
/// this build's default resolver lacks).
fn default_resolver() -> snow::resolvers::BoxedCryptoResolver {
    use snow::resolvers::{DefaultResolver, FallbackResolver, RingResolver};
    Box::new(FallbackResolver::new(
        Box::new(DefaultResolver),
        Box::new(RingResolver),
    ))
}

// ---------------------------------------------------------------------------------------

struct Table {
    rows: Vec<(String, f64, String)>,
}

impl Table {
    fn add(&mut self, name: &str, value: f64, note: impl Into<String>) {
        println!("  {name:<22} {value:>10.2}   {}", note.into());
        self.rows.push((name.into(), value, String::new()));
    }
    fn get(&self, name: &str) -> f64 {
        self.rows
            .iter()
            .find(|r| r.0 == name)
            .map_or(f64::NAN, |r| r.1)
    }
}

/// Camera ids of the in-process gateway (one synthetic camera each).
fn camera_ids() -> Vec<String> {
    (0..10)
        .map(|i| {
            if i == 0 {
                "cam".into()
            } else {
                format!("cam{i}")
            }
        })
        .collect()
}

/// Whether processes and threads are pinned: the gateway (in-process runtime, the
/// daemon, sshd, openssl) to CPU 0, clients and peers to CPU 1.
fn pinning() -> bool {
    static PIN: OnceLock<bool> = OnceLock::new();
    *PIN.get_or_init(|| {
        std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
            && std::env::var("LATCHKEY_BENCH_PIN").map_or(true, |v| v != "0")
            && Command::new("taskset").arg("-V").output().is_ok()
    })
}

/// `program` run under `taskset -c cpu` when pinning.
fn pin_cmd(program: &str, cpu: usize) -> Command {
    if pinning() {
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu.to_string(), program]);
        c
    } else {
        Command::new(program)
    }
}

/// Pins the calling thread to `cpu`.
fn pin_self(cpu: usize) {
    if !pinning() {
        return;
    }
    if let Ok(link) = std::fs::read_link("/proc/thread-self")
        && let Some(tid) = link.file_name()
    {
        let _ = Command::new("taskset")
            .args(["-p", "-c", &cpu.to_string()])
            .arg(tid)
            .stdout(Stdio::null())
            .status();
    }
}

/// Pins this process's threads whose name starts with `prefix` to `cpu` (threads they
/// start later inherit it).
fn pin_threads(prefix: &str, cpu: usize) {
    if !pinning() {
        return;
    }
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with(prefix) {
            let _ = Command::new("taskset")
                .args(["-p", "-c", &cpu.to_string()])
                .arg(task.file_name())
                .stdout(Stdio::null())
                .status();
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "--cold-client") {
        let (Some(state), Some(camera)) = (args.get(2), args.get(3)) else {
            bail!("usage: relay --cold-client STATE_DIR CAMERA");
        };
        return daemon::cold_client(state, camera);
    }
    if args.iter().any(|a| a == "--micro") {
        return micro::run();
    }
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("LATCHKEY_BENCH_QUICK").is_ok_and(|v| v == "1");
    let mut plan = Plan::new(quick);
    // LATCHKEY_BENCH_FANOUTS=100x1,100x10 chooses the fan-out scenarios (viewers x
    // cameras), e.g. one at a time under a profiler.
    if let Ok(list) = std::env::var("LATCHKEY_BENCH_FANOUTS") {
        plan.fanouts = list
            .split(',')
            .filter_map(|f| f.split_once('x'))
            .filter_map(|(v, c)| Some((v.parse().ok()?, c.parse::<usize>().ok()?.clamp(1, 10))))
            .collect();
    }
    // LATCHKEY_BENCH_ONLY=bulk,handshakes,first_frame,fanout,memory runs a subset
    // (for profiling one figure at a time).
    let only = std::env::var("LATCHKEY_BENCH_ONLY").unwrap_or_default();
    let want = |section: &str| only.is_empty() || only.split(',').any(|s| s == section);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    origin();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "relay benchmark ({}), load average at start: {}",
        if quick { "quick" } else { "full" },
        load.trim()
    );
    let mut t = Table { rows: Vec::new() };
    // The gateway gets one worker thread ("one core"); clients get their own runtime.
    let gw_rt = runtime("lk-gw", 1);
    let cl_rt = runtime("lk-client", 2);
    pin_threads("lk-gw", 0);
    pin_threads("lk-client", 1);
    pin_self(1);
    println!(
        "pinning: {}",
        if pinning() {
            "gateway (lk-gw threads, latchkey daemon, sshd, openssl) on CPU 0; clients (lk-client, this thread, ssh, cold clients, RTSP camera) on CPU 1"
        } else {
            "none (LATCHKEY_BENCH_PIN=0 or fewer than 2 CPUs)"
        }
    );
    let g = start_gateway(&gw_rt)?;
    let phones = tempfile::tempdir()?;
    // A device holds at most MAX_SESSIONS_PER_DEVICE sessions and
    // MAX_LIVE_STREAMS_PER_DEVICE live streams (PROTOCOL.md "Limits"): enough phones
    // that every viewer gets its own session.
    let most_viewers = plan.fanouts.iter().map(|f| f.0).max().unwrap_or(0);
    let phone_count = fanout::phones_for(most_viewers).max(4);
    let devices: Vec<Arc<Device>> = (0..phone_count)
        .map(|i| pair_in_process(&gw_rt, &cl_rt, &g, &phones.path().join(format!("p{i}"))))
        .map(|d| d.map(Arc::new))
        .collect::<anyhow::Result<_>>()?;

    // --- Bulk throughput -----------------------------------------------------------
    let mut tunnel = f64::NAN;
    let mut crypto = f64::NAN;
    if want("bulk") {
        println!(
            "\nbulk: {} MiB per transfer, median of {}",
            plan.bulk >> 20,
            plan.repeats
        );
        let bulk_listener = gw_rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let bulk_addr = bulk_listener.local_addr()?;
        gw_rt.spawn(bulk_server(bulk_listener, g.gw.clone()));
        let sender = tcp_sender()?;
        let ssh = match ssh_tunnel(sender) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("warning: no SSH reference: {e:#}");
                None
            }
        };
        let (mut noise, mut sshv, mut tcp) = (Vec::new(), Vec::new(), Vec::new());
        let mut cpu_per_gib = Vec::new();
        for _ in 0..plan.repeats {
            let conn = cl_rt.block_on(devices[0].connect(bulk_addr))?;
            let (gw0, cl0) = (threads_cpu("lk-gw"), threads_cpu("lk-client"));
            noise.push(cl_rt.block_on(pull_channel(&conn, plan.bulk))?);
            let gib = plan.bulk as f64 / (1u64 << 30) as f64;
            cpu_per_gib.push((
                (threads_cpu("lk-gw") - gw0).as_secs_f64() / gib,
                (threads_cpu("lk-client") - cl0).as_secs_f64() / gib,
            ));
            drop(conn);
            if let Some(s) = &ssh {
                sshv.push(pull_tcp(s.local, plan.bulk)?);
            }
            tcp.push(pull_tcp(sender, plan.bulk)?);
        }
        drop(ssh);
        let resolver_bytes = if quick { 256 << 20 } else { 2 << 30 };
        let ring = resolver_speed(ring_resolver, resolver_bytes);
        let rust = resolver_speed(default_resolver, resolver_bytes);
        println!(
            "  snow resolver, seal+open per CPU-second: ring {ring:.0} MiB/s, default {rust:.0} MiB/s (ring x{:.2})",
            ring / rust
        );
        crypto = crypto_limit(if quick { 1 } else { 3 })?;
        tunnel = median(noise.clone());
        t.add(
            "tunnel_mib_s",
            tunnel,
            format!("Latchkey channel, runs {noise:.0?}; CPU-s per GiB (gateway, client) {cpu_per_gib:.2?}"),
        );
        t.add(
            "ssh_tunnel_mib_s",
            median(sshv.clone()),
            format!("ssh -L chacha20-poly1305, runs {sshv:.0?}"),
        );
        t.add(
            "tcp_mib_s",
            median(tcp.clone()),
            format!("plain loopback, runs {tcp:.0?}"),
        );
        t.add(
            "crypto_limit_mib_s",
            crypto,
            "openssl speed, 1 core, 16 KiB",
        );
    }

    // --- Handshakes ------------------------------------------------------------------
    if want("handshakes") {
        let (count, cpu, wall) = cl_rt.block_on(async {
            let stop = Arc::new(AtomicBool::new(false));
            let done = Arc::new(AtomicU64::new(0));
            let cpu0 = threads_cpu("lk-gw");
            let started = Instant::now();
            let mut tasks = Vec::new();
            for dev in &devices {
                let (dev, stop, done, addr) = (dev.clone(), stop.clone(), done.clone(), g.addr);
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        if dev.handshake(addr).await.is_ok() {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
            tokio::time::sleep(Duration::from_secs_f64(plan.handshake_secs)).await;
            stop.store(true, Ordering::Relaxed);
            for task in tasks {
                let _ = task.await;
            }
            // Let the gateway finish the last sessions' teardown before reading its CPU.
            tokio::time::sleep(Duration::from_millis(200)).await;
            (
                done.load(Ordering::Relaxed),
                threads_cpu("lk-gw") - cpu0,
                started.elapsed(),
            )
        });
        let per_cpu_s = count as f64 / cpu.as_secs_f64();
        t.add(
            "handshakes_per_s",
            per_cpu_s,
            format!(
                "per gateway CPU-second; {count} in {:.1} s wall = {:.0}/s, gateway CPU {:.0} %",
                wall.as_secs_f64(),
                count as f64 / wall.as_secs_f64(),
                100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
            ),
        );
    }

    // --- First frame (warm camera) --------------------------------------------------
    let addr = g.addr;
    if want("first_frame") {
        let dev = devices[0].clone();
        let ff = cl_rt.block_on(async {
            let warm = dev.connect(addr).await?;
            let resp = warm.live("cam", LiveFormat::Mp4).await?;
            let keep = tokio::spawn(async move {
                let mut body = resp.into_body();
                while let Some(Ok(_)) = body.frame().await {}
            });
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let mut samples = Vec::new();
            for i in 0..plan.first_frame_samples {
                tokio::time::sleep(Duration::from_millis(37 + (i as u64 * 53) % 300)).await;
                let started = Instant::now();
                let conn = dev.connect(addr).await?;
                let resp = conn.live("cam", LiveFormat::Mp4).await?;
                let mut body = resp.into_body();
                let mut reader = Mp4Reader::default();
                let mut got = false;
                while !got {
                    let frame = body.frame().await.context("stream ended")??;
                    if let Ok(data) = frame.into_data() {
                        reader.push(&data, |_| got = true);
                    }
                }
                samples.push(ms(started.elapsed()));
            }
            keep.abort();
            drop(warm);
            anyhow::Ok(samples)
        })?;
        let ff_median = median(ff.clone());
        let mut ff_sorted = ff.clone();
        ff_sorted.sort_by(|a, b| a.total_cmp(b));
        t.add(
            "first_frame_ms",
            ff_median,
            format!(
                "new session + GET live.mp4 to whole keyframe; p95 {:.1} ms over {}",
                percentile(&ff_sorted, 0.95),
                ff.len()
            ),
        );
    }

    // --- Fan-out: how cost grows with viewers ------------------------------------
    if want("fanout") {
        for &(viewers, cams) in &plan.fanouts {
            let name = if cams == 1 {
                format!("fanout{viewers}")
            } else {
                format!("fanout{viewers}x{cams}")
            };
            let cameras: Vec<String> = camera_ids().into_iter().take(cams).collect();
            fanout::wait_sessions_closed(&cl_rt, &g.gw, &devices);
            let f = match fanout::run(&cl_rt, addr, &devices, viewers, &cameras, plan.fanout_secs) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("warning: {name}: {e:#}");
                    t.add(&format!("{name}_cpu_pct"), f64::NAN, "did not run");
                    t.add(&format!("{name}_p99_ms"), f64::NAN, "did not run");
                    continue;
                }
            };
            t.add(
                &format!("{name}_cpu_pct"),
                f.cpu_pct,
                format!(
                    "{viewers} viewers of {cams} camera(s), 8 Mbit/s 30 fps each, {:.1} s",
                    f.wall.as_secs_f64()
                ),
            );
            t.add(
                &format!("{name}_p99_ms"),
                f.p99_ms,
                format!(
                    "p50 {:.2} ms, max {:.1} ms, {} of ~{} frames delivered",
                    f.p50_ms, f.max_ms, f.delivered, f.expected
                ),
            );
        }
    }
    g.shutdown.cancel();

    // --- Memory and the cold first frame: the real binary ------------------------------
    if want("memory") {
        daemon::measure(&plan, &cl_rt, &mut t, phones.path())?;
    }

    println!("\nratios:");
    let ssh = t.get("ssh_tunnel_mib_s");
    println!("  tunnel / ssh    {:>6.2}  (target >= 2.5)", tunnel / ssh);
    println!(
        "  tunnel / crypto {:>6.2}  (target >= 0.33)",
        tunnel / crypto
    );
    println!("  tunnel / tcp    {:>6.2}", tunnel / t.get("tcp_mib_s"));
    println!();
    for (name, value, _) in &t.rows {
        println!("metric {name} {value:.3}");
    }
    Ok(())
}
