//! End to end: a real RTSP camera (gst-rtsp-server), a real MJPEG camera, the real
//! `latchkey` gateway and `latchkey-client serve`, watched by real ffprobe/ffmpeg/curl.
//!
//! One test walks the whole flow because the peers take seconds to start on a 2-core
//! machine: fMP4 from RTSP, one upstream for three viewers, snapshots and MJPEG, a dead
//! camera beside live ones, grants, and revocation cutting a running stream.

// Test code: a panic is a failed test, which is what these helpers are for.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use latchkey_tests::{Gateway, bin, client, latchkey};
use serde_json::Value;
use support::{Proc, closed_port, output_ok, peer_script, until};

/// Camera status from `latchkey cameras --json`.
fn camera(state: &std::path::Path, id: &str) -> Value {
    let all = latchkey(state, &["cameras", "--json"])
        .unwrap()
        .expect_ok("latchkey cameras")
        .unwrap()
        .json()
        .unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no camera {id} in {all}"))
}

/// Pairs a new client state dir and returns its device id.
fn pair(gateway: &Gateway, phone: &std::path::Path, cameras: &str) -> String {
    let uri = gateway
        .pair_uri(&["--auto-confirm", "--cameras", cameras])
        .unwrap();
    let out = client(phone, &["pair", &uri])
        .unwrap()
        .expect_ok("latchkey-client pair")
        .unwrap()
        .stdout;
    out.split_whitespace()
        .skip_while(|w| *w != "device")
        .nth(1)
        .unwrap_or_else(|| panic!("no device id in {out:?}"))
        .to_string()
}

/// Counts JPEG parts in an MJPEG body.
fn jpeg_parts(body: &[u8]) -> usize {
    body.windows(2).filter(|w| *w == [0xff, 0xd8]).count()
}

