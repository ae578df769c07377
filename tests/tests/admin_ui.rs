//! End-to-end tests of the LAN admin UI (curl and a pinned rustls client against the real
//! daemon), of owner actions from phones through the Noise channel, and a real headless
//! Chromium driven by Playwright (tests/browser/).
// Tests index JSON answers and fail loudly: the workspace's panic lints guard the daemon,
// not its tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use latchkey_tests::{Gateway, client, latchkey, wait_for};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("latchkey-admin-ui-")
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir: {e}"))
}

/// One answer from curl.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Runs `curl -k` against the admin UI; `args` go before the URL.
fn curl(gw: &Gateway, path: &str, args: &[&str]) -> anyhow::Result<Answer> {
    let url = format!("https://{}{path}", gw.admin);
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "20", "-D", "-", "-o", "-"])
        .args(args)
        .arg(&url)
        .output()
        .context("running curl (apt-get install curl)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (headers, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .unwrap_or((text.clone(), String::new()));
    let status = headers
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status from curl {url}: {text:?}"))?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A logged-in browser session, as curl sees it.
struct Session {
    jar: PathBuf,
    csrf: String,
    origin: String,
}

impl Session {
    fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "-b".into(),
            self.jar.to_string_lossy().into_owned(),
            "-H".into(),
            format!("Origin: {}", self.origin),
            "-H".into(),
            "Sec-Fetch-Site: same-origin".into(),
            "-H".into(),
            format!("X-CSRF-Token: {}", self.csrf),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    fn get(&self, gw: &Gateway, path: &str) -> anyhow::Result<Answer> {
        let args = self.args(&[]);
        curl(
            gw,
            path,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    }

    fn post(&self, gw: &Gateway, path: &str, body: &str) -> anyhow::Result<Answer> {
        let args = self.args(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
        ]);
        curl(
            gw,
            path,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    }
}

fn origin(gw: &Gateway) -> String {
    format!("https://{}", gw.admin)
}

/// Sets the password through the printed setup link, returning a logged-in session.
fn set_up(gw: &Gateway, dir: &Path) -> anyhow::Result<Session> {
    let link = gw.setup_link.as_deref().context("no setup link printed")?;
    let token = link
        .split_once('#')
        .context("setup link has no fragment")?
        .1;
    let jar = dir.join("cookies.txt");
    let body = serde_json::json!({ "token": token, "password": PASSWORD }).to_string();
    let a = curl(
        gw,
        "/setup",
        &[
            "-c",
            &jar.to_string_lossy(),
            "-X",
            "POST",
            "-H",
            &format!("Origin: {}", origin(gw)),
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
        ],
    )?;
    if a.status != 200 {
        bail!("setup failed: {a:?}");
    }
    let cookie = a
        .headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .context("no cookie")?
        .to_string();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "__Host-latchkey="] {
        assert!(cookie.contains(flag), "{flag} missing from {cookie}");
    }
    let s = curl(gw, "/api/session", &["-b", &jar.to_string_lossy()])?;
    let csrf = s.json()["csrf"]
        .as_str()
        .context("no csrf token")?
        .to_string();
    Ok(Session {
        jar,
        csrf,
        origin: origin(gw),
    })
}

fn login(gw: &Gateway, password: &str) -> anyhow::Result<Answer> {
    let body = serde_json::json!({ "password": password }).to_string();
    curl(
        gw,
        "/login",
        &[
            "-X",
            "POST",
            "-H",
            &format!("Origin: {}", origin(gw)),
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
        ],
    )
}

#[test]
fn every_route_needs_a_session_and_answers_with_security_headers() -> anyhow::Result<()> {
    let dir = tmp();
    let gw = Gateway::start(&dir.path().join("gw"), &[])?;
    for path in [
        "/api/devices",
        "/api/cameras",
        "/api/remote",
        "/api/remote/plan",
        "/api/remote/audit",
        "/api/audit",
        "/api/session",
        "/api/quarantine/report",
        "/cameras/demo/live.mjpeg",
        "/cameras/demo/snapshot.jpg",
    ] {
        let a = curl(&gw, path, &[])?;
        assert_eq!(a.status, 401, "GET {path}: {a:?}");
    }
    for path in [
        "/",
        "/pair",
        "/devices",
        "/cameras",
        "/remote",
        "/audit",
        "/quarantine",
        "/nope",
    ] {
        let a = curl(&gw, path, &[])?;
        assert!(a.status == 303 || a.status == 401, "GET {path}: {a:?}");
        if a.status == 303 {
            assert!(a.headers.contains("location: /login"), "{a:?}");
        }
    }
    let same_origin = format!("Origin: {}", origin(&gw));
    for path in [
        "/api/pair",
        "/api/devices/x/revoke",
        "/api/devices/x/confirm",
        "/api/devices/x/reject",
        "/api/devices/x/grants",
        "/api/remote/open",
        "/api/remote/close",
        "/api/remote/audit/1/remove",
        "/logout",
    ] {
        let a = curl(&gw, path, &["-X", "POST", "-H", &same_origin, "-d", "{}"])?;
        assert_eq!(a.status, 401, "POST {path}: {a:?}");
    }
    for path in ["/login", "/setup", "/static/app.js", "/static/app.css"] {
        let a = curl(&gw, path, &[])?;
        assert_eq!(a.status, 200, "GET {path}: {a:?}");
    }
    let a = curl(&gw, "/login", &[])?;
    for h in [
        "content-security-policy: default-src 'none'; script-src 'self'",
        "frame-ancestors 'none'",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
    ] {
        assert!(a.headers.contains(h), "{h} missing: {}", a.headers);
    }
    // The page shows the certificate fingerprint the daemon printed.
    assert!(a.body.contains(&gw.cert_fingerprint), "{}", a.body);
    // DNS rebinding: a foreign Host name is refused before any handler.
    let port = gw.admin.port();
    let a = curl(
        &gw,
        "/login",
        &["-H", &format!("Host: rebind.example:{port}")],
    )?;
    assert_eq!(a.status, 421, "{a:?}");
    // A bounded body.
    let big = "x".repeat(100_000);
    let a = curl(
        &gw,
        "/login",
        &[
            "-X",
            "POST",
            "-H",
            &same_origin,
            "-H",
            "Content-Type: application/json",
            "-d",
            &big,
        ],
    )?;
    assert_eq!(a.status, 413, "{a:?}");
    Ok(())
}

#[test]
fn setup_link_is_single_use_and_cross_origin_posts_change_nothing() -> anyhow::Result<()> {
    let dir = tmp();
    let state = dir.path().join("gw");
    let gw = Gateway::start(&state, &[])?;
    let s = set_up(&gw, dir.path())?;
    // The link cannot be used twice.
    let link = gw.setup_link.clone().unwrap_or_default();
    let token = link.split_once('#').map(|t| t.1).unwrap_or_default();
    let again = serde_json::json!({ "token": token, "password": "another long password" });
    let a = curl(
        &gw,
        "/setup",
        &[
            "-X",
            "POST",
            "-H",
            &format!("Origin: {}", origin(&gw)),
            "-H",
            "Content-Type: application/json",
            "-d",
            &again.to_string(),
        ],
    )?;
    assert!(a.status == 403 || a.status == 409, "{a:?}");
    assert_eq!(login(&gw, PASSWORD)?.status, 200);

    // A paired phone to try to revoke.
    let uri = gw.pair_uri(&["--auto-confirm", "--role", "viewer"])?;
    let phone = dir.path().join("phone");
    client(&phone, &["pair", &uri, "--name", "kid"])?.expect_ok("pair")?;
    let kid = gw.device_id("kid")?;

    let jar = s.jar.to_string_lossy().into_owned();
    let csrf = format!("X-CSRF-Token: {}", s.csrf);
    let attempts: [(&str, Vec<&str>); 4] = [
        ("another origin", vec!["-H", "Origin: https://evil.example"]),
        ("cross-site fetch", vec!["-H", "Sec-Fetch-Site: cross-site"]),
        (
            "same-site, other port",
            vec![
                "-H",
                "Origin: http://127.0.0.1:1",
                "-H",
                "Sec-Fetch-Site: same-site",
            ],
        ),
        ("no origin at all", vec![]),
    ];
    for (what, headers) in &attempts {
        for path in [
            "/api/remote/open".to_string(),
            format!("/api/devices/{kid}/revoke"),
        ] {
            let mut args = vec![
                "-b",
                &jar,
                "-H",
                &csrf,
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                r#"{"ipv4":true,"lease_secs":3600}"#,
            ];
            args.extend(headers.iter().copied());
            let a = curl(&gw, &path, &args)?;
            assert_eq!(a.status, 403, "{what} POST {path}: {a:?}");
        }
    }
    // Same origin but without the CSRF token: refused too.
    let a = curl(
        &gw,
        "/api/remote/open",
        &[
            "-b",
            &jar,
            "-X",
            "POST",
            "-H",
            &format!("Origin: {}", origin(&gw)),
            "-H",
            "Content-Type: application/json",
            "-d",
            "{}",
        ],
    )?;
    assert_eq!(a.status, 403, "{a:?}");
    // Nothing opened, nothing revoked.
    let status = latchkey(&state, &["remote", "status", "--json"])?.expect_ok("remote status")?;
    assert!(status.json()?["approval"].is_null(), "{}", status.stdout);
    let devices = s.get(&gw, "/api/devices")?.json();
    let kid_state = devices
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["id"] == kid.as_str())
        .map(|d| d["state"].clone());
    assert_eq!(kid_state, Some(Value::from("active")));

    // With origin and token, the owner's own page can act.
    let a = s.post(&gw, &format!("/api/devices/{kid}/revoke"), "null")?;
    assert_eq!(a.status, 200, "{a:?}");
    let a = s.post(
        &gw,
        "/api/pair",
        r#"{"role":"guest","cameras":"demo","expires_secs":3600}"#,
    )?;
    assert_eq!(a.status, 200, "{a:?}");
    let j = a.json();
    assert!(
        j["uri"]
            .as_str()
            .unwrap_or("")
            .starts_with("latchkey://pair?")
    );
    assert!(j["svg"].as_str().unwrap_or("").starts_with("<svg"));
    let audit = s.get(&gw, "/api/audit?kind=device-revoked")?.json();
    assert_eq!(audit["total"], 1, "{audit}");
    let a = s.post(&gw, "/logout", "null")?;
    assert_eq!(a.status, 200);
    assert_eq!(s.get(&gw, "/api/devices")?.status, 401);
    Ok(())
}

