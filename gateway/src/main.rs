//! `latchkey`: the gateway daemon and its admin CLI (argument parsing and output only).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use latchkey_gateway::admin::socket::{self, AdminRequest};
use latchkey_gateway::config::{self, Config, DEFAULT_ADMIN_PORT, DEFAULT_NOISE_PORT};
use latchkey_gateway::service_cli;
use latchkey_gateway::{Gateway, Listeners};
use latchkey_pairing::Role;
use latchkey_pairing::text::cell;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

mod cli;
use cli::remote::RemoteCommand;
mod cli_cameras;

#[derive(Parser, Debug)]
#[command(
    name = "latchkey",
    version,
    about = "Latchkey: watch your own cameras from anywhere, with no cloud in the middle"
)]
struct Cli {
    /// State directory (keys, devices, audit log). Default: $LATCHKEY_STATE, else
    /// $XDG_STATE_HOME/latchkey, else ~/.local/state/latchkey (/var/lib/latchkey for root);
    /// admin commands use the packaged service's when that does not exist.
    #[arg(long, global = true, env = "LATCHKEY_STATE")]
    state: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the gateway. With no config and no --camera it serves the built-in demo camera.
    #[command(
        after_help = "Example config (TOML):\n\n  name = \"Home\"\n  listen = \"[::]:7447\"\n  admin_listen = \"[::]:8443\"\n  camera_grace_secs = 10\n\n  [[camera]]\n  id = \"front\"\n  url = \"rtsp://user:pass@192.168.1.10:554/stream1\"\n\n  [[camera]]\n  id = \"garden\"\n  url = \"mjpeg+http://192.168.1.11/video.cgi\""
    )]
    Run {
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Noise listener for phones [default: [::]:7447].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Admin HTTPS listener [default: [::]:8443].
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// A camera, as ID=URL (rtsp://, mjpeg+http://, snapshot+http://, demo:). Repeatable.
        #[arg(long = "camera", value_name = "ID=URL")]
        cameras: Vec<String>,
        /// Gateway name shown on phones.
        #[arg(long)]
        name: Option<String>,
        /// Keep a camera connected this long after its last viewer left [default: 10s].
        #[arg(long, value_parser = humantime::parse_duration)]
        camera_grace: Option<Duration>,
        /// Session key rotation interval (tests use a short one) [default: 120s].
        #[arg(long, hide = true, value_parser = humantime::parse_duration)]
        rekey_after: Option<Duration>,
        /// Quarantine the cameras on this interface (their own port, VLAN or bridge): the
        /// gateway serves them DHCP, DNS and time there and forwards nothing from it.
        #[arg(long, value_name = "IFACE")]
        camera_port: Option<String>,
    },
    /// Open a pairing window: prints a QR code and the pairing URI.
    Pair {
        /// Name for the new device (default: the name the phone suggests).
        #[arg(long)]
        name: Option<String>,
        /// Role of the new device.
        #[arg(long, default_value = "viewer")]
        role: Role,
        /// Cameras it may watch: `all` or a comma-separated list of ids.
        #[arg(long, default_value = "all")]
        cameras: String,
        /// Its access ends after this long (e.g. 4h, 7d). Default: never.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        /// Admit it without comparing the short code.
        #[arg(long)]
        auto_confirm: bool,
        /// Print only the URI.
        #[arg(long)]
        uri_only: bool,
        /// How long the code works (at most 5m).
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Confirm a pending device after comparing its short code.
    Confirm {
        /// Device id or name.
        device: String,
    },
    /// List devices.
    Devices {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device; its live sessions close within a second.
    Revoke {
        /// Device id or name.
        device: String,
    },
    /// List cameras; add, change, remove, test or discover them.
    Cameras {
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: Option<cli_cameras::CamerasCommand>,
    },
    /// Remote access through the home router, only with your approval.
    Remote {
        #[command(subcommand)]
        command: RemoteCommand,
    },
    /// Show the audit log, newest first.
    Audit {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Most entries.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Copy the store (the gateway's key, devices, audit log) to FILE, consistently even
    /// while the gateway runs. The copy is mode 0600: it holds the gateway's private key.
    Backup {
        /// Where to write the backup (must not exist yet).
        file: PathBuf,
    },
    /// Replace the store with a backup; stop the gateway first.
    Restore {
        /// A file made by `latchkey backup`.
        file: PathBuf,
    },
    /// Check the state directory, ports, certificate, clock, cameras, router and version.
    Doctor {
        /// Config file to check [default: /etc/latchkey/latchkey.toml if it exists].
        #[arg(long)]
        config: Option<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Write the man page and shell completions into DIR (the package build runs this).
    #[command(hide = true)]
    GenerateAssets {
        /// Output directory.
        dir: PathBuf,
    },
}

fn default_state_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(x).join("latchkey");
    }
    match std::env::var_os("HOME") {
        Some(home) if home != "/" && home != "/root" => {
            PathBuf::from(home).join(".local/state/latchkey")
        }
        _ => PathBuf::from("/var/lib/latchkey"),
    }
}

fn main() -> std::process::ExitCode {
    latchkey_cli_kit::exit::quiet_panics("latchkey");
    latchkey_cli_kit::exit::finish("latchkey", real_main())
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Many phones and cameras each hold a descriptor: use all the system allows.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("could not raise the open-file limit: {e}");
    }
    let state = match (&cli.state, &cli.command) {
        (Some(s), _) => s.clone(),
        (None, Command::Run { .. }) => default_state_dir(),
        // An owner in the latchkey group reaches the packaged service with no flags.
        (None, _) => latchkey_gateway::admin::access::cli_default_state(default_state_dir()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run {
                config,
                listen,
                admin_listen,
                cameras,
                name,
                camera_grace,
                rekey_after,
                camera_port,
            } => {
                let flags = RunFlags {
                    camera_port,
                    rekey_after,
                    listen,
                    admin_listen,
                    cameras,
                    name,
                    camera_grace,
                };
                run(state, config, flags).await
            }
            Command::Remote { command } => cli::remote::run(&state, command).await,
            Command::Backup { file } => service_cli::backup(&state, &file),
            Command::Restore { file } => service_cli::restore(&state, &file).await,
            Command::Doctor { config, json } => service_cli::doctor(state, config, json).await,
            Command::GenerateAssets { dir } => {
                latchkey_cli_kit::assets::write(<Cli as clap::CommandFactory>::command(), &dir)
            }
            Command::Cameras {
                action: Some(action),
                ..
            } => cli_cameras::run(&state, action).await,
            other => admin(state, other).await,
        }
    })
}

