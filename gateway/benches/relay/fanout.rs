//! Fan-out figures: N viewers of synthetic 8 Mbit/s cameras in the in-process gateway,
//! each viewer on its own session, spread over phones within the per-device limits.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use latchkey_client::LiveFormat;
use latchkey_gateway::Gateway;
use latchkey_gateway::limits::{MAX_LIVE_STREAMS_PER_DEVICE, MAX_SESSIONS_PER_DEVICE};
use tokio::runtime::Runtime;

use super::{Device, FPS, Mp4Reader, ms, origin, percentile, stamp_of, threads_cpu};

/// One fan-out scenario's figures.
pub struct FanoutFigures {
    pub cpu_pct: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub delivered: usize,
    pub expected: usize,
    pub wall: Duration,
}

/// Phones needed so that `viewers` sessions, one live stream each, stay within the
/// per-device session and live-stream limits.
pub fn phones_for(viewers: usize) -> usize {
    viewers.div_ceil(MAX_SESSIONS_PER_DEVICE.min(MAX_LIVE_STREAMS_PER_DEVICE))
}

/// Waits until the gateway holds no session of any of `devices` (the previous scenario's
/// sessions are gone), so the next one starts within the per-device caps.
pub fn wait_sessions_closed(cl_rt: &Runtime, gw: &Gateway, devices: &[Arc<Device>]) {
    cl_rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let open: usize = devices
                .iter()
                .filter_map(|d| d.id.get())
                .map(|id| gw.sessions.count(id))
                .sum();
            if open == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!("warning: sessions of the previous scenario still open after 10 s");
    });
}

/// `viewers` viewers over `cameras` (viewer i watches camera i mod len), measured for
/// `secs` after a warm-up that lets the joins' GOP bursts drain.
pub fn run(
    cl_rt: &Runtime,
    addr: SocketAddr,
    devices: &[Arc<Device>],
    viewers: usize,
    cameras: &[String],
    secs: f64,
) -> anyhow::Result<FanoutFigures> {
    anyhow::ensure!(
        devices.len() >= phones_for(viewers),
        "{viewers} viewers need {} phones",
        phones_for(viewers)
    );
    let recording = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let frames_seen = Arc::new(AtomicU64::new(0));
    let per_phone = MAX_SESSIONS_PER_DEVICE.min(MAX_LIVE_STREAMS_PER_DEVICE);
    let (cpu, wall) = cl_rt.block_on(async {
        let mut conns = Vec::new();
        let mut tasks = Vec::new();
        // Joining viewers when the clients' core is already full can take for ever:
        // give up rather than hang (the figure is then missing, with a warning).
        let give_up = Instant::now() + Duration::from_secs(60);
        for i in 0..viewers {
            if Instant::now() > give_up {
                for task in &tasks {
                    tokio::task::JoinHandle::abort(task);
                }
                anyhow::bail!("only {i} of {viewers} viewers joined within 60 s");
            }
            let conn = devices[i / per_phone].connect(addr).await?;
            let camera = &cameras[i % cameras.len()];
            let resp = conn.live(camera, LiveFormat::Mp4).await?;
            anyhow::ensure!(resp.status() == 200, "viewer {i}: {}", resp.status());
            let (recording, latencies, frames_seen) =
                (recording.clone(), latencies.clone(), frames_seen.clone());
            tasks.push(tokio::spawn(async move {
                let mut body = resp.into_body();
                let mut reader = Mp4Reader::default();
                let mut mine = Vec::new();
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(data) = frame.into_data() {
                        reader.push(&data, |mdat| {
                            if recording.load(Ordering::Relaxed) {
                                let stamp = stamp_of(mdat);
                                mine.push(ms(origin().elapsed().saturating_sub(stamp)));
                            }
                        });
                    }
                    if !mine.is_empty() && !recording.load(Ordering::Relaxed) {
                        frames_seen.fetch_add(mine.len() as u64, Ordering::Relaxed);
                        latencies.lock().unwrap().append(&mut mine);
                    }
                }
            }));
            conns.push(conn);
        }
        // Let the GOP-cache bursts of the joins drain before measuring.
        tokio::time::sleep(Duration::from_secs(2) + Duration::from_millis(4 * viewers as u64))
            .await;
        recording.store(true, Ordering::Relaxed);
        let cpu0 = threads_cpu("lk-gw");
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        let cpu = threads_cpu("lk-gw") - cpu0;
        let wall = started.elapsed();
        recording.store(false, Ordering::Relaxed);
        // Each viewer hands its samples over at its next frame.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for task in &tasks {
            task.abort();
        }
        drop(conns);
        anyhow::Ok((cpu, wall))
    })?;
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap());
    lat.sort_by(|a, b| a.total_cmp(b));
    let expected = (wall.as_secs_f64() * FPS as f64) as usize * viewers;
    Ok(FanoutFigures {
        cpu_pct: 100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(f64::NAN),
        delivered: lat.len(),
        expected,
        wall,
    })
}