#[test]
fn wrong_passwords_back_off() -> anyhow::Result<()> {
    let dir = tmp();
    let gw = Gateway::start(&dir.path().join("gw"), &[])?;
    // Before setup, logging in explains where the setup link is.
    assert_eq!(login(&gw, PASSWORD)?.status, 409);
    set_up(&gw, dir.path())?;
    for _ in 0..3 {
        assert_eq!(login(&gw, "not the password")?.status, 401);
    }
    // Now even the right password is not checked until the back-off ends.
    let a = login(&gw, PASSWORD)?;
    assert_eq!(a.status, 429, "{a:?}");
    let retry: u64 = a
        .headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after: ")
                .map(str::to_string)
        })
        .and_then(|v| v.trim().parse().ok())
        .context("no Retry-After")?;
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    std::thread::sleep(Duration::from_secs(retry));
    let a = login(&gw, PASSWORD)?;
    assert_eq!(a.status, 200, "{a:?}");
    let rows = latchkey(&gw.state, &["audit", "--json"])?.json()?;
    let failed = rows
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == "admin-login-failed")
        .count();
    assert_eq!(failed, 3);
    Ok(())
}

/// Accepts exactly the certificate whose SHA-256 the daemon printed: the pinning an owner
/// does by eye, done by a test.
#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest;
        let fp = sha2::Sha256::digest(end_entity.as_ref())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        if fp == self.fingerprint {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate {fp} is not the pinned one"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS connection to the admin UI that only succeeds against the pinned certificate.
fn pinned_tls(
    gw: &Gateway,
) -> anyhow::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            fingerprint: gw.cert_fingerprint.clone(),
            provider,
        }))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
    let conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let tcp = TcpStream::connect(gw.admin)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

