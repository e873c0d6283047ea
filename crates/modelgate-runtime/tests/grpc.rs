//! `Runtime::handle_grpc` driven by the tonic-generated client over an
//! in-memory transport (each client call becomes one `handle_grpc` exchange),
//! compared with onnxruntime's outputs.
// Test code: helpers outside #[test] fns may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use common::*;
use http_body_util::BodyExt;
use modelgate_core::{BoxBody, BoxError};
use modelgate_proto::GrpcInferenceServiceClient;
use modelgate_proto::inference::*;
use modelgate_runtime::{Runtime, RuntimeSettings};
use tonic::Code;

/// A tonic transport that hands each request to `Runtime::handle_grpc`, as
/// the gateway does after authorization.
#[derive(Clone)]
struct InMemory(Runtime);

impl tower_service::Service<http::Request<tonic::body::Body>> for InMemory {
    type Response = http::Response<BoxBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let rt = self.0.clone();
        let req = req.map(|b| b.map_err(|s| Box::new(s) as BoxError).boxed_unsync());
        // Spawned, so this also proves the exchange's future is `Send`.
        Box::pin(async move {
            Ok(tokio::spawn(async move { rt.handle_grpc(req).await })
                .await
                .unwrap())
        })
    }
}

fn client(rt: &Runtime) -> GrpcInferenceServiceClient<InMemory> {
    GrpcInferenceServiceClient::with_origin(
        InMemory(rt.clone()),
        "http://modelgate".parse().unwrap(),
    )
}

