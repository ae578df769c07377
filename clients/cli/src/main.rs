//! `latchkey-client`: the phone side from a terminal (argument parsing and output only).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use latchkey_client::{PairingUri, StateDir};
use latchkey_pairing::DeviceState;
use latchkey_pairing::text::{cell, escape};

#[derive(Parser, Debug)]
#[command(
    name = "latchkey-client",
    version,
    about = "Latchkey phone-side client: pair with a home gateway and watch its cameras"
)]
struct Cli {
    /// State directory (this phone's key and its gateway). Default: $LATCHKEY_CLIENT_STATE,
    /// else $XDG_STATE_HOME/latchkey-client, else ~/.local/state/latchkey-client.
    #[arg(long, global = true, env = "LATCHKEY_CLIENT_STATE")]
    state: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Pair with a gateway from its pairing URI or a picture of its QR code.
    Pair {
        /// The latchkey://pair?... URI.
        #[arg(required_unless_present = "qr_image")]
        uri: Option<String>,
        /// A PNG picture of the QR code instead of the URI.
        #[arg(long, conflicts_with = "uri")]
        qr_image: Option<PathBuf>,
        /// The name this phone suggests for itself.
        #[arg(long, default_value = "latchkey-client")]
        name: String,
    },
    /// List the cameras this phone may watch.
    Cameras {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Save a camera's latest picture as a JPEG.
    Snapshot {
        /// Camera id.
        camera: String,
        /// Where to write the JPEG.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Serve the cameras on a local HTTP port for VLC, ffplay or a browser:
    /// /cameras/ID/live.mp4, /cameras/ID/live.mjpeg, /cameras/ID/snapshot.jpg and / (a player page).
    Serve {
        /// Where to listen; loopback only unless you choose otherwise (anyone who can reach
        /// this port watches with this phone's rights).
        #[arg(long, default_value = "127.0.0.1:7448")]
        listen: std::net::SocketAddr,
    },
    /// Owner only: list every device paired with the gateway.
    Devices {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Owner only: revoke a device (id or unique name); its sessions close at once.
    Revoke {
        /// Device id or name.
        device: String,
    },
    /// Owner only: confirm a pending device after comparing its short code.
    Confirm {
        /// Device id or name.
        device: String,
    },
    /// Owner only: mint an invitation (a pairing URI) for a guest or viewer.
    Invite {
        /// `guest` or `viewer`.
        #[arg(long, default_value = "guest", value_parser = ["guest", "viewer"])]
        role: String,
        /// Cameras: `all` or a comma list.
        #[arg(long, default_value = "all")]
        cameras: String,
        /// How long the invited phone's access lasts, e.g. `24h`, `7d` (default: no end).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        /// The name to give the invited phone.
        #[arg(long)]
        name: Option<String>,
        /// Admit the invited phone without a confirmation.
        #[arg(long)]
        auto_confirm: bool,
    },
    /// Owner only: read the gateway's audit log, newest first.
    Audit {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Most rows.
        #[arg(long, default_value_t = 100)]
        limit: u32,
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
        return PathBuf::from(x).join("latchkey-client");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/state/latchkey-client")
}

/// Decodes the first QR code found in a picture.
fn uri_from_image(path: &PathBuf) -> anyhow::Result<String> {
    let img = image::open(path)
        .with_context(|| format!("reading {}", path.display()))?
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    let grid = grids
        .first()
        .with_context(|| format!("no QR code found in {}", path.display()))?;
    let (_, content) = grid
        .decode()
        .with_context(|| format!("decoding the QR code in {}", path.display()))?;
    Ok(content)
}

fn main() -> std::process::ExitCode {
    latchkey_cli_kit::exit::quiet_panics("latchkey-client");
    latchkey_cli_kit::exit::finish("latchkey-client", real_main())
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Command::GenerateAssets { dir } = &cli.command {
        return latchkey_cli_kit::assets::write(<Cli as clap::CommandFactory>::command(), dir);
    }
    let dir = StateDir::open(cli.state.clone().unwrap_or_else(default_state_dir))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Pair { uri, qr_image, name } => {
                let text = match (uri, qr_image) {
                    (Some(u), _) => u,
                    (None, Some(img)) => uri_from_image(&img)?,
                    (None, None) => anyhow::bail!("give a pairing URI or --qr-image FILE"),
                };
                let uri = PairingUri::parse(&text)?;
                let outcome = latchkey_client::pair(&dir, &uri, &name).await?;
                println!("paired with {:?} as device {}", outcome.gateway_name, outcome.device_id);
                println!("short code: {}", outcome.code);
                if outcome.state == DeviceState::Pending {
                    println!(
                        "waiting for the owner: check that the gateway shows the same code, then run `latchkey confirm {}` there",
                        outcome.device_id
                    );
                }
                Ok(())
            }
            Command::Cameras { json } => {
                let conn = latchkey_client::connect(&dir).await?;
                let cameras = conn.cameras().await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&cameras)?);
                } else {
                    for c in cameras {
                        let state = c.state.clone().unwrap_or_else(|| if c.online { "online".into() } else { "offline".into() });
                        println!(
                            "{:<16} {:<9} {:<10} {:<6} {}",
                            cell(&c.id, 16),
                            cell(&c.kind, 9),
                            cell(&state, 10),
                            cell(c.codec.as_deref().unwrap_or("-"), 6),
                            escape(c.error.as_deref().unwrap_or(""))
                        );
                    }
                }
                Ok(())
            }
            Command::Snapshot { camera, output } => {
                let conn = latchkey_client::connect(&dir).await?;
                let jpeg = conn
                    .snapshot(&camera)
                    .await
                    .with_context(|| format!("getting a snapshot of camera {camera:?}"))?;
                std::fs::write(&output, &jpeg)
                    .with_context(|| format!("writing {}", output.display()))?;
                println!("wrote {} ({} bytes)", output.display(), jpeg.len());
                Ok(())
            }
            Command::Devices { json } => {
                let conn = latchkey_client::connect(&dir).await?;
                let devices = conn.devices().await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&devices)?);
                } else {
                    // Everything the gateway relays is data: escaped, and cut to its column.
                    let f = |d: &serde_json::Value, k: &str, width: usize| {
                        cell(d.get(k).and_then(|v| v.as_str()).unwrap_or("-"), width)
                    };
                    for d in &devices {
                        println!(
                            "{:<28} {:<20} {:<7} {:<12} {:<8} {}",
                            f(d, "id", 28),
                            f(d, "name", 20),
                            f(d, "role", 7),
                            f(d, "cameras", 12),
                            f(d, "state", 8),
                            f(d, "last_addr", 48)
                        );
                    }
                }
                Ok(())
            }
            Command::Revoke { device } => {
                let conn = latchkey_client::connect(&dir).await?;
                let r = conn.revoke(&device).await?;
                println!(
                    "device {} revoked ({} live sessions closed)",
                    r.get("id").and_then(|v| v.as_str()).unwrap_or(&device),
                    r.get("sessions_closed").and_then(|v| v.as_u64()).unwrap_or(0)
                );
                Ok(())
            }
            Command::Confirm { device } => {
                let conn = latchkey_client::connect(&dir).await?;
                let r = conn.confirm(&device).await?;
                println!(
                    "device {} confirmed",
                    r.get("id").and_then(|v| v.as_str()).unwrap_or(&device)
                );
                Ok(())
            }
            Command::Invite {
                role,
                cameras,
                expires,
                name,
                auto_confirm,
            } => {
                let conn = latchkey_client::connect(&dir).await?;
                let invite = latchkey_client::Invite {
                    role,
                    cameras,
                    expires_secs: expires.map(|d| d.as_secs().max(1)),
                    name,
                    auto_confirm,
                };
                let inv = conn.invite(&invite).await?;
                println!("{}", inv.uri);
                eprintln!(
                    "show this as a QR code to the new phone; it works once, within {} s",
                    inv.expires_in_secs
                );
                Ok(())
            }
            Command::Audit { json, limit } => {
                let conn = latchkey_client::connect(&dir).await?;
                let page = conn.audit(limit).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&page.rows)?);
                } else {
                    for r in &page.rows {
                        let f = |k: &str| {
                            let raw = r
                                .get(k)
                                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                                .unwrap_or_default();
                            escape(&raw).into_owned()
                        };
                        println!(
                            "{:>6} {:>10} {:<22} {:<28} {}",
                            f("id"),
                            f("at"),
                            f("kind"),
                            f("device").replace("null", "-"),
                            f("detail")
                        );
                    }
                }
                Ok(())
            }
            Command::GenerateAssets { .. } => Ok(()),
            Command::Serve { listen } => {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                let addr = listener.local_addr().context("reading the local address")?;
                if !addr.ip().is_loopback() {
                    eprintln!(
                        "warning: {addr} is reachable from other machines; anyone who reaches it watches with this phone's rights"
                    );
                }
                println!("listening http://{addr}");
                {
                    use std::io::Write as _;
                    let _ = std::io::stdout().flush();
                }
                tokio::select! {
                    r = latchkey_client::serve::serve(listener, dir) => r.context("serving")?,
                    _ = tokio::signal::ctrl_c() => {}
                }
                Ok(())
            }
        }
    })
}
