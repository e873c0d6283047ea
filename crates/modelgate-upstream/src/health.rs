//! Passive health of a model's REST endpoints and the round robin over them:
//! an endpoint that refused a connection, broke one or answered 502/503/504
//! is skipped for a cool-off; when every endpoint is cooling off, the round
//! robin goes on anyway (better a try than a certain 503).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Health and rotation state of `n` endpoints.
pub struct Health {
    base: Instant,
    /// Per endpoint: milliseconds since `base` until which it is skipped.
    down_until: Vec<AtomicU64>,
    next: AtomicUsize,
    cooloff: Duration,
}

impl Health {
    pub fn new(n: usize, cooloff: Duration) -> Self {
        Self {
            base: Instant::now(),
            down_until: (0..n).map(|_| AtomicU64::new(0)).collect(),
            next: AtomicUsize::new(0),
            cooloff,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether endpoint `i` is up (the clock is read only for an endpoint
    /// that was marked down).
    pub fn is_up(&self, i: usize) -> bool {
        self.down_until.get(i).is_none_or(|d| {
            let until = d.load(Ordering::Relaxed);
            until == 0 || until <= self.now_ms()
        })
    }

    /// Marks endpoint `i` down for the cool-off.
    pub fn mark_down(&self, i: usize) {
        if let Some(d) = self.down_until.get(i) {
            let until = self
                .now_ms()
                .saturating_add(u64::try_from(self.cooloff.as_millis()).unwrap_or(u64::MAX));
            d.store(until, Ordering::Relaxed);
        }
    }

    /// Marks endpoint `i` up again (it answered).
    pub fn mark_up(&self, i: usize) {
        if let Some(d) = self.down_until.get(i)
            && d.load(Ordering::Relaxed) != 0
        {
            d.store(0, Ordering::Relaxed);
        }
    }

    /// The next endpoint in rotation that is up and not in `tried` (a bit
    /// set of endpoints this request already used); failing that, the next
    /// one not tried; `None` when every endpoint was tried.
    pub fn pick(&self, tried: u64) -> Option<usize> {
        let n = self.down_until.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let untried = |i: &usize| *i >= 64 || tried & (1 << i) == 0;
        let order = (0..n).map(|k| (start + k) % n).filter(untried);
        order
            .clone()
            .find(|i| self.is_up(*i))
            .or_else(|| order.clone().next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_down_endpoints_and_tried_ones() {
        let h = Health::new(3, Duration::from_secs(60));
        let picks: Vec<_> = (0..3).map(|_| h.pick(0).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2]);
        h.mark_down(1);
        let picks: Vec<_> = (0..4).map(|_| h.pick(0).unwrap()).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        // A retry never goes back to an endpoint it tried.
        assert_eq!(h.pick(0b101), Some(1));
        assert_eq!(h.pick(0b111), None);
        h.mark_up(1);
        assert!(h.is_up(1));
    }

    #[test]
    fn when_all_are_down_the_rotation_goes_on() {
        let h = Health::new(2, Duration::from_secs(60));
        h.mark_down(0);
        h.mark_down(1);
        assert!(h.pick(0).is_some());
        assert_eq!(h.pick(0b01), Some(1));
    }

    #[test]
    fn a_zero_cooloff_never_skips() {
        let h = Health::new(2, Duration::ZERO);
        h.mark_down(0);
        assert!(h.is_up(0));
    }
}