#[test]
fn slow_headers_are_cut_at_the_header_timeout() -> anyhow::Result<()> {
    let dir = tmp();
    let gw = Gateway::start(&dir.path().join("gw"), &[])?;
    let mut tls = pinned_tls(&gw)?;
    // Half a request head, then nothing: a slowloris.
    tls.write_all(format!("GET /login HTTP/1.1\r\nHost: {}\r\nX-Slow: ", gw.admin).as_bytes())?;
    tls.flush()?;
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                bail!("still open after {:?}: no header timeout", start.elapsed())
            }
            Err(_) => break,
        }
    }
    let took = start.elapsed();
    // HEADER_READ_TIMEOUT is 10 s: closed then, not before and not much later.
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(20),
        "closed after {took:?}"
    );
    let text = String::from_utf8_lossy(&got);
    assert!(!text.contains("200 OK"), "{text}");
    // A complete request on a fresh connection is answered at once.
    let mut tls = pinned_tls(&gw)?;
    tls.write_all(
        format!(
            "GET /login HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            gw.admin
        )
        .as_bytes(),
    )?;
    let mut all = Vec::new();
    let _ = tls.read_to_end(&mut all);
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    Ok(())
}

#[test]
fn certificate_fingerprint_is_identical_across_a_restart() -> anyhow::Result<()> {
    let dir = tmp();
    let mut gw = Gateway::start(&dir.path().join("gw"), &[])?;
    let before = gw.cert_fingerprint.clone();
    pinned_tls(&gw)?;
    set_up(&gw, dir.path())?;
    gw.restart(&[])?;
    assert_eq!(gw.cert_fingerprint, before);
    // What is served is what is printed, and no setup link once a password is set.
    pinned_tls(&gw)?;
    assert!(gw.setup_link.is_none(), "{:?}", gw.setup_link);
    assert_eq!(login(&gw, PASSWORD)?.status, 200);
    Ok(())
}