#[test]
fn cameras_stream_through_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let gw_state = dir.path().join("gateway");
    let phone = dir.path().join("phone");
    let guest = dir.path().join("guest");

    let rtsp = Proc::spawn(
        "rtsp-cam",
        Command::new("/usr/bin/python3")
            .arg(peer_script("rtsp_cam.py"))
            .env("RTSP_PORT", "0"),
        dir.path(),
    );
    let mjpeg = Proc::spawn(
        "mjpeg-cam",
        Command::new("python3").arg(peer_script("mjpeg_cam.py")),
        dir.path(),
    );
    let rtsp_url = rtsp.wait_line("serving ", Duration::from_secs(30));
    let rtsp_port: u16 = rtsp_url
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    let mjpeg_base = mjpeg.wait_line("serving ", Duration::from_secs(30));
    let dead = closed_port();

    let cameras = [
        format!("--camera=front={rtsp_url}"),
        "--camera=demo=demo:".to_string(),
        format!("--camera=yard=mjpeg+{mjpeg_base}/mjpeg"),
        format!("--camera=still=snapshot+{mjpeg_base}/snapshot.jpg"),
        format!("--camera=dead=rtsp://127.0.0.1:{dead}/cam1"),
    ];
    let mut args = vec!["--camera-grace", "2s"];
    args.extend(cameras.iter().map(String::as_str));
    let gateway = Gateway::start(&gw_state, &args).unwrap();

    let device = pair(&gateway, &phone, "all");
    let serve = Proc::spawn(
        "serve",
        Command::new(bin("latchkey-client").unwrap())
            .arg("--state")
            .arg(&phone)
            .args(["serve", "--listen", "127.0.0.1:0"]),
        dir.path(),
    );
    let base = serve.wait_line("listening ", Duration::from_secs(10));
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    // ffprobe reads the RTSP camera as fMP4 through the channel.
    let started = Instant::now();
    let probe = output_ok(
        Command::new("timeout")
            .args(["30", "ffprobe", "-v", "error", "-show_entries"])
            .args(["stream=codec_name,width,height", "-of", "compact"])
            .arg(format!("{base}/cameras/front/live.mp4")),
    );
    eprintln!(
        "ffprobe live.mp4 ({:?}): {}",
        started.elapsed(),
        probe.trim()
    );
    assert!(probe.contains("codec_name=h264"), "{probe}");
    assert!(probe.contains("width=640|height=480"), "{probe}");

    // Three concurrent viewers, one connection to the camera.
    let viewers: Vec<_> = (0..3)
        .map(|_| {
            Command::new("timeout")
                .args(["40", "ffmpeg", "-v", "error", "-i"])
                .arg(format!("{base}/cameras/front/live.mp4"))
                .args(["-t", "5", "-f", "null", "-"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    until("three viewers on front", Duration::from_secs(20), || {
        camera(&gw_state, "front")["viewers"] == 3
    });
    let ss = output_ok(Command::new("ss").args(["-Htn", "state", "established"]));
    let to_camera = ss
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|peer| peer == format!("127.0.0.1:{rtsp_port}"))
        })
        .count();
    assert_eq!(to_camera, 1, "connections to the camera:\n{ss}");
    assert_eq!(camera(&gw_state, "front")["upstream_sessions"], 1);
    for viewer in viewers {
        let out = viewer.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let front = camera(&gw_state, "front");
    assert_eq!(front["codec"], "h264", "{front}");
    assert_eq!(
        (front["width"].clone(), front["height"].clone()),
        (640.into(), 480.into())
    );

    // Snapshots and MJPEG from the demo, MJPEG and snapshot cameras.
    let jpg = dir.path().join("x.jpg");
    output_ok(
        Command::new(bin("latchkey-client").unwrap())
            .arg("--state")
            .arg(&phone)
            .args(["snapshot", "demo", "-o"])
            .arg(&jpg),
    );
    let jpeg = std::fs::read(&jpg).unwrap();
    assert!(jpeg.starts_with(&[0xff, 0xd8]) && jpeg.ends_with(&[0xff, 0xd9]));
    for (cam, min_parts) in [("demo", 5), ("yard", 5)] {
        let body = Command::new("curl")
            .args(["-s", "--max-time", "2"])
            .arg(format!("{base}/cameras/{cam}/live.mjpeg"))
            .output()
            .unwrap()
            .stdout;
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("Content-Type: image/jpeg"), "{cam}");
        assert!(
            jpeg_parts(&body) >= min_parts,
            "{cam}: {} parts",
            jpeg_parts(&body)
        );
    }
    let still = Command::new("curl")
        .args(["-sf", "--max-time", "10"])
        .arg(format!("{base}/cameras/still/snapshot.jpg"))
        .output()
        .unwrap();
    assert!(still.status.success() && still.stdout.starts_with(&[0xff, 0xd8]));

    // A dead camera says why, and the others are unaffected.
    let started = Instant::now();
    let dead_answer = output_ok(
        Command::new("curl")
            .args(["-s", "--max-time", "20", "-w", "\n%{http_code}"])
            .arg(format!("{base}/cameras/dead/live.mp4")),
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(dead_answer.ends_with("503"), "{dead_answer}");
    assert!(dead_answer.contains("refused"), "{dead_answer}");
    let dead_status = camera(&gw_state, "dead");
    assert_eq!(dead_status["state"], "offline", "{dead_status}");
    assert!(dead_status["error"].as_str().unwrap().contains("refused"));
    let demo = Command::new("curl")
        .args(["-sf", "--max-time", "10"])
        .arg(format!("{base}/cameras/demo/snapshot.jpg"))
        .output()
        .unwrap();
    assert!(demo.status.success() && demo.stdout.starts_with(&[0xff, 0xd8]));
    assert_eq!(camera(&gw_state, "demo")["state"], "online");

    // A guest granted only `demo` cannot tell `front` from a camera that does not exist.
    pair(&gateway, &guest, "demo");
    let listed = output_ok(
        Command::new(bin("latchkey-client").unwrap())
            .arg("--state")
            .arg(&guest)
            .args(["cameras", "--json"]),
    );
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], "demo");
    let refusal = |cam: &str| {
        let out = Command::new(bin("latchkey-client").unwrap())
            .arg("--state")
            .arg(&guest)
            .args(["snapshot", cam, "-o"])
            .arg(dir.path().join("no.jpg"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).replace(cam, "CAM")
    };
    let (not_granted, missing) = (refusal("front"), refusal("nope"));
    assert!(not_granted.contains("404: no such camera"), "{not_granted}");
    assert_eq!(not_granted, missing);

    // Revoking the phone ends its running MJPEG stream within a second.
    let body_file = dir.path().join("revoked.mjpeg");
    let mut curl = Command::new("curl")
        .args(["-sN", "-o"])
        .arg(&body_file)
        .arg(format!("{base}/cameras/demo/live.mjpeg"))
        .spawn()
        .unwrap();
    until("curl receiving", Duration::from_secs(10), || {
        std::fs::metadata(&body_file).is_ok_and(|m| m.len() > 50_000)
    });
    assert!(
        curl.try_wait().unwrap().is_none(),
        "curl ended before the revocation"
    );
    let revoking = Instant::now();
    latchkey(&gw_state, &["revoke", &device])
        .unwrap()
        .expect_ok("latchkey revoke")
        .unwrap();
    until(
        "curl to end after revocation",
        Duration::from_secs(1),
        || curl.try_wait().unwrap().is_some(),
    );
    let took = revoking.elapsed();
    eprintln!("stream ended {took:?} after `latchkey revoke` started");
    assert!(took < Duration::from_secs(1), "{took:?}");

    drop((serve, gateway, mjpeg, rtsp));
}

