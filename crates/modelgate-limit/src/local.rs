//! [`LocalStore`]: the in-process counter store, used when no Redis is
//! configured. Same contract as Redis (all-or-nothing reserve, GCRA request
//! rates, clamped adjustments, reads); one lock, no I/O. Bounded: counters
//! are keyed by configured names and verified ids only, expired counters are
//! swept, and the table refuses new counters past [`MAX_COUNTERS`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::store::{
    Adjustment, Charge, Clock, CounterId, CounterStore, Reservation, StoreError, StoreFuture,
    SystemClock, id_in_scope,
};

/// Most counters held at once (a sweep runs first when full).
pub const MAX_COUNTERS: usize = 1_000_000;
/// Microseconds between sweeps of expired counters.
const SWEEP_EVERY_US: u64 = 5_000_000;
const US: u64 = 1_000_000;

struct Entry {
    /// The count, or a GCRA counter's theoretical arrival time (unix µs).
    value: u64,
    /// Unix microseconds after which the counter is gone.
    expires: u64,
}

#[derive(Default)]
struct Table {
    counters: HashMap<CounterId, Entry>,
    last_sweep: u64,
}

impl Table {
    fn sweep(&mut self, now: u64, force: bool) {
        if force || now >= self.last_sweep + SWEEP_EVERY_US {
            self.counters.retain(|_, e| e.expires > now);
            self.last_sweep = now;
        }
    }

    fn value(&self, id: &CounterId, now: u64) -> u64 {
        self.counters
            .get(id)
            .filter(|e| e.expires > now)
            .map_or(0, |e| e.value)
    }

    fn room_for(&mut self, new: usize, now: u64) -> bool {
        if self.counters.len() + new <= MAX_COUNTERS {
            return true;
        }
        self.sweep(now, true);
        self.counters.len() + new <= MAX_COUNTERS
    }

    /// Sets a count, keeping it at least `ttl_secs` from now.
    fn set(&mut self, id: &CounterId, value: u64, ttl_secs: u64, now: u64) {
        let e = self.counters.entry(id.clone()).or_insert(Entry {
            value: 0,
            expires: 0,
        });
        e.value = value;
        e.expires = e
            .expires
            .max(now.saturating_add(ttl_secs.max(1).saturating_mul(US)));
    }

    /// Sets a GCRA arrival time (the counter means nothing after it).
    fn set_tat(&mut self, id: &CounterId, tat: u64) {
        self.counters.insert(
            id.clone(),
            Entry {
                value: tat,
                expires: tat,
            },
        );
    }
}

/// One charge's state during a reservation.
struct Step {
    /// The counter after this charge (a count, or a GCRA arrival time).
    after: u64,
    over: bool,
    /// GCRA: microseconds until this charge would fit (when over).
    wait_us: u64,
}

/// GCRA for `amount` cells at `now` given the arrival time `tat`.
fn gcra_step(tat: u64, now: u64, limit: u64, amount: u64, interval: u64) -> Step {
    let tat = tat.max(now);
    let after = tat.saturating_add(amount.saturating_mul(interval));
    let tau = limit.saturating_mul(interval);
    let ahead = after - now;
    Step {
        after,
        over: ahead > tau,
        wait_us: ahead.saturating_sub(tau),
    }
}

/// `(remaining, reset_ms)` of a charge whose counter now holds `value`.
fn answer(c: &Charge, value: u64, now: u64, wait_us: Option<u64>) -> (u64, u64) {
    match c.id.window.gcra_interval_us(c.limit) {
        Some(interval) => {
            let ahead = value.max(now) - now;
            let tau = c.limit.saturating_mul(interval);
            let remaining = tau.saturating_sub(ahead) / interval;
            (remaining, wait_us.unwrap_or(ahead).div_ceil(1000))
        }
        None => (c.limit.saturating_sub(value), 0),
    }
}

/// Counters in this process (see the module doc).
pub struct LocalStore {
    table: Mutex<Table>,
    clock: Arc<dyn Clock>,
}

impl Default for LocalStore {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl LocalStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store reading the time from `clock` (tests).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            table: Mutex::new(Table::default()),
            clock,
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Table>, StoreError> {
        self.table
            .lock()
            .map_err(|_| StoreError("in-process counters: lock poisoned".into()))
    }

