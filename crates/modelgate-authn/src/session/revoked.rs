//! A bounded set of ids with expiry times, in process: revoked session ids
//! (until the session would have expired) and used `state` values (until the
//! flow would have expired). When full of live entries it does not evict —
//! that would un-revoke a session — but raises a floor: everything issued at
//! or before it counts as revoked (fail closed). Not shared between replicas.

use std::collections::HashMap;
use std::sync::Mutex;

pub struct Revoked {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    ids: HashMap<String, u64>,
    /// Sessions issued at or before this time (Unix seconds) are revoked.
    floor: u64,
}

impl Revoked {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records `id` until `exp`. Returns false if it was already recorded
    /// (a used `state`) or the floor already covers it.
    pub fn insert(&self, id: &str, issued: u64, exp: u64, now: u64) -> bool {
        let Ok(mut g) = self.inner.lock() else {
            return false;
        };
        if issued <= g.floor || g.ids.get(id).is_some_and(|e| *e >= now) {
            return false;
        }
        if g.ids.len() >= self.cap {
            g.ids.retain(|_, e| *e >= now);
        }
        if g.ids.len() >= self.cap {
            g.ids.clear();
            g.floor = now;
            return true;
        }
        g.ids.insert(id.to_string(), exp);
        true
    }

    /// Whether `id` (issued at `issued`) is revoked at `now`.
    pub fn contains(&self, id: &str, issued: u64, now: u64) -> bool {
        let Ok(g) = self.inner.lock() else {
            return true;
        };
        issued <= g.floor || g.ids.get(id).is_some_and(|e| *e >= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_use_and_expiry() {
        let r = Revoked::new(10);
        assert!(!r.contains("a", 100, 100));
        assert!(r.insert("a", 100, 200, 100));
        assert!(!r.insert("a", 100, 200, 150), "second use of the same id");
        assert!(r.contains("a", 100, 150));
        assert!(
            !r.contains("a", 100, 201),
            "gone once the session would have expired"
        );
        assert!(!r.contains("b", 100, 150));
    }

    #[test]
    fn full_of_live_entries_fails_closed() {
        let r = Revoked::new(2);
        assert!(r.insert("a", 10, 1000, 10));
        assert!(r.insert("b", 10, 1000, 10));
        // Full: nothing expired to prune, so everything issued up to now is revoked.
        assert!(r.insert("c", 10, 1000, 20));
        assert!(r.contains("a", 10, 30) && r.contains("b", 10, 30) && r.contains("z", 20, 30));
        assert!(!r.contains("new", 21, 30));
        // Expired entries are pruned before the floor is raised.
        let r = Revoked::new(1);
        assert!(r.insert("a", 10, 15, 10));
        assert!(r.insert("b", 30, 100, 30));
        assert!(!r.contains("x", 11, 30));
    }
}
