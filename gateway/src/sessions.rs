//! Live sessions per device, so a revocation can cut them all at once, the per-device
//! session cap (a new session closes the device's oldest beyond it), and the in-memory
//! list of revoked devices that holds even when the store cannot be written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio_util::sync::CancellationToken;

/// Every live Noise session, by device id.
#[derive(Debug, Default, Clone)]
pub struct SessionRegistry {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    /// Keyed by a shared id, which each of the device's guards holds too.
    by_device: HashMap<Arc<str>, HashMap<u64, CancellationToken>>,
    /// Devices cut by a revocation in this process: refused even if the store still says
    /// active (a full disk can keep a revocation from being saved).
    blocked: std::collections::HashSet<String>,
}

/// Held by a session task; unregisters on drop.
#[derive(Debug)]
pub struct SessionGuard {
    registry: SessionRegistry,
    device: Arc<str>,
    id: u64,
    /// Cancelled when the session must end (and with its parent, the gateway's shutdown).
    pub token: CancellationToken,
}

impl SessionRegistry {
    /// The registry's state. A poisoned lock is taken as it is: nothing done under it
    /// panics, and at worst a listed session would stay listed until its guard drops.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a live session of `device`, whose token is a child of `parent` (the
    /// gateway's shutdown): a session waits on its one token for both.
    pub fn register(&self, device: &str, parent: &CancellationToken) -> SessionGuard {
        self.register_capped(device, usize::MAX, parent).0
    }

    /// Registers a live session of `device`, first closing its oldest sessions so that it
    /// holds at most `max` (this one included), under one lock so that two sessions
    /// starting at once cannot both slip under the cap. Returns the guard and how many
    /// were closed.
    pub fn register_capped(
        &self,
        device: &str,
        max: usize,
        parent: &CancellationToken,
    ) -> (SessionGuard, usize) {
        let token = parent.child_token();
        let mut closed = 0;
        let mut inner = self.lock();
        inner.next += 1;
        let id = inner.next;
        // The device's sessions share one copy of its id.
        let device = match inner.by_device.get_key_value(device) {
            Some((key, _)) => key.clone(),
            None => Arc::from(device),
        };
        let sessions = inner.by_device.entry(device.clone()).or_default();
        while sessions.len() >= max.max(1) {
            let Some(oldest) = sessions.keys().min().copied() else {
                break;
            };
            if let Some(token) = sessions.remove(&oldest) {
                token.cancel();
                closed += 1;
            }
        }
        sessions.insert(id, token.clone());
        drop(inner);
        let guard = SessionGuard {
            registry: self.clone(),
            device,
            id,
            token,
        };
        (guard, closed)
    }

    /// Cuts every live session of `device` and refuses it from now on, whatever the
    /// store says; returns how many sessions there were.
    pub fn cut(&self, device: &str) -> usize {
        let mut inner = self.lock();
        inner.blocked.insert(device.to_string());
        let sessions = inner.by_device.remove(device).unwrap_or_default();
        for token in sessions.values() {
            token.cancel();
        }
        sessions.len()
    }

    /// Whether `device` was revoked in this process.
    pub fn is_blocked(&self, device: &str) -> bool {
        let inner = self.lock();
        inner.blocked.contains(device)
    }

    /// Live sessions of `device`.
    pub fn count(&self, device: &str) -> usize {
        let inner = self.lock();
        inner.by_device.get(device).map_or(0, HashMap::len)
    }
}

impl SessionGuard {
    /// The session's device id, the registry's own copy.
    pub fn device(&self) -> &Arc<str> {
        &self.device
    }

    /// Why the registry cut this session, if it did: its device was revoked, or a newer
    /// session of the device took its place under the cap.
    pub fn cut_by_registry(&self) -> Option<&'static str> {
        let inner = self.registry.lock();
        if inner.blocked.contains(&*self.device) {
            Some("device revoked")
        } else if inner
            .by_device
            .get(&self.device)
            .is_none_or(|sessions| !sessions.contains_key(&self.id))
        {
            Some("over its device's session cap")
        } else {
            None
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
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
        let root = CancellationToken::new();
        let a1 = reg.register("a", &root);
        let a2 = reg.register("a", &root);
        let b = reg.register("b", &root);
        assert_eq!(b.cut_by_registry(), None);
        assert_eq!(reg.cut("a"), 2);
        assert!(a1.token.is_cancelled() && a2.token.is_cancelled());
        assert_eq!(a1.cut_by_registry(), Some("device revoked"));
        assert!(!b.token.is_cancelled());
        assert_eq!(b.cut_by_registry(), None);
        assert!(reg.is_blocked("a") && !reg.is_blocked("b"));
        drop(b);
        assert_eq!(reg.count("b"), 0);
    }

    #[test]
    fn a_device_holds_at_most_its_cap_and_the_oldest_goes_first() {
        let reg = SessionRegistry::default();
        let root = CancellationToken::new();
        let guards: Vec<_> = (0..10)
            .map(|_| reg.register_capped("a", 4, &root).0)
            .collect();
        assert_eq!(reg.count("a"), 4);
        let live: Vec<bool> = guards.iter().map(|g| !g.token.is_cancelled()).collect();
        assert_eq!(
            live,
            [
                false, false, false, false, false, false, true, true, true, true
            ]
        );
        assert_eq!(
            guards[0].cut_by_registry(),
            Some("over its device's session cap")
        );
        assert_eq!(guards[9].cut_by_registry(), None);
        let other = reg.register_capped("b", 4, &root);
        assert_eq!(other.1, 0, "other devices are not touched");
        drop(guards);
        assert_eq!(reg.count("a"), 0);
    }

    /// Sessions of one device starting at once on many threads still leave it at its cap:
    /// the oldest are closed and the new one registered under one lock.
    #[test]
    fn sessions_starting_at_once_do_not_slip_past_the_cap() {
        let reg = SessionRegistry::default();
        let root = CancellationToken::new();
        let guards: Vec<SessionGuard> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    let reg = &reg;
                    let root = &root;
                    scope.spawn(move || {
                        (0..200)
                            .map(|_| reg.register_capped("a", 3, root).0)
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        });
        assert_eq!(guards.len(), 1600);
        assert_eq!(reg.count("a"), 3);
        assert_eq!(guards.iter().filter(|g| !g.token.is_cancelled()).count(), 3);
    }

    #[test]
    fn shutdown_cancels_every_session_and_a_device_id_is_kept_once() {
        let reg = SessionRegistry::default();
        let root = CancellationToken::new();
        let (a1, a2) = (reg.register("a", &root), reg.register("a", &root));
        assert!(Arc::ptr_eq(&a1.device, &a2.device), "one copy of the id");
        root.cancel();
        assert!(a1.token.is_cancelled() && a2.token.is_cancelled());
        assert!(!reg.is_blocked("a"), "shutdown is not a revocation");
    }
}
