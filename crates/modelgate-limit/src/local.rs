//! [`LocalStore`]: the in-process counter store, used when no Redis is
//! configured. Same contract as Redis (all-or-nothing reserve, clamped
//! adjustments, reads); one lock, no I/O. Bounded: counters are keyed by
//! configured names and verified ids only, expired windows are swept, and
//! the table refuses new counters past [`MAX_COUNTERS`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::store::{
    Adjustment, Charge, CounterId, CounterStore, Reservation, StoreError, StoreFuture,
};

/// Most counters held at once (a sweep runs first when full).
pub const MAX_COUNTERS: usize = 1_000_000;
/// Seconds between sweeps of expired counters.
const SWEEP_EVERY: u64 = 5;

struct Entry {
    value: u64,
    /// Unix seconds after which the counter is gone.
    expires: u64,
}

#[derive(Default)]
struct Table {
    counters: HashMap<CounterId, Entry>,
    last_sweep: u64,
}

impl Table {
    fn sweep(&mut self, now: u64, force: bool) {
        if force || now >= self.last_sweep + SWEEP_EVERY {
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

    fn set(&mut self, id: &CounterId, value: u64, ttl: u64, now: u64) {
        let e = self.counters.entry(id.clone()).or_insert(Entry {
            value: 0,
            expires: 0,
        });
        if e.expires <= now {
            e.value = 0;
        }
        e.value = value;
        e.expires = e.expires.max(now + ttl.max(1));
    }
}

/// Counters in this process (see the module doc).
#[derive(Default)]
pub struct LocalStore {
    table: Mutex<Table>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl LocalStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Table>, StoreError> {
        self.table
            .lock()
            .map_err(|_| StoreError("in-process counters: lock poisoned".into()))
    }

    /// [`CounterStore::reserve`] at a given time (tests).
    pub fn reserve_at(&self, charges: &[Charge], now: u64) -> Result<Reservation, StoreError> {
        let mut t = self.lock()?;
        t.sweep(now, false);
        // Several charges may name one counter: count them together.
        let mut after: Vec<u64> = Vec::with_capacity(charges.len());
        let mut refused = None;
        for (i, c) in charges.iter().enumerate() {
            let earlier: u64 = charges[..i]
                .iter()
                .filter(|o| o.id == c.id)
                .map(|o| o.amount)
                .sum();
            let v = t
                .value(&c.id, now)
                .saturating_add(earlier)
                .saturating_add(c.amount);
            if v > c.limit && refused.is_none() {
                refused = Some(i);
            }
            after.push(v);
        }
        if let Some(first) = refused {
            let remaining = charges
                .iter()
                .map(|c| c.limit.saturating_sub(t.value(&c.id, now)))
                .collect();
            return Ok(Reservation::Refused { first, remaining });
        }
        if !t.room_for(charges.len(), now) {
            return Err(StoreError(
                "in-process counters: table full (too many identities)".into(),
            ));
        }
        for c in charges {
            let v = t.value(&c.id, now).saturating_add(c.amount);
            t.set(&c.id, v, c.ttl_secs, now);
        }
        let remaining = charges
            .iter()
            .map(|c| c.limit.saturating_sub(t.value(&c.id, now)))
            .collect();
        Ok(Reservation::Granted { remaining })
    }

    /// [`CounterStore::adjust`] at a given time (tests).
    pub fn adjust_at(&self, adjustments: &[Adjustment], now: u64) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        for a in adjustments {
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

    /// [`CounterStore::read`] at a given time (tests).
    pub fn read_at(&self, ids: &[CounterId], now: u64) -> Result<Vec<u64>, StoreError> {
        let t = self.lock()?;
        Ok(ids.iter().map(|id| t.value(id, now)).collect())
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
        Box::pin(async move { self.reserve_at(charges, now_secs()) })
    }

    fn adjust<'a>(&'a self, adjustments: &'a [Adjustment]) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.adjust_at(adjustments, now_secs()) })
    }

    fn read<'a>(&'a self, ids: &'a [CounterId]) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(async move { self.read_at(ids, now_secs()) })
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Window;

    fn id(name: &str) -> CounterId {
        CounterId {
            name: name.into(),
            window: Window::Fixed { secs: 60 },
            start: 0,
        }
    }

    fn charge(name: &str, limit: u64, amount: u64) -> Charge {
        Charge {
            id: id(name),
            limit,
            amount,
            ttl_secs: 60,
        }
    }

    #[test]
    fn reserve_is_all_or_nothing() {
        let s = LocalStore::new();
        let r = s.reserve_at(&[charge("a", 10, 6), charge("b", 5, 5)], 100);
        assert_eq!(
            r.unwrap(),
            Reservation::Granted {
                remaining: vec![4, 0]
            }
        );
        let r = s.reserve_at(&[charge("a", 10, 4), charge("b", 5, 1)], 100);
        assert_eq!(
            r.unwrap(),
            Reservation::Refused {
                first: 1,
                remaining: vec![4, 0]
            }
        );
        assert_eq!(s.read_at(&[id("a"), id("b")], 100).unwrap(), vec![6, 5]);
    }

    #[test]
    fn same_counter_twice_in_one_reserve_counts_both() {
        let s = LocalStore::new();
        let r = s.reserve_at(&[charge("a", 10, 6), charge("a", 10, 6)], 1);
        assert!(matches!(r.unwrap(), Reservation::Refused { first: 1, .. }));
        assert_eq!(s.read_at(&[id("a")], 1).unwrap(), vec![0]);
    }

    #[test]
    fn adjust_clamps_at_zero_and_settles() {
        let s = LocalStore::new();
        s.reserve_at(&[charge("a", 100, 50)], 1).unwrap();
        s.adjust_at(
            &[Adjustment {
                id: id("a"),
                delta: -20,
                ttl_secs: 60,
            }],
            1,
        )
        .unwrap();
        assert_eq!(s.read_at(&[id("a")], 1).unwrap(), vec![30]);
        s.adjust_at(
            &[Adjustment {
                id: id("a"),
                delta: -100,
                ttl_secs: 60,
            }],
            1,
        )
        .unwrap();
        assert_eq!(s.read_at(&[id("a")], 1).unwrap(), vec![0]);
    }

    #[test]
    fn expired_counters_read_zero_and_are_swept() {
        let s = LocalStore::new();
        s.reserve_at(&[charge("a", 10, 10)], 100).unwrap();
        assert_eq!(s.read_at(&[id("a")], 159).unwrap(), vec![10]);
        assert_eq!(s.read_at(&[id("a")], 160).unwrap(), vec![0]);
        // A reserve after the TTL starts again from 0, and the sweep drops it.
        s.reserve_at(&[charge("b", 10, 1)], 200).unwrap();
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn concurrent_reserves_grant_exactly_the_limit() {
        let s = std::sync::Arc::new(LocalStore::new());
        let granted: usize = std::thread::scope(|scope| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let s = s.clone();
                    scope.spawn(move || {
                        (0..25)
                            .filter(|_| {
                                matches!(
                                    s.reserve_at(&[charge("t", 1000, 7)], 5),
                                    Ok(Reservation::Granted { .. })
                                )
                            })
                            .count()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(granted, 1000 / 7);
        assert_eq!(s.read_at(&[id("t")], 5).unwrap(), vec![7 * (1000 / 7)]);
    }
}