async fn bind(addr: Option<SocketAddr>, port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    if let Some(addr) = addr {
        return tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"));
    }
    // [::] also accepts IPv4 on Linux; fall back to IPv4 only where IPv6 is disabled.
    match tokio::net::TcpListener::bind(SocketAddr::from(([0u16; 8], port))).await {
        Ok(l) => Ok(l),
        Err(_) => tokio::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
            .await
            .with_context(|| format!("binding port {port}")),
    }
}

/// `latchkey run`'s flags that override the config file.
struct RunFlags {
    rekey_after: Option<Duration>,
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    cameras: Vec<String>,
    name: Option<String>,
    camera_grace: Option<Duration>,
    camera_port: Option<String>,
}

async fn run(state: PathBuf, config_path: Option<PathBuf>, flags: RunFlags) -> anyhow::Result<()> {
    let RunFlags {
        rekey_after,
        listen,
        admin_listen,
        cameras: camera_flags,
        name,
        camera_grace,
        camera_port,
    } = flags;
    let file = match &config_path {
        Some(p) => config::read_file(p)?,
        None => config::FileConfig::default(),
    };
    let cameras = config::cameras(&file.cameras, &camera_flags)?;
    let name = name.or(file.name).unwrap_or_else(|| "Latchkey".to_string());
    let noise = bind(listen.or(file.listen), DEFAULT_NOISE_PORT).await?;
    let admin = bind(admin_listen.or(file.admin_listen), DEFAULT_ADMIN_PORT).await?;
    let noise_addr = noise
        .local_addr()
        .context("reading the noise listener address")?;
    let camera_grace = camera_grace
        .or(file.camera_grace_secs.map(Duration::from_secs))
        .unwrap_or(config::DEFAULT_CAMERA_GRACE);
    let config = Config {
        rekey_after_secs: rekey_after
            .map_or(latchkey_gateway::config::DEFAULT_REKEY_AFTER_SECS, |d| {
                d.as_secs().max(1)
            }),
        name,
        cameras,
        camera_grace,
    };
    let gw = Gateway::open(state, config, noise_addr)?;
    if std::io::IsTerminal::is_terminal(&std::io::stdout())
        && gw.store.devices().map(|d| d.is_empty()).unwrap_or(false)
    {
        first_owner_qr(&gw).await?;
    }
    let shutdown = CancellationToken::new();
    let port = latchkey_gateway::quarantine::port_config(file.camera_port, camera_port);
    let quarantine = match port {
        Some(p) => {
            Some(latchkey_gateway::quarantine::start(gw.clone(), p, shutdown.clone()).await?)
        }
        None => None,
    };
    let signals = shutdown.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cannot watch SIGTERM: {e}");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        tracing::info!("shutting down");
        signals.cancel();
    });
    let done = latchkey_gateway::run(Listeners { noise, admin }, gw, shutdown.clone()).await;
    shutdown.cancel();
    if let Some(task) = quarantine {
        let _ = task.await;
    }
    done
}

