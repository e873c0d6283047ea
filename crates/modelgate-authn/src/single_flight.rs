//! Single flight: identical concurrent remote checks (TokenReview,
//! SubjectAccessReview, introspection) are coalesced into one call. The first
//! caller for a key (the leader) makes the call; callers arriving while it is
//! in flight wait for its answer instead of calling again. The remote call
//! carries its own deadline, so a follower's wait is bounded by it. If the
//! leader is cancelled (its client went away), a waiting follower makes the
//! call itself. The table holds only keys in flight, so it is bounded by the
//! number of concurrent requests.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

type Key = [u8; 32];

pub struct SingleFlight<V: Clone> {
    inflight: Mutex<HashMap<Key, watch::Receiver<Option<V>>>>,
}

impl<V: Clone> Default for SingleFlight<V> {
    fn default() -> Self {
        Self {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

/// Removes the leader's entry when it finishes or is dropped.
struct Leader<'a, V: Clone> {
    flight: &'a SingleFlight<V>,
    key: Key,
    tx: watch::Sender<Option<V>>,
}

impl<V: Clone> Drop for Leader<'_, V> {
    fn drop(&mut self) {
        let mut map = self.flight.table();
        // Remove only our own entry (a later leader may have replaced it).
        if map
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            map.remove(&self.key);
        }
    }
}

impl<V: Clone> SingleFlight<V> {
    fn table(&self) -> MutexGuard<'_, HashMap<Key, watch::Receiver<Option<V>>>> {
        // The table stays consistent even if a holder panicked.
        self.inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The answer of `call` for `key`, shared with every identical call in
    /// flight at the same time.
    pub async fn run<F, Fut>(&self, key: Key, call: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        loop {
            match self.join(key) {
                Err(tx) => {
                    let leader = Leader {
                        flight: self,
                        key,
                        tx,
                    };
                    let v = call().await;
                    leader.tx.send_replace(Some(v.clone()));
                    return v;
                }
                Ok(mut rx) => {
                    if let Ok(v) = rx.wait_for(Option::is_some).await
                        && let Some(v) = v.clone()
                    {
                        return v;
                    }
                    // The leader was cancelled before answering: try again
                    // (this caller may become the leader).
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    /// The answer in flight for `key` to wait for, or (`Err`) the sender
    /// of a new flight this caller leads.
    #[allow(clippy::result_large_err)]
    fn join(&self, key: Key) -> Result<watch::Receiver<Option<V>>, watch::Sender<Option<V>>> {
        let mut map = self.table();
        if let Some(rx) = map.get(&key) {
            return Ok(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key, rx);
        Err(tx)
    }

    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.table().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn fifty_identical_calls_make_one() {
        let flight = Arc::new(SingleFlight::<u32>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (flight, calls) = (flight.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                flight
                    .run([7; 32], || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        42
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.ok(), Some(42));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(flight.in_flight(), 0);
    }

    #[tokio::test]
    async fn different_keys_are_not_coalesced() {
        let flight = SingleFlight::<u8>::default();
        let a = flight.run([1; 32], || async { 1 }).await;
        let b = flight.run([2; 32], || async { 2 }).await;
        assert_eq!((a, b), (1, 2));
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_over() {
        let flight = Arc::new(SingleFlight::<u8>::default());
        let f2 = flight.clone();
        let leader = tokio::spawn(async move {
            f2.run([3; 32], || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                1
            })
            .await
        });
        tokio::task::yield_now().await;
        while flight.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        let f3 = flight.clone();
        let follower = tokio::spawn(async move { f3.run([3; 32], || async { 2 }).await });
        tokio::task::yield_now().await;
        leader.abort();
        assert_eq!(follower.await.ok(), Some(2));
    }
}
