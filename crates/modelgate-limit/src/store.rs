//! The counter-store contract: all-or-nothing reservation against limits,
//! signed adjustment (settlement), and reads. Implemented in process and in
//! Redis; the limit step only sees this trait.
//!
//! A counter is identified by a name (built by the limit step from
//! configuration and verified identity ids, never from raw request input), a
//! window and the window's start. Token and spend counters count in fixed
//! windows. Request rates use [`Window::Gcra`] (the generic cell rate
//! algorithm, as `governor`): the counter holds a theoretical arrival time, a
//! client may spend the whole limit at once after idling, and then one request
//! per `period / limit`. Concurrency counters use [`Window::Lease`]: no window,
//! the reservation is undone by an adjustment when the request ends, and the
//! TTL bounds a leak if a replica dies holding it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// How long a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// A fixed window of this many seconds (60 = per minute, 86400 = per day).
    Fixed { secs: u64 },
    /// Calendar month (UTC).
    Month,
    /// Never resets (total budgets).
    Total,
    /// Concurrency: held while a request runs, released by a negative
    /// adjustment; `ttl_secs` on the charge bounds a leaked lease.
    Lease,
    /// GCRA: at most `limit` per `period_ms`, with a burst of `limit`. The
    /// counter holds the theoretical arrival time (unix microseconds); the
    /// charge's `ttl_secs` is unused (the counter lives until that time).
    /// Never adjusted: adjustments naming it are ignored.
    Gcra { period_ms: u64 },
}

impl Window {
    /// GCRA's emission interval for `limit` (microseconds per cell, at
    /// least 1, rounded up so the rate never exceeds the limit); `None` for
    /// the other windows.
    pub fn gcra_interval_us(self, limit: u64) -> Option<u64> {
        match self {
            Window::Gcra { period_ms } => {
                Some(period_ms.saturating_mul(1000).div_ceil(limit.max(1)).max(1))
            }
            _ => None,
        }
    }
}

/// One counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterId {
    /// Stable name, e.g. `tpm:key:<key-id>:model:<model>`. Bounded: made from
    /// configured names and verified identity ids only.
    pub name: String,
    pub window: Window,
    /// Start of the window, unix seconds (0 for `Total` and `Lease`). Kept with
    /// the reservation so settlement lands in the same window.
    pub start: u64,
}

/// Add `amount` to a counter, provided it stays at or under `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub id: CounterId,
    pub limit: u64,
    pub amount: u64,
    /// Seconds the store may keep the counter after its last change (at least
    /// until the window ends).
    pub ttl_secs: u64,
}

/// The outcome of [`CounterStore::reserve`]. `remaining[i]` is charge `i`'s
/// limit minus its counter after the call (saturating at 0); for a GCRA
/// charge, the requests that would still pass at once.
///
/// `reset_ms[i]` is 0 for windowed counters (their reset is the window's
/// end, which the caller knows). For a GCRA charge it is the store's answer:
/// granted, the milliseconds until the counter is back to its full burst;
/// refused, for the refusing charge `first`, the milliseconds until it would
/// pass (the `Retry-After`), for the others, until they are full again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Every charge was added.
    Granted {
        remaining: Vec<u64>,
        reset_ms: Vec<u64>,
    },
    /// Nothing was added: charge `first` would have gone over its limit.
    Refused {
        first: usize,
        remaining: Vec<u64>,
        reset_ms: Vec<u64>,
    },
}

impl Reservation {
    /// Granted, with `remaining` and no GCRA resets (n zeros).
    pub fn granted(remaining: Vec<u64>) -> Self {
        let reset_ms = vec![0; remaining.len()];
        Reservation::Granted {
            remaining,
            reset_ms,
        }
    }

    /// `reset_ms` of either outcome.
    pub fn reset_ms(&self) -> &[u64] {
        match self {
            Reservation::Granted { reset_ms, .. } | Reservation::Refused { reset_ms, .. } => {
                reset_ms
            }
        }
    }
}

/// Add `delta` (negative to give back) to a counter, without a limit check:
/// settlement of an estimate, or the release of a lease. Counters never go
/// below zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    pub id: CounterId,
    pub delta: i64,
    pub ttl_secs: u64,
}

/// Why the store could not answer. The limit step applies the configured
/// failure mode (`open` or `closed`); the message never holds secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("counter store unavailable: {0}")]
pub struct StoreError(pub String);

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where the stores read the time (unix microseconds): the system clock, or
/// a [`ManualClock`] in tests.
pub trait Clock: Send + Sync {
    fn now_us(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(now_us: u64) -> Self {
        Self(AtomicU64::new(now_us))
    }

    pub fn set(&self, now_us: u64) {
        self.0.store(now_us, Ordering::SeqCst);
    }

    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Most distinct ids [`CounterStore::scan`] returns.
pub const MAX_SCAN: usize = 1000;

/// A store of counters shared by every request (and, in Redis, every replica).
pub trait CounterStore: Send + Sync {
    /// All-or-nothing: adds every charge if none would exceed its limit,
    /// otherwise adds none. Atomic with respect to every other call.
    fn reserve<'a>(&'a self, charges: &'a [Charge]) -> StoreFuture<'a, Reservation>;
    /// Applies signed adjustments (never refused).
    fn adjust<'a>(&'a self, adjustments: &'a [Adjustment]) -> StoreFuture<'a, ()>;
    /// Current values (0 for a counter never charged or expired). For a
    /// GCRA counter: the microseconds its theoretical arrival time is ahead
    /// of now (0 when idle), i.e. `used × interval`.
    fn read<'a>(&'a self, ids: &'a [CounterId]) -> StoreFuture<'a, Vec<u64>>;
    /// The distinct ids of live counters named `<measure>:<scope>:<id>`
    /// (e.g. the groups seen by `per_group` limits), at most `max` of them,
    /// in no particular order. Bounded work: a store may stop early.
    fn scan<'a>(&'a self, scope: &'a str, max: usize) -> StoreFuture<'a, Vec<String>>;
    /// A short name for logs and metrics: `local` or `redis`.
    fn kind(&self) -> &'static str;
}

/// The `<id>` of a counter named `<measure>:<scope>:<id>`, if it is in
/// `scope` (the measure never holds a colon; the id may).
pub fn id_in_scope<'n>(name: &'n str, scope: &str) -> Option<&'n str> {
    let (_measure, rest) = name.split_once(':')?;
    let id = rest.strip_prefix(scope)?.strip_prefix(':')?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_interval_rounds_up_and_is_never_zero() {
        let per_min = Window::Gcra { period_ms: 60_000 };
        assert_eq!(per_min.gcra_interval_us(10), Some(6_000_000));
        assert_eq!(per_min.gcra_interval_us(7), Some(8_571_429));
        let per_sec = Window::Gcra { period_ms: 1000 };
        assert_eq!(per_sec.gcra_interval_us(3_000_000), Some(1));
        assert_eq!(per_sec.gcra_interval_us(0), Some(1_000_000));
        assert_eq!(Window::Lease.gcra_interval_us(5), None);
    }

    #[test]
    fn scopes_are_matched_on_the_second_segment() {
        assert_eq!(id_in_scope("tpd:group:eng", "group"), Some("eng"));
        assert_eq!(id_in_scope("tpd:group:a:b", "group"), Some("a:b"));
        assert_eq!(id_in_scope("tpm:key:group:x", "group"), None);
        assert_eq!(id_in_scope("tpm:groups:x", "group"), None);
        assert_eq!(id_in_scope("tpm:group:", "group"), None);
    }
}
