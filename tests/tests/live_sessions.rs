//! End-to-end: what happens to a live stream over time — key rotation mid-stream, a
//! guest's expiry mid-stream, and a revocation when the disk is full (ATTACKS 13, 15, 28).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests fail loudly

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use latchkey_client::{ClientError, LiveFormat, StateDir};
use latchkey_tests::{Gateway, client, latchkey};

fn pair(gw: &Gateway, phone: &Path, flags: &[&str]) {
    let mut args = vec!["--auto-confirm", "--name", "phone"];
    args.extend_from_slice(flags);
    let uri = gw.pair_uri(&args).unwrap();
    client(phone, &["pair", &uri, "--name", "phone"])
        .unwrap()
        .expect_ok("pair")
        .unwrap();
}

/// Reads a live MJPEG body, recording when each JPEG starts, until it ends or `limit`.
async fn watch(
    conn: &latchkey_client::Connection,
    camera: &str,
    limit: Duration,
) -> (Vec<Duration>, Option<String>) {
    let start = Instant::now();
    let response = conn.live(camera, LiveFormat::Mjpeg).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut frames = Vec::new();
    let mut tail = Vec::new();
    loop {
        let next = tokio::time::timeout(limit.saturating_sub(start.elapsed()), body.frame()).await;
        match next {
            Err(_) => return (frames, None),
            Ok(None) => return (frames, Some("ended".into())),
            Ok(Some(Err(e))) => return (frames, Some(e.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    tail.extend_from_slice(&data);
                    let starts = tail.windows(2).filter(|w| *w == [0xff, 0xd8]).count();
                    for _ in 0..starts {
                        frames.push(start.elapsed());
                    }
                    let keep = tail.len().saturating_sub(1);
                    tail.drain(..keep);
                }
            }
        }
    }
}

/// ATTACKS 13: sessions rotate keys on a schedule with no stutter. With a 1 s rotation,
/// a 6 s stream only survives if both sides rotate (the receiver refuses a key older than
/// 2.5 s), and frames keep arriving at the camera's pace across every rotation.
#[test]
fn keys_rotate_mid_stream_without_a_stutter() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&dir.path().join("G"), &["--rekey-after", "1s"]).unwrap();
    let phone = dir.path().join("phone");
    pair(&gw, &phone, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = StateDir::open(&phone).unwrap();
    let conn = rt.block_on(latchkey_client::connect(&state)).unwrap();
    assert_eq!(conn.server_hello().rekey_after_secs, 1);
    let (frames, ended) = rt.block_on(watch(&conn, "demo", Duration::from_secs(6)));
    assert_eq!(
        ended,
        None,
        "the stream broke after {} frames",
        frames.len()
    );
    assert!(frames.len() >= 30, "only {} frames in 6 s", frames.len());
    let worst = frames.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        worst < Duration::from_millis(700),
        "a {worst:?} gap between frames"
    );
}

/// ATTACKS 15: a guest's stream is cut at its expiry, and it cannot come back.
#[test]
fn a_guest_stream_ends_at_expiry_and_reconnecting_gets_silence() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&dir.path().join("G"), &[]).unwrap();
    let phone = dir.path().join("guest");
    let paired_at = Instant::now();
    pair(
        &gw,
        &phone,
        &["--role", "guest", "--cameras", "demo", "--expires", "4s"],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = StateDir::open(&phone).unwrap();
    let conn = rt.block_on(latchkey_client::connect(&state)).unwrap();
    let (frames, ended) = rt.block_on(watch(&conn, "demo", Duration::from_secs(10)));
    let cut_at = paired_at.elapsed();
    assert!(ended.is_some(), "the stream outlived the guest's expiry");
    assert!(frames.len() >= 5, "the guest saw the camera before expiry");
    assert!(
        cut_at < Duration::from_secs(7),
        "cut {cut_at:?} after pairing, expiry was 4 s"
    );
    let again = rt.block_on(latchkey_client::connect(&state)).unwrap_err();
    assert!(matches!(again, ClientError::SessionRefused), "{again}");
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs needs root (CI runs as root)");
        Self(path.to_path_buf())
    }

    fn fill(&self) {
        // Fill with a file until the kernel says no; ENOSPC is the point.
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}/filler", self.0.display()))
            .output();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// ATTACKS 28: with the disk full, pairing fails with a clear error, and a revocation
/// still cuts the phone's sessions at once and keeps it out, saying it is not yet saved.
#[test]
fn a_full_disk_fails_pairing_clearly_and_revocation_still_cuts() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "4m");
    let g = disk.0.join("G");
    let gw = Gateway::start(&g, &[]).unwrap();
    let phone = dir.path().join("phone");
    pair(&gw, &phone, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = StateDir::open(&phone).unwrap();
    let conn = rt.block_on(latchkey_client::connect(&state)).unwrap();
    rt.block_on(conn.cameras()).unwrap();

    disk.fill();
    let out = latchkey(&g, &["pair", "--uri-only"]).unwrap();
    assert!(!out.ok, "pairing on a full disk: {}", out.stdout);
    assert!(
        out.stderr.contains("full"),
        "the error says why: {}",
        out.stderr
    );

    let out = latchkey(&g, &["revoke", "phone"]).unwrap();
    assert!(!out.ok, "the CLI must not claim the revocation is saved");
    assert!(
        out.stderr.contains("NOT yet saved") && out.stderr.contains("1 live sessions were cut"),
        "{}",
        out.stderr
    );
    let cut = latchkey_tests::wait_for(Duration::from_secs(1), || {
        rt.block_on(conn.cameras()).is_err().then_some(())
    });
    assert!(cut.is_some(), "the live session survived the revocation");
    let again = rt.block_on(latchkey_client::connect(&state)).unwrap_err();
    assert!(matches!(again, ClientError::SessionRefused), "{again}");
    drop(gw);
}
