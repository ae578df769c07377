//! Audit rows that someone can trigger at will (a paired device's refused owner
//! actions; a photographed QR code presented again and again) are rate-limited per
//! device or source and aggregated, so a flood costs a handful of rows and the owner
//! still sees it: the first [`ROUTINE_PER_WINDOW`] rows of a key in a [`FLOOD_WINDOW`]
//! are written one by one; the rest are counted, and one `audit-flood` row ("48,210
//! more rows from X between T1 and T2") is written when the window ends. Flood rows are
//! kept apart from routine and security rows (`store/security.rs`), so neither a flood
//! nor its summaries can evict a security event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use latchkey_pairing::UnixTime;

use crate::{Gateway, unix_now};

/// Routine rows written one by one per device and window.
pub const ROUTINE_PER_WINDOW: u32 = 10;
/// The aggregation window.
pub const FLOOD_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Window {
    started: UnixTime,
    written: u32,
    suppressed: u64,
    first: UnixTime,
    last: UnixTime,
    addr: String,
    kind: String,
    device: Option<String>,
}

/// What to do with one routine row.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write it.
    Write,
    /// Count it; `flush` is true for the first one counted in this window, whose caller
    /// schedules the summary.
    Count {
        /// Schedule the summary row.
        flush: bool,
    },
}

/// The per-device windows.
#[derive(Debug, Default)]
pub struct RoutineAudit {
    windows: Mutex<HashMap<String, Window>>,
}

/// The summary of a window's counted rows.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    /// Rows not written.
    pub count: u64,
    /// First and last of them.
    pub from: UnixTime,
    /// See `from`.
    pub to: UnixTime,
    /// Where the last one came from.
    pub addr: String,
    /// Their kind.
    pub kind: String,
    /// The device concerned, if any.
    pub device: Option<String>,
}

impl RoutineAudit {
    /// Decides about one row of `key` (a device id or a source) at `now`.
    pub fn decide(&self, key: &str, row: &Row<'_>, now: UnixTime) -> Decision {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 4096 && !windows.contains_key(key) {
            windows.retain(|_, w| w.suppressed > 0);
        }
        let w = windows.entry(key.to_string()).or_default();
        if w.suppressed == 0 && now.saturating_sub(w.started) >= FLOOD_WINDOW.as_secs() {
            w.started = now;
            w.written = 0;
        }
        if w.written < ROUTINE_PER_WINDOW && w.suppressed == 0 {
            w.written += 1;
            return Decision::Write;
        }
        w.suppressed += 1;
        w.last = now;
        w.addr = row.addr.to_string();
        w.kind = row.kind.to_string();
        w.device = row.device.map(String::from);
        if w.suppressed == 1 {
            w.first = now;
            return Decision::Count { flush: true };
        }
        Decision::Count { flush: false }
    }

    /// Takes the window's summary (if rows were counted) and starts a new window.
    pub fn take(&self, device: &str, now: UnixTime) -> Option<Summary> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let w = windows.get_mut(device)?;
        let summary = (w.suppressed > 0).then(|| Summary {
            count: w.suppressed,
            from: w.first,
            to: w.last,
            addr: std::mem::take(&mut w.addr),
            kind: std::mem::take(&mut w.kind),
            device: w.device.take(),
        });
        *w = Window {
            started: now,
            ..Window::default()
        };
        summary
    }
}

/// One audit row subject to the flood limit.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// Kind.
    pub kind: &'a str,
    /// Device concerned.
    pub device: Option<&'a str>,
    /// Peer address.
    pub addr: &'a str,
    /// Detail.
    pub detail: &'a str,
}

/// Writes (or counts) `row` under the limit of `key`; a summary follows a flood.
pub async fn limited(gw: &Arc<Gateway>, key: &str, row: Row<'_>) {
    let now = unix_now();
    match gw.routine_audit.decide(key, &row, now) {
        Decision::Write => {
            let store = gw.store.clone();
            let (k, d, a, w) = (
                row.kind.to_string(),
                row.device.map(String::from),
                row.addr.to_string(),
                row.detail.to_string(),
            );
            let done = tokio::task::spawn_blocking(move || {
                store.audit(now, &k, d.as_deref(), Some(&a), &w)
            })
            .await;
            if let Ok(Err(e)) = done {
                tracing::error!("writing the audit log: {e}");
            }
        }
        Decision::Count { flush: false } => {}
        Decision::Count { flush: true } => {
            let (gw, key) = (gw.clone(), key.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(FLOOD_WINDOW).await;
                flush(&gw, &key).await;
            });
        }
    }
}

/// Writes the summary row of `key`'s window, if rows were counted.
async fn flush(gw: &Arc<Gateway>, key: &str) {
    let Some(s) = gw.routine_audit.take(key, unix_now()) else {
        return;
    };
    tracing::warn!(key, count = s.count, kind = %s.kind, "audit flood");
    let who = match &s.device {
        Some(d) => format!("device {d} (last from {})", s.addr),
        None => s.addr.clone(),
    };
    let detail = format!(
        "{} more {} rows from {who} between {} and {}, counted instead of written one by one: a flood",
        s.count, s.kind, s.from, s.to
    );
    let store = gw.store.clone();
    let done = tokio::task::spawn_blocking(move || {
        store.audit(
            unix_now(),
            "audit-flood",
            s.device.as_deref(),
            Some(&s.addr),
            &detail,
        )
    })
    .await;
    if let Ok(Err(e)) = done {
        tracing::error!("writing the audit log: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_written_ten_at_a_time_and_summed_up() {
        let r = RoutineAudit::default();
        let row = Row {
            kind: "k",
            device: Some("v"),
            addr: "a",
            detail: "d",
        };
        let decisions: Vec<Decision> = (0..1000).map(|_| r.decide("v", &row, 100)).collect();
        assert_eq!(
            decisions.iter().filter(|d| **d == Decision::Write).count(),
            10
        );
        assert_eq!(
            decisions
                .iter()
                .filter(|d| **d == Decision::Count { flush: true })
                .count(),
            1
        );
        assert_eq!(r.decide("other", &row, 100), Decision::Write, "per key");
        let s = r.take("v", 160).unwrap();
        assert_eq!((s.count, s.from, s.to), (990, 100, 100));
        assert_eq!(r.take("v", 160), None);
        assert_eq!(s.device.as_deref(), Some("v"));
        assert_eq!(r.decide("v", &row, 161), Decision::Write, "a new window");
    }
}
