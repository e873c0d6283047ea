//! Shared helpers for the integration tests: fixtures, the onnxruntime
//! reference outputs, and calling `Runtime::handle` without sockets.
#![allow(dead_code)]

use std::path::PathBuf;

use http::HeaderMap;
use http_body_util::BodyExt;
use modelgate_core::{ModelName, Operation, Protocol, Reject, full};
use modelgate_runtime::{BuiltinCall, BuiltinModelSpec, Runtime, RuntimeSettings};
use serde_json::Value;

/// The fixtures of this crate, found from `CARGO_MANIFEST_DIR` as cargo sets
/// it when the test runs: the compile-time value names whichever clone built
/// the artifact, and a shared target dir shares artifacts across clones.
pub fn fixture_dir(name: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("tests/fixtures")
        .join(name)
}

pub fn spec(name: &str) -> BuiltinModelSpec {
    BuiltinModelSpec::new(ModelName::parse(name).unwrap(), fixture_dir(name))
}

/// `tests/fixtures/expected.json`, written by `make_fixtures.py` from onnxruntime.
pub fn expected() -> Value {
    let text = std::fs::read_to_string(fixture_dir("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn runtime(models: &[&str]) -> Runtime {
    Runtime::start(
        models.iter().map(|m| spec(m)).collect(),
        RuntimeSettings::default(),
    )
    .unwrap()
}

pub fn call(protocol: Protocol, operation: Operation, model: &str) -> BuiltinCall {
    BuiltinCall {
        protocol,
        operation,
        model: ModelName::parse(model).unwrap(),
        version: None,
    }
}

/// Calls `handle` and parses a JSON answer; a rejection is returned as is.
pub async fn send(
    rt: &Runtime,
    call: BuiltinCall,
    headers: &HeaderMap,
    body: &str,
) -> Result<Value, Reject> {
    let resp = rt.handle(call, headers, full(body.to_string())).await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Ok(serde_json::from_slice(&bytes).unwrap())
}

pub async fn v2_infer(rt: &Runtime, model: &str, body: &str) -> Result<Value, Reject> {
    send(
        rt,
        call(Protocol::V2, Operation::Infer, model),
        &HeaderMap::new(),
        body,
    )
    .await
}

pub fn assert_close(got: &Value, want: &Value, tol: f64) {
    let (g, w) = (flatten(got), flatten(want));
    assert_eq!(g.len(), w.len(), "{got} vs {want}");
    for (a, b) in g.iter().zip(&w) {
        assert!((a - b).abs() <= tol, "{got} vs {want}");
    }
}

pub fn flatten(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flatten).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        Value::Bool(b) => vec![f64::from(u8::from(*b))],
        other => panic!("not numeric: {other}"),
    }
}

pub fn bad_request(r: Result<Value, Reject>) -> String {
    match r {
        Err(Reject::BadRequest(m)) => m,
        other => panic!("expected BadRequest, got {other:?}"),
    }
}
