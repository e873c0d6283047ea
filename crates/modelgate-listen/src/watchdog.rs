//! The connection watchdog: serves one connection until it ends, a deadline
//! of [`crate::deadline`] closes it, or shutdown drains it. Its own futures
//! (the shutdown signal and one deadline timer, moved as the deadline moves)
//! are polled only when they woke the task, not on each of the connection's
//! wake-ups (a request wakes the connection task several times: the client's
//! bytes, the upstream's answer, the write).

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::deadline::Activity;
use crate::gate::{Deadline, Gate};

/// After a deadline closes a connection gracefully, how long the peer has to
/// let it finish (e.g. to read a GOAWAY) before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The deadlines the watchdog enforces.
pub(crate) struct Limits<'a> {
    pub header: Duration,
    pub idle: Duration,
    pub gate: &'a Gate,
}

/// Wakes the connection task and notes that the watchdog's own futures
/// were woken. The task's waker is kept up to date on every poll.
struct Flag {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Flag {
    /// Whether the watchdog's futures woke since the last call; notes
    /// `task` as the waker to wake next time.
    fn take(&self, task: &Waker) -> bool {
        if let Ok(mut t) = self.task.lock()
            && !t.as_ref().is_some_and(|w| w.will_wake(task))
        {
            *t = Some(task.clone());
        }
        self.woken.swap(false, Ordering::AcqRel)
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Ok(t) = self.task.lock()
            && let Some(w) = t.as_ref()
        {
            w.wake_by_ref();
        }
    }
}

/// Drives `conn` to its end under the deadlines and the shutdown signal.
/// `started`: when the connection was accepted (for the log).
/// `graceful` asks the connection to finish (hyper's `graceful_shutdown`).
pub(crate) async fn run<C: Future>(
    conn: Pin<&mut C>,
    graceful: impl Fn(Pin<&mut C>),
    activity: &Activity,
    limits: Limits<'_>,
    mut stop: watch::Receiver<bool>,
    started: Instant,
) -> Option<C::Output> {
    let mut conn = conn;
    let mut stopping = *stop.borrow();
    if stopping {
        graceful(conn.as_mut());
    }
    // While a request is in flight, look again at the shorter deadline's
    // interval: the next HTTP/1.1 head's is counted from that request's end.
    let next = |activity: &Activity| {
        activity.due(limits.header, limits.idle).map_or(
            Instant::now() + limits.idle.min(limits.header),
            |(at, _)| at,
        )
    };
    let mut timer = pin!(tokio::time::sleep_until(next(activity).into()));
    let mut changed = pin!(stop.changed());
    // Set once a deadline has asked the connection to close.
    let mut closing: Option<Instant> = None;
    let flag = Arc::new(Flag {
        woken: AtomicBool::new(true),
        task: Mutex::new(None),
    });
    let own = Waker::from(flag.clone());
    poll_fn(|cx| {
        if flag.take(cx.waker()) {
            let mut own_cx = Context::from_waker(&own);
            if !stopping && changed.as_mut().poll(&mut own_cx).is_ready() {
                stopping = true;
                graceful(conn.as_mut());
            }
            while timer.as_mut().poll(&mut own_cx).is_ready() {
                if closing.is_some() {
                    limits.gate.closed_by(Deadline::Close);
                    return Poll::Ready(None);
                }
                let wake = match activity.due(limits.header, limits.idle) {
                    Some((at, which)) if at <= Instant::now() => {
                        tracing::debug!(age_ms = started.elapsed().as_millis(), deadline = ?which, "closing an idle connection");
                        limits.gate.closed_by(which);
                        graceful(conn.as_mut());
                        let hard = Instant::now() + CLOSE_GRACE;
                        closing = Some(hard);
                        hard
                    }
                    _ => next(activity),
                };
                timer.as_mut().reset(wake.into());
            }
        }
        conn.as_mut().poll(cx).map(Some)
    })
    .await
}

#[cfg(test)]
mod tests;
