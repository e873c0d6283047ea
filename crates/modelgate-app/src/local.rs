//! Answers modelgate gives itself: server-level health and metadata, and
//! model lists filtered to what the caller may use.

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use modelgate_authz::Permit;
use modelgate_core::{BoxBody, Operation, Protocol, full};
use modelgate_route::RouteMatch;
use serde_json::json;

use crate::pipeline::Pipeline;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Whether modelgate answers this route itself.
pub fn is_local(route: &RouteMatch) -> bool {
    match route.operation {
        Operation::ServerLive
        | Operation::ServerReady
        | Operation::ServerMetadata
        | Operation::ListModels => route.model.known().is_none(),
        Operation::ModelMetadata => route.protocol == Protocol::OpenAi,
        _ => false,
    }
}

fn json_response(body: serde_json::Value) -> Response<BoxBody> {
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The answer for a local route. `ready` is the gateway's own readiness.
pub fn answer(p: &Pipeline, route: &RouteMatch, permit: &Permit, ready: bool) -> Response<BoxBody> {
    match route.operation {
        Operation::ServerLive => json_response(json!({ "live": true })),
        Operation::ServerReady => json_response(json!({ "ready": ready })),
        Operation::ServerMetadata => {
            json_response(json!({ "name": "modelgate", "version": VERSION, "extensions": [] }))
        }
        Operation::ListModels => list_models(p, route.protocol, permit),
        _ => {
            let id = route.model.log_name();
            json_response(
                json!({ "id": id, "object": "model", "created": 0, "owned_by": "modelgate" }),
            )
        }
    }
}

fn list_models(p: &Pipeline, protocol: Protocol, permit: &Permit) -> Response<BoxBody> {
    let names: Vec<&str> = p
        .config
        .models
        .iter()
        .filter(|m| match permit.principal() {
            Some(who) => who.grants.covers(&m.name),
            None => true,
        })
        .filter(|m| match protocol {
            Protocol::OpenAi => {
                m.protocols.contains(&Protocol::OpenAi) || m.protocols.contains(&Protocol::V1)
            }
            other => m.protocols.contains(&other),
        })
        .map(|m| m.name.as_str())
        .collect();
    match protocol {
        // One body both client kinds read: OpenAI's `data` and KServe's `models`.
        Protocol::OpenAi => json_response(json!({
            "object": "list",
            "data": names.iter().map(|n| json!({"id": n, "object": "model", "created": 0, "owned_by": "modelgate"})).collect::<Vec<_>>(),
            "models": names,
        })),
        _ => json_response(json!({ "models": names })),
    }
}

/// A gRPC answer for server-level operations when no built-in runtime runs.
pub fn grpc_answer(op: Operation, ready: bool) -> Response<BoxBody> {
    use modelgate_proto::inference::{
        ServerLiveResponse, ServerMetadataResponse, ServerReadyResponse,
    };
    let bytes = match op {
        Operation::ServerLive => prost::Message::encode_to_vec(&ServerLiveResponse { live: true }),
        Operation::ServerReady => prost::Message::encode_to_vec(&ServerReadyResponse { ready }),
        _ => prost::Message::encode_to_vec(&ServerMetadataResponse {
            name: "modelgate".into(),
            version: VERSION.into(),
            extensions: Vec::new(),
        }),
    };
    crate::grpc_reply::ok(&bytes)
}
