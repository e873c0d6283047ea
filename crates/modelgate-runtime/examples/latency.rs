//! Per-request latency and throughput of `Runtime::handle` for an iris V2
//! REST inference (2 rows), without HTTP or auth. A timing note, not a test:
//!
//! ```sh
//! cargo run --release -p modelgate-runtime --example latency [MODEL_DIR] [REQUESTS]
//! ```
//!
//! MODEL_DIR defaults to the crate's `tests/fixtures/iris-logreg`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;
use modelgate_core::{ModelName, Operation, Protocol, full};
use modelgate_runtime::{BuiltinCall, BuiltinModelSpec, Runtime, RuntimeSettings};

const BODY: &str = r#"{"inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","data":[6.8,2.8,4.8,1.4,6.0,3.4,4.5,1.6]}]}"#;

/// tract alone: the same model, plan and input, without the runtime; per run
/// with a fresh state (`plan.run`) and with one reused state (as the pool does).
fn tract_alone(
    dir: &std::path::Path,
    runs: usize,
) -> Result<(Duration, Duration), Box<dyn std::error::Error>> {
    use tract_onnx::prelude::*;
    let mut onnx = tract_onnx::onnx();
    onnx.op_register.insert("ZipMap", |_, _| {
        Ok((
            Box::<tract_onnx::tract_hir::ops::identity::Identity>::default(),
            vec![],
        ))
    });
    let mut model = onnx.model_for_path(dir.join("model.onnx"))?;
    let n = model.sym("N");
    model.set_input_fact(0, f32::fact([TDim::from(n), TDim::from(4)]).into())?;
    let plan = model.into_optimized()?.into_runnable()?;
    let input: Tensor =
        tract_ndarray::arr2(&[[6.8f32, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]).into();
    let input = input.into_tvalue();
    for _ in 0..2_000 {
        plan.run(tvec![input.clone()])?;
    }
    let t = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(plan.run(tvec![input.clone()])?);
    }
    let fresh = t.elapsed() / u32::try_from(runs)?;
    let mut state = plan.spawn()?;
    let t = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(state.run(tvec![input.clone()])?);
    }
    Ok((fresh, t.elapsed() / u32::try_from(runs)?))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map_or_else(
        || {
            std::env::var_os("CARGO_MANIFEST_DIR")
                .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
                .join("tests/fixtures/iris-logreg")
        },
        PathBuf::from,
    );
    let requests: usize = args.next().map_or(Ok(50_000), |s| s.parse())?;
    let (fresh, reused) = tract_alone(&dir, requests)?;
    println!(
        "tract alone, 2 rows: {fresh:?} per run with a fresh state, {reused:?} with a reused one"
    );
    let name = ModelName::parse("iris")?;
    let rt = Runtime::start(
        vec![BuiltinModelSpec::new(name.clone(), dir)],
        RuntimeSettings::default(),
    )?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    tokio.block_on(async move {
        let body = Bytes::from_static(BODY.as_bytes());
        let call = BuiltinCall {
            protocol: Protocol::V2,
            operation: Operation::Infer,
            model: name,
            version: None,
        };
        let headers = HeaderMap::new();
        // Sequential: one request at a time, latency per request.
        let mut lat = Vec::with_capacity(requests);
        for i in 0..requests + 2_000 {
            let t = Instant::now();
            let resp = rt
                .handle(call.clone(), &headers, full(body.clone()))
                .await
                .map_err(|r| format!("{r:?}"))?;
            let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            if i >= 2_000 {
                lat.push(t.elapsed());
            }
            std::hint::black_box(bytes);
        }
        lat.sort();
        let mean = lat.iter().sum::<Duration>() / u32::try_from(lat.len())?;
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        println!(
            "sequential handle(): {requests} requests, mean {mean:?}, p50 {:?}, p99 {:?}",
            pct(0.5),
            pct(0.99)
        );

        // Concurrent: 64 tasks on 2 tokio workers + the inference pool.
        let t = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        let per_task = requests / 64;
        for _ in 0..64 {
            let (rt, call, body) = (rt.clone(), call.clone(), body.clone());
            set.spawn(async move {
                let headers = HeaderMap::new();
                let mut busy = 0usize;
                for _ in 0..per_task {
                    match rt.handle(call.clone(), &headers, full(body.clone())).await {
                        Ok(resp) => {
                            let _ = resp.into_body().collect().await;
                        }
                        Err(_) => busy += 1,
                    }
                }
                busy
            });
        }
        let mut busy = 0;
        while let Some(r) = set.join_next().await {
            busy += r?;
        }
        let elapsed = t.elapsed();
        let done = per_task * 64;
        println!(
            "concurrent handle(): {done} requests in {elapsed:?} = {:.0} req/s ({busy} refused as busy)",
            done as f64 / elapsed.as_secs_f64()
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