fn iris_request(rows: &[[f32; 4]]) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "iris-logreg".into(),
        id: "g-1".into(),
        inputs: vec![model_infer_request::InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![rows.len() as i64, 4],
            contents: Some(InferTensorContents {
                fp32_contents: rows.iter().flatten().copied().collect(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

const ROWS: [[f32; 4]; 2] = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]];

fn probs_reference() -> Vec<f64> {
    flatten(&expected()["iris-logreg"]["rows2"]["probabilities"])
}

#[tokio::test]
async fn server_and_model_probes() {
    let rt = runtime(&["iris-logreg"]);
    let mut c = client(&rt);
    assert!(
        c.server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        c.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let md = c
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(md.name, "modelgate");
    let ready = c
        .model_ready(ModelReadyRequest {
            name: "iris-logreg".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ready.ready);
    let err = c
        .model_ready(ModelReadyRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "Model with name nope does not exist.");
    let md = c
        .model_metadata(ModelMetadataRequest {
            name: "iris-logreg".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(md.platform, "onnx_onnxv1");
    assert_eq!(md.versions, vec!["1"]);
    assert_eq!(md.inputs[0].shape, vec![-1, 4]);
    assert_eq!(md.outputs[1].name, "probabilities");
    assert_eq!(md.outputs[1].datatype, "FP32");
    assert_eq!(md.outputs[1].shape, vec![-1, 3]);
}

#[tokio::test]
async fn infer_with_typed_contents() {
    let rt = runtime(&["iris-logreg"]);
    let resp = client(&rt)
        .model_infer(iris_request(&ROWS))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.model_name, "iris-logreg");
    assert_eq!(resp.model_version, "1");
    assert_eq!(resp.id, "g-1");
    assert!(resp.raw_output_contents.is_empty());
    let label = &resp.outputs[0];
    assert_eq!(
        (label.name.as_str(), label.datatype.as_str()),
        ("label", "INT64")
    );
    assert_eq!(label.shape, vec![2]);
    assert_eq!(label.contents.as_ref().unwrap().int64_contents, vec![1, 1]);
    let probs = &resp.outputs[1];
    assert_eq!(probs.shape, vec![2, 3]);
    let got = &probs.contents.as_ref().unwrap().fp32_contents;
    for (g, w) in got.iter().zip(probs_reference()) {
        assert!((f64::from(*g) - w).abs() <= 1e-6, "{got:?}");
    }
}

#[tokio::test]
async fn raw_inputs_get_raw_outputs() {
    let rt = runtime(&["iris-logreg"]);
    let mut req = iris_request(&ROWS);
    let values = req.inputs[0].contents.take().unwrap().fp32_contents;
    req.raw_input_contents = vec![values.iter().flat_map(|v| v.to_le_bytes()).collect()];
    req.outputs = vec![model_infer_request::InferRequestedOutputTensor {
        name: "probabilities".into(),
        ..Default::default()
    }];
    let resp = client(&rt).model_infer(req).await.unwrap().into_inner();
    assert_eq!(resp.outputs.len(), 1);
    assert!(resp.outputs[0].contents.is_none());
    assert_eq!(resp.raw_output_contents.len(), 1);
    let got: Vec<f32> = resp.raw_output_contents[0]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got.len(), 6);
    for (g, w) in got.iter().zip(probs_reference()) {
        assert!((f64::from(*g) - w).abs() <= 1e-6, "{got:?}");
    }
}

#[tokio::test]
async fn errors_are_grpc_statuses() {
    let rt = Runtime::start(
        vec![spec("iris-logreg")],
        RuntimeSettings {
            max_body_bytes: 256,
            ..RuntimeSettings::default()
        },
    )
    .unwrap();
    let mut c = client(&rt);

    let mut req = iris_request(&ROWS);
    req.model_name = "missing".into();
    assert_eq!(c.model_infer(req).await.unwrap_err().code(), Code::NotFound);

    let mut req = iris_request(&ROWS);
    req.inputs[0].shape = vec![3, 4];
    let e = c.model_infer(req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("input 'input'"), "{}", e.message());

    let mut req = iris_request(&ROWS);
    req.inputs[0].datatype = "BYTES".into();
    let e = c.model_infer(req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("BYTES"), "{}", e.message());

    let mut req = iris_request(&ROWS);
    let c0 = req.inputs[0].contents.take().unwrap();
    req.inputs[0].contents = Some(InferTensorContents {
        fp64_contents: vec![0.0; 8],
        ..c0
    });
    req.inputs[0]
        .contents
        .as_mut()
        .unwrap()
        .fp32_contents
        .clear();
    let e = c.model_infer(req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("fp32_contents"), "{}", e.message());

    let mut req = iris_request(&ROWS);
    req.raw_input_contents = vec![vec![0; 32]];
    let e = c.model_infer(req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("both set"), "{}", e.message());

    let big: Vec<[f32; 4]> = vec![[1.0; 4]; 64];
    let e = c.model_infer(iris_request(&big)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
}

#[tokio::test]
async fn a_one_input_model_takes_the_seeds_input_names() {
    let rt = runtime(&["iris-logreg"]);
    let mut c = client(&rt);
    // Seed 001's name, typed contents.
    let mut req = iris_request(&ROWS);
    req.inputs[0].name = "input-0".into();
    let resp = c.model_infer(req).await.unwrap().into_inner();
    assert_eq!(
        resp.outputs[0].contents.as_ref().unwrap().int64_contents,
        vec![1, 1]
    );
    // Seed 004's name, raw contents (tritonclient's default).
    let mut req = iris_request(&ROWS);
    req.inputs[0].name = "predict".into();
    let values = req.inputs[0].contents.take().unwrap().fp32_contents;
    req.raw_input_contents = vec![values.iter().flat_map(|v| v.to_le_bytes()).collect()];
    let resp = c.model_infer(req).await.unwrap().into_inner();
    let labels: Vec<i64> = resp.raw_output_contents[0]
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(labels, vec![1, 1]);
    // Two tensors: names are checked.
    let mut req = iris_request(&ROWS);
    let mut second = req.inputs[0].clone();
    second.name = "input-1".into();
    req.inputs[0].name = "input-0".into();
    req.inputs.push(second);
    let e = c.model_infer(req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("unexpected inference input 'input-0'"),
        "{}",
        e.message()
    );
}
