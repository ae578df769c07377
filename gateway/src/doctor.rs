//! `latchkey doctor`: checks what a service owner trips over and says it in plain words.
//!
//! The state directory's owner and modes, the store's schema version, whether the gateway
//! runs, the listening ports, the admin certificate's fingerprint, the clock, the cameras
//! (a TCP connection to each configured one, and the running gateway's view), the
//! router, and the installed version. Every string that came from outside (a camera
//! URL's host, an error from the router) is shown through `{:?}`-style escaping.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::admin::socket::{self, AdminRequest};
use crate::config::{self, DEFAULT_ADMIN_PORT, DEFAULT_NOISE_PORT, FileConfig};
use crate::store::DB_FILE;
use crate::store::schema as store_schema;

/// A clock before this (2026-01-01) is certainly wrong: this code did not exist yet.
const EARLIEST_SANE_CLOCK: u64 = 1_767_225_600;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Ok,
    /// Worth a look; the gateway works.
    Warn,
    /// Needs fixing.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// How bad.
    pub level: Level,
    /// What was checked.
    pub topic: &'static str,
    /// What was found and what to do.
    pub text: String,
}

fn f(level: Level, topic: &'static str, text: impl Into<String>) -> Finding {
    Finding {
        level,
        topic,
        text: text.into(),
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    /// The state directory.
    pub state_dir: PathBuf,
    /// The config file, if any.
    pub config: Option<PathBuf>,
}

/// Runs every check.
pub async fn run(opts: &Options) -> Vec<Finding> {
    let mut out = vec![version()];
    out.extend(state_dir(&opts.state_dir));
    let file = match &opts.config {
        Some(p) => match config::read_file(p) {
            Ok(c) => {
                out.push(f(
                    Level::Ok,
                    "config",
                    format!("{} reads fine", p.display()),
                ));
                c
            }
            Err(e) => {
                out.push(f(Level::Fail, "config", format!("{e:#}")));
                FileConfig::default()
            }
        },
        None => FileConfig::default(),
    };
    let running = socket::request(&opts.state_dir, &AdminRequest::Devices)
        .await
        .is_ok();
    out.push(if running {
        f(Level::Ok, "gateway", "running; the admin socket answers")
    } else {
        f(
            Level::Warn,
            "gateway",
            "not running (or this user may not use its admin socket: add yourself to the latchkey group, or use sudo); start it with `sudo systemctl start latchkey`",
        )
    });
    out.extend(ports(&file, running));
    out.push(certificate(&opts.state_dir));
    out.push(clock(&opts.state_dir));
    out.extend(cameras(&file, running, &opts.state_dir).await);
    out.push(router(running, &opts.state_dir).await);
    // Reading the store as root must not leave files the service cannot open.
    let _ = crate::backup::give_files_to_owner(&opts.state_dir);
    out
}

fn version() -> Finding {
    let package = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "latchkey"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let text = match package {
        Some(v) => format!(
            "latchkey {} (Debian package {v:?})",
            env!("CARGO_PKG_VERSION")
        ),
        None => format!(
            "latchkey {} (not installed from the Debian package)",
            env!("CARGO_PKG_VERSION")
        ),
    };
    f(Level::Ok, "version", text)
}

fn state_dir(dir: &Path) -> Vec<Finding> {
    let topic = "state";
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) => {
            return vec![f(
                Level::Fail,
                topic,
                format!(
                    "{} cannot be read ({e}); the service's is /var/lib/latchkey (pass --state, or run as root)",
                    dir.display()
                ),
            )];
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    let mut out = vec![if mode == 0o700 {
        f(
            Level::Ok,
            topic,
            format!("{} is 0700, owned by uid {}", dir.display(), meta.uid()),
        )
    } else {
        f(
            Level::Fail,
            topic,
            format!(
                "{} is {mode:04o}: it holds the gateway's private key; run `chmod 700 {}`",
                dir.display(),
                dir.display()
            ),
        )
    }];
    let db = dir.join(DB_FILE);
    match std::fs::metadata(&db) {
        Ok(m) if m.uid() != meta.uid() => out.push(f(
            Level::Fail,
            topic,
            format!(
                "{} belongs to uid {}, not to the directory's owner (uid {}): the gateway may not write it; run `chown -R {}: {}`",
                db.display(),
                m.uid(),
                meta.uid(),
                meta.uid(),
                dir.display()
            ),
        )),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => out.push(f(
            Level::Fail,
            topic,
            format!("{} is readable by others; run `chmod 600 {}`", db.display(), db.display()),
        )),
        Ok(_) => out.push(schema(&db)),
        Err(_) => out.push(f(
            Level::Warn,
            topic,
            format!("no store yet at {} (the gateway makes it on its first start)", db.display()),
        )),
    }
    out
}

fn schema(db: &Path) -> Finding {
    // Read-write (nothing is written): SQLite then removes the -wal/-shm files it makes
    // when this, the last connection, closes; a read-only one would leave them.
    let read =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| e.to_string())
            .and_then(|c| store_schema::version(&c).map_err(|e| e.to_string()));
    match read {
        Ok(v) if v > store_schema::CURRENT => f(
            Level::Fail,
            "store",
            format!(
                "{} has schema version {v}, newer than this latchkey knows ({}): install the newer version again",
                db.display(),
                store_schema::CURRENT
            ),
        ),
        Ok(v) => f(
            Level::Ok,
            "store",
            format!(
                "{} is readable, schema version {v} (this latchkey writes {})",
                db.display(),
                store_schema::CURRENT
            ),
        ),
        Err(e) => f(
            Level::Fail,
            "store",
            format!("{} cannot be read: {e}", db.display()),
        ),
    }
}

