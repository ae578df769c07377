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

use latchkey_pairing::{DeviceId, UnixTime};

use crate::Gateway;
use crate::store::AuditKind;

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
    device: Option<DeviceId>,
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
    pub device: Option<DeviceId>,
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
        w.device = row.device.cloned();
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
    pub kind: AuditKind,
    /// Device concerned.
    pub device: Option<&'a DeviceId>,
    /// Peer address.
    pub addr: &'a str,
    /// Detail.
    pub detail: &'a str,
}

/// Writes (or counts) `row` under the limit of `key`; a summary follows a flood.
pub async fn limited(gw: &Arc<Gateway>, key: &str, row: Row<'_>) {
    let now = gw.clock.unix_now();
    match gw.routine_audit.decide(key, &row, now) {
        Decision::Write => {
            let (d, a) = (row.device.cloned(), row.addr.to_string());
            gw.store
                .audit_async(now, row.kind, d, Some(a), row.detail.to_string())
                .await;
        }
        Decision::Count { flush: false } => {}
        Decision::Count { flush: true } => {
            let (gw, key) = (gw.clone(), key.to_string());
            tokio::spawn(async move {
                gw.clock.sleep(FLOOD_WINDOW).await;
                flush(&gw, &key).await;
            });
        }
    }
}

/// Writes the summary row of `key`'s window, if rows were counted.
async fn flush(gw: &Arc<Gateway>, key: &str) {
    let now = gw.clock.unix_now();
    let Some(s) = gw.routine_audit.take(key, now) else {
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
    gw.store
        .audit_async(now, AuditKind::AuditFlood, s.device, Some(s.addr), detail)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_written_ten_at_a_time_and_summed_up() {
        let v = DeviceId("v".into());
        let r = RoutineAudit::default();
        let row = Row {
            kind: AuditKind::CameraWatched,
            device: Some(&v),
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

    /// The whole path on simulated time: rows through the gateway, the flush task's
    /// one-minute wait, the summary row and a fresh window, with no real waiting (on the
    /// real clock this takes a minute, so it was only checked piecewise above).
    #[tokio::test]
    async fn a_flood_window_ends_and_is_summed_up_on_simulated_time() -> anyhow::Result<()> {
        let v = DeviceId("v".into());
        const T0: UnixTime = 1_800_000_000;
        let dir = tempfile::tempdir()?;
        let clock = crate::clock::Clock::simulated(T0);
        let gw = Gateway::open_at(
            dir.path().to_path_buf(),
            crate::config::Config {
                name: "test".into(),
                cameras: Vec::new(),
                camera_grace: crate::config::DEFAULT_CAMERA_GRACE,
                rekey_after_secs: crate::config::DEFAULT_REKEY_AFTER_SECS,
                hibernate_after: crate::limits::HIBERNATE_AFTER,
            },
            "127.0.0.1:1".parse()?,
            Arc::new(crate::camera::RealOpener),
            clock.clone(),
        )?;
        let row = Row {
            kind: AuditKind::OwnerActionRefused,
            device: Some(&v),
            addr: "192.0.2.1",
            detail: "d",
        };
        for _ in 0..25 {
            limited(&gw, "v", row).await;
        }
        // The flush task sleeps FLOOD_WINDOW on the simulated clock, which returns at once.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let summary = loop {
            let rows = gw.store.run(|s| s.audit_log(100)).await?;
            if let Some(r) = rows.iter().find(|r| r.kind == "audit-flood") {
                break r.clone();
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "no flood summary");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(summary.at, T0 + FLOOD_WINDOW.as_secs());
        assert!(
            summary
                .detail
                .starts_with("15 more owner-action-refused rows"),
            "{}",
            summary.detail
        );
        limited(&gw, "v", row).await;
        let rows = gw.store.run(|s| s.audit_log(100)).await?;
        let written = rows.iter().filter(|r| r.kind == "owner-action-refused");
        assert_eq!(
            written.count(),
            11,
            "ten in the first window, one in the next"
        );
        Ok(())
    }
}
