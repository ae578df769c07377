//! Connection slots of the player endpoint: any local app (or web page) can connect to
//! it, so what connections can hold is bounded. At most [`MAX_CONNECTIONS`] are open;
//! when a new one comes and all are taken, the oldest that never showed the token is
//! closed to make room (a player that did show it keeps its slot), and if every slot
//! belongs to a player the new connection is closed at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::AbortHandle;

/// Most local connections open at once.
pub const MAX_CONNECTIONS: usize = 64;

#[derive(Debug)]
struct Slot {
    id: u64,
    admitted: Arc<AtomicBool>,
    task: Option<AbortHandle>,
}

/// The open connections, oldest first.
#[derive(Debug, Default)]
pub struct Slots {
    inner: Mutex<(u64, VecDeque<Slot>)>,
}

/// One connection's slot: its flag is set once a request showed the token; dropping it
/// frees the slot.
#[derive(Debug)]
pub struct Held {
    slots: Arc<Slots>,
    id: u64,
    /// Set once a request on this connection carried the token and a Host of ours.
    pub admitted: Arc<AtomicBool>,
}

impl Held {
    /// The slot's id, for [`Slots::serving`].
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut g = self.slots.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.1.retain(|s| s.id != self.id);
    }
}

impl Slots {
    /// A slot for a new connection, closing the oldest connection that never showed the
    /// token if all are taken; `None` when every slot is a player's.
    pub fn take(self: &Arc<Self>) -> Option<Held> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.1.len() >= MAX_CONNECTIONS {
            let i =
                g.1.iter()
                    .position(|s| !s.admitted.load(Ordering::Relaxed))?;
            if let Some(old) = g.1.remove(i)
                && let Some(task) = old.task
            {
                task.abort();
            }
        }
        g.0 = g.0.wrapping_add(1);
        let id = g.0;
        let admitted = Arc::new(AtomicBool::new(false));
        g.1.push_back(Slot {
            id,
            admitted: admitted.clone(),
            task: None,
        });
        Some(Held {
            slots: self.clone(),
            id,
            admitted,
        })
    }

    /// Records the task serving slot `id`'s connection, so it can be closed to make room.
    pub fn serving(&self, id: u64, task: AbortHandle) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match g.1.iter_mut().find(|s| s.id == id) {
            Some(s) => s.task = Some(task),
            // Already freed (the connection ended before this was recorded).
            None => task.abort(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn silent_connections_make_room_and_players_keep_theirs() {
        let slots = Arc::new(Slots::default());
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            let h = slots.take().unwrap();
            let task = tokio::spawn(std::future::pending::<()>());
            slots.serving(h.id(), task.abort_handle());
            held.push((h, task));
        }
        held[1].0.admitted.store(true, Ordering::Relaxed);
        // A new connection closes the oldest silent one (index 0), not the player's.
        let newest = slots.take().unwrap();
        let (first, first_task) = held.remove(0);
        assert!(first_task.await.unwrap_err().is_cancelled());
        drop(first);
        assert_eq!(slots.inner.lock().unwrap().1.len(), MAX_CONNECTIONS);
        // Every slot a player's: a new connection gets none.
        for (h, _) in &held {
            h.admitted.store(true, Ordering::Relaxed);
        }
        newest.admitted.store(true, Ordering::Relaxed);
        assert!(slots.take().is_none());
        drop(held);
        assert_eq!(slots.inner.lock().unwrap().1.len(), 1);
    }
}
