//! Tests of the decision log writer: records reach the sink, and the writer
//! thread sleeps while there is nothing to write.

use std::time::{Duration, Instant};

use modelgate_config::DecisionSink;

use super::*;
use crate::jsonl::tests::full;

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

/// Waits (up to 10 s) until the file holds `n` lines.
fn wait_for_lines(path: &std::path::Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines(path) < n {
        assert!(
            Instant::now() < deadline,
            "the writer did not write {n} record(s)"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A log writing to a file in a fresh temporary folder (kept alive by the
/// returned guard).
fn file_log() -> (tempfile::TempDir, std::path::PathBuf, DecisionLog, Metrics) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let log = DecisionLog::open(&DecisionSink::File(path.clone())).unwrap();
    (dir, path, log, Metrics::new())
}

#[test]
fn the_writer_sleeps_while_idle_and_the_first_record_wakes_it() {
    let (_dir, path, log, metrics) = file_log();
    let client = "10.1.2.3:4567".parse().unwrap();
    let queue = log.queue.clone().unwrap();

    // Idle for ten flush periods: the writer never woke (it used to every 20 ms).
    std::thread::sleep(FLUSH_EVERY * 10);
    assert_eq!(queue.wakeups.load(Ordering::Relaxed), 0);

    // One record wakes it; the record reaches the file.
    log.write(&full("/v2/models/iris/infer", "alice", client), &metrics);
    wait_for_lines(&path, 1);
    let after_first = queue.wakeups.load(Ordering::Relaxed);
    assert_eq!(after_first, 1);

    // Idle again: no more wake-ups.
    std::thread::sleep(FLUSH_EVERY * 10);
    assert_eq!(queue.wakeups.load(Ordering::Relaxed), after_first);

    // A burst after the idle period is written too, in order.
    for i in 0..100 {
        log.write(
            &full(&format!("/v2/models/m{i}/infer"), "bob", client),
            &metrics,
        );
    }
    wait_for_lines(&path, 101);
    let text = std::fs::read_to_string(&path).unwrap();
    let paths: Vec<_> = text
        .lines()
        .skip(1)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let want: Vec<_> = (0..100).map(|i| format!("/v2/models/m{i}/infer")).collect();
    assert_eq!(paths, want);
}

#[test]
fn records_queued_before_drop_are_flushed() {
    let (_dir, path, log, metrics) = file_log();
    let client = "[2001:db8::5]:1".parse().unwrap();
    for _ in 0..3 {
        log.write(&full("/v1/models/iris:predict", "carol", client), &metrics);
    }
    log.flush();
    assert_eq!(lines(&path), 3);
    drop(log);
}
