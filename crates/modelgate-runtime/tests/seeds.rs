//! The seeds' own request bodies, byte for byte, on a built-in iris model:
//! seed 001's `iris-input-v2.json` (input `input-0`) and seed 004's
//! `{"name": "predict", …}` body. A one-input model takes its one tensor
//! under any name (as MLServer and KServe's sklearn server do), over V2 JSON,
//! the binary tensor extension and gRPC; a model with several inputs keeps
//! strict names.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use http::HeaderMap;
use http_body_util::BodyExt;
use modelgate_core::{ModelName, Operation, Protocol, full};
use modelgate_runtime::{BuiltinModelSpec, Runtime, RuntimeSettings};
use serde_json::{Value, json};

/// Seed 001: `curl -L https://red.ht/3x17lZP -o ./iris-input-v2.json`.
const SEED_001_BODY: &str = include_str!("fixtures/seeds/iris-input-v2.json");
/// Seed 004: the `-d` argument of both curl lines.
const SEED_004_BODY: &str = r#"{"inputs": [{"name": "predict", "shape": [1, 4], "datatype": "FP32", "data": [[1, 2, 3, 4]]}]}"#;

/// The fixture classifier served under the seeds' model name, `iris`.
fn iris_runtime() -> Runtime {
    let spec = BuiltinModelSpec::new(
        ModelName::parse("iris").unwrap(),
        fixture_dir("iris-logreg"),
    );
    Runtime::start(
        vec![spec, common::spec("typed")],
        RuntimeSettings::default(),
    )
    .unwrap()
}

fn output<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {body}"))
}

#[tokio::test]
async fn seed_001_body_predicts_one_one() {
    let rt = iris_runtime();
    let body = v2_infer(&rt, "iris", SEED_001_BODY).await.unwrap();
    assert_eq!(body["model_name"], "iris");
    let label = output(&body, "label");
    assert_eq!(label["datatype"], "INT64");
    assert_eq!(label["shape"], json!([2]));
    assert_eq!(label["data"], json!([1, 1]));
    let probs = output(&body, "probabilities");
    assert_eq!(probs["shape"], json!([2, 3]));
    assert_close(
        &probs["data"],
        &expected()["iris-logreg"]["rows2"]["probabilities"],
        1e-6,
    );
}

#[tokio::test]
async fn seed_004_body_is_answered_like_the_same_row_under_the_models_name() {
    let rt = iris_runtime();
    let seed = v2_infer(&rt, "iris", SEED_004_BODY).await.unwrap();
    let by_name = SEED_004_BODY.replace("\"predict\"", "\"input\"");
    let reference = v2_infer(&rt, "iris", &by_name).await.unwrap();
    assert_eq!(seed["outputs"], reference["outputs"]);
    assert_eq!(output(&seed, "label")["shape"], json!([1]));
}

#[tokio::test]
async fn seed_bodies_as_binary_tensors() {
    let rt = iris_runtime();
    let rows: Vec<f32> = vec![6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6];
    let raw: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = json!({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                         "parameters": {"binary_data_size": raw.len()}}]})
    .to_string();
    let mut headers = HeaderMap::new();
    headers.insert("inference-header-content-length", header.len().into());
    let mut body = header.into_bytes();
    body.extend_from_slice(&raw);
    let resp = rt
        .handle(
            call(Protocol::V2, Operation::Infer, "iris"),
            &headers,
            full(body),
        )
        .await
        .unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(output(&answer, "label")["data"], json!([1, 1]));
}

#[tokio::test]
async fn several_inputs_keep_their_names() {
    let rt = iris_runtime();
    let body = r#"{"inputs": [
        {"name": "predict", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]},
        {"name": "i32_in", "shape": [1, 2], "datatype": "INT32", "data": [1, 2]},
        {"name": "i64_in", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]},
        {"name": "bool_in", "shape": [1, 2], "datatype": "BOOL", "data": [true, false]}]}"#;
    let e = bad_request(v2_infer(&rt, "typed", body).await);
    assert!(
        e.contains("unexpected inference input 'predict' for model 'typed'"),
        "{e}"
    );
    // Two tensors for a one-input model: names are checked again.
    let two = r#"{"inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "input-1", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#;
    let e = bad_request(v2_infer(&rt, "iris", two).await);
    assert!(e.contains("unexpected inference input 'input-0'"), "{e}");
}
