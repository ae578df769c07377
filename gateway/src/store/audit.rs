//! The audit log: rows, filtered pages, and the one insert every writer goes through.

use latchkey_pairing::{DeviceId, UnixTime};
use rusqlite::{Connection, params};

use super::AuditKind;
use super::{Store, StoreError, from_ts, security, ts};

pub use latchkey_pairing::api_types::AuditRow;

/// Which audit rows to show; `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Device id.
    pub device: Option<String>,
    /// Camera id.
    pub camera: Option<String>,
    /// Kind, e.g. `device-revoked`.
    pub kind: Option<String>,
}

/// One page of the audit log (the phone API's `GET /v1/audit`).
pub use latchkey_pairing::api_types::AuditPage;

impl Store {
    /// Appends to the audit log, keeping it bounded.
    pub fn audit(
        &self,
        now: UnixTime,
        kind: AuditKind,
        device: Option<&DeviceId>,
        addr: Option<&str>,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.with("writing audit log", |c| {
            audit_in(c, now, kind, device.map(DeviceId::as_str), addr, detail)
        })
    }

    /// Appends an audit row that names the camera concerned.
    pub fn audit_camera(
        &self,
        now: UnixTime,
        kind: AuditKind,
        device: Option<&str>,
        camera: &str,
        addr: Option<&str>,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.with("writing audit log", |c| {
            audit_in(c, now, kind, device, addr, detail)?;
            c.execute(
                "UPDATE audit SET camera = ?1 WHERE id = ?2",
                params![camera, c.last_insert_rowid()],
            )
            .map(|_| ())
        })
    }

    /// The audit log, newest first.
    pub fn audit_log(&self, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        self.audit_page(&AuditFilter::default(), 0, limit)
            .map(|p| p.rows)
    }

    /// One page of the audit log matching `filter`, newest first, with the number of
    /// matching rows.
    pub fn audit_page(
        &self,
        filter: &AuditFilter,
        offset: u32,
        limit: u32,
    ) -> Result<AuditPage, StoreError> {
        // Empty filters match everything; values are bound, never spliced into SQL.
        const WHERE: &str = "WHERE (?1 IS NULL OR device = ?1) AND (?2 IS NULL OR camera = ?2) AND (?3 IS NULL OR kind = ?3)";
        self.with("reading audit log", |c| {
            let args = params![filter.device, filter.camera, filter.kind];
            let total: i64 =
                c.query_row(&format!("SELECT COUNT(*) FROM audit {WHERE}"), args, |r| {
                    r.get(0)
                })?;
            let mut st = c.prepare(&format!(
                "SELECT id, at, kind, device, addr, detail, camera FROM audit {WHERE} ORDER BY id DESC LIMIT ?4 OFFSET ?5"
            ))?;
            let rows = st.query_map(
                params![filter.device, filter.camera, filter.kind, limit, offset],
                |r| {
                    Ok(AuditRow {
                        id: r.get(0)?,
                        at: from_ts(r.get(1)?),
                        kind: r.get(2)?,
                        device: r.get::<_, Option<String>>(3)?.map(DeviceId),
                        addr: r.get(4)?,
                        detail: r.get(5)?,
                        camera: r.get(6)?,
                    })
                },
            )?;
            Ok(AuditPage {
                rows: rows.collect::<Result<_, _>>()?,
                total: u64::try_from(total).unwrap_or(0),
            })
        })
    }
}

pub(super) fn audit_in(
    c: &Connection,
    now: UnixTime,
    kind: AuditKind,
    device: Option<&str>,
    addr: Option<&str>,
    detail: &str,
) -> Result<(), rusqlite::Error> {
    // Every audit string is data: controls, bidi and invisible characters are escaped.
    use latchkey_pairing::text::escape;
    let (device, addr) = (device.map(escape), addr.map(escape));
    c.execute(
        "INSERT INTO audit (at, kind, device, addr, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![ts(now), kind.as_str(), device, addr, escape(detail)],
    )?;
    if c.last_insert_rowid() % 256 == 0 {
        security::prune_audit(c)?;
    }
    Ok(())
}
