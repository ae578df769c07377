//! Figures of the real `latchkey` binary: idle memory, memory per session (hibernated,
//! and awake before that) and per live viewer, and the first frame seen by a new phone
//! process (`--cold-client`).
//!
//! The daemon watches a real RTSP camera (`tests/peers/rtsp_cam.py`: gst-rtsp-server,
//! x264, the end-to-end tests' peer), so `live.mp4` runs the product's whole path.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http_body_util::BodyExt as _;
use latchkey_client::{LiveFormat, StateDir};
use latchkey_gateway::limits::{HIBERNATE_AFTER, MAX_SESSIONS_PER_DEVICE};
use tokio::runtime::Runtime;

use super::{Device, Plan, Table, first_mdat, median, ms, percentile, pin_cmd, rss_kib};

const LATCHKEY: &str = env!("CARGO_BIN_EXE_latchkey");
const RTSP_CAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/peers/rtsp_cam.py");

/// A child process killed on drop.
struct Kid(Child);

impl Drop for Kid {
    /// SIGTERM first (a profiler wrapping the daemon writes its output on exit), then
    /// SIGKILL after 10 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Daemon {
    child: Kid,
    noise: SocketAddr,
    state: PathBuf,
}

/// The RTSP camera peer; returns it and its URL.
fn rtsp_camera(dir: &Path) -> anyhow::Result<(Kid, String)> {
    let mut child = pin_cmd("/usr/bin/python3", 1)
        .arg(RTSP_CAM)
        .env("RTSP_PORT", "0")
        .env("FPS", "30")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("rtsp.log"))?)
        .spawn()
        .context("starting tests/peers/rtsp_cam.py (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly)")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let kid = Kid(child);
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .context("rtsp_cam.py ended without serving (see its log)")??;
        if let Some(url) = line.strip_prefix("serving ") {
            break url.to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Ok((kid, url))
}

