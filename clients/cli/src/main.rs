//! `latchkey-client`: the phone side from a terminal (argument parsing and output only).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use latchkey_client::StateDir;

mod commands;

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
    /// Serve the cameras on a local HTTP port for VLC, ffplay or a browser, under the
    /// printed URL (it holds a per-launch token): TOKEN/cameras/ID/live.mp4, live.m3u8 (HLS),
    /// live.mjpeg, snapshot.jpg, and TOKEN/ (a player page).
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
    runtime.block_on(commands::run(dir, cli.command))
}
