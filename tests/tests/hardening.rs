//! End-to-end: the adversarial cases of ATTACKS.md that the foundation must survive,
//! against the real binaries on loopback. Each test is named after what it defends.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests fail loudly

use std::time::{Duration, Instant};

use latchkey_tests::{Gateway, client, latchkey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn paired(gw: &Gateway, dir: &std::path::Path) -> std::path::PathBuf {
    let c = dir.join("phone");
    let uri = gw.pair_uri(&["--auto-confirm", "--name", "phone"]).unwrap();
    client(&c, &["pair", &uri, "--name", "phone"])
        .unwrap()
        .expect_ok("pair")
        .unwrap();
    c
}

/// Connects from a chosen loopback source address (all of 127/8 is this machine).
async fn connect_from(source: [u8; 4], to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind((std::net::Ipv4Addr::from(source), 0).into())
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// ATTACKS 11: idle half-open connections cannot keep a paired phone out.
#[test]
fn a_paired_phone_connects_while_2000_idle_connections_are_held() {
    let dir = tmp();
    let gw = Gateway::start(&dir.path().join("G"), &[]).unwrap();
    let phone = paired(&gw, dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut idle = Vec::new();
    rt.block_on(async {
        for i in 0..2000u32 {
            let source = [127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8];
            idle.push(connect_from(source, gw.noise).await);
        }
    });
    // The pending pool holds at most 1,024 (preauth::Limits::max_pending); evicted
    // connections close as their tasks notice, so give it a moment to settle.
    let bound = 1024 + 128;
    let settled = latchkey_tests::wait_for(Duration::from_secs(3), || {
        let fds = gw.open_fds().unwrap();
        (fds < bound).then_some(fds)
    });
    assert!(
        settled.is_some(),
        "the pre-auth pool is bounded: {} descriptors open",
        gw.open_fds().unwrap()
    );
    let state = latchkey_client::StateDir::open(&phone).unwrap();
    let start = Instant::now();
    let conn = rt.block_on(latchkey_client::connect(&state)).unwrap();
    let cameras = rt.block_on(conn.cameras()).unwrap();
    let took = start.elapsed();
    assert_eq!(cameras.len(), 1);
    assert!(
        took < Duration::from_secs(2),
        "phone took {took:?} with 2000 idle connections held"
    );
    drop(idle);
}

/// ATTACKS 5: guessing the pairing secret closes the window, the count survives a
/// restart, the genuine code then fails too, and only a new code from the owner works.
#[test]
fn guessing_the_pairing_secret_closes_the_window_until_the_owner_reopens_it() {
    let dir = tmp();
    let g = dir.path().join("G");
    let mut gw = Gateway::start(&g, &[]).unwrap();
    let uri = gw.pair_uri(&["--auto-confirm"]).unwrap();
    let s_start = uri.find("&s=").unwrap() + 3;
    let s_end = s_start + uri[s_start..].find('&').unwrap();
    for i in 0..25u8 {
        if i == 10 {
            gw.restart(&[]).unwrap();
        }
        let guess = latchkey_pairing::keys::b64(&[i; 32]);
        let forged = format!("{}{}{}", &uri[..s_start], guess, &uri[s_end..]);
        let out = client(&dir.path().join(format!("guess{i}")), &["pair", &forged]).unwrap();
        assert!(!out.ok, "guess {i} paired!");
        // Stay under the per-source handshake rate limit (20/s), so every guess is judged.
        std::thread::sleep(Duration::from_millis(60));
    }
    let genuine = client(&dir.path().join("late"), &["pair", &uri]).unwrap();
    assert!(!genuine.ok, "the window must be closed after 20 failures");
    let audit = latchkey(&g, &["audit", "--json"]).unwrap().json().unwrap();
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"pairing-closed"), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| **k == "pairing-failed").count() >= 19,
        "{kinds:?}"
    );
    let listed = latchkey(&g, &["devices"])
        .unwrap()
        .expect_ok("devices")
        .unwrap();
    assert!(
        listed.stdout.contains("closed after 20 failed attempts"),
        "the owner sees it: {}",
        listed.stdout
    );
    let fresh = gw.pair_uri(&["--auto-confirm"]).unwrap();
    client(&dir.path().join("owner"), &["pair", &fresh])
        .unwrap()
        .expect_ok("pair with a new code")
        .unwrap();
}

