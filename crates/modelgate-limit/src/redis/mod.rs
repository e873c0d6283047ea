//! Counters shared by every replica, in Redis: [`RedisStore`] meets the
//! [`CounterStore`] contract with one atomic Lua script; a writer task
//! coalesces every operation queued while a batch is in flight into the next
//! script call (one round trip for many reservations and settlements), and
//! [`Guarded`] adds the per-call deadline, the health metrics and the
//! configured failure mode. Build both with [`connect`] or [`shared`].
//!
//! Counters are integers: requests, tokens, lease counts, and money in
//! micro-units (1 USD = 1 000 000), so budgets add up exactly; request rates
//! are GCRA arrival times in microseconds.

mod batch;
mod guard;
mod health;
mod scripts;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ::redis::RedisError;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use modelgate_config::redis_store::RedisStoreConfig;
use tokio::sync::{mpsc, oneshot};

pub use batch::{MAX_OPS, QUEUE};
pub use guard::Guarded;
pub use health::{StoreLabels, StoreMetrics};
pub use scripts::MAX_EXACT;

use crate::store::{
    Adjustment, Charge, Clock, CounterId, CounterStore, Reservation, StoreError, StoreFuture,
    Window, id_in_scope,
};
use batch::Job;
use scripts::{Answer, Op};

/// Background reconnection: each attempt's connect deadline, and the
/// backoff between attempts (short, so limits come back soon after Redis).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);
const RECONNECT_RETRIES: usize = 3;
/// `SCAN` calls one [`CounterStore::scan`] may make (each `COUNT`
/// [`SCAN_COUNT`]): the bound on a usage report's work.
const MAX_SCAN_CALLS: usize = 100;
const SCAN_COUNT: usize = 1000;

/// The Redis store and its failure policy, as configured, with metrics of
/// its own (the CLI, tests). Connects lazily: an unreachable Redis at start
/// is a failure like any other (the failure mode applies), not a start-up
/// error. Call inside the Tokio runtime (it starts the writer task).
pub fn connect(cfg: &RedisStoreConfig) -> Result<Guarded<RedisStore>, StoreError> {
    connect_with(cfg, None, StoreMetrics::default())
}

/// [`connect`] with a clock (tests; `None` = Redis's `TIME`) and the
/// process's store metrics (shared by every store built, so they survive a
/// configuration reload that builds a new store).
pub fn connect_with(
    cfg: &RedisStoreConfig,
    clock: Option<Arc<dyn Clock>>,
    metrics: StoreMetrics,
) -> Result<Guarded<RedisStore>, StoreError> {
    let store = RedisStore::build(cfg, clock)?;
    let location = store.host.clone();
    Ok(Guarded::with_metrics(
        store,
        cfg.failure_mode,
        cfg.timeout,
        location,
        metrics,
    ))
}

/// A configured Redis store as the app uses it: [`SharedCounters::store`] for
/// the rate-limit step, the metrics it updates, and a start-up check.
///
/// ```ignore
/// // once per process, registered once:
/// let m = StoreMetrics::default();
/// metrics.register("limit_store_errors", ERRORS_HELP, m.errors.clone());
/// metrics.register("limit_store_up", UP_HELP, m.up.clone());
/// // at start and at each reload that changes `limits.store`:
/// let shared = modelgate_limit::redis::shared(&cfg, m.clone())?; // inside the runtime
/// shared.check().await; // logs whether Redis answers; never fails start-up
/// ```
pub struct SharedCounters {
    pub store: Arc<dyn CounterStore>,
    pub guarded: Arc<Guarded<RedisStore>>,
}

/// Help text of `modelgate_limit_store_errors_total`.
pub const ERRORS_HELP: &str =
    "Counter store calls that failed or ran out of time (the failure mode applied)";
/// Help text of `modelgate_limit_store_up`.
pub const UP_HELP: &str = "1 while the counter store answers, 0 after a failed call";

impl SharedCounters {
    pub fn metrics(&self) -> &StoreMetrics {
        self.guarded.metrics()
    }

    /// One `PING`: logs that Redis answers, or (once) that it does not.
    pub async fn check(&self) {
        if self.guarded.ping().await.is_ok() {
            tracing::info!(
                store = "redis",
                location = %self.guarded.location(),
                failure_mode = self.guarded.failure_mode().as_str(),
                "counter store reachable"
            );
        }
    }
}

/// The store the rate-limit step uses, updating `metrics` (the process's,
/// registered once). Call inside the Tokio runtime.
pub fn shared(cfg: &RedisStoreConfig, metrics: StoreMetrics) -> Result<SharedCounters, StoreError> {
    let guarded = Arc::new(connect_with(cfg, None, metrics)?);
    Ok(SharedCounters {
        store: guarded.clone(),
        guarded,
    })
}

/// Counters in Redis, without deadline or failure policy (see [`Guarded`]).
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    /// `host:port` only: what errors and logs name.
    host: String,
    writer: mpsc::Sender<Job>,
}

impl RedisStore {
    /// A store over `cfg.url` (reconnecting on its own after Redis returns),
    /// on Redis's clock. Call inside the Tokio runtime.
    pub fn new(cfg: &RedisStoreConfig) -> Result<Self, StoreError> {
        Self::build(cfg, None)
    }

