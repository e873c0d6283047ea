//! [`Guarded`]: a counter store with a deadline on every call, health
//! metrics and log lines, and the configured failure mode. `open`: a reserve
//! or adjustment that fails is granted and counts nothing; `closed`: it is an
//! error, which the rate-limit step answers with 503 and `Retry-After`. A
//! read that fails is always an error (usage reports never guess).
//!
//! While the store is down, calls fail at once except one probe per
//! [`PROBE_INTERVAL`], so requests do not each wait out the deadline; the
//! connection itself reconnects in the background.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use modelgate_config::redis_store::FailureMode;

use super::RedisStore;
use super::health::{Health, StoreMetrics};
use crate::store::{
    Adjustment, Charge, CounterId, CounterStore, Reservation, StoreError, StoreFuture,
};

/// While down, how often a call is let through to see whether the store is
/// back.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// A store with deadline, health and failure mode (see the module doc).
pub struct Guarded<S> {
    inner: S,
    mode: FailureMode,
    deadline: Duration,
    health: Health,
    location: String,
    /// Milliseconds since `epoch` of the last call let through while down.
    last_probe_ms: AtomicU64,
    epoch: Instant,
}

impl<S: CounterStore> Guarded<S> {
    /// A guard with metrics of its own.
    pub fn new(inner: S, mode: FailureMode, deadline: Duration, location: String) -> Self {
        Self::with_metrics(inner, mode, deadline, location, StoreMetrics::default())
    }

    /// A guard updating `metrics` (the process's, registered once: a store
    /// built at a reload keeps updating the registered series).
    pub fn with_metrics(
        inner: S,
        mode: FailureMode,
        deadline: Duration,
        location: String,
        metrics: StoreMetrics,
    ) -> Self {
        let health = Health::new(inner.kind(), location.clone(), mode.as_str(), metrics);
        Self {
            inner,
            mode,
            deadline,
            health,
            location,
            last_probe_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// `modelgate_limit_store_errors_total` and `modelgate_limit_store_up`,
    /// for the app to register.
    pub fn metrics(&self) -> &StoreMetrics {
        self.health.metrics()
    }

    pub fn failure_mode(&self) -> FailureMode {
        self.mode
    }

    /// Where the store is (`host:port`, no credentials).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Whether the last call reached the store.
    pub fn is_up(&self) -> bool {
        self.health.is_up()
    }

    /// Runs one call under the deadline and records its outcome.
    async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if !self.health.is_up() && !self.probe_due() {
            let e = StoreError(format!("{} {}: down", self.inner.kind(), self.location));
            self.health.failed(&e.0);
            return Err(e);
        }
        let result = match tokio::time::timeout(self.deadline, fut).await {
            Ok(r) => r,
            Err(_) => Err(StoreError(format!(
                "{} {}: no answer within {:?}",
                self.inner.kind(),
                self.location,
                self.deadline
            ))),
        };
        match &result {
            Ok(_) => self.health.ok(),
            Err(e) => self.health.failed(&e.0),
        }
        result
    }

    /// True for one caller per [`PROBE_INTERVAL`].
    fn probe_due(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_probe_ms.load(Ordering::Relaxed);
        let interval = u64::try_from(PROBE_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        now.saturating_sub(last) >= interval
            && self
                .last_probe_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

impl Guarded<RedisStore> {
    /// One `PING` under the deadline (start-up check, readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(self.inner.ping()).await
    }
}

impl<S: CounterStore> CounterStore for Guarded<S> {
    fn reserve<'a>(&'a self, charges: &'a [Charge]) -> StoreFuture<'a, Reservation> {
        Box::pin(async move {
            if charges.is_empty() {
                return Ok(Reservation::granted(vec![]));
            }
            match self.call(self.inner.reserve(charges)).await {
                Err(_) if self.mode == FailureMode::Open => Ok(Reservation::granted(
                    charges
                        .iter()
                        .map(|c| c.limit.saturating_sub(c.amount))
                        .collect(),
                )),
                other => other,
            }
        })
    }

    fn adjust<'a>(&'a self, adjustments: &'a [Adjustment]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if adjustments.is_empty() {
                return Ok(());
            }
            match self.call(self.inner.adjust(adjustments)).await {
                Err(_) if self.mode == FailureMode::Open => Ok(()),
                other => other,
            }
        })
    }

    fn read<'a>(&'a self, ids: &'a [CounterId]) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(vec![]);
            }
            self.call(self.inner.read(ids)).await
        })
    }

    fn scan<'a>(&'a self, scope: &'a str, max: usize) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move { self.call(self.inner.scan(scope, max)).await })
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}