fn ports(file: &FileConfig, running: bool) -> Vec<Finding> {
    let wanted = [
        ("phones", file.listen, DEFAULT_NOISE_PORT),
        ("admin page", file.admin_listen, DEFAULT_ADMIN_PORT),
    ];
    wanted
        .into_iter()
        .map(|(what, addr, port)| {
            let addr = addr.unwrap_or(SocketAddr::from(([0u16; 8], port)));
            if running {
                return f(Level::Ok, "ports", format!("{what}: {addr} (held by the running gateway)"));
            }
            match TcpListener::bind(addr) {
                Ok(_) => f(Level::Ok, "ports", format!("{what}: {addr} is free")),
                Err(e) => f(
                    Level::Fail,
                    "ports",
                    format!(
                        "{what}: {addr} cannot be bound ({e}); another program holds it (`ss -ltnp 'sport = :{}'` shows which) or choose another port in the config",
                        addr.port()
                    ),
                ),
            }
        })
        .collect()
}

fn certificate(dir: &Path) -> Finding {
    match crate::admin::tls::stored_fingerprint(dir) {
        Ok(fp) => f(
            Level::Ok,
            "admin cert",
            format!("SHA-256 {fp}: the admin page's browser warning must show this fingerprint"),
        ),
        Err(_) => f(
            Level::Warn,
            "admin cert",
            "none yet (the gateway makes it on its first start)",
        ),
    }
}

fn clock(dir: &Path) -> Finding {
    let now = crate::unix_now();
    if now < EARLIEST_SANE_CLOCK {
        return f(
            Level::Fail,
            "clock",
            "the system clock is before 2026: key rotation and device expiry depend on it; enable time sync (timedatectl set-ntp true)",
        );
    }
    let newest: Option<i64> = rusqlite::Connection::open_with_flags(
        dir.join(DB_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
    )
    .ok()
    .and_then(|c| {
        c.query_row("SELECT MAX(at) FROM audit", [], |r| r.get(0))
            .ok()
    })
    .flatten();
    match newest.and_then(|t| u64::try_from(t).ok()) {
        Some(t) if t > now + 300 => f(
            Level::Fail,
            "clock",
            format!(
                "the clock is {} s behind the newest audit entry: it went backwards; device expiry and key rotation are off until it is fixed (timedatectl)",
                t - now
            ),
        ),
        _ => f(
            Level::Ok,
            "clock",
            format!(
                "{} (UTC), after the newest audit entry",
                humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(now))
            ),
        ),
    }
}

