//! The store's async front: async code reaches SQLite only through [`Store::run`], which
//! takes a clone of the handle onto tokio's blocking pool, so no call site repeats the
//! clone-and-`spawn_blocking` dance, and [`Store::audit_async`] for the common
//! "write an audit row, log if that fails" case.

use latchkey_pairing::{DeviceId, UnixTime};

use super::{AuditKind, Store, StoreError};

impl Store {
    /// Runs `f` with this store on the blocking pool. A task that died (a panic, or the
    /// runtime shutting down) is [`StoreError::Interrupted`].
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|_| StoreError::Interrupted)?
    }

    /// Writes one audit row off the async threads; a failure is logged, not returned
    /// (an audit row never decides whether the action it records happens).
    pub async fn audit_async(
        &self,
        now: UnixTime,
        kind: AuditKind,
        device: Option<DeviceId>,
        addr: Option<String>,
        detail: String,
    ) {
        let written = self
            .run(move |s| s.audit(now, kind, device.as_ref(), addr.as_deref(), &detail))
            .await;
        if let Err(e) = written {
            tracing::error!("writing the audit log: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn run_answers_from_the_blocking_pool() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|source| StoreError::Dir {
            path: std::env::temp_dir(),
            source,
        })?;
        let store = Store::open(dir.path())?;
        store
            .audit_async(7, AuditKind::PairingOpened, None, None, "x".into())
            .await;
        let rows = store.run(|s| s.audit_log(10)).await?;
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows.first().map(|r| r.kind.as_str()),
            Some("pairing-opened")
        );
        Ok(())
    }
}
