//! OIP V2 over gRPC: the tonic-generated `GRPCInferenceService` over the same
//! models as REST. `ModelInfer` takes typed `contents` or
//! `raw_input_contents`, and answers in the same form (raw in, raw out, as
//! Triton does). Rejections become gRPC statuses with the codes of
//! [`Reject::grpc_code`].
//!
//! A plain `ModelInfer` call (one uncompressed message that decodes) is
//! served without tonic's stack: decoded with prost from the body read here,
//! answered as one frame plus `grpc-status: 0` trailers, exactly as tonic
//! would. Everything else goes through the generated server.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response};
use http_body_util::BodyExt;
use modelgate_core::{BoxBody, BoxError, ModelName, Reject, full};
use modelgate_proto::inference::{
    InferTensorContents, ModelInferRequest, ModelInferResponse, ModelMetadataRequest,
    ModelMetadataResponse, ModelReadyRequest, ModelReadyResponse, ServerLiveRequest,
    ServerLiveResponse, ServerMetadataRequest, ServerMetadataResponse, ServerReadyRequest,
    ServerReadyResponse, model_infer_request::InferInputTensor,
    model_infer_response::InferOutputTensor, model_metadata_response::TensorMetadata,
};
use modelgate_proto::{GrpcInferenceService, GrpcInferenceServiceServer};
use prost::Message;
use tonic::codegen::Service;
use tonic::{Code, Request, Status};

use crate::http_io::read_body;
use crate::model::LoadedModel;
use crate::{Datatype, InputTensor, OutputTensor, Runtime, TensorData, infer};

/// Server name reported by `ServerMetadata`.
pub const SERVER_NAME: &str = "modelgate";

/// Runs one gRPC exchange through the generated server. The request body is
/// read here first, bounded by `max_body_bytes` (plus the 5-byte gRPC frame
/// header), so an oversized message is refused with RESOURCE_EXHAUSTED before
/// tonic buffers it.
pub async fn serve(rt: &Runtime, req: http::Request<BoxBody>) -> Response<BoxBody> {
    let limit = rt.max_body_bytes();
    let (parts, body) = req.into_parts();
    let bytes = match read_body(&parts.headers, body, limit.saturating_add(5)).await {
        Ok(bytes) => bytes,
        Err(Reject::PayloadTooLarge { .. }) => {
            return trailers_only(Status::resource_exhausted(format!(
                "request message is larger than the limit of {limit} bytes"
            )));
        }
        Err(r) => return trailers_only(status(r)),
    };
    if parts.uri.path() == MODEL_INFER
        && !parts.headers.contains_key(GRPC_ENCODING)
        && let Some(mut req) = single_message(&bytes)
    {
        return match run(rt, &mut req).await {
            Ok((model, outputs, raw)) => unary_ok(
                crate::grpc_out::Answer {
                    model: &model,
                    id: &req.id,
                    outputs: &outputs,
                    raw,
                }
                .frame(),
            ),
            Err(s) => trailers_only(s),
        };
    }
    // Boxed: the generated server's future is large, and this path is rare.
    Box::pin(serve_generated(rt, parts, bytes)).await
}

/// Header names built at compile time (a `&str` name is parsed per call).
const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The gRPC path of `ModelInfer`.
const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";

