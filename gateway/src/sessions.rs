//! Live sessions per device, so a revocation can cut them all at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Every live Noise session, by device id.
#[derive(Debug, Default, Clone)]
pub struct SessionRegistry {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    by_device: HashMap<String, HashMap<u64, CancellationToken>>,
}

/// Held by a session task; unregisters on drop.
#[derive(Debug)]
pub struct SessionGuard {
    registry: SessionRegistry,
    device: String,
    id: u64,
    /// Cancelled when the session must end.
    pub token: CancellationToken,
}

impl SessionRegistry {
    /// Registers a live session of `device`.
    pub fn register(&self, device: &str) -> SessionGuard {
        let token = CancellationToken::new();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.next += 1;
        let id = inner.next;
        inner
            .by_device
            .entry(device.to_string())
            .or_default()
            .insert(id, token.clone());
        SessionGuard {
            registry: self.clone(),
            device: device.to_string(),
            id,
            token,
        }
    }

    /// Cuts every live session of `device`; returns how many there were.
    pub fn cut(&self, device: &str) -> usize {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let sessions = inner.by_device.remove(device).unwrap_or_default();
        for token in sessions.values() {
            token.cancel();
        }
        sessions.len()
    }

    /// Live sessions of `device`.
    pub fn count(&self, device: &str) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.by_device.get(device).map_or(0, HashMap::len)
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut inner = self
            .registry
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(sessions) = inner.by_device.get_mut(&self.device) {
            sessions.remove(&self.id);
            if sessions.is_empty() {
                inner.by_device.remove(&self.device);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_cancels_every_session_of_one_device_only() {
        let reg = SessionRegistry::default();
        let a1 = reg.register("a");
        let a2 = reg.register("a");
        let b = reg.register("b");
        assert_eq!(reg.cut("a"), 2);
        assert!(a1.token.is_cancelled() && a2.token.is_cancelled());
        assert!(!b.token.is_cancelled());
        drop(b);
        assert_eq!(reg.count("b"), 0);
    }
}
