//! Open Inference Protocol V2 over REST: model metadata, model readiness and
//! `/infer` with typed tensors, nested or flat `data`, `outputs` selection
//! and `id` echo.
//!
//! Class labels of a ZipMap classifier are in the metadata of its probability
//! output: `outputs[i].parameters.class_labels` (MLServer's tensor-metadata
//! `parameters`). The binary tensor extension is served (see `crate::binary`).

use http::{HeaderMap, HeaderValue, Response};
use modelgate_core::{BoxBody, Operation, Reject};
use serde::Serialize;
use tract_onnx::tract_core::internal::tract_smallvec::SmallVec;

use crate::binary::{self, Tail};
use crate::http_io::{
    InferHeaders, json_response, parse_json, read_body_declared, to_json_response,
};
use crate::json_out;
use crate::model::{ClassLabels, LoadedModel};
use crate::runtime::BuiltinCall;
use crate::v2_request::{InferRequest, decode_input};
use crate::{Runtime, infer};

/// The OIP platform name of ONNX models.
pub const PLATFORM: &str = "onnx_onnxv1";

#[derive(Serialize)]
struct Ready<'a> {
    name: &'a str,
    ready: bool,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    versions: [&'a str; 1],
    platform: &'static str,
    inputs: Vec<TensorMeta<'a>>,
    outputs: Vec<TensorMeta<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<ModelParams>,
}

#[derive(Serialize)]
struct TensorMeta<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<TensorParams<'a>>,
}

#[derive(Serialize)]
struct TensorParams<'a> {
    class_labels: LabelsJson<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum LabelsJson<'a> {
    Int(&'a [i64]),
    Text(&'a [String]),
}

#[derive(Serialize)]
struct ModelParams {
    /// A newer model file failed to load; the previous one is serving.
    reload_failed: bool,
}

pub async fn handle(
    rt: &Runtime,
    call: &BuiltinCall,
    headers: &HeaderMap,
    body: BoxBody,
) -> Result<Response<BoxBody>, Reject> {
    let model = rt.lookup(&call.model, call.version.as_deref())?;
    match call.operation {
        Operation::ModelReady => to_json_response(&Ready {
            name: call.model.as_str(),
            ready: true,
        }),
        Operation::ModelMetadata => {
            let reload_failed = rt.reload_error(&call.model).is_some();
            to_json_response(&metadata(&model, reload_failed))
        }
        Operation::Infer => {
            let found = InferHeaders::scan(headers);
            let bytes = read_body_declared(found.content_length, body, rt.max_body_bytes()).await?;
            let (json, tail) = binary::split_at(found.json_length, bytes)?;
            // The hand-written reader takes the usual body; it declines
            // anything else, which the serde reader then answers.
            let req: InferRequest<'_> = match crate::v2_request::fast::read(&json) {
                Some(req) => req,
                None => parse_json(&json)?,
            };
            infer(rt, model, req, Tail::new(tail), found.request_id).await
        }
        other => Err(Reject::NotFound(format!(
            "operation {} is not served for model '{}' over V2",
            other.as_str(),
            call.model
        ))),
    }
}

