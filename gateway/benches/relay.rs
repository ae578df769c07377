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

#[path = "relay/bulk.rs"]
mod bulk;
#[path = "relay/camera.rs"]
mod camera;
#[path = "relay/daemon.rs"]
mod daemon;
#[path = "relay/fanout.rs"]
mod fanout;
#[path = "relay/measure.rs"]
mod measure;
#[path = "relay/micro.rs"]
mod micro;
#[path = "relay/tunnel.rs"]
mod tunnel;

use camera::*;
use measure::*;
use tunnel::*;

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

// ---------------------------------------------------------------------------------------
// A synthetic 8 Mbit/s, 30 fps H.264 camera. Each frame carries, right after its NAL
// header, the time it entered the gateway (nanoseconds since `origin()`).

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
        hibernate_after: latchkey_gateway::limits::HIBERNATE_AFTER,
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

// ---------------------------------------------------------------------------------------

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

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "--cold-client") {
        let (Some(state), Some(camera)) = (args.get(2), args.get(3)) else {
            bail!("usage: relay --cold-client STATE_DIR CAMERA");
        };
        return daemon::cold_client(state, camera);
    }
    if args.iter().any(|a| a == "--micro") {
        return micro::run(args.iter().any(|a| a == "--timed"));
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
    // The gateway gets one worker thread ("one core"); the clients get their own runtime,
    // also of one worker: they are pinned to one core, where a second worker would only
    // add context switches and cross-thread wake-ups (BENCHMARKS.md, round four).
    let gw_rt = runtime("lk-gw", 1);
    let cl_rt = runtime("lk-client", 1);
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
    println!("session cipher: {}", latchkey_pairing::CIPHER_BACKEND);
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
    let (mut tunnel, mut crypto) = (f64::NAN, f64::NAN);
    if want("bulk") {
        (tunnel, crypto) = bulk::run(&plan, quick, &gw_rt, &cl_rt, &g, &devices[0], &mut t)?;
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
                first_mdat(resp.into_body()).await?;
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
