//! One function per subcommand: call the library, print what it returns (escaped).

use anyhow::Context as _;
use latchkey_client::{Connection, PairingUri, StateDir};
use latchkey_pairing::text::{cell, escape};
use latchkey_pairing::{DeviceState, Role};

use crate::Command;

/// Runs one subcommand against the phone state in `dir`.
pub async fn run(dir: StateDir, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Pair {
            uri,
            qr_image,
            name,
        } => {
            let text = match (uri, qr_image) {
                (Some(u), _) => u,
                (None, Some(img)) => {
                    let bytes = std::fs::read(&img)
                        .with_context(|| format!("reading {}", img.display()))?;
                    latchkey_client::qr::decode(&bytes)
                        .with_context(|| format!("reading the QR code in {}", img.display()))?
                }
                (None, None) => anyhow::bail!("give a pairing URI or --qr-image FILE"),
            };
            pair(&dir, &text, &name).await
        }
        Command::Cameras { json } => cameras(&connect(&dir).await?, json).await,
        Command::Snapshot { camera, output } => {
            let conn = connect(&dir).await?;
            let jpeg = conn
                .snapshot(&camera)
                .await
                .with_context(|| format!("getting a snapshot of camera {camera:?}"))?;
            std::fs::write(&output, &jpeg)
                .with_context(|| format!("writing {}", output.display()))?;
            println!("wrote {} ({} bytes)", output.display(), jpeg.len());
            Ok(())
        }
        Command::Devices { json } => devices(&connect(&dir).await?, json).await,
        Command::Revoke { device } => {
            let r = connect(&dir).await?.revoke(&device).await?;
            let (id, closed) = (cell(&r.id, 64), r.sessions_closed);
            println!("device {id} revoked ({closed} live sessions closed)");
            Ok(())
        }
        Command::Confirm { device } => {
            let r = connect(&dir).await?.confirm(&device).await?;
            println!("device {} confirmed", cell(&r.id, 64));
            Ok(())
        }
        Command::Invite {
            role,
            cameras,
            expires,
            name,
            auto_confirm,
        } => {
            let invite = latchkey_client::InvitationRequest {
                role: if role == "viewer" {
                    Role::Viewer
                } else {
                    Role::Guest
                },
                cameras,
                expires_secs: expires.map(|d| d.as_secs().max(1)),
                name,
                auto_confirm,
            };
            let inv = connect(&dir).await?.invite(&invite).await?;
            println!("{}", inv.uri);
            eprintln!(
                "show this as a QR code to the new phone; it works once, within {} s",
                inv.expires_in_secs
            );
            Ok(())
        }
        Command::Audit { json, limit } => audit(&connect(&dir).await?, json, limit).await,
        Command::Serve { listen } => serve(dir, listen).await,
        Command::GenerateAssets { .. } => Ok(()),
    }
}

async fn connect(dir: &StateDir) -> anyhow::Result<Connection> {
    Ok(latchkey_client::connect(dir).await?)
}

async fn pair(dir: &StateDir, text: &str, name: &str) -> anyhow::Result<()> {
    let uri = PairingUri::parse(text)?;
    let outcome = latchkey_client::pair(dir, &uri, name).await?;
    println!(
        "paired with {:?} as device {}",
        outcome.gateway_name, outcome.device_id
    );
    println!("short code: {}", outcome.code);
    if outcome.state == DeviceState::Pending {
        println!(
            "waiting for the owner: check that the gateway shows the same code, then run `latchkey confirm {}` there",
            outcome.device_id
        );
    }
    Ok(())
}

async fn cameras(conn: &Connection, json: bool) -> anyhow::Result<()> {
    let cameras = conn.cameras().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&cameras)?);
        return Ok(());
    }
    for c in cameras {
        println!(
            "{:<16} {:<9} {:<10} {:<6} {}",
            cell(&c.id, 16),
            cell(&c.kind, 9),
            cell(c.state.as_str(), 10),
            cell(c.codec.as_deref().unwrap_or("-"), 6),
            escape(c.error.as_deref().unwrap_or(""))
        );
    }
    Ok(())
}

async fn devices(conn: &Connection, json: bool) -> anyhow::Result<()> {
    let devices = conn.devices().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&devices)?);
        return Ok(());
    }
    // Everything the gateway relays is data: escaped, and cut to its column.
    for d in &devices {
        println!(
            "{:<28} {:<20} {:<7} {:<12} {:<8} {}",
            cell(&d.id, 28),
            cell(&d.name, 20),
            cell(d.role.as_str(), 7),
            cell(&d.cameras, 12),
            cell(d.state.as_str(), 8),
            cell(d.last_addr.as_deref().unwrap_or("-"), 48)
        );
    }
    Ok(())
}

async fn audit(conn: &Connection, json: bool, limit: u32) -> anyhow::Result<()> {
    let page = conn.audit(limit).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&page.rows)?);
        return Ok(());
    }
    for r in &page.rows {
        println!(
            "{:>6} {:>10} {:<22} {:<28} {}",
            r.id,
            r.at,
            escape(&r.kind),
            escape(r.device.as_deref().unwrap_or("-")),
            escape(&r.detail)
        );
    }
    Ok(())
}

async fn serve(dir: StateDir, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr().context("reading the local address")?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: {addr} is reachable from other machines; anyone who reaches it watches with this phone's rights"
        );
    }
    let endpoint = latchkey_client::serve::endpoint(&listener, dir).context("starting")?;
    // The URL carries this launch's token: players need all of it.
    println!("listening {}", endpoint.base_url());
    {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    tokio::select! {
        r = endpoint.run(listener) => r.context("serving")?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
