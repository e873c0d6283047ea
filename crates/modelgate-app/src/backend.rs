//! Step 6 of the pipeline: the permitted request goes to modelgate itself
//! (server-level answers), the built-in runtime, or the upstream proxy.

use std::time::Instant;

use http::{Method, Request, Response, Version};
use modelgate_authz::Permit;
use modelgate_core::{BoxBody, Protocol, Reject, RequestFacts};
use modelgate_route::{ModelRef, RouteMatch};
use modelgate_runtime::{BuiltinCall, Runtime};
use modelgate_upstream::ForwardOpts;

use crate::finish::Trace;
use crate::forward::upstream_request;
use crate::local;
use crate::pipeline::{ListenerView, ModelBackend, Pipeline};

/// A refusal and, for upstream failures, the metric label of its kind.
pub type Failure = (Reject, Option<&'static str>);

fn refuse(r: Reject) -> Failure {
    (r, None)
}

/// Everything the backend step needs about the request.
pub struct Call<'a> {
    pub p: &'a Pipeline,
    pub runtime: Option<&'a Runtime>,
    pub listener: &'a ListenerView,
    pub route: &'a RouteMatch,
    pub permit: &'a Permit,
    pub ready: bool,
    /// An external authorizer's `headersToUpstreamOnAllow` headers.
    pub upstream_headers: &'a [(http::HeaderName, http::HeaderValue)],
    /// The OpenAI body already names the upstream's model (the alias was
    /// applied where the body was parsed).
    pub body_renamed: bool,
}

impl Call<'_> {
    pub async fn run(
        self,
        facts: RequestFacts,
        body: BoxBody,
        trace: &mut Trace,
    ) -> Result<Response<BoxBody>, Failure> {
        let Call {
            p,
            runtime,
            listener,
            route,
            permit,
            ready,
            upstream_headers,
            body_renamed,
        } = self;
        if local::is_local(route) {
            if !facts.grpc {
                return Ok(local::answer(p, route, permit, ready));
            }
            return Ok(match runtime {
                Some(rt) => rt.handle_grpc(grpc_request(facts, body)?).await,
                None => local::grpc_answer(route.operation, ready),
            });
        }
        let model = match &route.model {
            ModelRef::Known(m) => m.clone(),
            ModelRef::Unknown(name) => {
                return Err(refuse(Reject::NotFound(format!(
                    "Model with name {name} does not exist."
                ))));
            }
            ModelRef::None => return Err(refuse(Reject::NotFound("no model named".into()))),
        };
        match p.backends.get(&model) {
            Some(ModelBackend::Proxy(target)) => {
                let limit = listener.config.max_body_bytes;
                let (mut out, tripped) = upstream_request(
                    p,
                    listener,
                    facts,
                    route,
                    permit,
                    body,
                    target.alias(),
                    body_renamed,
                )
                .await
                .map_err(refuse)?;
                // Set after the header policy: they may be identity headers.
                for (n, v) in upstream_headers {
                    out.headers.insert(n, v.clone());
                }
                // Last: an authorizer's headers never replace the wristband.
                crate::wristband::stamp(p, route, permit, trace, &mut out.headers)
                    .map_err(refuse)?;
                let sent = Instant::now();
                let opts = ForwardOpts {
                    grpc: trace.grpc,
                    too_large: Some(tripped),
                    openai: route.protocol == Protocol::OpenAi,
                    started: Some(sent),
                };
                trace.upstream_sent = Some(sent);
                match target.forward(out, opts).await {
                    Ok(fwd) => {
                        trace.upstream = Some(fwd.upstream);
                        trace.upstream_elapsed = Some(fwd.elapsed);
                        Ok(fwd.response)
                    }
                    Err((Reject::PayloadTooLarge { .. }, _)) => {
                        Err(refuse(Reject::PayloadTooLarge { limit }))
                    }
                    Err((r, kind)) => Err((r, Some(kind))),
                }
            }
            Some(ModelBackend::Builtin) => {
                let rt = runtime.ok_or_else(|| {
                    refuse(Reject::Internal {
                        detail: "built-in model without a runtime".into(),
                    })
                })?;
                let started = Instant::now();
                trace.upstream = Some("builtin".into());
                let resp = if facts.grpc {
                    rt.handle_grpc(grpc_request(facts, body)?).await
                } else {
                    let call = BuiltinCall {
                        protocol: route.protocol,
                        operation: route.operation,
                        model,
                        version: route.version.clone(),
                    };
                    let r = rt.handle(call, &facts.headers, body).await;
                    trace.upstream_elapsed = Some(started.elapsed());
                    r.map_err(|e| {
                        let kind = matches!(e, Reject::Unavailable { .. }).then_some("overloaded");
                        (e, kind)
                    })?
                };
                trace.upstream_elapsed = Some(started.elapsed());
                Ok(resp)
            }
            None => Err(refuse(Reject::NotFound(format!(
                "Model with name {model} does not exist."
            )))),
        }
    }
}

/// The gRPC request as the runtime's service expects it.
fn grpc_request(facts: RequestFacts, body: BoxBody) -> Result<Request<BoxBody>, Failure> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(facts.path.as_str())
        .version(Version::HTTP_2)
        .body(body)
        .map_err(|e| refuse(Reject::BadRequest(format!("invalid gRPC request: {e}"))))?;
    *req.headers_mut() = facts.headers;
    Ok(req)
}