    /// [`RedisStore::new`] with the time taken from `clock` instead of
    /// Redis's `TIME` (tests).
    pub fn build(
        cfg: &RedisStoreConfig,
        clock: Option<Arc<dyn Clock>>,
    ) -> Result<Self, StoreError> {
        let host = host_of(&cfg.display_url);
        let invalid = |_| StoreError(format!("redis {host}: invalid URL"));
        let client = ::redis::Client::open(cfg.url.expose()).map_err(invalid)?;
        let manager_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY)
            .set_number_of_retries(RECONNECT_RETRIES);
        let conn = ConnectionManager::new_lazy_with_config(client, manager_cfg)
            .map_err(|e| StoreError(format!("redis {host}: {}", describe(&e))))?;
        let writer = batch::start(batch::Writer {
            conn: conn.clone(),
            prefix: cfg.prefix.clone(),
            host: host.clone(),
            clock,
            deadline: cfg.timeout,
        })?;
        Ok(Self {
            conn,
            prefix: cfg.prefix.clone(),
            host,
            writer,
        })
    }

    /// One round trip to Redis (`PING`): is it there?
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        ::redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| self.error(&e))
    }

    fn error(&self, e: &RedisError) -> StoreError {
        StoreError(format!("redis {}: {}", self.host, describe(e)))
    }

    /// Queues `op` for the writer's next batch and waits for its answer
    /// (the caller's deadline bounds both waits).
    async fn submit(&self, op: Op) -> Result<Answer, StoreError> {
        let gone = || StoreError(format!("redis {}: writer stopped", self.host));
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Job { op, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    fn unexpected(&self) -> StoreError {
        StoreError(format!("redis {}: unexpected batch answer", self.host))
    }

    async fn do_reserve(&self, charges: &[Charge]) -> Result<Reservation, StoreError> {
        if charges.is_empty() {
            return Ok(Reservation::granted(vec![]));
        }
        match self.submit(Op::Reserve(charges.to_vec())).await? {
            Answer::Reserved(r) => Ok(r),
            _ => Err(self.unexpected()),
        }
    }

    async fn do_adjust(&self, adjustments: &[Adjustment]) -> Result<(), StoreError> {
        let counted: Vec<Adjustment> = adjustments
            .iter()
            .filter(|a| !matches!(a.id.window, Window::Gcra { .. }))
            .cloned()
            .collect();
        if counted.is_empty() {
            return Ok(());
        }
        match self.submit(Op::Adjust(counted)).await? {
            Answer::Adjusted => Ok(()),
            _ => Err(self.unexpected()),
        }
    }

    async fn do_read(&self, ids: &[CounterId]) -> Result<Vec<u64>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        match self.submit(Op::Read(ids.to_vec())).await? {
            Answer::Values(v) if v.len() == ids.len() => Ok(v),
            _ => Err(self.unexpected()),
        }
    }

    /// `SCAN` for this prefix's keys of `scope`, bounded by `max` ids and
    /// [`MAX_SCAN_CALLS`] calls.
    async fn do_scan(&self, scope: &str, max: usize) -> Result<Vec<String>, StoreError> {
        let pattern = format!("modelgate:{{{}}}:*:{scope}:*", self.prefix);
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for _ in 0..MAX_SCAN_CALLS {
            let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error(&e))?;
            for k in &keys {
                let id = scripts::name_of(&self.prefix, k).and_then(|n| id_in_scope(n, scope));
                if let Some(id) = id
                    && out.len() < max
                    && seen.insert(id.to_string())
                {
                    out.push(id.to_string());
                }
            }
            cursor = next;
            if cursor == 0 || out.len() >= max {
                break;
            }
        }
        Ok(out)
    }
}

impl CounterStore for RedisStore {
    fn reserve<'a>(&'a self, charges: &'a [Charge]) -> StoreFuture<'a, Reservation> {
        Box::pin(self.do_reserve(charges))
    }

    fn adjust<'a>(&'a self, adjustments: &'a [Adjustment]) -> StoreFuture<'a, ()> {
        Box::pin(self.do_adjust(adjustments))
    }

    fn read<'a>(&'a self, ids: &'a [CounterId]) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(self.do_read(ids))
    }

    fn scan<'a>(&'a self, scope: &'a str, max: usize) -> StoreFuture<'a, Vec<String>> {
        Box::pin(self.do_scan(scope, max))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

/// What went wrong, in words that hold no secret (never the URL).
fn describe(e: &RedisError) -> String {
    if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connection_refusal() {
        "connection refused".to_string()
    } else if e.is_io_error() || e.is_connection_dropped() {
        "connection lost".to_string()
    } else if let Some(code) = e.code() {
        format!("server error {code}")
    } else {
        format!("{:?} error", e.kind())
    }
}

/// `host:port` of a redacted `redis://…` URL.
fn host_of(display_url: &str) -> String {
    let rest = display_url.strip_prefix("redis://").unwrap_or(display_url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit('@').next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_named_without_credentials_or_db() {
        assert_eq!(host_of("redis://[redacted]@h:6379/2"), "h:6379");
        assert_eq!(host_of("redis://127.0.0.1"), "127.0.0.1");
    }
}
