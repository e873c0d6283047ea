//! The connection cap of one listener (shared by its sockets on every I/O
//! thread) and the listener metrics: open connections, accepts paused at the
//! cap, and connections closed by a deadline. Labels come from the
//! configuration only (the listener's index), never from traffic.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabels {
    listener: String,
    reason: &'static str,
}

/// Listener metrics, registered once (see [`ListenStats::register`]).
#[derive(Clone, Default)]
pub struct ListenStats {
    open: Family<ListenerLabel, Gauge>,
    accepted: Family<ListenerLabel, Counter>,
    paused: Family<ListenerLabel, Counter>,
    closed: Family<ClosedLabels, Counter>,
}

impl ListenStats {
    /// Hands each metric to `register(name, help, metric)`.
    pub fn register(
        &self,
        mut gauge: impl FnMut(&str, &str, Family<ListenerLabel, Gauge>),
        mut counter: impl FnMut(&str, &str, Family<ListenerLabel, Counter>),
        mut closed: impl FnMut(&str, &str, Family<ClosedLabels, Counter>),
    ) {
        gauge(
            "listener_connections_open",
            "Open client connections per listener",
            self.open.clone(),
        );
        counter(
            "listener_connections_accepted",
            "Client connections accepted per listener",
            self.accepted.clone(),
        );
        counter(
            "listener_accept_paused",
            "Times a listener stopped accepting because it reached limits.max_connections",
            self.paused.clone(),
        );
        closed(
            "listener_connections_closed_by_deadline",
            "Connections closed by a deadline: header_timeout (no complete first request), idle_timeout, close_timeout (a closing peer did not finish)",
            self.closed.clone(),
        );
    }
}

/// Where a connection deadline passed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Deadline {
    Header,
    /// An HTTP/1.1 request head after the first one was not complete within
    /// `header_read_timeout` of the previous answer. Not counted: hyper
    /// enforced this one itself before, and the metric counts the others.
    NextHead,
    Idle,
    Close,
}

/// One listener's connection slots and metrics.
#[derive(Clone)]
pub struct Gate {
    slots: Arc<Semaphore>,
    max: u32,
    label: ListenerLabel,
    stats: ListenStats,
}

impl Gate {
    pub fn new(listener: usize, max_connections: u32, stats: &ListenStats) -> Self {
        let max = max_connections.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max as usize)),
            max,
            label: ListenerLabel {
                listener: listener.to_string(),
            },
            stats: stats.clone(),
        }
    }

    /// A slot for one more connection; waits at the cap.
    /// `None` once the gate is closed.
    pub(crate) async fn slot(&self) -> Option<Slot> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.stats.paused.get_or_create(&self.label).inc();
                // Debug, not warn: under a flood this happens per closed
                // connection; the metric counts it.
                tracing::debug!(
                    listener = %self.label.listener,
                    max_connections = self.max,
                    "connection cap reached: accepting paused until a connection closes"
                );
                self.slots.clone().acquire_owned().await.ok()?
            }
        };
        self.stats.accepted.get_or_create(&self.label).inc();
        let open = self.stats.open.get_or_create(&self.label).clone();
        open.inc();
        Some(Slot {
            _permit: permit,
            open,
        })
    }

    pub(crate) fn closed_by(&self, d: Deadline) {
        let reason = match d {
            Deadline::NextHead => return,
            Deadline::Header => "header_timeout",
            Deadline::Idle => "idle_timeout",
            Deadline::Close => "close_timeout",
        };
        self.stats
            .closed
            .get_or_create(&ClosedLabels {
                listener: self.label.listener.clone(),
                reason,
            })
            .inc();
    }

    /// Waits until every connection of this listener (on every thread) has
    /// ended.
    pub(crate) async fn all_closed(&self) {
        if let Ok(all) = self.slots.acquire_many(self.max).await {
            drop(all);
        }
    }
}

/// A held connection slot: frees the slot and lowers the gauge when dropped.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cap_pauses_accepting_until_a_slot_frees() {
        let stats = ListenStats::default();
        let gate = Gate::new(0, 2, &stats);
        let a = gate.slot().await.unwrap();
        let _b = gate.slot().await.unwrap();
        let label = ListenerLabel {
            listener: "0".into(),
        };
        assert_eq!(stats.open.get_or_create(&label).get(), 2);
        let g = gate.clone();
        let third = tokio::spawn(async move { g.slot().await.is_some() });
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        drop(a);
        assert!(third.await.unwrap());
        assert_eq!(stats.paused.get_or_create(&label).get(), 1);
        assert_eq!(stats.accepted.get_or_create(&label).get(), 3);
    }
}
