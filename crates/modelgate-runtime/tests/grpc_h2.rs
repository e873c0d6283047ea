//! `Runtime::handle_grpc` behind a real HTTP/2 server on 127.0.0.1 (hyper),
//! as the gateway serves it: one raw gRPC `ModelInfer` call, status in the
//! trailers, message framing checked by hand.
// Test code: helpers outside #[test] fns may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use modelgate_core::BoxError;
use modelgate_proto::inference::*;
use prost::Message;

/// Serves `rt.handle_grpc` on an ephemeral port; returns its address.
async fn serve(rt: modelgate_runtime::Runtime) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let rt = rt.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let rt = rt.clone();
                        async move {
                            let req =
                                req.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync());
                            Ok::<_, std::convert::Infallible>(rt.handle_grpc(req).await)
                        }
                    });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

fn frame(msg: &impl Message) -> Bytes {
    let body = msg.encode_to_vec();
    let mut buf = BytesMut::with_capacity(5 + body.len());
    buf.put_u8(0);
    buf.put_u32(u32::try_from(body.len()).unwrap());
    buf.put_slice(&body);
    buf.freeze()
}

/// Sends one unary call; returns the response message bytes and trailers.
async fn unary(addr: std::net::SocketAddr, method: &str, body: Bytes) -> (Bytes, http::HeaderMap) {
    let (_, body, trailers) = unary_with(addr, method, body, &[]).await;
    (body, trailers)
}

/// Sends one unary call with extra request headers; returns the response
/// headers, message bytes and trailers.
async fn unary_with(
    addr: std::net::SocketAddr,
    method: &str,
    body: Bytes,
    extra: &[(&str, &str)],
) -> (http::HeaderMap, Bytes, http::HeaderMap) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!(
        "http://{addr}/inference.GRPCInferenceService/{method}"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(Full::new(body))
    .unwrap();
    let mut req = req;
    for (k, v) in extra {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    let collected = resp.into_body().collect().await.unwrap();
    let mut trailers = collected.trailers().cloned().unwrap_or_default();
    if trailers.get("grpc-status").is_none() {
        trailers = headers.clone(); // trailers-only response
    }
    (headers, collected.to_bytes(), trailers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_infer_over_http2() {
    let addr = serve(runtime(&["iris-logreg"])).await;
    let req = ModelInferRequest {
        model_name: "iris-logreg".into(),
        inputs: vec![model_infer_request::InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![2, 4],
            contents: Some(InferTensorContents {
                fp32_contents: vec![6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let (mut body, trailers) = unary(addr, "ModelInfer", frame(&req)).await;
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(body.get_u8(), 0);
    let len = body.get_u32() as usize;
    assert_eq!(len, body.len());
    let resp = ModelInferResponse::decode(body).unwrap();
    assert_eq!(
        resp.outputs[0].contents.as_ref().unwrap().int64_contents,
        vec![1, 1]
    );

    // An unknown model: NOT_FOUND with KServe's text.
    let mut bad = req.clone();
    bad.model_name = "nope".into();
    let (_, trailers) = unary(addr, "ModelInfer", frame(&bad)).await;
    assert_eq!(trailers["grpc-status"], "5");
    assert_eq!(
        trailers["grpc-message"],
        "Model%20with%20name%20nope%20does%20not%20exist."
    );
}

/// `ModelInfer` is answered without tonic's stack unless the call needs it
/// (here `grpc-encoding`, which only the generated server reads): both paths
/// give the same headers, message bytes and trailers, for typed and raw
/// inputs, selected outputs and errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_and_generated_model_infer_answer_alike() {
    let addr = serve(runtime(&["iris-logreg"])).await;
    let rows = vec![6.8f32, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6];
    let typed = ModelInferRequest {
        model_name: "iris-logreg".into(),
        id: "call-7".into(),
        inputs: vec![model_infer_request::InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![2, 4],
            contents: Some(InferTensorContents {
                fp32_contents: rows.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut raw = typed.clone();
    raw.inputs[0].contents = None;
    raw.raw_input_contents = vec![rows.iter().flat_map(|v| v.to_le_bytes()).collect()];
    let mut picked = typed.clone();
    picked.outputs = vec![model_infer_request::InferRequestedOutputTensor {
        name: "probabilities".into(),
        ..Default::default()
    }];
    let mut bad_shape = typed.clone();
    bad_shape.inputs[0].shape = vec![2, 5];
    let mut unknown = typed.clone();
    unknown.model_name = "nope".into();
    for req in [typed, raw, picked, bad_shape, unknown] {
        let body = frame(&req);
        let direct = unary_with(addr, "ModelInfer", body.clone(), &[]).await;
        let generated =
            unary_with(addr, "ModelInfer", body, &[("grpc-encoding", "identity")]).await;
        assert_eq!(direct.1, generated.1, "message bytes, {req:?}");
        // A trailers-only answer carries `date`, which may tick between the calls.
        let without_date = |h: &http::HeaderMap| {
            let mut h = h.clone();
            h.remove("date");
            h
        };
        assert_eq!(
            without_date(&direct.2),
            without_date(&generated.2),
            "trailers, {req:?}"
        );
        assert_eq!(
            without_date(&direct.0),
            without_date(&generated.0),
            "headers, {req:?}"
        );
        assert!(direct.0.get("content-length").is_none());
    }
}