/// An H.265 camera behind digest authentication that also sends a PCMA audio track:
/// the gateway logs in with the credentials from the camera URL, drops the audio, and
/// ffprobe reads HEVC from the client's local front. Wrong credentials show the camera
/// offline with a reason.
#[test]
fn h265_camera_with_digest_auth_and_audio() {
    let dir = tempfile::tempdir().unwrap();
    let rtsp = Proc::spawn(
        "rtsp-cam-h265",
        Command::new("/usr/bin/python3")
            .arg(peer_script("rtsp_cam.py"))
            .env("RTSP_PORT", "0")
            .env("CODEC", "h265")
            .env("AUDIO", "1")
            .env("RTSP_USER", "admin")
            .env("RTSP_PASS", "s3cret"),
        dir.path(),
    );
    let url = rtsp.wait_line("serving ", Duration::from_secs(30));
    let with_creds = url.replacen("rtsp://", "rtsp://admin:s3cret@", 1);
    let wrong = url.replacen("rtsp://", "rtsp://admin:nope@", 1);
    let gw_state = dir.path().join("gateway");
    let gateway = Gateway::start(
        &gw_state,
        &[
            &format!("--camera=hevc={with_creds}"),
            &format!("--camera=locked={wrong}"),
        ],
    )
    .unwrap();
    let phone = dir.path().join("phone");
    pair(&gateway, &phone, "all");
    let serve = Proc::spawn(
        "serve",
        Command::new(bin("latchkey-client").unwrap())
            .arg("--state")
            .arg(&phone)
            .args(["serve", "--listen", "127.0.0.1:0"]),
        dir.path(),
    );
    let base = serve.wait_line("listening ", Duration::from_secs(10));
    let probe = output_ok(
        Command::new("timeout")
            .args(["30", "ffprobe", "-v", "error", "-show_entries"])
            .args([
                "stream=codec_name,codec_type,width,height",
                "-of",
                "compact",
            ])
            .arg(format!("{base}/cameras/hevc/live.mp4")),
    );
    assert!(probe.contains("codec_name=hevc"), "{probe}");
    assert!(
        !probe.contains("codec_type=audio"),
        "audio is dropped: {probe}"
    );
    // Decodes, not just probes.
    output_ok(
        Command::new("timeout")
            .args(["40", "ffmpeg", "-v", "error", "-i"])
            .arg(format!("{base}/cameras/hevc/live.mp4"))
            .args(["-t", "2", "-f", "null", "-"]),
    );
    until(
        "the locked camera to be offline",
        Duration::from_secs(20),
        || {
            let _ = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-m", "3"])
                .arg(format!("{base}/cameras/locked/live.mp4"))
                .status();
            let c = camera(&gw_state, "locked");
            c["state"] == "offline"
        },
    );
    let locked = camera(&gw_state, "locked");
    assert!(
        locked["error"].as_str().unwrap_or("").contains("401"),
        "{locked}"
    );
    assert_eq!(camera(&gw_state, "hevc")["codec"], "h265");
}