/// ATTACKS 7 and 12: well-formed handshakes from unknown keys get silence, one source is
/// rate-limited, memory does not grow per attempt, and the paired phone still gets in.
#[test]
fn handshake_floods_get_silence_and_do_not_grow_memory() {
    let dir = tmp();
    let gw = Gateway::start(&dir.path().join("G"), &[]).unwrap();
    let phone = paired(&gw, dir.path());
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(phone.join("client.json")).unwrap()).unwrap();
    let gateway_key =
        latchkey_pairing::PublicKey::from_b64(record["gateway"]["public_key"].as_str().unwrap())
            .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Every refusal is held until the handshake deadline (ATTACKS 38), so attempts run
    // 250 at a time; each waits for the gateway to close and counts what came back.
    let flood = |n: u32, sources: u32| {
        rt.block_on(async {
            let attempt = |i: u32| async move {
                let mut rng = rand_core::OsRng;
                let stranger = latchkey_pairing::Keypair::generate(&mut rng).unwrap();
                let psk = latchkey_pairing::SessionPsk([1u8; 32]);
                let hello = latchkey_pairing::ClientHello {
                    timestamp_ms: u64::from(i) + 1,
                };
                let (_, first) = latchkey_pairing::SessionInitiator::start(
                    &gateway_key,
                    &stranger,
                    &psk,
                    &hello,
                    &mut rng,
                )
                .unwrap();
                let source = [
                    127,
                    0,
                    2 + (i % sources) as u8 / 250,
                    1 + (i % sources % 250) as u8,
                ];
                let mut s = connect_from(source, gw.noise).await;
                let mut frame = (first.len() as u16).to_be_bytes().to_vec();
                frame.extend_from_slice(&first);
                s.write_all(&frame).await.unwrap();
                let mut buf = [0u8; 64];
                tokio::time::timeout(Duration::from_secs(12), s.read(&mut buf))
                    .await
                    .unwrap()
                    .unwrap_or(0)
            };
            let mut bytes_back = 0usize;
            let mut running = tokio::task::JoinSet::new();
            for i in 0..n {
                if running.len() >= 250 {
                    bytes_back += running.join_next().await.unwrap().unwrap();
                }
                running.spawn(attempt(i));
            }
            while let Some(r) = running.join_next().await {
                bytes_back += r.unwrap();
            }
            bytes_back
        })
    };
    assert_eq!(flood(200, 50), 0, "unknown keys got bytes back");
    let (rss_before, _) = gw.rss_kib_and_threads().unwrap();
    assert_eq!(flood(2000, 200), 0, "unknown keys got bytes back");
    let (rss_after, _) = gw.rss_kib_and_threads().unwrap();
    assert!(
        rss_after < rss_before + 8 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB over 2000 attempts"
    );
    let log = gw.log();
    assert!(
        log.contains("session from an unknown key"),
        "the gateway saw the handshakes"
    );
    client(&phone, &["cameras"])
        .unwrap()
        .expect_ok("paired phone during and after the flood")
        .unwrap();
}

