//! `latchkey cameras report` and `latchkey cameras lockdown --print`: what quarantined
//! cameras tried, in plain words, and rules for the owner's own router. Printing only;
//! the daemon answers through the admin socket (`admin/quarantine.rs`).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::ValueEnum;
use latchkey_gateway::admin::socket::{self, AdminRequest};
use latchkey_gateway::quarantine::lockdown::{self, Plan};
use latchkey_gateway::quarantine::report::{self, Report};

/// Rule formats `lockdown --print` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RuleFormat {
    /// An nftables table for a Linux router.
    Nftables,
    /// OpenWrt firewall rules (/etc/config/firewall).
    Openwrt,
}

/// `--since`: a duration ago (`2h`, `30m`) or a time (`2026-12-02T08:00:00Z`).
pub fn parse_since(s: &str) -> Result<u64, String> {
    let at = if let Ok(d) = humantime::parse_duration(s) {
        SystemTime::now().checked_sub(d).unwrap_or(UNIX_EPOCH)
    } else {
        humantime::parse_rfc3339_weak(s).map_err(|_| {
            format!("{s:?}: give a duration ago (2h, 30m) or a time (2026-12-02T08:00:00Z)")
        })?
    };
    Ok(at
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs())
}

/// Text from a camera made safe for a terminal: no control characters.
fn safe(s: &str) -> String {
    latchkey_pairing::text::escape(s).into_owned()
}

/// Prints the report in plain words.
pub fn print_report(r: &Report) {
    match &r.camera_port {
        Some(p) => println!(
            "camera port {} is on: cameras there reach only this gateway",
            safe(p)
        ),
        None => println!("camera port is off: this is what cameras tried while it was on"),
    }
    if r.cameras.is_empty() {
        println!(
            "nothing recorded{}",
            if r.since.is_some() {
                " in that time"
            } else {
                ""
            }
        );
    }
    for c in &r.cameras {
        println!();
        for line in report::sentences(c) {
            println!("{}", safe(&line));
        }
    }
}

/// `latchkey cameras report [CAMERA] [--since] [--json]`.
pub async fn report(
    state: &Path,
    camera: Option<String>,
    since: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    let v = socket::request(state, &AdminRequest::QuarantineReport { camera, since }).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let r: Report = serde_json::from_value(v)?;
    print_report(&r);
    Ok(())
}

/// `latchkey cameras lockdown --print nftables|openwrt`.
pub async fn lockdown(state: &Path, format: RuleFormat) -> anyhow::Result<()> {
    let v = socket::request(state, &AdminRequest::QuarantineLockdown).await?;
    let plan: Plan = serde_json::from_value(v)?;
    if plan.cameras.is_empty() {
        anyhow::bail!(
            "no camera at an IP address to lock in: add your cameras first (latchkey cameras add)"
        );
    }
    print!(
        "{}",
        match format {
            RuleFormat::Nftables => lockdown::nftables(&plan),
            RuleFormat::Openwrt => lockdown::openwrt(&plan),
        }
    );
    Ok(())
}