/// On a gateway with no device yet, shows a pairing QR for the owner's phone right away.
async fn first_owner_qr(gw: &std::sync::Arc<Gateway>) -> anyhow::Result<()> {
    let now = latchkey_gateway::unix_now();
    let params = latchkey_gateway::store::PairingParams {
        name: None,
        role: Role::Owner,
        cameras: latchkey_pairing::CameraGrant::All,
        device_expires_at: None,
        auto_confirm: false,
        window_expires_at: now + socket::MAX_PAIRING_TTL_SECS,
    };
    let uri = latchkey_gateway::admin::actions::open_pairing(gw, params)
        .await?
        .encode();
    println!(
        "No phone is paired yet. Scan this with the owner's phone (works once, for 5 minutes):"
    );
    print_qr(&uri)?;
    println!("{uri}");
    println!("or, from a terminal: latchkey-client pair '{uri}'");
    println!(
        "then compare the 6-digit code and run: latchkey confirm DEVICE   (a new code: latchkey pair)"
    );
    Ok(())
}

/// At a terminal: waits for the phone to pair, shows its short code, and asks the owner
/// to confirm that the phone shows the same one (the defence against a photographed QR).
async fn wait_and_confirm(state: &std::path::Path, auto_confirm: bool) -> anyhow::Result<()> {
    let before = socket::request(state, &AdminRequest::Devices).await?;
    let known: Vec<String> = before
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| s(d, "id"))
        .collect();
    println!("Waiting for the phone... (Ctrl-C to stop waiting; the code stays valid)");
    let device = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = socket::request(state, &AdminRequest::Devices).await?;
        if let Some(d) = now
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| !known.contains(&s(d, "id")))
        {
            break d.clone();
        }
        let window = socket::request(state, &AdminRequest::PairingStatus).await?;
        match window.get("state").and_then(Value::as_str) {
            Some("open") => continue,
            Some("closed") => anyhow::bail!(
                "the pairing code was closed after too many failed attempts; run `latchkey pair` again"
            ),
            _ => anyhow::bail!("the pairing code expired unused; run `latchkey pair` again"),
        }
    };
    let (id, name, code) = (s(&device, "id"), s(&device, "name"), s(&device, "code"));
    println!("Phone {name:?} paired as device {id}. It shows the code {code}.");
    if auto_confirm {
        return Ok(());
    }
    print!("Does the phone show {code}? Type yes to let it in: ");
    std::io::Write::flush(&mut std::io::stdout())?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim().eq_ignore_ascii_case("yes") || answer.trim().eq_ignore_ascii_case("y") {
        socket::request(state, &AdminRequest::Confirm { device: id.clone() }).await?;
        println!("device {id} confirmed");
    } else {
        socket::request(state, &AdminRequest::Revoke { device: id.clone() }).await?;
        println!(
            "device {id} rejected and revoked: the codes did not match, someone else may have scanned the QR code"
        );
    }
    Ok(())
}

fn print_qr(uri: &str) -> anyhow::Result<()> {
    let code = qrcode::QrCode::new(uri.as_bytes()).context("making the QR code")?;
    let text = code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .build();
    println!("{text}");
    Ok(())
}

/// `v[key]` as text for a terminal: every string from outside is escaped
/// (`latchkey_pairing::text::escape`), so no control, bidi or invisible character
/// reaches the owner's terminal raw.
fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => latchkey_pairing::text::escape(s).into_owned(),
        Some(Value::Null) | None => "-".to_string(),
        Some(other) => other.to_string(),
    }
}

fn when(v: &Value, key: &str) -> String {
    match v.get(key).and_then(Value::as_u64) {
        Some(t) => {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t))
                .to_string()
        }
        None => "-".to_string(),
    }
}