/// ATTACKS 31 and issue 3 "bad input": cameras that send garbage RTSP, a nonsense SDP, a
/// 2 GB announced body, nothing at all, or MJPEG parts that lie about their length and are
/// not JPEGs. Each is shown offline with a reason; the gateway stays up, and the demo
/// camera beside them keeps streaming.
#[test]
fn hostile_cameras_are_offline_with_a_reason_and_harm_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = Proc::spawn(
        "hostile-cam",
        Command::new("python3").arg(peer_script("hostile_cam.py")),
        dir.path(),
    );
    let mut ports = std::collections::HashMap::new();
    for _ in 0..5 {
        let line = hostile.wait_line("serving ", Duration::from_secs(10));
        let (mode, port) = line.split_once(' ').unwrap();
        ports.insert(mode.to_string(), port.to_string());
    }
    let cams = [
        format!(
            "--camera=garbage=rtsp://127.0.0.1:{}/x",
            ports["rtsp-garbage"]
        ),
        format!(
            "--camera=badsdp=rtsp://127.0.0.1:{}/x",
            ports["rtsp-bad-sdp"]
        ),
        format!("--camera=huge=rtsp://127.0.0.1:{}/x", ports["rtsp-huge"]),
        format!("--camera=stall=rtsp://127.0.0.1:{}/x", ports["rtsp-stall"]),
        format!(
            "--camera=liar=mjpeg+http://127.0.0.1:{}/mjpeg",
            ports["mjpeg-lies"]
        ),
        "--camera=demo=demo:".to_string(),
    ];
    let args: Vec<&str> = cams.iter().map(String::as_str).collect();
    let gw_state = dir.path().join("gateway");
    let mut gateway = Gateway::start(&gw_state, &args).unwrap();
    let phone = dir.path().join("phone");
    pair(&gateway, &phone, "all");
    let serve = Proc::spawn(
        "serve",
        Command::new(bin("latchkey-client").unwrap())
            .arg("--state")
            .arg(&phone)
            .args(["serve", "--listen", "127.0.0.1:0"]),
        dir.path(),
    );
    let base = serve.wait_line("listening ", Duration::from_secs(10));
    // Ask every hostile camera for a stream (each request starts its upstream).
    let askers: Vec<_> = ["garbage", "badsdp", "huge", "stall"]
        .iter()
        .map(|c| ("live.mp4", *c))
        .chain([("live.mjpeg", "liar")])
        .map(|(file, cam)| {
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-m", "20"])
                .arg(format!("{base}/cameras/{cam}/{file}"))
                .spawn()
                .unwrap()
        })
        .collect();
    for cam in ["garbage", "badsdp", "huge", "stall", "liar"] {
        until(
            &format!("{cam} to be offline with a reason"),
            Duration::from_secs(45),
            || {
                let c = camera(&gw_state, cam);
                c["state"] == "offline" && c["error"].as_str().is_some_and(|e| !e.is_empty())
            },
        );
    }
    for mut a in askers {
        let _ = a.kill();
        let _ = a.wait();
    }
    let body = Command::new("curl")
        .args(["-s", "-m", "3"])
        .arg(format!("{base}/cameras/demo/live.mjpeg"))
        .output()
        .unwrap()
        .stdout;
    assert!(
        jpeg_parts(&body) >= 5,
        "the demo camera kept streaming: {} parts",
        jpeg_parts(&body)
    );
    assert!(
        !gateway.log().contains("panicked"),
        "the gateway panicked:\n{}",
        gateway.log()
    );
    gateway
        .stop()
        .expect("the gateway is still running and stops cleanly");
}