async fn serve_generated(
    rt: &Runtime,
    parts: http::request::Parts,
    bytes: Bytes,
) -> Response<BoxBody> {
    let req = http::Request::from_parts(parts, full(bytes));
    let mut svc = GrpcInferenceServiceServer::new(Api { rt: rt.clone() })
        .max_decoding_message_size(rt.max_body_bytes());
    let resp = match svc.call(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    resp.map(|b| b.map_err(|s| Box::new(s) as BoxError).boxed_unsync())
}

/// The request when `body` is exactly one uncompressed gRPC message that
/// decodes; anything else is left to the generated server (and its errors).
fn single_message(body: &[u8]) -> Option<ModelInferRequest> {
    let [0, a, b, c, d, message @ ..] = body else {
        return None;
    };
    let len = usize::try_from(u32::from_be_bytes([*a, *b, *c, *d])).ok()?;
    if message.len() != len {
        return None;
    }
    ModelInferRequest::decode(message).ok()
}

/// A framed message as a successful unary gRPC response: what tonic sends
/// (the one frame, then `grpc-status: 0` trailers).
fn unary_ok(frame: BytesMut) -> Response<BoxBody> {
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
    // `map_frame` hides the exact length, so no `content-length` is sent
    // (tonic's streaming body sends none either).
    let body = http_body_util::Full::new(frame.freeze())
        .map_frame(|f| f)
        .with_trailers(std::future::ready(Some(Ok(trailers))))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut out = Response::new(body);
    *out.version_mut() = http::Version::HTTP_2;
    out.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    out
}

/// A gRPC response carrying only `status`, in its headers.
fn trailers_only(status: Status) -> Response<BoxBody> {
    status.into_http::<BoxBody>()
}

fn status(r: Reject) -> Status {
    Status::new(Code::from_i32(i32::from(r.grpc_code())), r.client_message())
}

fn model_name(name: &str) -> Result<ModelName, Status> {
    ModelName::parse(name).map_err(|_| {
        status(Reject::NotFound(format!(
            "Model with name {} does not exist.",
            infer::shown(name)
        )))
    })
}

struct Api {
    rt: Runtime,
}

#[tonic::async_trait]
impl GrpcInferenceService for Api {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<tonic::Response<ServerLiveResponse>, Status> {
        Ok(tonic::Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<tonic::Response<ServerReadyResponse>, Status> {
        // Every configured model is loaded before the runtime exists.
        Ok(tonic::Response::new(ServerReadyResponse { ready: true }))
    }

    async fn model_ready(
        &self,
        req: Request<ModelReadyRequest>,
    ) -> Result<tonic::Response<ModelReadyResponse>, Status> {
        let req = req.into_inner();
        let name = model_name(&req.name)?;
        self.rt.lookup(&name, Some(&req.version)).map_err(status)?;
        Ok(tonic::Response::new(ModelReadyResponse { ready: true }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<tonic::Response<ServerMetadataResponse>, Status> {
        Ok(tonic::Response::new(ServerMetadataResponse {
            name: SERVER_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: Vec::new(),
        }))
    }

    async fn model_metadata(
        &self,
        req: Request<ModelMetadataRequest>,
    ) -> Result<tonic::Response<ModelMetadataResponse>, Status> {
        let req = req.into_inner();
        let name = model_name(&req.name)?;
        let model = self.rt.lookup(&name, Some(&req.version)).map_err(status)?;
        Ok(tonic::Response::new(metadata(&model)))
    }

    async fn model_infer(
        &self,
        req: Request<ModelInferRequest>,
    ) -> Result<tonic::Response<ModelInferResponse>, Status> {
        model_infer(&self.rt, req.into_inner())
            .await
            .map(tonic::Response::new)
    }
}

/// One `ModelInfer` call: raw inputs are answered with raw outputs.
async fn model_infer(
    rt: &Runtime,
    mut req: ModelInferRequest,
) -> Result<ModelInferResponse, Status> {
    let (model, outputs, raw) = run(rt, &mut req).await?;
    Ok(response(&model, req.id, outputs, raw))
}

/// Runs the call's model (taking the inputs out of `req`): the model, the
/// picked outputs and whether the inputs (so the outputs) are raw.
async fn run(
    rt: &Runtime,
    req: &mut ModelInferRequest,
) -> Result<(Arc<LoadedModel>, Vec<OutputTensor>, bool), Status> {
    let name = model_name(&req.model_name)?;
    let model = rt.lookup(&name, Some(&req.model_version)).map_err(status)?;
    let raw = !req.raw_input_contents.is_empty();
    let inputs = decode_inputs(
        std::mem::take(&mut req.inputs),
        std::mem::take(&mut req.raw_input_contents),
    )
    .map_err(status)?;
    let picked = infer::select_outputs(&model, req.outputs.iter().map(|o| o.name.as_str()))
        .map_err(status)?;
    let values = infer::check(&model, inputs).map_err(status)?;
    let (model, outputs) = rt.execute(model, values).await.map_err(status)?;
    Ok((model, infer::pick(outputs, &picked), raw))
}

/// The answer as a prost message (the generated server's path; the direct
/// path writes the same bytes with `grpc_out`).
pub(crate) fn response(
    model: &LoadedModel,
    id: String,
    outputs: Vec<OutputTensor>,
    raw: bool,
) -> ModelInferResponse {
    let mut resp = ModelInferResponse {
        model_name: model.name.to_string(),
        model_version: model.version.clone(),
        id,
        outputs: Vec::with_capacity(outputs.len()),
        ..Default::default()
    };
    for o in outputs {
        let spec_name = model
            .outputs
            .get(o.index)
            .map_or(String::new(), |s| s.name.clone());
        let mut out = InferOutputTensor {
            name: spec_name,
            datatype: o.data.datatype().as_str().into(),
            shape: o
                .shape
                .iter()
                .map(|d| i64::try_from(*d).unwrap_or(i64::MAX))
                .collect(),
            ..Default::default()
        };
        if raw {
            resp.raw_output_contents.push(o.data.to_le_bytes());
        } else {
            out.contents = Some(contents_of(o.data));
        }
        resp.outputs.push(out);
    }
    resp
}

/// Decodes typed or raw inputs; mixing the two is refused.
fn decode_inputs(
    inputs: Vec<InferInputTensor>,
    raw: Vec<Vec<u8>>,
) -> Result<Vec<InputTensor<'static>>, Reject> {
    if !raw.is_empty() && raw.len() != inputs.len() {
        return Err(Reject::BadRequest(format!(
            "raw_input_contents has {} entries for {} inputs",
            raw.len(),
            inputs.len()
        )));
    }
    let mut raw = raw.into_iter();
    let mut out = Vec::with_capacity(inputs.len());
    for input in inputs {
        let name = infer::shown(&input.name);
        let bad = |m: String| Reject::BadRequest(format!("input '{name}': {m}"));
        let declared = Datatype::parse(&input.datatype).map_err(bad)?;
        let data = match (raw.next(), input.contents) {
            (Some(_), Some(c)) if !is_empty(&c) => {
                return Err(bad(
                    "contents and raw_input_contents are both set; use one".into()
                ));
            }
            (Some(bytes), _) => TensorData::from_le_bytes(declared, &bytes).map_err(bad)?,
            (None, c) => typed_contents(declared, c.unwrap_or_default()).map_err(bad)?,
        };
        out.push(InputTensor {
            name: input.name.into(),
            shape: input.shape,
            data,
        });
    }
    Ok(out)
}

fn is_empty(c: &InferTensorContents) -> bool {
    c.bool_contents.is_empty()
        && c.int_contents.is_empty()
        && c.int64_contents.is_empty()
        && c.uint_contents.is_empty()
        && c.uint64_contents.is_empty()
        && c.fp32_contents.is_empty()
        && c.fp64_contents.is_empty()
        && c.bytes_contents.is_empty()
}

/// Takes the repeated field that matches `declared`; values in another
/// field are a client mistake worth naming.
fn typed_contents(declared: Datatype, c: InferTensorContents) -> Result<TensorData, String> {
    let (data, field) = match declared {
        Datatype::Bool => (TensorData::Bool(c.bool_contents), "bool_contents"),
        Datatype::Int32 => (TensorData::Int32(c.int_contents), "int_contents"),
        Datatype::Int64 => (TensorData::Int64(c.int64_contents), "int64_contents"),
        Datatype::Fp32 => (TensorData::Fp32(c.fp32_contents), "fp32_contents"),
        Datatype::Fp64 => (TensorData::Fp64(c.fp64_contents), "fp64_contents"),
    };
    if data.is_empty() {
        return Err(format!(
            "no values: {declared} values go in contents.{field}"
        ));
    }
    Ok(data)
}

fn contents_of(data: TensorData) -> InferTensorContents {
    let mut c = InferTensorContents::default();
    match data {
        TensorData::Bool(v) => c.bool_contents = v,
        TensorData::Int32(v) => c.int_contents = v,
        TensorData::Int64(v) => c.int64_contents = v,
        TensorData::Fp32(v) => c.fp32_contents = v,
        TensorData::Fp64(v) => c.fp64_contents = v,
    }
    c
}

fn metadata(model: &LoadedModel) -> ModelMetadataResponse {
    ModelMetadataResponse {
        name: model.name.to_string(),
        versions: vec![model.version.clone()],
        platform: crate::v2::PLATFORM.into(),
        inputs: model
            .inputs
            .iter()
            .map(|i| TensorMetadata {
                name: i.name.clone(),
                datatype: i.datatype.as_str().into(),
                shape: i.shape(),
            })
            .collect(),
        outputs: model
            .outputs
            .iter()
            .map(|o| TensorMetadata {
                name: o.name.clone(),
                datatype: o.datatype.as_str().into(),
                shape: o.shape.clone(),
            })
            .collect(),
    }
}
