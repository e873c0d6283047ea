//! The writer: one task per [`RedisStore`](super::RedisStore) connection
//! takes every operation queued while the previous batch was in flight
//! (reservations, settlements, reads, up to [`MAX_OPS`]) and sends them as
//! one script call — one round trip, one script run for all of them. Under
//! load a batch grows to the number of waiting requests; when idle, an
//! operation goes out at once (no timer).
//!
//! The queue is bounded ([`QUEUE`]); a caller waits for room and for the
//! answer under its own deadline ([`Guarded`](super::Guarded) applies the
//! failure mode). An operation whose caller gave up before its batch was
//! sent is dropped unsent; one sent may still be applied (over-counting,
//! never under-counting). The batch call has its own deadline, so the writer
//! never waits forever.

use std::sync::Arc;
use std::time::Duration;

use ::redis::Script;
use ::redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};

use super::scripts::{self, Answer, Op};
use crate::store::{Clock, StoreError};

/// Most operations in one batch.
pub const MAX_OPS: usize = 256;
/// Most operations waiting for a batch.
pub const QUEUE: usize = 8192;

/// One queued operation and where its answer goes.
pub struct Job {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Answer, StoreError>>,
}

/// What the writer needs, fixed at start.
pub struct Writer {
    pub conn: ConnectionManager,
    pub prefix: String,
    pub host: String,
    /// `None`: Redis's own clock (`TIME`), shared by every replica.
    pub clock: Option<Arc<dyn Clock>>,
    /// Longest wait for one batch's reply.
    pub deadline: Duration,
}

/// Starts the writer on the current runtime; it ends when every sender is
/// dropped.
pub fn start(w: Writer) -> Result<mpsc::Sender<Job>, StoreError> {
    let rt = tokio::runtime::Handle::try_current().map_err(|_| {
        StoreError(format!(
            "redis {}: the store must be built inside the async runtime",
            w.host
        ))
    })?;
    let (tx, rx) = mpsc::channel(QUEUE);
    rt.spawn(run(w, rx));
    Ok(tx)
}

async fn run(mut w: Writer, mut rx: mpsc::Receiver<Job>) {
    let script = Script::new(scripts::BATCH);
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_OPS);
    while rx.recv_many(&mut jobs, MAX_OPS).await > 0 {
        jobs.retain(|j| !j.reply.is_closed());
        if !jobs.is_empty() {
            send(&mut w, &script, &mut jobs).await;
        }
        jobs.clear();
    }
}

/// Sends one batch and hands each caller its answer (or the batch's error).
async fn send(w: &mut Writer, script: &Script, jobs: &mut Vec<Job>) {
    let ops: Vec<&Op> = jobs.iter().map(|j| &j.op).collect();
    let mut inv = script.prepare_invoke();
    let now = w.clock.as_ref().map_or(0, |c| c.now_us());
    scripts::encode(&mut inv, &w.prefix, now, &ops);
    let reply = tokio::time::timeout(w.deadline, inv.invoke_async::<Vec<i64>>(&mut w.conn)).await;
    let answers = match reply {
        Ok(Ok(reply)) => scripts::decode(&reply, &ops),
        Ok(Err(e)) => Err(StoreError(format!(
            "redis {}: {}",
            w.host,
            super::describe(&e)
        ))),
        Err(_) => Err(StoreError(format!(
            "redis {}: no answer within {:?}",
            w.host, w.deadline
        ))),
    };
    drop(ops);
    match answers {
        Ok(answers) => {
            for (job, answer) in jobs.drain(..).zip(answers) {
                let _ = job.reply.send(Ok(answer));
            }
        }
        Err(e) => {
            for job in jobs.drain(..) {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}
