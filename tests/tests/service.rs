//! End-to-end: running as a service. The shared admin socket admits its group and no one
//! else; a backup taken while the gateway runs restores a gateway that admits the same
//! phone; errors are one line whatever `RUST_BACKTRACE` says. The Debian package itself
//! (install, unit, upgrade, purge) is `tests/package.sh`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests fail loudly

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use latchkey_tests::{Gateway, bin, client, latchkey, run_command};

/// The group the shared socket is given in this test (Debian's `users`).
const GROUP: u32 = 100;
/// The daemon's user (nobody).
const DAEMON_UID: u32 = 65534;

fn admitted(phone: &Path) -> bool {
    client(phone, &["cameras"]).unwrap().ok
}

fn pair(gw: &Gateway, phone: &Path) {
    let uri = gw.pair_uri(&["--auto-confirm", "--name", "phone"]).unwrap();
    client(phone, &["pair", &uri, "--name", "phone"])
        .unwrap()
        .expect_ok("pair")
        .unwrap();
    assert!(admitted(phone));
}

/// `latchkey --state STATE devices` as `uid`/`gid` with `groups`, through `socket`.
fn devices_as(
    uid: u32,
    gid: u32,
    groups: &str,
    state: &Path,
    socket: &Path,
) -> latchkey_tests::Run {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg(if groups.is_empty() {
            "--clear-groups".to_string()
        } else {
            format!("--groups={groups}")
        })
        .arg(bin("latchkey").unwrap())
        .arg("--state")
        .arg(state)
        .arg("devices")
        .env("LATCHKEY_SOCKET", socket);
    run_command(cmd, "latchkey devices", Duration::from_secs(30)).unwrap()
}

#[test]
fn the_shared_admin_socket_admits_its_group_and_refuses_everyone_else() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (state, run) = (dir.path().join("state"), dir.path().join("run"));
    for (d, mode) in [(&state, 0o700), (&run, 0o750)] {
        std::fs::create_dir(d).unwrap();
        std::os::unix::fs::chown(d, Some(DAEMON_UID), Some(GROUP)).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let socket = run.join("admin.sock");
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={DAEMON_UID}"))
        .arg(format!("--regid={GROUP}"))
        .arg("--clear-groups")
        .arg(bin("latchkey").unwrap())
        .env("LATCHKEY_SOCKET", &socket);
    let gw = Gateway::start_command(cmd, &state, &[]).unwrap();
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), GROUP);

    // A member of the socket's group (here its primary group) is served.
    let member = devices_as(4242, GROUP, "", &state, &socket);
    assert!(member.ok, "group member refused: {}", member.stderr);
    // Root is served.
    let mut cmd = Command::new(bin("latchkey").unwrap());
    cmd.arg("--state")
        .arg(&state)
        .arg("devices")
        .env("LATCHKEY_SOCKET", &socket);
    let root = run_command(cmd, "latchkey devices", Duration::from_secs(30)).unwrap();
    assert!(root.ok, "root refused: {}", root.stderr);
    // The kernel keeps out a user outside the group, and the CLI says why in one line.
    let stranger = devices_as(4243, 4243, "", &state, &socket);
    assert!(!stranger.ok);
    assert!(
        stranger
            .stderr
            .contains("may not use the gateway's admin socket")
            && stranger.stderr.trim().lines().count() == 1,
        "{}",
        stranger.stderr
    );
    // A process that claims the group without being listed in /etc/group gets past the
    // file's mode but not the daemon's own check.
    let claimed = devices_as(4244, 4244, &GROUP.to_string(), &state, &socket);
    assert!(!claimed.ok, "an unlisted supplementary group was served");
    drop(gw);
}

#[test]
fn a_backup_taken_while_the_gateway_runs_restores_a_gateway_that_admits_the_same_phone() {
    let dir = tempfile::tempdir().unwrap();
    let (g, phone) = (dir.path().join("G"), dir.path().join("phone"));
    let mut gw = Gateway::start(&g, &[]).unwrap();
    pair(&gw, &phone);
    let file = dir.path().join("backup.db");
    let file_s = file.to_str().unwrap();
    let made = latchkey(&g, &["backup", file_s])
        .unwrap()
        .expect_ok("backup")
        .unwrap();
    assert!(made.stderr.contains("private key"), "{}", made.stderr);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let refused = latchkey(&g, &["restore", file_s]).unwrap();
    assert!(
        !refused.ok && refused.stderr.contains("stop it first"),
        "{}",
        refused.stderr
    );

    // Wiped: a new gateway key, and the phone is a stranger.
    gw.stop().unwrap();
    std::fs::remove_dir_all(&g).unwrap();
    gw.restart(&[]).unwrap();
    assert!(!admitted(&phone), "a wiped gateway admitted the phone");
    gw.stop().unwrap();

    latchkey(&g, &["restore", file_s])
        .unwrap()
        .expect_ok("restore")
        .unwrap();
    gw.restart(&[]).unwrap();
    assert!(admitted(&phone), "the restored gateway refused the phone");
}

#[test]
fn errors_are_one_line_whatever_rust_backtrace_says() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        (
            "latchkey",
            vec!["--state", "/nonexistent/x", "backup", "/nonexistent/y"],
        ),
        ("latchkey", vec!["--state", "/nonexistent/x", "devices"]),
        (
            "latchkey-client",
            vec!["--state", dir.path().to_str().unwrap(), "cameras"],
        ),
    ] {
        for bt in ["0", "1", "full"] {
            // Through env(1): run_command itself sets RUST_BACKTRACE=0.
            let mut cmd = Command::new("env");
            cmd.arg(format!("RUST_BACKTRACE={bt}"))
                .arg(bin(name).unwrap())
                .args(&args);
            let out = run_command(cmd, name, Duration::from_secs(30)).unwrap();
            assert!(!out.ok, "{name} {args:?} succeeded");
            let lines: Vec<&str> = out.stderr.lines().collect();
            assert_eq!(
                lines.len(),
                1,
                "{name} {args:?} RUST_BACKTRACE={bt}: {}",
                out.stderr
            );
            assert!(
                lines[0].starts_with(&format!("{name}: ")) && !lines[0].contains("stack backtrace"),
                "{}",
                lines[0]
            );
        }
    }
}

#[test]
fn doctor_shows_the_running_gateways_fingerprint_and_fails_a_loose_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("G");
    let gw = Gateway::start(&g, &[]).unwrap();
    let healthy = latchkey(&g, &["doctor", "--config", "/dev/null"])
        .unwrap()
        .expect_ok("doctor")
        .unwrap();
    assert!(
        healthy.stdout.contains(&gw.cert_fingerprint),
        "doctor shows another fingerprint than the gateway printed ({}): {}",
        gw.cert_fingerprint,
        healthy.stdout
    );
    assert!(
        healthy.stdout.contains("ok   gateway"),
        "{}",
        healthy.stdout
    );
    std::fs::set_permissions(&g, std::fs::Permissions::from_mode(0o755)).unwrap();
    let loose = latchkey(&g, &["doctor", "--config", "/dev/null"]).unwrap();
    assert!(!loose.ok);
    assert!(
        loose.stdout.contains("FAIL state") && loose.stdout.contains("chmod 700"),
        "{}",
        loose.stdout
    );
    assert_eq!(loose.stderr.trim().lines().count(), 1, "{}", loose.stderr);
    std::fs::set_permissions(&g, std::fs::Permissions::from_mode(0o700)).unwrap();
    drop(gw);
}