fn start_daemon(dir: &Path, camera: &str) -> anyhow::Result<Daemon> {
    let state = dir.join("state");
    // LATCHKEY_BENCH_DAEMON_WRAP="valgrind --tool=massif ..." runs the daemon under a
    // profiler (its figures are then the profiler's, not the product's).
    let wrap = std::env::var("LATCHKEY_BENCH_DAEMON_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut cmd = match words.next() {
        Some(program) => {
            let mut c = pin_cmd(program, 0);
            c.args(words).arg(LATCHKEY);
            c
        }
        None => pin_cmd(LATCHKEY, 0),
    };
    let mut child = cmd
        .arg("--state")
        .arg(&state)
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--camera",
            "demo=demo:",
            "--camera",
        ])
        .arg(format!("cam={camera}"))
        .env("LATCHKEY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("log"))?)
        .spawn()
        .context("starting latchkey run")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let child = Kid(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut noise = None;
    for line in lines.by_ref() {
        let line = line?;
        if let Some(a) = line.strip_prefix("listening noise ") {
            noise = Some(a.parse()?);
        }
        if line.starts_with("admin certificate") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    Ok(Daemon {
        child,
        noise: noise.context("latchkey printed no noise address")?,
        state,
    })
}

fn pair_daemon(d: &Daemon, cl_rt: &Runtime, dir: &Path) -> anyhow::Result<Device> {
    let out = Command::new(LATCHKEY)
        .arg("--state")
        .arg(&d.state)
        .args(["pair", "--uri-only", "--auto-confirm"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "latchkey pair: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uri = latchkey_pairing::PairingUri::parse(String::from_utf8(out.stdout)?.trim())?;
    let state = StateDir::open(dir)?;
    cl_rt.block_on(latchkey_client::pair(&state, &uri, "idle"))?;
    Device::load(&state)
}

/// Reads a live body to its end; `first` gets the first complete `mdat`.
async fn watch(conn: &latchkey_client::Connection, camera: &str) -> anyhow::Result<()> {
    let resp = conn.live(camera, LiveFormat::Mp4).await?;
    anyhow::ensure!(resp.status() == 200, "live.mp4: {}", resp.status());
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        drop(frame?);
    }
    Ok(())
}

/// The memory figures and the cold first frame, through the real binary.
pub fn measure(plan: &Plan, cl_rt: &Runtime, t: &mut Table, phones: &Path) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (_camera, url) = rtsp_camera(dir.path())?;
    let daemon = start_daemon(dir.path(), &url)?;
    let pid = daemon.child.0.id();
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = rss_kib(pid);
    // Sessions spread over phones, each holding its maximum.
    let per_phone = MAX_SESSIONS_PER_DEVICE;
    // Twice the sessions: a second set hibernates after the first (see below).
    let phone_dirs: Vec<PathBuf> = (0..(2 * plan.idle_sessions).div_ceil(per_phone))
        .map(|i| phones.join(format!("idle{i}")))
        .collect();
    let idle_phones = phone_dirs
        .iter()
        .map(|p| pair_daemon(&daemon, cl_rt, p).map(Arc::new))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let noise = daemon.noise;
    let viewers = plan.memory_viewers.min(plan.idle_sessions);
    let figures = cl_rt.block_on(async {
        // One session first, so one-time allocations are not charged to the rest.
        drop(idle_phones[0].connect(noise).await?);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let base = rss_kib(pid);
        let cpu0 = super::process_cpu(pid);
        let n = plan.idle_sessions;
        let mut held = Vec::with_capacity(n);
        for i in 0..n {
            held.push(Arc::new(idle_phones[i / per_phone].connect(noise).await?));
        }
        let cpu = super::process_cpu(pid) - cpu0;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let awake = rss_kib(pid);
        // With no request they hibernate after the product's own delay (PROTOCOL.md §8.1).
        // The allocator keeps what their HTTP/2 connections freed (RSS stays at the
        // peak), ready for the next connections: a second set of as many sessions, also
        // awake at first, reuses it, and what RSS grows by once they hibernated too is
        // what a hibernated session holds.
        let hibernate = HIBERNATE_AFTER + Duration::from_secs(5);
        tokio::time::sleep(hibernate).await;
        let first_set = rss_kib(pid);
        let mut more = Vec::with_capacity(n);
        for i in n..2 * n {
            more.push(idle_phones[i / per_phone].connect(noise).await?);
        }
        tokio::time::sleep(hibernate).await;
        let second_set = rss_kib(pid);
        anyhow::ensure!(
            held.iter().all(|c| !c.is_closed()) && more.iter().all(|c| !c.is_closed()),
            "a hibernated session closed"
        );
        drop(more);
        tokio::time::sleep(Duration::from_millis(500)).await;
        // One viewer warms the camera (upstream, GOP cache), then `viewers` more attach,
        // each on its own session, woken first (a live stream is charged to an awake one).
        let keeper = held[0].clone();
        let keep = tokio::spawn(async move { watch(&keeper, "cam").await });
        for conn in held.iter().skip(1).take(viewers) {
            conn.cameras().await?;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let one = rss_kib(pid);
        let mut watching = Vec::new();
        for conn in held.iter().skip(1).take(viewers) {
            let conn = conn.clone();
            watching.push(tokio::spawn(async move { watch(&conn, "cam").await }));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let with_viewers = rss_kib(pid);
        for w in &watching {
            anyhow::ensure!(!w.is_finished(), "a viewer's stream ended early");
        }
        for w in watching {
            w.abort();
        }
        // Free every session but the keeper's, so the cold clients find room.
        held.truncate(1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        anyhow::Ok((
            (base, awake, first_set, second_set),
            cpu,
            one,
            with_viewers,
            keep,
        ))
    })?;
    let ((base, awake, first_set, second_set), cpu_hs, one, with_viewers, keep) = figures;
    let n = plan.idle_sessions;
    t.add(
        "idle_session_kib",
        second_set.saturating_sub(first_set) as f64 / n as f64,
        format!(
            "latchkey binary, RSS {first_set} -> {second_set} KiB with {n} more sessions hibernated ({} s idle; the first {n}, hibernated: {base} -> {first_set} KiB)",
            (HIBERNATE_AFTER + Duration::from_secs(5)).as_secs()
        ),
    );
    t.add(
        "awake_session_kib",
        awake.saturating_sub(base) as f64 / n as f64,
        format!(
            "the same sessions 1 s after connecting, HTTP/2 up: RSS {base} -> {awake} KiB (+HTTP/2 setup: {:.0} sessions per CPU-s)",
            n as f64 / cpu_hs.as_secs_f64()
        ),
    );
    t.add(
        "viewer_kib",
        with_viewers.saturating_sub(one) as f64 / viewers as f64,
        format!(
            "live.mp4 of a real RTSP camera on an idle session: RSS {one} -> {with_viewers} KiB with {viewers} more viewers"
        ),
    );
    t.add(
        "idle_rss_mib",
        idle_rss as f64 / 1024.0,
        "latchkey binary, demo + RTSP camera configured, no viewers",
    );
    // A new phone process per sample, each from its own phone's state directory.
    let mut cold = Vec::new();
    let mut spawn_ms = Vec::new();
    for dir in phone_dirs.iter().skip(1).take(plan.cold_samples) {
        let started = Instant::now();
        let out = pin_cmd(&std::env::current_exe()?.to_string_lossy(), 1)
            .arg("--cold-client")
            .arg(dir)
            .arg("cam")
            .stderr(Stdio::inherit())
            .output()
            .context("running the cold client")?;
        spawn_ms.push(ms(started.elapsed()));
        let text = String::from_utf8_lossy(&out.stdout);
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix("cold_first_frame_ms "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .with_context(|| format!("cold client failed: {text}"))?;
        cold.push(value);
        std::thread::sleep(Duration::from_millis(150));
    }
    keep.abort();
    let mut sorted = cold.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    t.add(
        "cold_first_frame_ms",
        median(cold.clone()),
        format!(
            "new process, connect to whole keyframe via the real binary; min {:.1} max {:.1} over {}; process start to exit median {:.0} ms",
            sorted.first().copied().unwrap_or(f64::NAN),
            percentile(&sorted, 1.0),
            cold.len(),
            median(spawn_ms)
        ),
    );
    Ok(())
}

/// `relay --cold-client STATE_DIR CAMERA`: a new phone process. Times the phone
/// library's public path from the state on disk and TCP connect through the handshake,
/// `GET live.mp4` and the whole first keyframe; prints `cold_first_frame_ms N`.
pub fn cold_client(state: &str, camera: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let elapsed = rt.block_on(async {
        let dir = StateDir::open(Path::new(state))?;
        let started = Instant::now();
        let conn = latchkey_client::connect(&dir).await?;
        let resp = conn.live(camera, LiveFormat::Mp4).await?;
        anyhow::ensure!(resp.status() == 200, "live.mp4: {}", resp.status());
        first_mdat(resp.into_body()).await?;
        anyhow::Ok(started.elapsed())
    })?;
    println!("cold_first_frame_ms {:.3}", ms(elapsed));
    Ok(())
}