#[test]
fn owner_phones_manage_devices_and_viewers_are_refused_and_audited() -> anyhow::Result<()> {
    let dir = tmp();
    let state = dir.path().join("gw");
    let gw = Gateway::start(&state, &[])?;
    let owner = dir.path().join("owner");
    let viewer = dir.path().join("viewer");
    let uri = gw.pair_uri(&["--role", "owner", "--auto-confirm"])?;
    client(&owner, &["pair", &uri, "--name", "owner-phone"])?.expect_ok("pair owner")?;
    let uri = gw.pair_uri(&["--role", "viewer", "--auto-confirm"])?;
    client(&viewer, &["pair", &uri, "--name", "viewer-phone"])?.expect_ok("pair viewer")?;
    let owner_id = gw.device_id("owner-phone")?;
    let viewer_id = gw.device_id("viewer-phone")?;

    // The viewer asks for each owner action: refused (403), audited, nothing changes.
    for args in [
        vec!["devices"],
        vec!["revoke", owner_id.as_str()],
        vec!["confirm", owner_id.as_str()],
        vec!["invite", "--role", "guest"],
        vec!["audit"],
    ] {
        let r = client(&viewer, &args)?;
        assert!(!r.ok, "viewer {args:?} succeeded: {}", r.stdout);
        assert!(r.stderr.contains("403"), "viewer {args:?}: {}", r.stderr);
    }
    let rows = latchkey(&state, &["audit", "--json"])?.json()?;
    let refused: Vec<&Value> = rows
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == "owner-action-refused")
        .collect();
    assert_eq!(refused.len(), 5, "{rows}");
    assert!(refused.iter().all(|r| r["device"] == viewer_id.as_str()));
    assert!(refused.iter().all(|r| {
        r["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:"))
    }));
    let list = latchkey(&state, &["devices", "--json"])?.json()?;
    assert!(
        list.as_array()
            .into_iter()
            .flatten()
            .all(|d| d["state"] == "active"),
        "{list}"
    );

    // The owner phone: lists devices, invites a guest, the guest pairs, gets revoked.
    let r = client(&owner, &["devices", "--json"])?.expect_ok("owner devices")?;
    assert_eq!(r.json()?.as_array().map(Vec::len), Some(2));
    let r = client(
        &owner,
        &[
            "invite",
            "--role",
            "guest",
            "--cameras",
            "demo",
            "--expires",
            "24h",
        ],
    )?
    .expect_ok("owner invite")?;
    let invitation = r.stdout.trim().to_string();
    assert!(invitation.starts_with("latchkey://pair?"), "{invitation}");
    let guest = dir.path().join("guest");
    client(&guest, &["pair", &invitation, "--name", "babysitter"])?.expect_ok("guest pairs")?;
    let guest_id = gw.device_id("babysitter")?;
    // Not auto-confirmed: the owner phone confirms after comparing codes.
    assert!(!client(&guest, &["cameras"])?.ok);
    client(&owner, &["confirm", &guest_id])?.expect_ok("owner confirms")?;
    let cams = client(&guest, &["cameras", "--json"])?.expect_ok("guest cameras")?;
    assert_eq!(cams.json()?.as_array().map(Vec::len), Some(1));
    let list = client(&owner, &["devices", "--json"])?.json()?;
    let g = list
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["id"] == guest_id.as_str())
        .context("guest missing")?;
    assert_eq!(g["role"], "guest");
    assert_eq!(g["cameras"], "demo");
    assert!(g["expires_at"].as_u64().is_some());
    // An owner phone cannot mint another owner.
    assert!(!client(&owner, &["invite", "--role", "owner"])?.ok);
    client(&owner, &["revoke", "babysitter"])?.expect_ok("owner revokes")?;
    assert!(
        wait_for(Duration::from_secs(2), || (!client(&guest, &["cameras"])
            .ok()?
            .ok)
            .then_some(()))
        .is_some()
    );
    let audit = client(&owner, &["audit", "--json", "--limit", "200"])?.expect_ok("owner audit")?;
    let rows = audit.json()?;
    let revoked = rows
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["kind"] == "device-revoked")
        .context("no revocation row")?;
    assert_eq!(revoked["device"], guest_id.as_str());
    assert!(
        revoked["detail"]
            .as_str()
            .unwrap_or("")
            .contains("owner phone"),
        "{revoked}"
    );
    Ok(())
}