/// A camera URL's host and port, for a plain TCP reachability check.
fn camera_endpoint(url: &str) -> Option<(String, u16)> {
    let bare = url
        .strip_prefix("mjpeg+")
        .or_else(|| url.strip_prefix("snapshot+"))
        .unwrap_or(url);
    let u = url::Url::parse(bare).ok()?;
    let port = u.port_or_known_default().or(match u.scheme() {
        "rtsp" => Some(554),
        _ => None,
    })?;
    Some((u.host_str()?.to_string(), port))
}

async fn cameras(file: &FileConfig, running: bool, dir: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for cam in &file.cameras {
        let Some((host, port)) = camera_endpoint(&cam.url) else {
            continue;
        };
        let target = format!("{host}:{port}");
        let reached = tokio::task::spawn_blocking(move || {
            let addrs: Vec<SocketAddr> = (host.as_str(), port).to_socket_addrs().ok()?.collect();
            addrs
                .iter()
                .find_map(|a| std::net::TcpStream::connect_timeout(a, Duration::from_secs(3)).ok())
                .map(|_| ())
        })
        .await
        .ok()
        .flatten();
        out.push(match reached {
            Some(()) => f(Level::Ok, "camera", format!("{:?}: {target:?} answers", cam.id)),
            None => f(
                Level::Fail,
                "camera",
                format!("{:?}: {target:?} cannot be reached from here (camera off, wrong address, or another network)", cam.id),
            ),
        });
    }
    if running && let Ok(Value::Array(list)) = socket::request(dir, &AdminRequest::Cameras).await {
        for c in list {
            let id = c.get("id").and_then(Value::as_str).unwrap_or("?");
            let state = c.get("state").and_then(Value::as_str).unwrap_or("?");
            match c.get("error").and_then(Value::as_str) {
                Some(e) => out.push(f(
                    Level::Warn,
                    "camera",
                    format!("{id:?} is {state}: {e:?}"),
                )),
                None => out.push(f(Level::Ok, "camera", format!("{id:?} is {state}"))),
            }
        }
    }
    out
}

async fn router(running: bool, dir: &Path) -> Finding {
    if !running {
        return f(
            Level::Warn,
            "router",
            "not checked: the gateway is not running",
        );
    }
    match socket::request(dir, &AdminRequest::RemoteStatus).await {
        Ok(r) => {
            let d = r.get("diagnosis").and_then(Value::as_str).unwrap_or("-");
            f(
                Level::Ok,
                "router",
                format!("{d:?} (details: latchkey remote status)"),
            )
        }
        Err(e) => f(Level::Warn, "router", format!("{:?}", format!("{e:#}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_urls_give_host_and_port() {
        assert_eq!(
            camera_endpoint("rtsp://u:p@192.168.1.10/stream1"),
            Some(("192.168.1.10".into(), 554))
        );
        assert_eq!(
            camera_endpoint("mjpeg+http://cam.local:8080/v.cgi"),
            Some(("cam.local".into(), 8080))
        );
        assert_eq!(camera_endpoint("demo:"), None);
    }

    #[test]
    fn a_loose_state_directory_fails_and_a_tight_one_passes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let found = state_dir(dir.path());
        assert_eq!(found[0].level, Level::Fail, "{found:?}");
        assert!(found[0].text.contains("chmod 700"));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let found = state_dir(dir.path());
        assert_eq!(found[0].level, Level::Ok, "{found:?}");
        assert_eq!(found[1].level, Level::Warn, "no store yet: {found:?}");
    }

    #[test]
    fn a_taken_port_is_named() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let file = FileConfig {
            listen: Some(held.local_addr().unwrap()),
            ..FileConfig::default()
        };
        let found = ports(&file, false);
        assert_eq!(found[0].level, Level::Fail, "{found:?}");
        assert!(found[0].text.contains("ss -ltnp"));
    }
}
