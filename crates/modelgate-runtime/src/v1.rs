//! KServe V1 ("TensorFlow V1 HTTP API"): model readiness and `:predict` with
//! `{"instances": [...]}` (or `{"inputs": [...]}`) → `{"predictions": [...]}`.
//!
//! Predictions are the model's first output (a classifier's labels, as the
//! KServe sklearn server returns), nested like its shape; a trailing
//! dimension of 1 (regressors' `[N, 1]`) is dropped so rows are plain values.
//! Only single-input models are served over V1; use V2 for several inputs.

use http::{HeaderMap, Response};
use modelgate_core::{BoxBody, Operation, Reject};
use serde::{Deserialize, Serialize};

use crate::http_io::{parse_json, read_body, to_json_response};
use crate::json_data::JsonData;
use crate::json_out::Nested;
use crate::runtime::BuiltinCall;
use crate::{InputTensor, Runtime, infer};

#[derive(Deserialize)]
struct PredictRequest {
    #[serde(default)]
    instances: Option<JsonData>,
    #[serde(default)]
    inputs: Option<JsonData>,
}

#[derive(Serialize)]
struct Ready<'a> {
    name: &'a str,
    ready: bool,
}

#[derive(Serialize)]
struct Predictions<'a> {
    predictions: Nested<'a>,
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
        Operation::Infer => {
            let bytes = read_body(headers, body, rt.max_body_bytes()).await?;
            let req: PredictRequest = parse_json(&bytes)?;
            let data = match (req.instances, req.inputs) {
                (Some(d), None) | (None, Some(d)) => d,
                (Some(_), Some(_)) => {
                    return Err(Reject::BadRequest(
                        "give either \"instances\" or \"inputs\", not both".into(),
                    ));
                }
                (None, None) => {
                    return Err(Reject::BadRequest(
                        "Expected \"instances\" or \"inputs\" to be a list".into(),
                    ));
                }
            };
            let [spec] = model.inputs.as_slice() else {
                return Err(Reject::BadRequest(format!(
                    "model '{}' has {} inputs; V1 predict serves single-input models, use V2",
                    model.name,
                    model.inputs.len()
                )));
            };
            let shape = data
                .dims
                .iter()
                .map(|d| i64::try_from(*d).unwrap_or(i64::MAX))
                .collect();
            let values = data
                .into_tensor_data(spec.datatype)
                .map_err(|e| Reject::BadRequest(format!("input '{}': {e}", spec.name)))?;
            let inputs = infer::check(
                &model,
                vec![InputTensor {
                    name: spec.name.as_str().into(),
                    shape,
                    data: values,
                }],
            )?;
            let (_model, outputs) = rt.execute(model, inputs).await?;
            let first = outputs.first().ok_or_else(|| Reject::Internal {
                detail: format!("model '{}' produced no output", call.model),
            })?;
            let shape = match first.shape.as_slice() {
                [n, 1] => std::slice::from_ref(n),
                s => s,
            };
            to_json_response(&Predictions {
                predictions: Nested {
                    shape,
                    data: &first.data,
                },
            })
        }
        Operation::Explain => Err(Reject::NotImplemented(format!(
            "explain is not supported: model '{}' is served by the built-in ONNX runtime, which has no explainer",
            call.model
        ))),
        other => Err(Reject::NotFound(format!(
            "operation {} is not served for model '{}' over V1",
            other.as_str(),
            call.model
        ))),
    }
}
