//! Per-connection deadlines. A connection with no request in flight may stay
//! open only so long: until its first request starts, `header_read_timeout`
//! from accept (this bounds silent sockets, slow request heads and HTTP/2
//! connections that send a preface and SETTINGS but open no stream); after
//! that, `idle_timeout` from the end of the last response, and on HTTP/1.1
//! `header_read_timeout` if shorter (the next request head must be complete
//! by then: a slow head on a kept-alive connection is cut off). A request is
//! in flight from its head until its response body has been sent or dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use modelgate_core::body_tap::{Observer, Tap};

use crate::gate::Deadline;

/// What the watchdog knows about one connection's requests.
pub(crate) struct Activity {
    base: Instant,
    in_flight: AtomicUsize,
    started: AtomicU64,
    /// A request came over HTTP/2 (no per-request head deadline there).
    h2: AtomicBool,
    /// Milliseconds from `base` to when the connection last became idle.
    idle_since_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// Marks a request in flight until the returned guard is dropped.
    /// `h2`: it came over HTTP/2.
    pub(crate) fn begin(self: &Arc<Self>, h2: bool) -> Busy {
        if h2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.started.fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// When the connection is due to close if it stays idle, and which
    /// deadline that is; `None` while a request is in flight.
    pub(crate) fn due(&self, header: Duration, idle: Duration) -> Option<(Instant, Deadline)> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let since = self.base + Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst));
        Some(if self.started.load(Ordering::SeqCst) == 0 {
            (since + header, Deadline::Header)
        } else if header < idle && !self.h2.load(Ordering::Relaxed) {
            (since + header, Deadline::NextHead)
        } else {
            (since + idle, Deadline::Idle)
        })
    }
}

/// A request in flight on its connection.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        // The idle clock is set before the request stops counting, so the
        // watchdog never sees "idle" with a stale start.
        self.0.idle_since_ms.store(ms, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request in flight until it is done
/// (sent, failed or dropped); an empty one does not keep it.
pub type Tracked = Tap<Busy>;

impl Observer for Busy {
    const END_IF_DONE: bool = true;

    /// Dropping the guard ends the request.
    fn end(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_clock_runs_only_without_requests() {
        let a = Activity::new();
        let hdr = Duration::from_secs(10);
        let idle = Duration::from_secs(60);
        let (at, which) = a.due(hdr, idle).unwrap();
        assert!(matches!(which, Deadline::Header));
        assert!(at <= a.base + hdr);
        let busy = a.begin(true);
        assert!(a.due(hdr, idle).is_none());
        let busy2 = a.begin(true);
        drop(busy);
        assert!(a.due(hdr, idle).is_none(), "one request is still in flight");
        drop(busy2);
        let (at, which) = a.due(hdr, idle).unwrap();
        assert!(matches!(which, Deadline::Idle));
        assert!(at >= a.base + idle);
    }

    #[test]
    fn a_kept_alive_http1_connection_has_the_head_deadline_after_each_answer() {
        let a = Activity::new();
        let hdr = Duration::from_secs(10);
        let idle = Duration::from_secs(60);
        drop(a.begin(false));
        let (at, which) = a.due(hdr, idle).unwrap();
        assert!(matches!(which, Deadline::NextHead));
        let since = a.base + Duration::from_millis(a.idle_since_ms.load(Ordering::SeqCst));
        assert_eq!(at, since + hdr);
        // The idle deadline when it is the shorter one.
        let (at, which) = a.due(idle, hdr).unwrap();
        assert!(matches!(which, Deadline::Idle));
        assert_eq!(at, since + hdr);
        let busy = a.begin(false);
        assert!(
            a.due(hdr, idle).is_none(),
            "no deadline while a request is in flight"
        );
        drop(busy);
        assert!(matches!(a.due(hdr, idle), Some((_, Deadline::NextHead))));
    }

    #[tokio::test]
    async fn a_response_body_holds_its_request_until_sent() {
        use http_body_util::BodyExt;
        let a = Activity::new();
        let body = modelgate_core::full("hello");
        let mut t = Tracked::new(body, a.begin(false));
        assert!(a.due(Duration::ZERO, Duration::ZERO).is_none());
        let frame = t.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "hello");
        assert!(t.frame().await.is_none());
        assert!(a.due(Duration::ZERO, Duration::ZERO).is_some());
        let empty = Tracked::new(modelgate_core::empty(), a.begin(false));
        assert!(a.due(Duration::ZERO, Duration::ZERO).is_some());
        drop(empty);
    }
}
