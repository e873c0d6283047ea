//! Whether the counter store answers: the `modelgate_limit_store_up` gauge,
//! the `modelgate_limit_store_errors_total` counter, and one log line per
//! change of state (down, up again), never one per request.

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// The metrics' label set: `store="redis"` (a constant, never traffic).
pub type StoreLabels = [(&'static str, &'static str); 1];

/// The store's metrics, made once per process and registered once by the
/// app on its registry as
/// `limit_store_errors` (a counter: exposed with `_total`) and
/// `limit_store_up`.
#[derive(Debug, Clone, Default)]
pub struct StoreMetrics {
    pub errors: Family<StoreLabels, Counter>,
    pub up: Family<StoreLabels, Gauge>,
}

/// Up/down state of one store, shared by every call.
#[derive(Debug)]
pub struct Health {
    kind: &'static str,
    /// Where the store is, for log lines (no password).
    location: String,
    failure_mode: &'static str,
    up: AtomicBool,
    metrics: StoreMetrics,
}

impl Health {
    /// Starts "up" (nothing failed yet): the first failure logs the change.
    /// `metrics` may be shared with earlier stores (a reload): the series
    /// are the same, this store's state is set on them.
    pub fn new(
        kind: &'static str,
        location: String,
        failure_mode: &'static str,
        metrics: StoreMetrics,
    ) -> Self {
        metrics.up.get_or_create(&[("store", kind)]).set(1);
        // Create the error series at 0 so a rate() sees its first increase.
        let _ = metrics.errors.get_or_create(&[("store", kind)]);
        Self {
            kind,
            location,
            failure_mode,
            up: AtomicBool::new(true),
            metrics,
        }
    }

    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// A call answered.
    pub fn ok(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            self.metrics
                .up
                .get_or_create(&[("store", self.kind)])
                .set(1);
            tracing::warn!(
                store = self.kind,
                location = %self.location,
                "counter store reachable again; limits are enforced"
            );
        }
    }

    /// A call failed (`reason` holds no secret).
    pub fn failed(&self, reason: &str) {
        self.metrics
            .errors
            .get_or_create(&[("store", self.kind)])
            .inc();
        if self.up.swap(false, Ordering::Relaxed) {
            self.metrics
                .up
                .get_or_create(&[("store", self.kind)])
                .set(0);
            tracing::error!(
                store = self.kind,
                location = %self.location,
                failure_mode = self.failure_mode,
                reason,
                "counter store unreachable; failure_mode open grants without counting, closed refuses with 503"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_error_and_tracks_state_changes() {
        let h = Health::new(
            "redis",
            "127.0.0.1:1".into(),
            "open",
            StoreMetrics::default(),
        );
        let up = || h.metrics().up.get_or_create(&[("store", "redis")]).get();
        let errors = || {
            h.metrics()
                .errors
                .get_or_create(&[("store", "redis")])
                .get()
        };
        assert_eq!((up(), errors()), (1, 0));
        h.failed("timed out");
        h.failed("timed out");
        assert!(!h.is_up());
        assert_eq!((up(), errors()), (0, 2));
        h.ok();
        assert!(h.is_up());
        assert_eq!((up(), errors()), (1, 2));
    }

    /// Collects formatted log output.
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn logs_once_per_change_of_state_not_per_call() {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let h = Health::new(
            "redis",
            "10.0.0.7:6379".into(),
            "closed",
            StoreMetrics::default(),
        );
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..5 {
                h.failed("connection refused");
            }
            for _ in 0..5 {
                h.ok();
            }
            h.failed("timed out");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.matches("counter store unreachable").count(), 2, "{out}");
        assert_eq!(
            out.matches("counter store reachable again").count(),
            1,
            "{out}"
        );
        assert!(
            out.contains("10.0.0.7:6379") && out.contains("failure_mode=\"closed\""),
            "{out}"
        );
    }
}