async fn infer(
    rt: &Runtime,
    model: std::sync::Arc<LoadedModel>,
    req: InferRequest<'_>,
    mut tail: Tail,
    gateway_id: Option<&HeaderValue>,
) -> Result<Response<BoxBody>, Reject> {
    let all_binary = binary::flag(req.parameters.as_ref(), "binary_data_output", "the request")?;
    // Inline for one input (the usual call): no allocation, a small future.
    let mut inputs: SmallVec<[_; 1]> = SmallVec::new();
    for input in req.inputs {
        inputs.push(decode_input(input, &mut tail)?);
    }
    tail.finish()?;
    let requested = req.outputs.unwrap_or_default();
    // Output index → whether it is answered in binary.
    let mut binary_outputs = Vec::new();
    for o in &requested {
        let whose = format!("output '{}'", infer::shown(&o.name));
        if let Some(b) = binary::flag(o.parameters.as_ref(), "binary_data", &whose)? {
            binary_outputs.push((o.name.as_ref(), b));
        }
    }
    let picked = infer::select_outputs(&model, requested.iter().map(|o| o.name.as_ref()))?;
    let values = infer::check(&model, inputs)?;
    let (model, outputs) = rt.execute(model, values).await?;
    let outputs = infer::pick(outputs, &picked);
    let id = request_id(req.id.as_deref(), gateway_id);
    let mut tail_out = Vec::new();
    // Sized once for small answers from the longest each part can be (no
    // regrowth), and close enough to the answer that handing the buffer over
    // without its spare capacity shrinks it in place; capped, as binary
    // outputs and long answers need not be reserved up front.
    let per_output: usize = outputs
        .iter()
        .map(|o| {
            let name = model.v2_text.output_names.get(o.index).map_or(0, Vec::len);
            64 + name + 21 * o.shape.len() + json_out::max_len(o.data.datatype()) * o.data.len()
        })
        .sum();
    let envelope = model.v2_text.head.len() + 24 + 2 * id.len();
    let mut json = Vec::with_capacity((envelope + per_output).min(64 * 1024));
    // `{"model_name":…,"model_version":…`, escaped once at load.
    json.extend_from_slice(&model.v2_text.head);
    json.extend_from_slice(b",\"id\":");
    id.write(&mut json);
    json.extend_from_slice(b",\"outputs\":[");
    let mut any_binary = false;
    for (i, o) in outputs.iter().enumerate() {
        let name = model
            .outputs
            .get(o.index)
            .map_or("", |spec| spec.name.as_str());
        let binary = binary_outputs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| *b)
            .or(all_binary)
            .unwrap_or(false);
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(b"{\"name\":");
        match model.v2_text.output_names.get(o.index) {
            Some(escaped) => json.extend_from_slice(escaped),
            None => json_out::string(&mut json, name),
        }
        json.extend_from_slice(b",\"datatype\":\"");
        json.extend_from_slice(o.data.datatype().as_str().as_bytes());
        json.extend_from_slice(b"\",\"shape\":");
        json_out::usizes(&mut json, &o.shape);
        if binary {
            any_binary = true;
            let before = tail_out.len();
            o.data.append_le_bytes(&mut tail_out);
            json.extend_from_slice(b",\"parameters\":{\"binary_data_size\":");
            json_out::usize(&mut json, tail_out.len() - before);
            json.push(b'}');
        } else {
            json.extend_from_slice(b",\"data\":");
            json_out::flat(&mut json, &o.data)?;
        }
        json.push(b'}');
    }
    json.extend_from_slice(b"]}");
    if !any_binary {
        // Without spare capacity the body takes the buffer as it is (no
        // shared header allocated for it).
        json.shrink_to_fit();
        return Ok(json_response(json));
    }
    Ok(binary::response(json, &tail_out))
}

/// The response `id`: the request's, else the gateway's `x-request-id`, else
/// a fresh UUID (KServe always answers with one).
enum RequestId<'a> {
    Given(&'a str),
    Fresh(uuid::Uuid),
}

impl RequestId<'_> {
    fn len(&self) -> usize {
        match self {
            RequestId::Given(s) => s.len(),
            RequestId::Fresh(_) => uuid::fmt::Hyphenated::LENGTH,
        }
    }

    /// Appends the id as a JSON string.
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            RequestId::Given(s) => json_out::string(out, s),
            RequestId::Fresh(u) => {
                // Hex digits and hyphens: nothing to escape, no String.
                let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
                out.push(b'"');
                out.extend_from_slice(u.hyphenated().encode_lower(&mut buf).as_bytes());
                out.push(b'"');
            }
        }
    }
}

fn request_id<'a>(id: Option<&'a str>, gateway_id: Option<&'a HeaderValue>) -> RequestId<'a> {
    if let Some(id) = id {
        return RequestId::Given(id);
    }
    if let Some(v) = gateway_id.and_then(|v| v.to_str().ok()) {
        return RequestId::Given(v);
    }
    RequestId::Fresh(uuid::Uuid::new_v4())
}

fn metadata(model: &LoadedModel, reload_failed: bool) -> Metadata<'_> {
    Metadata {
        name: model.name.as_str(),
        versions: [model.version.as_str()],
        platform: PLATFORM,
        inputs: model
            .inputs
            .iter()
            .map(|i| TensorMeta {
                name: &i.name,
                datatype: i.datatype.as_str(),
                shape: i.shape(),
                parameters: None,
            })
            .collect(),
        outputs: model
            .outputs
            .iter()
            .map(|o| TensorMeta {
                name: &o.name,
                datatype: o.datatype.as_str(),
                shape: o.shape.clone(),
                parameters: o.class_labels.as_ref().map(|l| TensorParams {
                    class_labels: match l {
                        ClassLabels::Int(v) => LabelsJson::Int(v),
                        ClassLabels::Text(v) => LabelsJson::Text(v),
                    },
                }),
            })
            .collect(),
        parameters: reload_failed.then_some(ModelParams {
            reload_failed: true,
        }),
    }
}
