//! Cameras the owner added at run time (CLI, web UI, owner phone), kept in the store.
//!
//! A child module of `store` so it shares the store's connection and audit helper. The
//! password is stored (the gateway must log into the camera) but is only ever read back
//! to open the camera: listings carry `has_password`, never the password.

use latchkey_pairing::{CameraGrant, UnixTime};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::AuditKind;
use super::{Store, StoreError, audit_in, ts};

/// One stored camera.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCamera {
    /// Stable id (1 to 32 of `a-z 0-9 - _`).
    pub id: String,
    /// Source URL without credentials (`rtsp://host:port/path`, `mjpeg+http://…`).
    pub url: String,
    /// User name for the camera, if any.
    pub username: Option<String>,
    /// Password for the camera, if any. Write-only towards the owner.
    pub password: Option<String>,
    /// What ONVIF told us when the camera was added from it (JSON), if it was.
    pub onvif: Option<String>,
}

impl std::fmt::Debug for StoredCamera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCamera")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("has_password", &self.password.is_some())
            .finish_non_exhaustive()
    }
}

/// `text` (a grant as stored) with camera `from` renamed to `to`, or removed when `to`
/// is `None`; `None` when the grant does not name `from`.
fn rewrite_grant(text: &str, from: &str, to: Option<&str>) -> Option<String> {
    match CameraGrant::parse_list(text) {
        CameraGrant::All => None,
        CameraGrant::Only(mut ids) => {
            if !ids.remove(from) {
                return None;
            }
            if let Some(to) = to {
                ids.insert(to.to_string());
            }
            Some(CameraGrant::Only(ids).to_string())
        }
    }
}

/// Rewrites every device's and open pairing window's grant that names `from`.
fn rewrite_grants(tx: &Connection, from: &str, to: Option<&str>) -> Result<usize, rusqlite::Error> {
    let mut changed = 0;
    for table in ["devices", "pairing_windows"] {
        let rows: Vec<(String, String)> = {
            let mut st = tx.prepare(&format!("SELECT rowid, cameras FROM {table}"))?;
            st.query_map([], |r| Ok((r.get::<_, i64>(0)?.to_string(), r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        for (rowid, grant) in rows {
            if let Some(new) = rewrite_grant(&grant, from, to) {
                tx.execute(
                    &format!("UPDATE {table} SET cameras = ?1 WHERE rowid = ?2"),
                    params![new, rowid],
                )?;
                changed += 1;
            }
        }
    }
    Ok(changed)
}

impl Store {
    /// Every stored camera, oldest first.
    pub fn stored_cameras(&self) -> Result<Vec<StoredCamera>, StoreError> {
        self.with("reading cameras", |c| {
            let mut st = c.prepare(
                "SELECT id, url, username, password, onvif FROM cameras ORDER BY created_at, id",
            )?;
            st.query_map([], |r| {
                Ok(StoredCamera {
                    id: r.get(0)?,
                    url: r.get(1)?,
                    username: r.get(2)?,
                    password: r.get(3)?,
                    onvif: r.get(4)?,
                })
            })?
            .collect()
        })
    }

    /// One stored camera.
    pub fn stored_camera(&self, id: &str) -> Result<Option<StoredCamera>, StoreError> {
        Ok(self.stored_cameras()?.into_iter().find(|c| c.id == id))
    }

    /// Adds a camera durably, with its audit row; `false` if the id is taken.
    pub fn insert_camera(
        &self,
        cam: &StoredCamera,
        now: UnixTime,
        by: &str,
    ) -> Result<bool, StoreError> {
        self.with("adding a camera", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "INSERT OR IGNORE INTO cameras (id, url, username, password, onvif, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    cam.id,
                    cam.url,
                    cam.username,
                    cam.password,
                    cam.onvif,
                    ts(now)
                ],
            )?;
            if n > 0 {
                audit_in(
                    &tx,
                    now,
                    AuditKind::CameraAdded,
                    None,
                    None,
                    &format!("by {by}: camera {} at {}", cam.id, cam.url),
                )?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }

    /// Replaces camera `id` with `cam` (which may carry a new id: grants naming the old
    /// one follow it). `false` if there is no camera `id` or the new id is taken.
    pub fn update_camera(
        &self,
        id: &str,
        cam: &StoredCamera,
        now: UnixTime,
        by: &str,
    ) -> Result<bool, StoreError> {
        self.with("changing a camera", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if cam.id != id {
                let taken: Option<i64> = tx
                    .query_row("SELECT 1 FROM cameras WHERE id = ?1", [&cam.id], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if taken.is_some() {
                    return Ok(false);
                }
            }
            let n = tx.execute(
                "UPDATE cameras SET id = ?1, url = ?2, username = ?3, password = ?4, onvif = ?5
                 WHERE id = ?6",
                params![cam.id, cam.url, cam.username, cam.password, cam.onvif, id],
            )?;
            if n == 0 {
                return Ok(false);
            }
            let mut detail = format!("by {by}: camera {id} now {} at {}", cam.id, cam.url);
            if cam.id != id {
                let grants = rewrite_grants(&tx, id, Some(&cam.id))?;
                detail.push_str(&format!(" ({grants} grants follow the rename)"));
            }
            audit_in(&tx, now, AuditKind::CameraChanged, None, None, &detail)?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// Removes camera `id` and every grant's mention of it; `false` if there is none.
    pub fn delete_camera(&self, id: &str, now: UnixTime, by: &str) -> Result<bool, StoreError> {
        self.with("removing a camera", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute("DELETE FROM cameras WHERE id = ?1", [id])?;
            if n == 0 {
                return Ok(false);
            }
            let grants = rewrite_grants(&tx, id, None)?;
            audit_in(
                &tx,
                now,
                AuditKind::CameraRemoved,
                None,
                None,
                &format!("by {by}: camera {id} ({grants} grants no longer name it)"),
            )?;
            tx.commit()?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cam(id: &str) -> StoredCamera {
        StoredCamera {
            id: id.into(),
            url: "rtsp://10.0.0.5/live".into(),
            username: Some("admin".into()),
            password: Some("hunter2-secret".into()),
            onvif: None,
        }
    }

    #[test]
    fn grants_follow_renames_and_removals() {
        assert_eq!(rewrite_grant("all", "a", Some("b")), None);
        assert_eq!(rewrite_grant("a,c", "a", Some("b")).as_deref(), Some("b,c"));
        assert_eq!(rewrite_grant("a,c", "x", Some("b")), None);
        assert_eq!(rewrite_grant("a,c", "a", None).as_deref(), Some("c"));
        assert_eq!(rewrite_grant("a", "a", None).as_deref(), Some(""));
    }

    #[test]
    fn add_rename_remove_and_no_password_in_the_audit_or_debug() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.insert_camera(&cam("front"), 1, "t").unwrap());
        assert!(!store.insert_camera(&cam("front"), 2, "t").unwrap());
        assert!(store.insert_camera(&cam("back"), 2, "t").unwrap());
        assert!(!store.update_camera("front", &cam("back"), 3, "t").unwrap());
        assert!(store.update_camera("front", &cam("porch"), 3, "t").unwrap());
        let ids: Vec<String> = store
            .stored_cameras()
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["porch", "back"]);
        assert!(store.delete_camera("porch", 4, "t").unwrap());
        assert!(!store.delete_camera("porch", 4, "t").unwrap());
        let log = format!("{:?}", store.audit_log(100).unwrap());
        assert!(log.contains("camera-removed"), "{log}");
        assert!(!log.contains("hunter2"), "{log}");
        assert!(!format!("{:?}", cam("x")).contains("hunter2"));
    }
}
