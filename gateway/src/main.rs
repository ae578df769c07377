//! `latchkey`: the gateway daemon and its admin CLI (argument parsing and output only).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use latchkey_gateway::admin::socket;
use latchkey_gateway::config::{self, Config, DEFAULT_ADMIN_PORT, DEFAULT_NOISE_PORT};
use latchkey_gateway::service_cli;
use latchkey_gateway::{Gateway, Listeners};
use latchkey_pairing::Role;
use tokio_util::sync::CancellationToken;

mod cli;
use cli::remote::RemoteCommand;

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
        /// Hibernate a session whose HTTP/2 connection had no open stream this long
        /// (tests use a short one) [default: 15s].
        #[arg(long, hide = true, value_parser = humantime::parse_duration)]
        hibernate_after: Option<Duration>,
        /// Quarantine the cameras on this interface (their own port, VLAN or bridge): the
        /// gateway serves them DHCP, DNS and time there and forwards nothing from it.
        #[arg(long, value_name = "IFACE")]
        camera_port: Option<String>,
    },
    /// Open a pairing window: prints a QR code and the pairing URI.
    Pair(cli::devices::PairArgs),
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
        action: Option<cli::cameras::CamerasCommand>,
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
                hibernate_after,
                camera_port,
            } => {
                let flags = RunFlags {
                    camera_port,
                    rekey_after,
                    hibernate_after,
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
            } => cli::cameras::run(&state, action).await,
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
    hibernate_after: Option<Duration>,
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
        hibernate_after,
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
        hibernate_after: hibernate_after.unwrap_or(latchkey_gateway::limits::HIBERNATE_AFTER),
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
    cli::print_qr(&uri)?;
    println!("{uri}");
    println!("or, from a terminal: latchkey-client pair '{uri}'");
    println!(
        "then compare the 6-digit code and run: latchkey confirm DEVICE   (a new code: latchkey pair)"
    );
    Ok(())
}

/// The one-request admin commands, each rendered by its `cli/` group.
async fn admin(state: PathBuf, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Pair(args) => cli::devices::pair(&state, args).await,
        Command::Confirm { device } => cli::devices::confirm(&state, device).await,
        Command::Revoke { device } => cli::devices::revoke(&state, device).await,
        Command::Devices { json } => cli::devices::list(&state, json).await,
        Command::Cameras { json, .. } => cli::cameras::list(&state, json).await,
        Command::Audit { json, limit } => cli::audit::run(&state, limit, json).await,
        Command::Run { .. }
        | Command::Remote { .. }
        | Command::Backup { .. }
        | Command::Restore { .. }
        | Command::Doctor { .. }
        | Command::GenerateAssets { .. } => {
            anyhow::bail!("internal: not a single admin request")
        }
    }
}
