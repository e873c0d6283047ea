//! Counters shared by every replica, in Redis: [`RedisStore`] meets the
//! [`CounterStore`] contract with one atomic Lua script per call (one round
//! trip per reserve, one per settlement however many counters it touches),
//! and [`Guarded`] adds the per-call deadline, the health metrics and the
//! configured failure mode. Build both with [`connect`]; wrap the result in
//! [`Batched`] to send settlements in batches every few milliseconds.
//!
//! Counters are integers: requests, tokens, lease counts, and money in
//! micro-units (1 USD = 1 000 000), so budgets add up exactly.

mod batch;
mod guard;
mod health;
mod scripts;

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{RedisError, Script};
use modelgate_config::redis_store::RedisStoreConfig;

pub use batch::{BATCH_CAPACITY, BATCH_INTERVAL, Batched};
pub use guard::Guarded;
pub use health::{StoreLabels, StoreMetrics};
pub use scripts::MAX_EXACT;

use crate::store::{
    Adjustment, Charge, CounterId, CounterStore, Reservation, StoreError, StoreFuture,
};

/// Background reconnection: each attempt's connect deadline, and the
/// backoff between attempts (short, so limits come back soon after Redis).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);
const RECONNECT_RETRIES: usize = 3;

/// The Redis store and its failure policy, as configured. Connects lazily:
/// an unreachable Redis at start is a failure like any other (the failure
/// mode applies), not a start-up error.
pub fn connect(cfg: &RedisStoreConfig) -> Result<Guarded<RedisStore>, StoreError> {
    let store = RedisStore::new(cfg)?;
    let location = store.host.clone();
    Ok(Guarded::new(store, cfg.failure_mode, cfg.timeout, location))
}

/// A configured Redis store as the app uses it: [`SharedCounters::store`] for
/// the rate-limit step (settlements batched), the metrics to register, and a
/// start-up check.
///
/// ```ignore
/// let shared = modelgate_limit::redis::shared(&cfg)?; // inside the runtime
/// let m = shared.metrics();
/// metrics.register("limit_store_errors", ERRORS_HELP, m.errors.clone());
/// metrics.register("limit_store_up", UP_HELP, m.up.clone());
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

/// [`connect`], with settlements batched every [`BATCH_INTERVAL`]. Call
/// inside the Tokio runtime (it starts the batching task).
pub fn shared(cfg: &RedisStoreConfig) -> Result<SharedCounters, StoreError> {
    let guarded = Arc::new(connect(cfg)?);
    let store = Arc::new(Batched::new(
        guarded.clone(),
        BATCH_INTERVAL,
        BATCH_CAPACITY,
    ));
    Ok(SharedCounters { store, guarded })
}

/// Counters in Redis, without deadline or failure policy (see [`Guarded`]).
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    /// `host:port` only: what errors and logs name.
    host: String,
    reserve: Script,
    adjust: Script,
}

impl RedisStore {
    /// A store over `cfg.url` (reconnecting on its own after Redis returns).
    pub fn new(cfg: &RedisStoreConfig) -> Result<Self, StoreError> {
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
        Ok(Self {
            conn,
            prefix: cfg.prefix.clone(),
            host,
            reserve: Script::new(scripts::RESERVE),
            adjust: Script::new(scripts::ADJUST),
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

    async fn do_reserve(&self, charges: &[Charge]) -> Result<Reservation, StoreError> {
        if charges.is_empty() {
            return Ok(Reservation::Granted { remaining: vec![] });
        }
        let (keys, argv) = scripts::reserve_args(&self.prefix, charges);
        let mut inv = self.reserve.prepare_invoke();
        inv.key(keys).arg(argv);
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error(&e))?;
        scripts::reservation(&reply, charges.len())
    }

    async fn do_adjust(&self, adjustments: &[Adjustment]) -> Result<(), StoreError> {
        if adjustments.is_empty() {
            return Ok(());
        }
        let (keys, argv) = scripts::adjust_args(&self.prefix, adjustments);
        let mut inv = self.adjust.prepare_invoke();
        inv.key(keys).arg(argv);
        let mut conn = self.conn.clone();
        inv.invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| self.error(&e))
    }

    async fn do_read(&self, ids: &[CounterId]) -> Result<Vec<u64>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| scripts::key(&self.prefix, id))
            .collect();
        let mut conn = self.conn.clone();
        let reply: Vec<Option<i64>> = ::redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(&e))?;
        if reply.len() != ids.len() {
            return Err(StoreError(format!(
                "redis {}: malformed MGET reply",
                self.host
            )));
        }
        Ok(scripts::values(&reply))
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
