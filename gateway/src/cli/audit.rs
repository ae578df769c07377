//! `latchkey audit [--json] [--limit N]`: the audit log, newest first, rendered from the
//! typed rows (`store::AuditRow`); device names and details are escaped for the terminal.

use std::path::Path;

use latchkey_gateway::admin::answers::AuditRows;
use latchkey_gateway::admin::socket::AdminRequest;
use latchkey_pairing::DeviceId;

use super::{ask, at, text};

/// Prints the newest `limit` rows.
pub async fn run(state: &Path, limit: u32, json: bool) -> anyhow::Result<()> {
    let rows: AuditRows = ask(state, &AdminRequest::Audit { limit }, json).await?;
    if json {
        return Ok(());
    }
    for a in &rows {
        let opt = |v: Option<&str>| v.map_or_else(|| "-".to_string(), text);
        println!(
            "{} {:<18} {:<17} {:<22} {}",
            at(a.at),
            text(&a.kind),
            opt(a.device.as_ref().map(DeviceId::as_str)),
            opt(a.addr.as_deref()),
            text(&a.detail)
        );
    }
    Ok(())
}
