//! Building the upstream request from an authorized one: the normalised (and
//! possibly rewritten) path, cleaned headers, the verified identity header,
//! the request id, and a size-limited body whose trailers are dropped (cleaned
//! on gRPC). OpenAI requests an upstream could read another model from are
//! refused here (see `modelgate_upstream::openai`). For a model with an
//! alias (`upstream.model`) the upstream's name replaces the client's in the
//! path, the OpenAI JSON body or the gRPC message (`modelgate_upstream::alias`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use http::header::CONTENT_LENGTH;
use http::{HeaderName, HeaderValue};
use http_body_util::BodyExt;
use modelgate_authz::Permit;
use modelgate_core::{BoxBody, Protocol, RequestFacts};
use modelgate_route::RouteMatch;
use modelgate_upstream::headers::RequestHeaderPolicy;
use modelgate_upstream::limit::Limited;
use modelgate_upstream::trailers::{RequestTrailers, TrailerRule};
use modelgate_upstream::{Outgoing, RenameFirstMessage, RequestBody};

use crate::facts::X_REQUEST_ID;
use crate::pipeline::{ListenerView, Pipeline};

/// The request to send upstream, and the flag that trips if its body passes
/// the limit. `alias`: the upstream's name for the model, if it differs;
/// `body_renamed`: the OpenAI body already carries it.
#[allow(clippy::too_many_arguments)]
pub async fn upstream_request(
    p: &Pipeline,
    listener: &ListenerView,
    facts: RequestFacts,
    route: &RouteMatch,
    permit: &Permit,
    body: BoxBody,
    alias: Option<&str>,
    body_renamed: bool,
) -> Result<(Outgoing, Arc<AtomicBool>), modelgate_core::Reject> {
    let RequestFacts {
        method,
        mut headers,
        query,
        client,
        request_id,
        grpc,
        ..
    } = facts;
    let trusted_peer = listener
        .config
        .trusted_proxies
        .iter()
        .any(|n| n.contains(client.ip()));
    // JWT rules' claim headers are stripped like the identity header, and the
    // token is removed from every location unless its rule forwards it.
    let plan = p.authn.forward_plan(permit.principal());
    let kept;
    let credential_headers: &[HeaderName] = if plan.keep_token {
        kept = listener
            .credential_headers
            .iter()
            .filter(|h| !plan.keep_headers.contains(h))
            .cloned()
            .collect::<Vec<_>>();
        &kept
    } else {
        &listener.credential_headers
    };
    RequestHeaderPolicy {
        credential_headers,
        strip: &p.strip_headers,
        trusted_peer,
        client_ip: client.ip(),
    }
    .apply(&mut headers);
    let query = p.authn.strip_token_params(&plan, query, &mut headers);
    if route.protocol == Protocol::OpenAi {
        modelgate_upstream::openai::check_request(&headers, query.as_deref())?;
    }
    let trailer_rule = if grpc {
        TrailerRule::Clean {
            credential_headers: listener.credential_headers.clone(),
            strip: p.strip_headers.clone(),
        }
    } else {
        headers.remove(http::header::TRAILER);
        TrailerRule::Drop
    };
    if let (Some(h), Some(who)) = (&p.config.auth.identity_header, permit.principal())
        && let Ok(v) = HeaderValue::from_str(&who.name)
    {
        headers.insert(h.clone(), v);
    }
    for (h, v) in plan.add_headers {
        headers.insert(h, v);
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(X_REQUEST_ID, v);
    }
    let path = match alias {
        Some(a) if matches!(route.protocol, Protocol::V1 | Protocol::V2) => {
            modelgate_upstream::alias::rewrite_path(&route.upstream_path, a)
        }
        _ => route.upstream_path.clone(),
    };
    let path_and_query = match query.as_deref().filter(|q| !q.is_empty()) {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let limit = listener.config.max_body_bytes;
    let (body, tripped) = if route.protocol == Protocol::OpenAi && !grpc {
        // Read whole before authorization (to find the model): collecting
        // it copies nothing, and lets a retry send it again.
        let bytes = body
            .collect()
            .await
            .map_err(|_| {
                modelgate_core::Reject::BadRequest("the request body could not be read".into())
            })?
            .to_bytes();
        let bytes = match alias.filter(|_| !body_renamed) {
            Some(a) => modelgate_upstream::alias::rewrite_json_model(&bytes, a).map_err(|e| {
                modelgate_core::Reject::BadRequest(format!(
                    "the request body is not valid JSON: {e}"
                ))
            })?,
            None => bytes,
        };
        // The rate-limit step may have changed the body too.
        headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len() as u64));
        (
            RequestBody::Buffered(bytes),
            Arc::new(AtomicBool::new(false)),
        )
    } else {
        let body = match alias {
            Some(a) if grpc => RenameFirstMessage::new(body, a, limit).boxed_unsync(),
            _ => body,
        };
        let body = RequestTrailers::new(body, trailer_rule);
        let (limited, tripped) = Limited::new(body, limit);
        (RequestBody::Streamed(limited.boxed_unsync()), tripped)
    };
    Ok((
        Outgoing {
            method,
            path_and_query,
            headers,
            body,
        },
        tripped,
    ))
}
