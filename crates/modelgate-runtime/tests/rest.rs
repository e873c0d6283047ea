//! `Runtime::handle` for KServe V1 and OIP V2 REST, called without sockets,
//! compared with onnxruntime's outputs for the same fixtures.
// Test code: helpers outside #[test] fns may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use http::HeaderMap;
use modelgate_core::{Operation, Protocol, Reject};
use modelgate_runtime::{BuiltinModelSpec, Runtime, RuntimeSettings};
use serde_json::{Value, json};

fn v2_body(rows: &Value) -> String {
    let n = rows.as_array().unwrap().len();
    json!({"inputs": [{"name": "input", "shape": [n, 4], "datatype": "FP32", "data": rows}]})
        .to_string()
}

#[tokio::test]
async fn v2_infer_matches_onnxruntime_for_every_model_and_batch_size() {
    let rt = runtime(&[
        "iris-logreg",
        "iris-logreg-nozipmap",
        "iris-rf",
        "iris-linreg",
    ]);
    let expected = expected();
    for model in [
        "iris-logreg",
        "iris-logreg-nozipmap",
        "iris-rf",
        "iris-linreg",
    ] {
        for batch in ["rows1", "rows2", "rows7"] {
            let rows = &expected["rows"][batch];
            let resp = v2_infer(&rt, model, &v2_body(rows)).await.unwrap();
            assert_eq!(resp["model_name"], model);
            assert_eq!(resp["model_version"], "1");
            let want = &expected[model][batch];
            let outputs = resp["outputs"].as_array().unwrap();
            assert_eq!(outputs.len(), want.as_object().unwrap().len(), "{model}");
            for out in outputs {
                let name = out["name"].as_str().unwrap();
                let n = rows.as_array().unwrap().len();
                match name {
                    "label" => {
                        assert_eq!(out["datatype"], "INT64");
                        assert_eq!(out["shape"], json!([n]));
                        assert_eq!(out["data"], want["label"], "{model} {batch}");
                    }
                    "probabilities" => {
                        assert_eq!(out["datatype"], "FP32");
                        assert_eq!(out["shape"], json!([n, 3]));
                        assert_close(&out["data"], &want["probabilities"], 1e-6);
                    }
                    "variable" => {
                        assert_eq!(out["shape"], json!([n, 1]));
                        assert_close(&out["data"], &want["variable"], 1e-5);
                    }
                    other => panic!("unexpected output {other}"),
                }
            }
        }
    }
}

#[tokio::test]
async fn v2_iris_reference_numbers() {
    let rt = runtime(&["iris-logreg"]);
    let body = r#"{"id": "req-1", "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
        "data": [6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6]}]}"#;
    let resp = v2_infer(&rt, "iris-logreg", body).await.unwrap();
    assert_eq!(resp["id"], "req-1");
    assert_eq!(resp["outputs"][0]["data"], json!([1, 1]));
    let want = &expected()["iris-logreg"]["rows2"]["probabilities"];
    assert_close(&resp["outputs"][1]["data"], want, 1e-6);
    // Within 1e-3 of the values in the reference doc (other sklearn version).
    assert_close(
        &resp["outputs"][1]["data"],
        &json!([[0.00112, 0.80155, 0.19733], [0.00999, 0.78881, 0.20121]]),
        2e-3,
    );
}

#[tokio::test]
async fn v2_nested_data_output_selection_and_ids() {
    let rt = runtime(&["iris-logreg"]);
    let body = r#"{"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
        "data": [[6.8, 2.8, 4.8, 1.4], [6, 3.4, 4.5, 1.6]]}],
        "outputs": [{"name": "probabilities"}], "parameters": {"content_type": "np"}}"#;
    let mut headers = HeaderMap::new();
    headers.insert("x-request-id", "gw-42".parse().unwrap());
    let resp = send(
        &rt,
        call(Protocol::V2, Operation::Infer, "iris-logreg"),
        &headers,
        body,
    )
    .await
    .unwrap();
    assert_eq!(resp["id"], "gw-42");
    let outputs = resp["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0]["name"], "probabilities");
    // No id anywhere: a fresh UUID.
    let resp = v2_infer(&rt, "iris-logreg", &v2_body(&json!([[1, 2, 3, 4]])))
        .await
        .unwrap();
    let id = resp["id"].as_str().unwrap();
    let parsed = uuid::Uuid::parse_str(id).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(id, parsed.to_string(), "lowercase, hyphenated");
}