async fn admin(state: PathBuf, command: Command) -> anyhow::Result<()> {
    let request = match &command {
        Command::Pair {
            name,
            role,
            cameras,
            expires,
            auto_confirm,
            ttl,
            ..
        } => AdminRequest::Pair {
            name: name.clone(),
            role: *role,
            cameras: cameras.clone(),
            expires_secs: expires.map(|d| d.as_secs()),
            auto_confirm: *auto_confirm,
            ttl_secs: ttl.as_secs(),
        },
        Command::Confirm { device } => AdminRequest::Confirm {
            device: device.clone(),
        },
        Command::Devices { .. } => AdminRequest::Devices,
        Command::Revoke { device } => AdminRequest::Revoke {
            device: device.clone(),
        },
        Command::Cameras { .. } => AdminRequest::Cameras,
        Command::Audit { limit, .. } => AdminRequest::Audit { limit: *limit },
        Command::Run { .. }
        | Command::Remote { .. }
        | Command::Backup { .. }
        | Command::Restore { .. }
        | Command::Doctor { .. }
        | Command::GenerateAssets { .. } => {
            anyhow::bail!("internal: not a single admin request")
        }
    };
    let result = socket::request(&state, &request).await?;
    match command {
        Command::Pair {
            uri_only,
            auto_confirm,
            ..
        } => {
            let uri = s(&result, "uri");
            if uri_only {
                println!("{uri}");
            } else {
                print_qr(&uri)?;
                println!("{uri}");
                println!();
                println!("Scan this with the Latchkey app, or run: latchkey-client pair '{uri}'");
                println!(
                    "The code works once, for {} seconds.",
                    s(&result, "expires_in_secs")
                );
                if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                    wait_and_confirm(&state, auto_confirm).await?;
                } else if !auto_confirm {
                    println!(
                        "Then compare the 6-digit code on the phone with `latchkey devices` and run `latchkey confirm DEVICE`."
                    );
                }
            }
        }
        Command::Confirm { .. } => println!("device {} confirmed", s(&result, "id")),
        Command::Revoke { .. } => {
            println!(
                "device {} revoked ({} live sessions closed)",
                s(&result, "id"),
                s(&result, "sessions_closed")
            )
        }
        Command::Devices { json: true }
        | Command::Cameras { json: true, .. }
        | Command::Audit { json: true, .. } => {
            println!("{}", serde_json::to_string_pretty(&result)?);
        }
        Command::Devices { json: false } => {
            println!(
                "{:<17} {:<20} {:<7} {:<10} {:<8} {:<7} {:<21} FROM",
                "ID", "NAME", "ROLE", "CAMERAS", "STATE", "CODE", "LAST SEEN"
            );
            for d in result.as_array().into_iter().flatten() {
                println!(
                    "{:<17} {:<20} {:<7} {:<10} {:<8} {:<7} {:<21} {}",
                    s(d, "id"),
                    cell(&s(d, "name"), 20),
                    s(d, "role"),
                    cell(&s(d, "cameras"), 10),
                    s(d, "state"),
                    s(d, "code"),
                    when(d, "last_seen"),
                    s(d, "last_addr")
                );
            }
            let window = socket::request(&state, &AdminRequest::PairingStatus).await?;
            let failures = window.get("failures").and_then(Value::as_u64).unwrap_or(0);
            match window.get("state").and_then(Value::as_str) {
                Some("open") => println!(
                    "pairing code open until {}; {failures} failed attempts",
                    when(&window, "expires_at")
                ),
                Some("closed") if failures > 0 => println!(
                    "pairing code closed after {failures} failed attempts: someone may be guessing; `latchkey pair` opens a new one"
                ),
                Some(other) if failures > 0 => {
                    println!("last pairing code {other}; {failures} failed attempts")
                }
                _ => {}
            }
        }
        Command::Cameras { json: false, .. } => {
            println!(
                "{:<16} {:<9} {:<7} {:<10} {:<6} {:<10} {:<7} {:<8} ERROR",
                "ID", "KIND", "FROM", "STATE", "CODEC", "SIZE", "VIEWERS", "UPSTREAM"
            );
            for c in result.as_array().into_iter().flatten() {
                let size = match (
                    c.get("width").and_then(Value::as_u64),
                    c.get("height").and_then(Value::as_u64),
                ) {
                    (Some(w), Some(h)) => format!("{w}x{h}"),
                    _ => "-".to_string(),
                };
                println!(
                    "{:<16} {:<9} {:<7} {:<10} {:<6} {:<10} {:<7} {:<8} {}",
                    s(c, "id"),
                    s(c, "kind"),
                    s(c, "origin"),
                    s(c, "state"),
                    s(c, "codec"),
                    size,
                    s(c, "viewers"),
                    s(c, "upstream_sessions"),
                    s(c, "error")
                );
            }
        }
        Command::Audit { json: false, .. } => {
            for a in result.as_array().into_iter().flatten() {
                println!(
                    "{} {:<18} {:<17} {:<22} {}",
                    when(a, "at"),
                    s(a, "kind"),
                    s(a, "device"),
                    s(a, "addr"),
                    s(a, "detail")
                );
            }
        }
        Command::Run { .. }
        | Command::Remote { .. }
        | Command::Backup { .. }
        | Command::Restore { .. }
        | Command::Doctor { .. }
        | Command::GenerateAssets { .. } => {}
    }
    Ok(())
}
