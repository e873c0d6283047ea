//! `runtime`: the built-in model runtime.

use crate::error::Collector;
use crate::raw::*;
use crate::types::*;

pub(super) fn runtime(raw: RawRuntime, c: &mut Collector) -> Option<Runtime> {
    let cores = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2);
    let io_threads = raw.io_threads.unwrap_or(cores);
    let inference_threads = raw.inference_threads.unwrap_or(cores);
    let queue_depth = raw.queue_depth.unwrap_or(256);
    for (key, v) in [
        ("runtime.io_threads", io_threads),
        ("runtime.inference_threads", inference_threads),
    ] {
        if v == 0 || v > 256 {
            c.push(
                key,
                "must be between 1 and 256",
                format!("this machine has {cores} cores"),
            );
        }
    }
    if queue_depth == 0 {
        c.push("runtime.queue_depth", "must be at least 1", "e.g. 256");
    }
    Some(Runtime {
        io_threads,
        inference_threads,
        queue_depth,
    })
}