#[tokio::test]
async fn v2_typed_inputs_match_onnxruntime() {
    let rt = runtime(&["typed"]);
    let exp = &expected()["typed"];
    let inputs: Vec<Value> = [
        ("f64_in", "FP64"),
        ("i32_in", "INT32"),
        ("i64_in", "INT64"),
        ("bool_in", "BOOL"),
    ]
    .iter()
    .map(|(n, dt)| json!({"name": n, "shape": [2, 2], "datatype": dt, "data": exp["inputs"][n]}))
    .collect();
    let resp = v2_infer(&rt, "typed", &json!({"inputs": inputs}).to_string())
        .await
        .unwrap();
    for out in resp["outputs"].as_array().unwrap() {
        let name = out["name"].as_str().unwrap();
        assert_eq!(
            out["data"],
            Value::Array(flat(&exp["outputs"][name])),
            "{name}"
        );
    }
    let types: Vec<_> = resp["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["datatype"].clone())
        .collect();
    assert_eq!(
        types,
        [json!("FP64"), json!("INT32"), json!("INT64"), json!("BOOL")]
    );
}

fn flat(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        other => vec![other.clone()],
    }
}

#[tokio::test]
async fn v2_bad_requests_name_the_input() {
    let rt = runtime(&["iris-logreg", "typed"]);
    let cases = [
        (
            r#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, "NaN", 3, 4]}]}"#,
            "input 'input': data contains the string \"NaN\"",
        ),
        (
            r#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "BYTES", "data": ["a", "b", "c", "d"]}]}"#,
            "input 'input': datatype BYTES is not supported",
        ),
        (
            r#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}"#,
            "input 'input': datatype FP64 does not match the model's FP32",
        ),
        (
            r#"{"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2, 3, 4]]}]}"#,
            "input 'input': data nested as [1, 4] does not match shape [2, 4]",
        ),
        (
            r#"{"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3]}]}"#,
            "input 'input': shape [2, 4] needs 8 values, data has 3",
        ),
        (
            r#"{"inputs": [{"name": "input", "shape": [0, 4], "datatype": "FP32", "data": []}]}"#,
            "input 'input': empty tensor",
        ),
        (
            r#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [[1, 2], [3, 4, 5]]}]}"#,
            "input 'input': data is a ragged nested list",
        ),
        (
            r#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, {"x": 1}]}]}"#,
            "input 'input': data contains an object",
        ),
        (
            r#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 1e40]}]}"#,
            "input 'input': element 3 (1e+40) is not a valid FP32 value",
        ),
        (
            r#"{"inputs": [{"name": "inputs", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}, {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#,
            "unexpected inference input 'inputs' for model 'iris-logreg'",
        ),
        (
            r#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4], "parameters": {"binary_data_size": 16}}]}"#,
            "input 'input': has both data and binary_data_size",
        ),
        (r#"{"inputs": []}"#, "missing inference input 'input'"),
        (r#"{"inputs": "#, "invalid JSON request body"),
    ];
    for (body, want) in cases {
        let got = bad_request(v2_infer(&rt, "iris-logreg", body).await);
        assert!(got.contains(want), "{got:?} should contain {want:?}");
    }
    let got = bad_request(
        v2_infer(&rt, "typed", r#"{"inputs": [{"name": "i64_in", "shape": [1, 2], "datatype": "INT64", "data": [1.5, 2]}]}"#).await,
    );
    assert!(
        got.contains("input 'i64_in': element 0 (1.5) is not a valid INT64 value"),
        "{got}"
    );
}

#[tokio::test]
async fn v2_metadata_and_readiness() {
    let rt = runtime(&["iris-logreg", "typed"]);
    let md = send(
        &rt,
        call(Protocol::V2, Operation::ModelMetadata, "iris-logreg"),
        &HeaderMap::new(),
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        md,
        json!({
            "name": "iris-logreg", "versions": ["1"], "platform": "onnx_onnxv1",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3],
                 "parameters": {"class_labels": [0, 1, 2]}}
            ]
        })
    );
    let ready = send(
        &rt,
        call(Protocol::V2, Operation::ModelReady, "typed"),
        &HeaderMap::new(),
        "",
    )
    .await
    .unwrap();
    assert_eq!(ready, json!({"name": "typed", "ready": true}));
    assert!(rt.is_ready(&"typed".parse_model()));
    assert!(!rt.is_ready(&"nope".parse_model()));
}

