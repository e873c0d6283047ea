//! Request counts per model in fixed 5-second buckets: a ring of
//! [`BUCKETS`] slots, each tagged with the bucket number it counts, so the
//! memory is fixed and the rate stays exact at any request rate (the
//! latency samples are capped; these counters are not).

use std::time::{Duration, Instant};

/// Buckets in the ring (covering [`BUCKETS`] × [`BUCKET`]).
pub const BUCKETS: usize = 12;
/// The width of one bucket.
pub const BUCKET: Duration = Duration::from_secs(5);

/// One model's counts. Bucket numbers count [`BUCKET`]s since `origin`.
#[derive(Debug, Clone)]
pub struct RateRing {
    origin: Instant,
    /// (bucket number, requests in it); a slot whose number is stale is empty.
    slots: [(u64, u64); BUCKETS],
}

impl RateRing {
    pub fn new(origin: Instant) -> Self {
        Self {
            origin,
            // u64::MAX never equals a live bucket number.
            slots: [(u64::MAX, 0); BUCKETS],
        }
    }

    fn number(&self, at: Instant) -> u64 {
        // A bucket is whole seconds, so the nanoseconds never carry a
        // division of the whole duration into the next bucket (and no
        // 128-bit division is needed).
        const _: () = assert!(BUCKET.subsec_nanos() == 0 && BUCKET.as_secs() > 0);
        at.saturating_duration_since(self.origin).as_secs() / BUCKET.as_secs()
    }

    fn slot(n: u64) -> usize {
        usize::try_from(n % BUCKETS as u64).unwrap_or(0)
    }

    /// Counts `n` requests at `at`.
    pub fn add(&mut self, at: Instant, n: u64) {
        let num = self.number(at);
        if let Some(s) = self.slots.get_mut(Self::slot(num)) {
            if s.0 != num {
                *s = (num, 0);
            }
            s.1 = s.1.saturating_add(n);
        }
    }

    /// Requests per bucket as of `now`, oldest first; the last is the
    /// current (partial) bucket.
    pub fn series(&self, now: Instant) -> Vec<u64> {
        let cur = self.number(now);
        (0..BUCKETS as u64)
            .rev()
            .map(|back| {
                let num = cur.checked_sub(back);
                match (num, num.and_then(|n| self.slots.get(Self::slot(n)))) {
                    (Some(n), Some(&(tag, count))) if tag == n => count,
                    _ => 0,
                }
            })
            .collect()
    }

    /// Requests over the ring's window as of `now`.
    pub fn total(&self, now: Instant) -> u64 {
        self.series(now).iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(o: Instant, ms: u64) -> Instant {
        o + Duration::from_millis(ms)
    }

    #[test]
    fn counts_land_in_their_bucket_oldest_first() {
        let o = Instant::now();
        let mut r = RateRing::new(o);
        r.add(at(o, 100), 3);
        r.add(at(o, 4_999), 2);
        r.add(at(o, 5_000), 7);
        let s = r.series(at(o, 6_000));
        assert_eq!(s.len(), BUCKETS);
        assert_eq!(s[BUCKETS - 1], 7);
        assert_eq!(s[BUCKETS - 2], 5);
        assert_eq!(s.iter().sum::<u64>(), 12);
        assert_eq!(r.total(at(o, 6_000)), 12);
    }

    #[test]
    fn is_not_capped_at_high_rates() {
        let o = Instant::now();
        let mut r = RateRing::new(o);
        for i in 0..50_000u64 {
            r.add(at(o, i / 10), 1); // 10 000 req/s for 5 s
        }
        assert_eq!(r.total(at(o, 5_000)), 50_000);
    }

    #[test]
    fn old_buckets_leave_the_window_and_slots_are_reused() {
        let o = Instant::now();
        let mut r = RateRing::new(o);
        r.add(at(o, 0), 4);
        // 59.9 s later the first bucket is still the oldest in the window.
        assert_eq!(r.series(at(o, 59_900))[0], 4);
        // At 60 s it has left, although its slot was never overwritten.
        assert_eq!(r.total(at(o, 60_000)), 0);
        // A new count in the same slot starts from zero.
        r.add(at(o, 61_000), 1);
        assert_eq!(r.total(at(o, 61_000)), 1);
        // Long idle: nothing counts.
        assert_eq!(r.total(at(o, 3_600_000)), 0);
    }

    #[test]
    fn time_before_the_origin_counts_in_the_first_bucket() {
        let o = Instant::now() + Duration::from_secs(10);
        let mut r = RateRing::new(o);
        r.add(Instant::now(), 1);
        assert_eq!(r.total(o), 1);
    }
}
