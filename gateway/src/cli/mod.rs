//! The `latchkey` command line's subcommand groups, one file each; `main.rs` parses and
//! dispatches. Each group asks the daemon over the admin socket and renders the typed
//! answer (`admin/answers.rs`, `portmap/report.rs`); `--json` prints the answer exactly
//! as the daemon sent it.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use latchkey_gateway::admin::socket::{self, AdminRequest};
use serde::de::DeserializeOwned;

pub mod audit;
pub mod cameras;
pub mod devices;
pub mod quarantine;
pub mod remote;

/// Sends `req` and reads the answer as `T`; with `json`, prints the answer as it came.
pub async fn ask<T: DeserializeOwned>(
    state: &Path,
    req: &AdminRequest,
    json: bool,
) -> anyhow::Result<T> {
    let answer = socket::request(state, req).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    }
    socket::decode(answer)
}

/// A Unix time as RFC 3339, as every admin command prints times.
pub fn at(t: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

/// `Some(t)` as RFC 3339, `None` as `-`.
pub fn at_or_dash(t: Option<u64>) -> String {
    t.map_or_else(|| "-".to_string(), at)
}

/// Text from outside (a phone, a camera, a router) for a terminal: escaped
/// (`latchkey_pairing::text::escape`), so no control, bidi or invisible character
/// reaches the owner's terminal raw.
pub fn text<S: AsRef<str> + ?Sized>(s: &S) -> String {
    latchkey_pairing::text::escape(s.as_ref()).into_owned()
}

/// Text from outside for a terminal, escaped like [`text`]; `None` is `-`.
pub fn or_dash(v: Option<&str>) -> String {
    v.map_or_else(|| "-".to_string(), text)
}

/// Prints `uri` as a QR code for the terminal.
pub fn print_qr(uri: &str) -> anyhow::Result<()> {
    let code = qrcode::QrCode::new(uri.as_bytes()).context("making the QR code")?;
    let text = code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .build();
    println!("{text}");
    Ok(())
}