trait ParseModel {
    fn parse_model(&self) -> modelgate_core::ModelName;
}
impl ParseModel for &str {
    fn parse_model(&self) -> modelgate_core::ModelName {
        modelgate_core::ModelName::parse(self).unwrap()
    }
}

#[tokio::test]
async fn unknown_model_and_version_are_not_found() {
    let rt = runtime(&["iris-logreg"]);
    let r = v2_infer(&rt, "nope", "{}").await.unwrap_err();
    assert_eq!(
        r,
        Reject::NotFound("Model with name nope does not exist.".into())
    );
    let mut c = call(Protocol::V2, Operation::ModelReady, "iris-logreg");
    c.version = Some("9".into());
    let r = send(&rt, c, &HeaderMap::new(), "").await.unwrap_err();
    assert!(matches!(r, Reject::NotFound(m) if m.contains("version 9")));
    let mut c = call(Protocol::V2, Operation::ModelReady, "iris-logreg");
    c.version = Some("1".into());
    assert!(send(&rt, c, &HeaderMap::new(), "").await.is_ok());
}

#[tokio::test]
async fn body_limits() {
    let settings = RuntimeSettings {
        max_body_bytes: 64,
        ..RuntimeSettings::default()
    };
    let rt = Runtime::start(vec![spec("iris-logreg")], settings).unwrap();
    let body = v2_body(&json!([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]));
    assert_eq!(
        v2_infer(&rt, "iris-logreg", &body).await.unwrap_err(),
        Reject::PayloadTooLarge { limit: 64 }
    );
    let mut headers = HeaderMap::new();
    headers.insert("content-length", "100000".parse().unwrap());
    let r = send(
        &rt,
        call(Protocol::V1, Operation::Infer, "iris-logreg"),
        &headers,
        "{}",
    )
    .await;
    assert_eq!(r.unwrap_err(), Reject::PayloadTooLarge { limit: 64 });
}

