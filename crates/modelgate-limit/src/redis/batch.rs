//! [`Batched`]: settlements (adjustments) queued and sent in batches by a
//! background task, so a busy replica makes one store call every few
//! milliseconds instead of one per finished request. Reservations and reads
//! go straight through: they decide admission and must see the store as it
//! is.
//!
//! The queue is bounded; when it is full, the adjustment is applied inline
//! (backpressure, never dropped). Adjustments keep their order (no merging,
//! so "never below zero" applies step by step as without batching). While
//! queued, a settlement is not yet visible: a request that used more than
//! its estimate is under-counted for at most one batch interval.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::store::{Adjustment, Charge, CounterId, CounterStore, Reservation, StoreFuture};

/// Default longest wait of a queued settlement.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(5);
/// Default queue length (settlements, each one request's adjustments).
pub const BATCH_CAPACITY: usize = 4096;
/// Most adjustments sent in one call.
const MAX_BATCH: usize = 512;

/// A store whose adjustments are batched (see the module doc).
pub struct Batched<S> {
    inner: Arc<S>,
    tx: mpsc::Sender<Vec<Adjustment>>,
}

impl<S: CounterStore + 'static> Batched<S> {
    /// Starts the background task (call inside a Tokio runtime); it ends
    /// when the last `Batched` handle is dropped, after sending what is
    /// queued.
    pub fn new(inner: Arc<S>, interval: Duration, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(run(inner.clone(), rx, interval));
        Self { inner, tx }
    }

    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }
}

async fn run<S: CounterStore>(
    inner: Arc<S>,
    mut rx: mpsc::Receiver<Vec<Adjustment>>,
    interval: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = first;
        let deadline = tokio::time::sleep(interval);
        tokio::pin!(deadline);
        while batch.len() < MAX_BATCH {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(more) => batch.extend(more),
                    None => break,
                },
                () = &mut deadline => break,
            }
        }
        // Failures are counted and logged by the inner store (Guarded).
        let _ = inner.adjust(&batch).await;
    }
}

impl<S: CounterStore + 'static> CounterStore for Batched<S> {
    fn reserve<'a>(&'a self, charges: &'a [Charge]) -> StoreFuture<'a, Reservation> {
        self.inner.reserve(charges)
    }

    fn adjust<'a>(&'a self, adjustments: &'a [Adjustment]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if adjustments.is_empty() {
                return Ok(());
            }
            match self.tx.try_send(adjustments.to_vec()) {
                Ok(()) => Ok(()),
                Err(_) => self.inner.adjust(adjustments).await,
            }
        })
    }

    fn read<'a>(&'a self, ids: &'a [CounterId]) -> StoreFuture<'a, Vec<u64>> {
        self.inner.read(ids)
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Window;
    use std::sync::Mutex;

    /// Records each adjust call's length.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<usize>>,
    }

    impl CounterStore for Recorder {
        fn reserve<'a>(&'a self, c: &'a [Charge]) -> StoreFuture<'a, Reservation> {
            let remaining = vec![0; c.len()];
            Box::pin(async move { Ok(Reservation::Granted { remaining }) })
        }
        fn adjust<'a>(&'a self, a: &'a [Adjustment]) -> StoreFuture<'a, ()> {
            self.calls.lock().unwrap().push(a.len());
            Box::pin(async { Ok(()) })
        }
        fn read<'a>(&'a self, ids: &'a [CounterId]) -> StoreFuture<'a, Vec<u64>> {
            let v = vec![0; ids.len()];
            Box::pin(async move { Ok(v) })
        }
        fn kind(&self) -> &'static str {
            "test"
        }
    }

    fn adj(delta: i64) -> Adjustment {
        Adjustment {
            id: CounterId {
                name: "t".into(),
                window: Window::Total,
                start: 0,
            },
            delta,
            ttl_secs: 1,
        }
    }

    // Current-thread runtime: the batching task runs only when the test
    // awaits something pending, so what is queued before is deterministic.
    #[tokio::test]
    async fn settlements_within_an_interval_share_one_call() {
        let rec = Arc::new(Recorder::default());
        let b = Batched::new(rec.clone(), Duration::from_millis(5), 16);
        for d in 1..=10 {
            b.adjust(&[adj(d), adj(-d)]).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(*rec.calls.lock().unwrap(), [20]);
    }

    #[tokio::test]
    async fn a_full_queue_applies_inline() {
        let rec = Arc::new(Recorder::default());
        let b = Batched::new(rec.clone(), Duration::from_millis(5), 1);
        // The task has not run yet: the first fills the queue, the second
        // is applied at once.
        b.adjust(&[adj(1)]).await.unwrap();
        b.adjust(&[adj(2), adj(3)]).await.unwrap();
        assert_eq!(*rec.calls.lock().unwrap(), [2]);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(*rec.calls.lock().unwrap(), [2, 1]);
    }
}
