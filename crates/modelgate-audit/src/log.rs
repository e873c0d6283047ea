//! The decision log writer: records are queued to one writer thread that
//! batches lines, so request threads never wait on the sink. If the queue is
//! full, records are counted as dropped rather than stalling traffic.

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use modelgate_config::DecisionSink;

use crate::Decision;
use crate::metrics::Metrics;

const QUEUE: usize = 65_536;

/// Where decision records go.
pub struct DecisionLog {
    tx: Option<SyncSender<Vec<u8>>>,
    sink: DecisionSink,
}

impl DecisionLog {
    /// Opens the sink and starts its writer thread.
    pub fn open(sink: &DecisionSink) -> std::io::Result<Self> {
        let writer: Box<dyn Write + Send> = match sink {
            DecisionSink::Off => {
                return Ok(Self { tx: None, sink: sink.clone() });
            }
            DecisionSink::Stdout => Box::new(std::io::stdout()),
            DecisionSink::Stderr => Box::new(std::io::stderr()),
            DecisionSink::File(p) => Box::new(
                std::fs::OpenOptions::new().create(true).append(true).open(p)?,
            ),
        };
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_loop(rx, writer))?;
        Ok(Self { tx: Some(tx), sink: sink.clone() })
    }

    pub fn sink(&self) -> &DecisionSink {
        &self.sink
    }

    /// Queues one record.
    pub fn write(&self, d: &Decision, metrics: &Metrics) {
        let Some(tx) = &self.tx else { return };
        let mut line = match serde_json::to_vec(d) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise a decision record");
                return;
            }
        };
        line.push(b'\n');
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => metrics.decision_dropped(),
        }
    }
}

fn write_loop(rx: Receiver<Vec<u8>>, mut w: Box<dyn Write + Send>) {
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Ok(first) = rx.recv() {
        batch.extend_from_slice(&first);
        while batch.len() < 1 << 20 {
            match rx.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if let Err(e) = w.write_all(&batch).and_then(|()| w.flush()) {
            tracing::error!(error = %e, "cannot write the decision log");
        }
        batch.clear();
    }
}