#[tokio::test]
async fn v1_predict_ready_and_explain() {
    let rt = runtime(&["iris-logreg", "iris-linreg", "typed"]);
    let v1 = |op, m| call(Protocol::V1, op, m);
    let h = HeaderMap::new();
    let body = r#"{"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}"#;
    let resp = send(&rt, v1(Operation::Infer, "iris-logreg"), &h, body)
        .await
        .unwrap();
    assert_eq!(resp, json!({"predictions": [1, 1]}));
    let body = r#"{"inputs": [[6.8, 2.8, 4.8, 1.4]]}"#;
    let resp = send(&rt, v1(Operation::Infer, "iris-logreg"), &h, body)
        .await
        .unwrap();
    assert_eq!(resp, json!({"predictions": [1]}));
    // A regressor's [N, 1] output comes back as one value per row.
    let body = r#"{"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}"#;
    let resp = send(&rt, v1(Operation::Infer, "iris-linreg"), &h, body)
        .await
        .unwrap();
    assert_close(
        &resp["predictions"],
        &json!([1.2637619972229004, 1.382495641708374]),
        1e-5,
    );
    assert_eq!(resp["predictions"].as_array().unwrap().len(), 2);

    let ready = send(&rt, v1(Operation::ModelReady, "iris-logreg"), &h, "")
        .await
        .unwrap();
    assert_eq!(ready, json!({"name": "iris-logreg", "ready": true}));

    match send(&rt, v1(Operation::Explain, "iris-logreg"), &h, body).await {
        Err(Reject::NotImplemented(e)) => assert!(e.contains("explain is not supported"), "{e}"),
        other => panic!("expected 501 NotImplemented, got {other:?}"),
    }
    let e = bad_request(
        send(
            &rt,
            v1(Operation::Infer, "iris-logreg"),
            &h,
            r#"{"instances": [["a", 1, 2, 3]]}"#,
        )
        .await,
    );
    assert!(e.contains("input 'input'"), "{e}");
    let e = bad_request(
        send(
            &rt,
            v1(Operation::Infer, "iris-logreg"),
            &h,
            r#"{"instances": []}"#,
        )
        .await,
    );
    assert!(e.contains("input 'input'"), "{e}");
    let e = bad_request(
        send(
            &rt,
            v1(Operation::Infer, "iris-logreg"),
            &h,
            r#"{"rows": []}"#,
        )
        .await,
    );
    assert!(e.contains("instances"), "{e}");
    let e = bad_request(send(&rt, v1(Operation::Infer, "typed"), &h, body).await);
    assert!(e.contains("use V2"), "{e}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_pool_answers_unavailable_with_retry_after() {
    let settings = RuntimeSettings {
        threads: 1,
        queue_depth: 1,
        ..RuntimeSettings::default()
    };
    let rt = Runtime::start(vec![spec("iris-rf")], settings.clone()).unwrap();
    let zero = RuntimeSettings {
        queue_depth: 0,
        ..settings
    };
    assert!(Runtime::start(vec![], zero).is_err());
    let rows: Vec<Value> = (0..200).map(|_| json!([6.8, 2.8, 4.8, 1.4])).collect();
    let body = v2_body(&Value::Array(rows));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (rt, body) = (rt.clone(), body.clone());
        set.spawn(async move { v2_infer(&rt, "iris-rf", &body).await });
    }
    let (mut ok, mut busy) = (0, 0);
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Ok(_) => ok += 1,
            Err(Reject::Unavailable {
                retry_after_secs, ..
            }) => {
                assert_eq!(retry_after_secs, Some(1));
                busy += 1;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok={ok} busy={busy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let name = modelgate_core::ModelName::parse("iris").unwrap();
    let model_file = dir.path().join("model.onnx");
    let swap_to = |from: &str| {
        let tmp = dir.path().join("model.onnx.tmp");
        std::fs::copy(fixture_dir(from).join("model.onnx"), &tmp).unwrap();
        std::fs::rename(&tmp, &model_file).unwrap();
    };
    swap_to("iris-logreg");
    let rt = Runtime::start(
        vec![BuiltinModelSpec::new(name.clone(), dir.path())],
        RuntimeSettings::default(),
    )
    .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (rt, stop) = (rt.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let body = v2_body(&json!([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]));
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 10 {
                let resp = v2_infer(&rt, "iris", &body).await.unwrap();
                // Both models predict [1, 1] for these rows.
                assert_eq!(resp["outputs"][0]["data"], json!([1, 1]));
                n += 1;
            }
            n
        }));
    }
    let mut reloads = 0;
    for i in 0..20 {
        swap_to(if i % 2 == 0 { "iris-rf" } else { "iris-logreg" });
        reloads += rt.reload_changed().len();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    std::fs::write(&model_file, b"broken").unwrap();
    let events = rt.reload_changed();
    assert!(
        matches!(&events[..], [modelgate_runtime::ReloadEvent::Failed { .. }]),
        "{events:?}"
    );
    assert!(rt.status(&name).unwrap().reload_error.is_some());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        total += c.await.unwrap();
    }
    assert_eq!(reloads, 20);
    assert!(total >= 40);
    let md = send(
        &rt,
        call(Protocol::V2, Operation::ModelMetadata, "iris"),
        &HeaderMap::new(),
        "",
    )
    .await
    .unwrap();
    assert_eq!(md["parameters"], json!({"reload_failed": true}));
}

