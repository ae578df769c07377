//! `latchkey pair|confirm|revoke|devices`: pairing a phone (QR code, then the short-code
//! comparison at a terminal) and managing devices, rendered from the typed answers of
//! `admin/answers.rs`. Names come from phones: escaped before they reach the terminal.

use std::path::Path;
use std::time::Duration;

use latchkey_gateway::admin::answers::{Confirmed, DeviceInfo, PairAnswer, PairingStatus, Revoked};
use latchkey_gateway::admin::device_ref::DeviceRef;
use latchkey_gateway::admin::socket::{self, AdminRequest};
use latchkey_pairing::DeviceId;
use latchkey_pairing::Role;
use latchkey_pairing::text::cell;

use super::{ask, at, at_or_dash, print_qr, text};

/// What `latchkey pair` is asked.
#[derive(clap::Args, Debug)]
pub struct PairArgs {
    /// Name for the new device (default: the name the phone suggests).
    #[arg(long)]
    pub name: Option<String>,
    /// Role of the new device.
    #[arg(long, default_value = "viewer")]
    pub role: Role,
    /// Cameras it may watch: `all` or a comma-separated list of ids.
    #[arg(long, default_value = "all")]
    pub cameras: String,
    /// Its access ends after this long (e.g. 4h, 7d). Default: never.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub expires: Option<Duration>,
    /// Admit it without comparing the short code.
    #[arg(long)]
    pub auto_confirm: bool,
    /// Print only the URI.
    #[arg(long)]
    pub uri_only: bool,
    /// How long the code works (at most 5m).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}

/// `latchkey pair`.
pub async fn pair(state: &Path, a: PairArgs) -> anyhow::Result<()> {
    let req = AdminRequest::Pair {
        name: a.name,
        role: a.role,
        cameras: a.cameras,
        expires_secs: a.expires.map(|d| d.as_secs()),
        auto_confirm: a.auto_confirm,
        ttl_secs: a.ttl.as_secs(),
    };
    let offer: PairAnswer = socket::call(state, &req).await?;
    let uri = offer.uri;
    if a.uri_only {
        println!("{uri}");
        return Ok(());
    }
    print_qr(&uri)?;
    println!("{uri}");
    println!();
    println!("Scan this with the Latchkey app, or run: latchkey-client pair '{uri}'");
    println!(
        "The code works once, for {} seconds.",
        offer.expires_in_secs
    );
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        wait_and_confirm(state, a.auto_confirm).await?;
    } else if !a.auto_confirm {
        println!(
            "Then compare the 6-digit code on the phone with `latchkey devices` and run `latchkey confirm DEVICE`."
        );
    }
    Ok(())
}

/// `latchkey confirm DEVICE`.
pub async fn confirm(state: &Path, device: String) -> anyhow::Result<()> {
    let device = DeviceRef::parse(&device)?;
    let r: Confirmed = socket::call(state, &AdminRequest::Confirm { device }).await?;
    println!("device {} confirmed", text(&r.id));
    Ok(())
}

/// `latchkey revoke DEVICE`.
pub async fn revoke(state: &Path, device: String) -> anyhow::Result<()> {
    let device = DeviceRef::parse(&device)?;
    let r: Revoked = socket::call(state, &AdminRequest::Revoke { device }).await?;
    println!(
        "device {} revoked ({} live sessions closed)",
        text(&r.id),
        r.sessions_closed
    );
    Ok(())
}

/// `latchkey devices [--json]`: the table, then the latest pairing window's state.
pub async fn list(state: &Path, json: bool) -> anyhow::Result<()> {
    let devices: Vec<DeviceInfo> = ask(state, &AdminRequest::Devices, json).await?;
    if json {
        return Ok(());
    }
    println!(
        "{:<17} {:<20} {:<7} {:<10} {:<8} {:<7} {:<21} FROM",
        "ID", "NAME", "ROLE", "CAMERAS", "STATE", "CODE", "LAST SEEN"
    );
    for d in &devices {
        println!(
            "{:<17} {:<20} {:<7} {:<10} {:<8} {:<7} {:<21} {}",
            text(&d.id),
            cell(&text(&d.name), 20),
            d.role,
            cell(&text(&d.cameras), 10),
            d.state.as_str(),
            text(&d.code),
            at_or_dash(d.last_seen),
            text(d.last_addr.as_deref().unwrap_or("-"))
        );
    }
    let window: PairingStatus = socket::call(state, &AdminRequest::PairingStatus).await?;
    let Some(w) = window else { return Ok(()) };
    match w.state.as_str() {
        "open" => println!(
            "pairing code open until {}; {} failed attempts",
            at(w.expires_at),
            w.failures
        ),
        "closed" if w.failures > 0 => println!(
            "pairing code closed after {} failed attempts: someone may be guessing; `latchkey pair` opens a new one",
            w.failures
        ),
        other if w.failures > 0 => {
            println!(
                "last pairing code {}; {} failed attempts",
                text(other),
                w.failures
            )
        }
        _ => {}
    }
    Ok(())
}

/// At a terminal: waits for the phone to pair, shows its short code, and asks the owner
/// to confirm that the phone shows the same one (the defence against a photographed QR).
async fn wait_and_confirm(state: &Path, auto_confirm: bool) -> anyhow::Result<()> {
    let before: Vec<DeviceInfo> = socket::call(state, &AdminRequest::Devices).await?;
    let known: Vec<DeviceId> = before.into_iter().map(|d| d.id).collect();
    println!("Waiting for the phone... (Ctrl-C to stop waiting; the code stays valid)");
    let device = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now: Vec<DeviceInfo> = socket::call(state, &AdminRequest::Devices).await?;
        if let Some(d) = now.into_iter().find(|d| !known.contains(&d.id)) {
            break d;
        }
        let window: PairingStatus = socket::call(state, &AdminRequest::PairingStatus).await?;
        match window.as_ref().map(|w| w.state.as_str()) {
            Some("open") => continue,
            Some("closed") => anyhow::bail!(
                "the pairing code was closed after too many failed attempts; run `latchkey pair` again"
            ),
            _ => anyhow::bail!("the pairing code expired unused; run `latchkey pair` again"),
        }
    };
    let (id, name, code) = (text(&device.id), text(&device.name), text(&device.code));
    println!("Phone {name:?} paired as device {id}. It shows the code {code}.");
    if auto_confirm {
        return Ok(());
    }
    print!("Does the phone show {code}? Type yes to let it in: ");
    std::io::Write::flush(&mut std::io::stdout())?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    let device = DeviceRef::Id(device.id);
    if answer.trim().eq_ignore_ascii_case("yes") || answer.trim().eq_ignore_ascii_case("y") {
        let _: Confirmed = socket::call(state, &AdminRequest::Confirm { device }).await?;
        println!("device {id} confirmed");
    } else {
        let _: Revoked = socket::call(state, &AdminRequest::Revoke { device }).await?;
        println!(
            "device {id} rejected and revoked: the codes did not match, someone else may have scanned the QR code"
        );
    }
    Ok(())
}
