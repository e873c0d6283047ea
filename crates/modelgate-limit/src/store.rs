//! The counter-store contract: all-or-nothing reservation against limits,
//! signed adjustment (settlement), and reads. Implemented in process and in
//! Redis; the limit step only sees this trait.
//!
//! Counters are fixed windows: a counter is identified by a name (built by the
//! limit step from configuration and verified identity ids, never from raw
//! request input), a window length and the window's start. Concurrency
//! counters use [`Window::Lease`]: no window, the reservation is undone by an
//! adjustment when the request ends, and the TTL bounds a leak if a replica
//! dies holding it.

use std::future::Future;
use std::pin::Pin;

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
/// limit minus its counter after the call (saturating at 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Every charge was added.
    Granted { remaining: Vec<u64> },
    /// Nothing was added: charge `first` would have gone over its limit.
    Refused { first: usize, remaining: Vec<u64> },
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

/// A store of counters shared by every request (and, in Redis, every replica).
pub trait CounterStore: Send + Sync {
    /// All-or-nothing: adds every charge if none would exceed its limit,
    /// otherwise adds none. Atomic with respect to every other call.
    fn reserve<'a>(&'a self, charges: &'a [Charge]) -> StoreFuture<'a, Reservation>;
    /// Applies signed adjustments (never refused).
    fn adjust<'a>(&'a self, adjustments: &'a [Adjustment]) -> StoreFuture<'a, ()>;
    /// Current values (0 for a counter never charged or expired).
    fn read<'a>(&'a self, ids: &'a [CounterId]) -> StoreFuture<'a, Vec<u64>>;
    /// A short name for logs and metrics: `local` or `redis`.
    fn kind(&self) -> &'static str;
}
