//! The inference pool: a fixed set of dedicated threads fed by one bounded
//! queue. A full queue refuses work at once (the caller answers 503 with
//! `Retry-After`); nothing waits unbounded and no inference runs on the async
//! reactor's threads.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::oneshot;

use crate::model::WorkerContext;

type Job = Box<dyn FnOnce(&mut WorkerContext) + Send + 'static>;

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every thread is busy and the queue is full.
    Full,
    /// The threads are gone (the runtime is shutting down).
    Closed,
}

/// Handle to the threads; they exit when the last handle is dropped.
pub struct Pool {
    tx: Sender<Job>,
}

impl Pool {
    /// Starts `threads` threads sharing a queue of `queue_depth` waiting jobs.
    pub fn start(threads: usize, queue_depth: usize) -> std::io::Result<Pool> {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(queue_depth);
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("modelgate-infer-{i}"))
                .spawn(move || {
                    let mut ctx = WorkerContext::default();
                    while let Ok(job) = rx.recv() {
                        // A panic inside tract must not shrink the pool: the
                        // job's result channel is dropped and its caller
                        // answers with an internal error; the thread's cached
                        // states are discarded as possibly inconsistent.
                        if catch_unwind(AssertUnwindSafe(|| job(&mut ctx))).is_err() {
                            ctx = WorkerContext::default();
                            tracing::error!("inference job panicked");
                        }
                    }
                })?;
        }
        Ok(Pool { tx })
    }

    /// Queues `f`; its result arrives on the returned channel. The channel
    /// closes without a value if `f` panicked.
    pub fn submit<T, F>(&self, f: F) -> Result<oneshot::Receiver<T>, Refused>
    where
        T: Send + 'static,
        F: FnOnce(&mut WorkerContext) -> T + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            // The caller may have gone away (client disconnect); nothing to do then.
            let _ = done.send(f(ctx));
        });
        match self.tx.try_send(job) {
            Ok(()) => Ok(result),
            Err(TrySendError::Full(_)) => Err(Refused::Full),
            Err(TrySendError::Disconnected(_)) => Err(Refused::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_jobs_and_refuses_when_full() {
        let pool = Pool::start(1, 1).unwrap();
        assert_eq!(pool.submit(|_| 2 + 2).unwrap().await.unwrap(), 4);

        let (release, gate) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel::<()>();
        let busy = pool
            .submit(move |_| {
                started_tx.send(()).unwrap();
                gate.recv_timeout(Duration::from_secs(10)).ok();
                1
            })
            .unwrap();
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        let queued = pool.submit(|_| 2).unwrap(); // fills the queue of 1
        assert_eq!(pool.submit(|_| 3).unwrap_err(), Refused::Full);
        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), 1);
        assert_eq!(queued.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn survives_a_panicking_job() {
        let pool = Pool::start(1, 4).unwrap();
        let r = pool.submit(|_| -> u8 { panic!("boom") }).unwrap();
        assert!(r.await.is_err());
        assert_eq!(pool.submit(|_| 7).unwrap().await.unwrap(), 7);
    }
}
