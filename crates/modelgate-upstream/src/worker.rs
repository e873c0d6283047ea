//! Which I/O thread the current code runs on. Each I/O thread gets its own
//! upstream connection pools, so a request and its upstream connection are
//! served by one event loop without cross-thread wake-ups.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

static WORKERS: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Declares how many I/O threads there are (call once, before building pipelines).
pub fn set_worker_count(n: usize) {
    WORKERS.store(n.max(1), Ordering::Relaxed);
}

/// Marks the calling thread as I/O thread `index`.
pub fn pin_current_thread(index: usize) {
    CURRENT.with(|c| c.set(Some(index)));
}

/// Number of client slots: one per I/O thread, plus one shared by all other threads.
pub(crate) fn slots() -> usize {
    WORKERS.load(Ordering::Relaxed) + 1
}

/// The calling thread's slot.
pub(crate) fn current_slot() -> usize {
    let n = WORKERS.load(Ordering::Relaxed);
    CURRENT.with(Cell::get).filter(|i| *i < n).unwrap_or(n)
}
