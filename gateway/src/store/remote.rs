//! The owner's remote-access approvals: at most one stands; each change is audited and
//! durable before the call returns.

use latchkey_pairing::UnixTime;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::AuditKind;
use super::{Store, StoreError, audit_in, from_ts, ts};

/// The owner's approval for remote access: what the gateway may ask of the router, and
/// for how long each lease runs. At most one stands (has no `ended_at`) at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RemoteApproval {
    /// Row id.
    pub id: i64,
    /// An IPv4 port mapping is approved.
    pub ipv4: bool,
    /// An IPv6 pinhole is approved.
    pub ipv6: bool,
    /// Lease asked of the router, renewed at half-life; never 0.
    pub lease_secs: u32,
    /// When the owner approved.
    pub approved_at: UnixTime,
    /// Who approved (`owner (cli)`, ...).
    pub approved_by: String,
}

impl Store {
    /// Records the owner's approval for remote access, ending any earlier one, with its
    /// audit row, durably, before returning.
    pub fn approve_remote(
        &self,
        ipv4: bool,
        ipv6: bool,
        lease_secs: u32,
        now: UnixTime,
        by: &str,
    ) -> Result<RemoteApproval, StoreError> {
        // A lease of 0 means "forever" to a router: refuse it at the lowest layer too.
        let lease_secs = lease_secs.max(1);
        let id = self.with("recording a remote-access approval", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE remote_approvals SET ended_at = ?1, ended_by = 'replaced' WHERE ended_at IS NULL",
                [ts(now)],
            )?;
            tx.execute(
                "INSERT INTO remote_approvals (ipv4, ipv6, lease_secs, approved_at, approved_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![ipv4, ipv6, lease_secs, ts(now), by],
            )?;
            let id = tx.last_insert_rowid();
            let detail = format!(
                "remote access approved by {by}: ipv4 {}, ipv6 {}, lease {lease_secs} s",
                if ipv4 { "yes" } else { "no" },
                if ipv6 { "yes" } else { "no" }
            );
            audit_in(&tx, now, AuditKind::RemoteApproved, None, None, &detail)?;
            tx.commit()?;
            Ok(id)
        })?;
        Ok(RemoteApproval {
            id,
            ipv4,
            ipv6,
            lease_secs,
            approved_at: now,
            approved_by: by.to_string(),
        })
    }

    /// The standing remote-access approval, if any.
    pub fn remote_approval(&self) -> Result<Option<RemoteApproval>, StoreError> {
        let row = self.with("reading the remote-access approval", |c| {
            c.query_row(
                "SELECT id, ipv4, ipv6, lease_secs, approved_at, approved_by FROM remote_approvals
                 WHERE ended_at IS NULL ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, bool>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((id, ipv4, ipv6, lease, at, by)) = row else {
            return Ok(None);
        };
        let lease_secs = u32::try_from(lease)
            .ok()
            .filter(|l| *l > 0)
            .ok_or_else(|| self.corrupt("remote approval lease is out of range"))?;
        Ok(Some(RemoteApproval {
            id,
            ipv4,
            ipv6,
            lease_secs,
            approved_at: from_ts(at),
            approved_by: by,
        }))
    }

    /// Ends the standing remote-access approval durably (with its audit row); returns
    /// whether one stood.
    pub fn end_remote_approval(&self, now: UnixTime, by: &str) -> Result<bool, StoreError> {
        self.with("ending the remote-access approval", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE remote_approvals SET ended_at = ?1, ended_by = ?2 WHERE ended_at IS NULL",
                params![ts(now), by],
            )?;
            if n > 0 {
                audit_in(
                    &tx,
                    now,
                    AuditKind::RemoteClosed,
                    None,
                    None,
                    &format!("remote access withdrawn by {by}"),
                )?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }
}