/// The real browser: headless Chromium through Playwright (tests/browser/run.mjs). A
/// missing Chromium or Node is a failure, never a skip.
#[test]
fn a_real_browser_sets_up_pairs_revokes_watches_and_is_safe_from_other_origins()
-> anyhow::Result<()> {
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        bail!(
            "/usr/bin/chromium is missing: apt-get install chromium chromium-driver (tests/run-all.sh does)"
        );
    }
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    if !browser_dir.join("node_modules/playwright-core").exists() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&browser_dir)
            .output()
            .context("running npm ci in tests/browser (apt-get install nodejs npm)")?;
        if !out.status.success() {
            bail!("npm ci failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let dir = tmp();
    let state = dir.path().join("gw");
    let gw = Gateway::start(&state, &[])?;
    let shots = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("browser-shots");
    std::fs::create_dir_all(&shots)?;
    let mut child = Command::new("node")
        .arg(browser_dir.join("run.mjs"))
        .env("ADMIN_URL", origin(&gw))
        .env("SETUP_LINK", gw.setup_link.as_deref().unwrap_or(""))
        .env("FINGERPRINT", &gw.cert_fingerprint)
        .env("PASSWORD", PASSWORD)
        .env("CLIENT_BIN", latchkey_tests::bin("latchkey-client")?)
        .env("CLIENT_STATE", dir.path().join("phone"))
        .env("SHOTS", &shots)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running node (apt-get install nodejs)")?;
    let deadline = Instant::now() + Duration::from_secs(180);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the browser test did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    if !out.status.success() {
        bail!(
            "browser test failed:\n{stdout}\n{}\ngateway log tail:\n{}",
            String::from_utf8_lossy(&out.stderr),
            gw.log()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // What the browser did is what the gateway recorded.
    let devices = latchkey(&state, &["devices", "--json"])?.json()?;
    let states: Vec<(String, String)> = devices
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or("").into(),
                d["state"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert!(
        states.contains(&("browser-phone".into(), "revoked".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("keeper".into(), "active".into())),
        "{states:?}"
    );
    // The markup-named phone is stored and listed as the text it was given.
    assert!(
        states.contains(&("<img src=x onerror=alert(1)>".into(), "active".into())),
        "{states:?}"
    );
    let status = latchkey(&state, &["remote", "status", "--json"])?.json()?;
    assert!(
        status["approval"].is_null(),
        "cross-origin page opened remote access: {status}"
    );
    for page in ["setup", "pair", "devices", "cameras", "remote", "audit"] {
        let p = shots.join(format!("{page}.png"));
        assert!(p.exists(), "no screenshot {}", p.display());
    }
    Ok(())
}
