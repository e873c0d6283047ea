use std::sync::atomic::AtomicUsize;

use super::*;
use crate::gate::ListenStats;

/// A connection that stays pending until asked to finish (then ends at
/// once if `obliging`, as an idle hyper connection does).
struct Fake {
    asked: Arc<AtomicUsize>,
    obliging: bool,
    waker: Option<Waker>,
}

impl Future for Fake {
    type Output = &'static str;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.get_mut();
        if me.obliging && me.asked.load(Ordering::SeqCst) > 0 {
            return Poll::Ready("finished");
        }
        me.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

fn ask(c: Pin<&mut Fake>) {
    let me = c.get_mut();
    me.asked.fetch_add(1, Ordering::SeqCst);
    if let Some(w) = me.waker.take() {
        w.wake();
    }
}

fn fake(obliging: bool) -> (Fake, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let f = Fake {
        asked: asked.clone(),
        obliging,
        waker: None,
    };
    (f, asked)
}

fn limits(gate: &Gate, header_ms: u64) -> Limits<'_> {
    Limits {
        header: Duration::from_millis(header_ms),
        idle: Duration::from_secs(30),
        gate,
    }
}

#[tokio::test]
async fn a_silent_connection_is_asked_to_finish_at_the_header_deadline() {
    let gate = Gate::new(0, 4, &ListenStats::default());
    let (_tx, rx) = watch::channel(false);
    let activity = Activity::new();
    let (conn, asked) = fake(true);
    let conn = pin!(conn);
    let t0 = Instant::now();
    let out = run(conn, ask, &activity, limits(&gate, 100), rx, t0).await;
    assert_eq!(out, Some("finished"));
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_connection_that_does_not_finish_is_dropped_after_the_grace() {
    let gate = Gate::new(0, 4, &ListenStats::default());
    let (_tx, rx) = watch::channel(false);
    let activity = Activity::new();
    let (conn, asked) = fake(false);
    let conn = pin!(conn);
    let t0 = Instant::now();
    let out = run(conn, ask, &activity, limits(&gate, 50), rx, t0).await;
    assert_eq!(out, None, "dropped, not finished");
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert!(t0.elapsed() >= CLOSE_GRACE);
}

#[tokio::test]
async fn the_next_http1_head_is_due_a_header_timeout_after_the_last_answer() {
    let gate = Gate::new(0, 4, &ListenStats::default());
    let (_tx, rx) = watch::channel(false);
    let activity = Activity::new();
    let (conn, asked) = fake(true);
    let conn = pin!(conn);
    // A request in flight across several header deadlines is not cut off.
    let busy = activity.begin(false);
    let t0 = Instant::now();
    let ended = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(450)).await;
        drop(busy);
        Instant::now()
    });
    let out = run(conn, ask, &activity, limits(&gate, 100), rx, t0).await;
    let answered = ended.await.unwrap();
    assert_eq!(out, Some("finished"));
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    let after = Instant::now().duration_since(answered);
    assert!(after >= Duration::from_millis(100), "{after:?}");
    assert!(after < Duration::from_secs(5), "{after:?}");
}

#[tokio::test]
async fn shutdown_asks_the_connection_to_finish() {
    let gate = Gate::new(0, 4, &ListenStats::default());
    let (tx, rx) = watch::channel(false);
    let activity = Activity::new();
    let _busy = activity.begin(false);
    let (conn, asked) = fake(true);
    let conn = pin!(conn);
    let stop = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(true).unwrap();
        tx
    });
    let out = run(
        conn,
        ask,
        &activity,
        limits(&gate, 10_000),
        rx,
        Instant::now(),
    )
    .await;
    assert_eq!(out, Some("finished"));
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    drop(stop.await.unwrap());
}

/// Wakes itself `left` times, then ends: the watchdog hands each wake-up to
/// the connection and returns its output.
struct SelfWaking {
    left: usize,
}

impl Future for SelfWaking {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        if self.left == 0 {
            return Poll::Ready(7);
        }
        self.left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[tokio::test]
async fn the_connections_own_wakeups_reach_it() {
    let gate = Gate::new(0, 4, &ListenStats::default());
    let (_tx, rx) = watch::channel(false);
    let activity = Activity::new();
    let conn = pin!(SelfWaking { left: 100 });
    let out = run(
        conn,
        |_| {},
        &activity,
        limits(&gate, 10_000),
        rx,
        Instant::now(),
    )
    .await;
    assert_eq!(out, Some(7));
}
