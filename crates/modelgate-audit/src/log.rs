//! The decision log writer. Request threads append serialised records to a
//! shared buffer; one writer thread flushes it every 20 ms (sooner when it
//! grows), so no request waits on the sink and none pays a thread wake-up
//! (only the first record after the log went idle wakes the writer, which
//! sleeps without a timer while nothing is pending). If the sink falls more
//! than 16 MiB behind, records are counted as dropped rather than stalling
//! traffic or growing memory without bound.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use modelgate_config::DecisionSink;

use crate::Decision;
use crate::metrics::Metrics;

const FLUSH_EVERY: Duration = Duration::from_millis(20);
const WAKE_AT: usize = 256 * 1024;
const MAX_PENDING: usize = 16 << 20;
/// The written batch's buffer is handed back to the requests (no regrowing
/// it record by record after every flush) unless it grew beyond this.
const KEEP_BATCH: usize = 1 << 20;

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    closed: bool,
    /// The writer sleeps until a record arrives: the next `write` wakes it.
    idle: bool,
}

struct Queue {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Held while a batch is taken and written, so batches stay in order
    /// whichever thread writes them; with the buffer of the last batch
    /// written, emptied, to give the requests for the next one.
    sink: Mutex<(Box<dyn Write + Send>, Vec<u8>)>,
    /// Times the writer thread woke (for tests: none while idle).
    wakeups: AtomicU64,
}

impl Queue {
    /// Writes whatever is pending, in order. Returns whether the log is closed.
    fn write_pending(&self) -> bool {
        let Ok(mut sink) = self.sink.lock() else {
            return true;
        };
        let (w, spare) = &mut *sink;
        let closed = match self.pending.lock() {
            Ok(mut p) => {
                std::mem::swap(&mut p.buf, spare);
                p.closed
            }
            Err(_) => return true,
        };
        let batch = spare;
        if !batch.is_empty()
            && let Err(e) = w.write_all(batch).and_then(|()| w.flush())
        {
            tracing::error!(error = %e, "cannot write the decision log");
        }
        batch.clear();
        if batch.capacity() > KEEP_BATCH {
            batch.shrink_to(KEEP_BATCH);
        }
        closed
    }
}

/// Where decision records go.
pub struct DecisionLog {
    queue: Option<Arc<Queue>>,
    sink: DecisionSink,
}

impl DecisionLog {
    /// Opens the sink and starts its writer thread.
    pub fn open(sink: &DecisionSink) -> std::io::Result<Self> {
        let writer: Box<dyn Write + Send> = match sink {
            DecisionSink::Off => {
                return Ok(Self {
                    queue: None,
                    sink: sink.clone(),
                });
            }
            DecisionSink::Stdout => Box::new(std::io::stdout()),
            DecisionSink::Stderr => Box::new(std::io::stderr()),
            DecisionSink::File(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
        };
        let queue = Arc::new(Queue {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            sink: Mutex::new((writer, Vec::new())),
            wakeups: AtomicU64::new(0),
        });
        let q = queue.clone();
        std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_loop(&q))?;
        Ok(Self {
            queue: Some(queue),
            sink: sink.clone(),
        })
    }

    pub fn sink(&self) -> &DecisionSink {
        &self.sink
    }

    /// Writes every queued record now (at shutdown, so none is lost).
    pub fn flush(&self) {
        if let Some(q) = &self.queue {
            q.write_pending();
        }
    }

    /// Queues one record: serialised straight onto the end of the shared
    /// batch (no per-request buffer, no second copy); a record that would
    /// take the batch past [`MAX_PENDING`] is cut off again and counted as
    /// dropped.
    pub fn write(&self, d: &Decision, metrics: &Metrics) {
        let Some(q) = &self.queue else { return };
        let Ok(mut p) = q.pending.lock() else { return };
        let start = p.buf.len();
        crate::jsonl::write(&mut p.buf, d);
        p.buf.push(b'\n');
        if p.buf.len() > MAX_PENDING {
            p.buf.truncate(start);
            drop(p);
            metrics.decision_dropped();
            return;
        }
        if p.idle || p.buf.len() >= WAKE_AT {
            p.idle = false;
            q.wake.notify_one();
        }
    }
}

impl Drop for DecisionLog {
    fn drop(&mut self) {
        if let Some(q) = &self.queue
            && let Ok(mut p) = q.pending.lock()
        {
            p.closed = true;
            q.wake.notify_one();
        }
    }
}

fn write_loop(q: &Queue) {
    loop {
        {
            let Ok(guard) = q.pending.lock() else { return };
            // Nothing pending: sleep, with no timer, until a record arrives.
            let Ok(guard) = q.wake.wait_while(guard, |p| {
                p.idle = p.buf.is_empty() && !p.closed;
                p.idle
            }) else {
                return;
            };
            // Then gather a batch for up to FLUSH_EVERY.
            if q.wake
                .wait_timeout_while(guard, FLUSH_EVERY, |p| p.buf.len() < WAKE_AT && !p.closed)
                .is_err()
            {
                return;
            }
        }
        q.wakeups.fetch_add(1, Ordering::Relaxed);
        if q.write_pending() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