    /// [`CounterStore::reserve`] at `now` (unix microseconds).
    pub fn reserve_at(&self, charges: &[Charge], now: u64) -> Result<Reservation, StoreError> {
        let mut t = self.lock()?;
        t.sweep(now, false);
        // Several charges may name one counter: each sees the ones before.
        let mut steps: Vec<Step> = Vec::with_capacity(charges.len());
        for (i, c) in charges.iter().enumerate() {
            let before = charges[..i]
                .iter()
                .rposition(|o| o.id == c.id)
                .and_then(|j| steps.get(j))
                .map_or_else(|| t.value(&c.id, now), |s| s.after);
            let step = match c.id.window.gcra_interval_us(c.limit) {
                Some(interval) => gcra_step(before, now, c.limit, c.amount, interval),
                None => {
                    let after = before.saturating_add(c.amount);
                    Step {
                        after,
                        over: after > c.limit,
                        wait_us: 0,
                    }
                }
            };
            steps.push(step);
        }
        if let Some(first) = steps.iter().position(|s| s.over) {
            let (remaining, reset_ms) = charges
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let wait = (i == first).then(|| steps[i].wait_us);
                    answer(c, t.value(&c.id, now), now, wait)
                })
                .unzip();
            return Ok(Reservation::Refused {
                first,
                remaining,
                reset_ms,
            });
        }
        if !t.room_for(charges.len(), now) {
            return Err(StoreError(
                "in-process counters: table full (too many identities)".into(),
            ));
        }
        for (c, s) in charges.iter().zip(&steps) {
            match c.id.window {
                crate::store::Window::Gcra { .. } => t.set_tat(&c.id, s.after),
                _ => t.set(&c.id, s.after, c.ttl_secs, now),
            }
        }
        let (remaining, reset_ms) = charges
            .iter()
            .map(|c| answer(c, t.value(&c.id, now), now, None))
            .unzip();
        Ok(Reservation::Granted {
            remaining,
            reset_ms,
        })
    }

    /// [`CounterStore::adjust`] at `now` (unix microseconds).
    pub fn adjust_at(&self, adjustments: &[Adjustment], now: u64) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        for a in adjustments {
            if a.id.window.gcra_interval_us(1).is_some() {
                continue;
            }
            let v = t.value(&a.id, now);
            let v = if a.delta >= 0 {
                v.saturating_add(a.delta.unsigned_abs())
            } else {
                v.saturating_sub(a.delta.unsigned_abs())
            };
            if t.counters.contains_key(&a.id) || t.room_for(1, now) {
                t.set(&a.id, v, a.ttl_secs, now);
            }
        }
        Ok(())
    }

    /// [`CounterStore::read`] at `now` (unix microseconds).
    pub fn read_at(&self, ids: &[CounterId], now: u64) -> Result<Vec<u64>, StoreError> {
        let t = self.lock()?;
        Ok(ids
            .iter()
            .map(|id| match id.window {
                crate::store::Window::Gcra { .. } => t.value(id, now).saturating_sub(now),
                _ => t.value(id, now),
            })
            .collect())
    }

    /// [`CounterStore::scan`] at `now` (unix microseconds).
    pub fn scan_at(&self, scope: &str, max: usize, now: u64) -> Result<Vec<String>, StoreError> {
        let t = self.lock()?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (id, e) in &t.counters {
            if out.len() >= max {
                break;
            }
            if e.expires > now
                && let Some(g) = id_in_scope(&id.name, scope)
                && seen.insert(g)
            {
                out.push(g.to_string());
            }
        }
        Ok(out)
    }

    /// Counters held (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.lock().map_or(0, |t| t.counters.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CounterStore for LocalStore {
    fn reserve<'a>(&'a self, charges: &'a [Charge]) -> StoreFuture<'a, Reservation> {
        Box::pin(async move { self.reserve_at(charges, self.clock.now_us()) })
    }

    fn adjust<'a>(&'a self, adjustments: &'a [Adjustment]) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.adjust_at(adjustments, self.clock.now_us()) })
    }

    fn read<'a>(&'a self, ids: &'a [CounterId]) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(async move { self.read_at(ids, self.clock.now_us()) })
    }

    fn scan<'a>(&'a self, scope: &'a str, max: usize) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move { self.scan_at(scope, max, self.clock.now_us()) })
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}

#[cfg(test)]
mod tests;