/// Splits a binary-extension response into its JSON header and tail.
fn split_binary(resp: http::Response<modelgate_core::BoxBody>) -> (Value, Vec<u8>) {
    use http_body_util::BodyExt;
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    let json_len: usize = resp.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = futures_block(resp.into_body().collect())
        .unwrap()
        .to_bytes();
    (
        serde_json::from_slice(&bytes[..json_len]).unwrap(),
        bytes[json_len..].to_vec(),
    )
}

fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    // In-memory bodies complete on the first poll.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(f).poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("body not ready"),
    }
}

fn binary_request(json: &Value, tail: &[u8]) -> (HeaderMap, String, Vec<u8>) {
    let header = json.to_string();
    let mut headers = HeaderMap::new();
    headers.insert("inference-header-content-length", header.len().into());
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(tail);
    (headers, header, body)
}

#[tokio::test]
async fn v2_binary_tensor_extension() {
    let rt = runtime(&["iris-logreg"]);
    let rows: Vec<f32> = vec![6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6];
    let raw: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let json = json!({
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                    "parameters": {"binary_data_size": raw.len()}}],
        "outputs": [{"name": "label"}, {"name": "probabilities", "parameters": {"binary_data": true}}]
    });
    let (headers, _, body) = binary_request(&json, &raw);
    let c = call(Protocol::V2, Operation::Infer, "iris-logreg");
    let resp = rt
        .handle(c.clone(), &headers, modelgate_core::full(body))
        .await
        .unwrap();
    let (head, tail) = split_binary(resp);
    assert_eq!(head["outputs"][0]["data"], json!([1, 1]));
    assert_eq!(
        head["outputs"][1]["parameters"],
        json!({"binary_data_size": 24})
    );
    assert!(head["outputs"][1].get("data").is_none());
    let probs: Vec<f64> = tail
        .chunks_exact(4)
        .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
        .collect();
    let want = flatten(&expected()["iris-logreg"]["rows2"]["probabilities"]);
    assert_close(&json!(probs), &json!(want), 1e-6);

    // Request-level binary_data_output: every output in binary, in order.
    let json = json!({
        "parameters": {"binary_data_output": true},
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                    "parameters": {"binary_data_size": raw.len()}}]
    });
    let (headers, _, body) = binary_request(&json, &raw);
    let resp = rt
        .handle(c.clone(), &headers, modelgate_core::full(body))
        .await
        .unwrap();
    let (head, tail) = split_binary(resp);
    assert_eq!(
        head["outputs"][0]["parameters"],
        json!({"binary_data_size": 16})
    );
    assert_eq!(tail.len(), 16 + 24);
    assert_eq!(
        &tail[..16],
        [1i64, 1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    );

    // Bad framing is a 400 naming what is wrong.
    let (mut headers, _, body) = binary_request(&json, &raw[..30]);
    let e = rt
        .handle(c.clone(), &headers, modelgate_core::full(body.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Reject::BadRequest(m) if m.contains("input 'input': binary_data_size 32 exceeds")),
        "{e:?}"
    );
    headers.insert("inference-header-content-length", 100000.into());
    let e = rt
        .handle(c.clone(), &headers, modelgate_core::full(body))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Reject::BadRequest(m) if m.contains("exceeds the body")),
        "{e:?}"
    );
    let mut extra = raw.clone();
    extra.push(0);
    let (headers, _, body) = binary_request(&json, &extra);
    let e = rt
        .handle(c, &headers, modelgate_core::full(body))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Reject::BadRequest(m) if m.contains("1 bytes of binary data")),
        "{e:?}"
    );
}