/// ATTACKS 27: SIGKILL at random moments while devices are paired and revoked. After each
/// restart the store opens, and every revocation the CLI acknowledged is still there.
#[test]
fn a_crash_at_any_moment_never_loses_an_acknowledged_revocation() {
    let dir = tmp();
    let g = dir.path().join("G");
    let mut acknowledged: Vec<String> = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..12 {
        let mut gw = Gateway::start(&g, &[]).unwrap();
        // Everything acknowledged before is still revoked.
        let devices = latchkey(&g, &["devices", "--json"])
            .unwrap()
            .expect_ok("devices after a crash")
            .unwrap()
            .json()
            .unwrap();
        for id in &acknowledged {
            let d = devices
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["id"] == id.as_str());
            assert_eq!(
                d.map(|d| d["state"].clone()),
                Some("revoked".into()),
                "round {round}: {id} came back"
            );
        }
        // Pair a phone and revoke it while a killer waits a random few milliseconds.
        let phone = dir.path().join(format!("p{round}"));
        let uri = gw
            .pair_uri(&["--auto-confirm", "--name", &format!("p{round}")])
            .unwrap();
        if client(&phone, &["pair", &uri]).unwrap().ok {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let delay = Duration::from_millis(seed % 40);
            let name = format!("p{round}");
            let state = g.clone();
            let revoker = std::thread::spawn(move || latchkey(&state, &["revoke", &name]).unwrap());
            std::thread::sleep(delay);
            gw.kill().unwrap();
            let out = revoker.join().unwrap();
            if out.ok {
                let id = out.stdout.split_whitespace().nth(1).unwrap().to_string();
                acknowledged.push(id);
            }
        } else {
            gw.kill().unwrap();
        }
    }
    let gw = Gateway::start(&g, &[]).unwrap();
    let devices = latchkey(&g, &["devices", "--json"])
        .unwrap()
        .json()
        .unwrap();
    for id in &acknowledged {
        let d = devices
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id.as_str())
            .unwrap();
        assert_eq!(d["state"], "revoked");
    }
    drop(gw);
}

/// ATTACKS 29 (viewers side) and issue 6: a thousand session and viewer connect/disconnect
/// cycles leave descriptors, threads and memory flat. (Camera drops: see the hub's
/// `a_thousand_camera_drops_leak_no_connection_or_task`.)
#[test]
fn a_thousand_session_cycles_leak_nothing() {
    let dir = tmp();
    let gw = Gateway::start(&dir.path().join("G"), &[]).unwrap();
    let phone = paired(&gw, dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = latchkey_client::StateDir::open(&phone).unwrap();
    let cycle = |n: usize| {
        rt.block_on(async {
            for _ in 0..n {
                let conn = latchkey_client::connect(&state).await.unwrap();
                conn.cameras().await.unwrap();
                // A viewer joins the live stream, takes one chunk, and leaves.
                let live = conn
                    .live("demo", latchkey_client::LiveFormat::Mjpeg)
                    .await
                    .unwrap();
                let mut body = live.into_body();
                http_body_util::BodyExt::frame(&mut body)
                    .await
                    .unwrap()
                    .unwrap();
            }
        })
    };
    cycle(50);
    std::thread::sleep(Duration::from_millis(300));
    let fds_before = gw.open_fds().unwrap();
    let (rss_before, threads_before) = gw.rss_kib_and_threads().unwrap();
    cycle(1000);
    std::thread::sleep(Duration::from_millis(500));
    let fds_after = gw.open_fds().unwrap();
    let (rss_after, threads_after) = gw.rss_kib_and_threads().unwrap();
    assert!(
        fds_after <= fds_before + 2,
        "descriptors {fds_before} -> {fds_after}"
    );
    assert!(
        threads_after <= threads_before + 4,
        "threads {threads_before} -> {threads_after}"
    );
    assert!(
        rss_after < rss_before + 6 * 1024,
        "RSS {rss_before} KiB -> {rss_after} KiB"
    );
}

/// Records the first frame a real client sends, by standing between it and the gateway.
fn record_first_frame(
    gateway: std::net::SocketAddr,
) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut phone, _) = listener.accept().unwrap();
        let mut upstream = std::net::TcpStream::connect(gateway).unwrap();
        let mut header = [0u8; 2];
        phone.read_exact(&mut header).unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(header))];
        phone.read_exact(&mut body).unwrap();
        let mut recorded = header.to_vec();
        recorded.extend_from_slice(&body);
        upstream.write_all(&recorded).unwrap();
        let mut up2 = upstream.try_clone().unwrap();
        let mut phone2 = phone.try_clone().unwrap();
        let t = std::thread::spawn(move || std::io::copy(&mut up2, &mut phone2));
        let _ = std::io::copy(&mut phone, &mut upstream);
        let _ = upstream.shutdown(std::net::Shutdown::Write);
        let _ = t.join();
        recorded
    });
    (addr, handle)
}

