//! A small process-wide pool of empty stream buffers, so the next stream that needs one
//! takes a buffer that is still in the cache instead of each session keeping its own.
//!
//! One camera's keyframe to 100 viewers is 100 seals of 121 KB, one after the other: with
//! a buffer per session that is 12 MB of distinct memory per keyframe, cycling through
//! the cache; with the pool every viewer seals into (and writes from) the same hot buffer.
//! Only empty buffers are given back (a stream keeps its buffer while any of its bytes
//! are pending in it), so one stream's data never reaches another; the bytes already
//! delivered that are left in a pooled buffer are overwritten before they are ever read
//! again, like freed heap memory. The pool is bounded (count and bytes) and takes no part
//! in correctness: when it is empty or poisoned a stream allocates as before.

use std::sync::Mutex;

/// Buffers the pool keeps at most.
const MAX_BUFFERS: usize = 4;
/// Bytes of capacity the pool keeps at most, in all.
const MAX_BYTES: usize = 1 << 20;
/// Buffers smaller than this are not worth keeping (cheap to allocate, and they would
/// take the place of a big one).
const MIN_KEPT: usize = 4096;

/// A bounded stack of empty buffers: the last one given back is the first taken (the
/// most likely still in the cache). Each buffer keeps its length: that much of it is
/// initialised, so a stream reuses it without zeroing it again.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    buffers: Mutex<Vec<Vec<u8>>>,
}

impl Pool {
    pub(crate) const fn new() -> Self {
        Self {
            buffers: Mutex::new(Vec::new()),
        }
    }

    /// The most recently given buffer, or an empty new one.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.buffers
            .lock()
            .ok()
            .and_then(|mut buffers| buffers.pop())
            .unwrap_or_default()
    }

    /// Keeps `buf` for the next taker if it is worth it and there is room; else frees it.
    /// The caller gives only buffers that hold nothing pending.
    pub(crate) fn give(&self, buf: Vec<u8>) {
        if buf.capacity() < MIN_KEPT || buf.capacity() > MAX_BYTES {
            return;
        }
        let Ok(mut buffers) = self.buffers.lock() else {
            return;
        };
        let held: usize = buffers.iter().map(Vec::capacity).sum();
        if buffers.len() < MAX_BUFFERS && held + buf.capacity() <= MAX_BYTES {
            buffers.push(buf);
        }
    }

    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let buffers = self.buffers.lock().unwrap();
        (buffers.len(), buffers.iter().map(Vec::capacity).sum())
    }
}

/// The pool every [`crate::NoiseStream`] of the process shares.
pub(crate) static POOL: Pool = Pool::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_given_is_first_taken_and_keeps_its_initialised_length() {
        let pool = Pool::new();
        let a = vec![1u8; 8192];
        let b = vec![2u8; 16384];
        let b_ptr = b.as_ptr();
        pool.give(a);
        pool.give(b);
        let got = pool.take();
        assert_eq!((got.as_ptr(), got.len()), (b_ptr, 16384));
        assert_eq!(pool.take().len(), 8192);
        assert!(
            pool.take().is_empty(),
            "an empty pool gives a new, empty buffer"
        );
    }

    #[test]
    fn bounded_in_count_and_bytes_and_small_buffers_are_freed() {
        let pool = Pool::new();
        pool.give(vec![0u8; 100]);
        assert_eq!(pool.held(), (0, 0));
        for _ in 0..10 {
            pool.give(Vec::with_capacity(64 << 10));
        }
        assert_eq!(pool.held().0, MAX_BUFFERS);
        let pool = Pool::new();
        for _ in 0..10 {
            pool.give(Vec::with_capacity(400 << 10));
        }
        let (count, bytes) = pool.held();
        assert!(
            count == 2 && bytes <= MAX_BYTES,
            "{count} buffers, {bytes} bytes"
        );
        pool.give(Vec::with_capacity(MAX_BYTES + 1));
        assert_eq!(pool.held().0, 2);
    }
}