/// ATTACKS 1: the bytes of a real pairing, replayed after it succeeded, get silence and
/// an audit alarm.
#[test]
fn a_replayed_pairing_handshake_gets_silence_and_an_alarm() {
    let dir = tmp();
    let g = dir.path().join("G");
    let gw = Gateway::start(&g, &[]).unwrap();
    let uri = gw.pair_uri(&["--auto-confirm"]).unwrap();
    let (proxy, recorder) = record_first_frame(gw.noise);
    let via_proxy = uri.replace(
        &format!("a={}", gw.noise.to_string().replace(':', "%3A")),
        &format!("a={}", proxy.to_string().replace(':', "%3A")),
    );
    assert_ne!(via_proxy, uri);
    client(&dir.path().join("phone"), &["pair", &via_proxy])
        .unwrap()
        .expect_ok("pair through the recorder")
        .unwrap();
    let captured = recorder.join().unwrap();
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(gw.noise).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    s.write_all(&captured).unwrap();
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    assert!(back.is_empty(), "a replay got {} bytes", back.len());
    let audit = latchkey(&g, &["audit", "--json"]).unwrap().json().unwrap();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "pairing-reused"),
        "{audit}"
    );
}

/// ATTACKS 3: while one pairing is in progress, a second one with the same code gets
/// silence and is audited as busy; the first then completes.
#[test]
fn a_second_concurrent_pairing_is_refused_as_busy() {
    let dir = tmp();
    let g = dir.path().join("G");
    let gw = Gateway::start(&g, &[]).unwrap();
    let uri =
        latchkey_pairing::PairingUri::parse(&gw.pair_uri(&["--auto-confirm"]).unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use latchkey_channel::{read_frame, write_frame};
        let phone = latchkey_pairing::Keypair::generate(&mut rand_core::OsRng).unwrap();
        let (init, first) = latchkey_pairing::PairingInitiator::start(
            &uri.gateway_key,
            &uri.secret,
            &phone,
            &mut rand_core::OsRng,
        )
        .unwrap();
        let mut s = tokio::net::TcpStream::connect(gw.noise).await.unwrap();
        write_frame(&mut s, &first).await.unwrap();
        let m2 = read_frame(&mut s, 65535).await.unwrap();
        // Halfway through: another phone tries the same code.
        let other = client(&dir.path().join("other"), &["pair", &uri.encode()]).unwrap();
        assert!(!other.ok, "a concurrent pairing succeeded");
        let request = latchkey_pairing::PairRequest {
            name: "first".into(),
        };
        let (awaiting, m3) = init.read_response(&m2, &request, Duration::ZERO).unwrap();
        write_frame(&mut s, &m3).await.unwrap();
        let result = read_frame(&mut s, 65535).await.unwrap();
        let result = awaiting.read_result(&result, Duration::ZERO).unwrap();
        assert_eq!(result.state, latchkey_pairing::DeviceState::Active);
    });
    let audit = latchkey(&g, &["audit", "--json"]).unwrap().json().unwrap();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "pairing-busy"),
        "{audit}"
    );
}

/// ATTACKS 21: another local user cannot use the admin socket.
#[test]
fn another_local_user_cannot_use_the_admin_socket() {
    let dir = tmp();
    let g = dir.path().join("G");
    let gw = Gateway::start(&g, &[]).unwrap();
    // Even with the directory opened up, the socket itself is 0600 and the uid is checked.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&g, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(latchkey_tests::bin("latchkey").unwrap())
        .arg("--state")
        .arg(&g)
        .arg("devices")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "user nobody listed devices: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(gw);
}
