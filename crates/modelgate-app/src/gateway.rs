//! The request pipeline, in flow order: read → route → authenticate → bind
//! body model → authorize → backend → audit. Each stage is one named step;
//! see `docs/pipeline.md` for the chart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use modelgate_audit::Metrics;
use modelgate_authn::KeyStore;
use modelgate_authz::Caller;
use modelgate_core::{AuthFailure, BoxBody, Reject, full};
use modelgate_listen::{ConnInfo, Handler};
use modelgate_route::RouteMatch;
use modelgate_runtime::Runtime;

use crate::backend::{Call, Failure};
use crate::body::{
    BodyDeadline, Prefixed, boxed, check_declared_length, grpc_model, openai_model, read_bounded,
};
use crate::facts;
use crate::finish::{Trace, answered, rejected};
use crate::pipeline::Pipeline;

/// State shared by every request for the life of the process.
pub struct Shared {
    pub pipeline: ArcSwap<Pipeline>,
    pub metrics: Arc<Metrics>,
    pub keys: Arc<ArcSwap<KeyStore>>,
    pub ready: AtomicBool,
    /// The built-in model runtime, when any model is built in.
    pub runtime: Option<Runtime>,
}

/// The client-facing handler.
pub struct Gateway {
    pub shared: Arc<Shared>,
}

impl Handler for Gateway {
    async fn handle(&self, req: Request<Incoming>, conn: Arc<ConnInfo>) -> Response<BoxBody> {
        // In-flight requests keep the pipeline they started with.
        let p = self.shared.pipeline.load_full();
        let metrics = &self.shared.metrics;
        let received = Instant::now();
        let mut trace = Trace {
            request_id: String::new(),
            client: conn.client,
            method: req.method().to_string(),
            path: facts::raw_path_of(&req),
            host: None,
            grpc: false,
            received,
            protocol: None,
            operation: None,
            model: None,
            identity: None,
            authorized: false,
            upstream: None,
            upstream_elapsed: None,
            istio_compat: false,
        };
        let ready = self.shared.ready.load(Ordering::Acquire);
        let (parts, body) = req.into_parts();
        let mut body = Some(body);
        // Boxed: the flow future is large, and hyper moves the handler future by value.
        match Box::pin(flow(
            &p,
            self.shared.runtime.as_ref(),
            parts,
            &mut body,
            &conn,
            &mut trace,
            ready,
        ))
        .await
        {
            Ok(resp) => answered(&p, metrics, &trace, resp),
            Err((reject, upstream_error)) => {
                if let Some(unread) = body
                    && !matches!(reject, Reject::PayloadTooLarge { .. })
                {
                    tokio::spawn(drain(unread));
                }
                rejected(&p, metrics, &trace, reject, upstream_error)
            }
        }
    }
}

fn refuse(r: Reject) -> Failure {
    (r, None)
}

/// Reads and discards the body of a request refused before its body was read,
/// so the client's upload completes and an HTTP/2 stream ends cleanly instead
/// of being reset. Bounded in bytes and time.
async fn drain(mut body: Incoming) {
    use http_body_util::BodyExt;
    const MAX: usize = 1 << 20;
    let mut seen = 0usize;
    let read = async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, bytes::Bytes::len);
            if seen > MAX {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
}

async fn flow(
    p: &Pipeline,
    runtime: Option<&Runtime>,
    parts: http::request::Parts,
    body: &mut Option<Incoming>,
    conn: &ConnInfo,
    trace: &mut Trace,
    ready: bool,
) -> Result<Response<BoxBody>, Failure> {
    let listener = p.listeners.get(conn.listener).ok_or_else(|| {
        refuse(Reject::Unavailable {
            message: "listener is being reconfigured".into(),
            retry_after_secs: Some(1),
        })
    })?;
    let limit = listener.config.max_body_bytes;
    trace.istio_compat = listener.config.istio_compat;

    // 1. Read: normalise the request head; refuse ambiguity.
    trace.grpc = facts::is_grpc(&parts);
    let facts = match facts::build(parts, conn, trace.received) {
        Ok(f) => f,
        Err((id, r)) => {
            trace.request_id = id;
            return Err(refuse(r));
        }
    };
    trace.request_id = facts.request_id.clone();
    trace.path = facts.path.clone();
    trace.host = facts.host.clone();
    check_declared_length(&facts.headers, limit).map_err(refuse)?;

    // 2. Route: only protocol paths exist; everything else is 404, never forwarded.
    let mut route = p
        .routes
        .resolve(
            &facts.method,
            &facts.path,
            facts.host.as_deref(),
            &facts.headers,
            facts.grpc,
        )
        .map_err(refuse)?;
    note_route(trace, &route);

    // 3. Authenticate, unless the route is public. On an Istio-compatible
    //    listener a request with no credential at all goes on as anonymous and
    //    the policies decide (failing closed); a bad credential is always 401.
    let who = if route.public {
        None
    } else {
        match p
            .authn
            .authenticate(&facts, &listener.config.credentials, SystemTime::now())
            .await
        {
            Ok(a) => {
                trace.identify(a.principal());
                Some(Some(a))
            }
            Err(AuthFailure::CredentialNotFound) if listener.config.istio_compat => Some(None),
            Err(f) => return Err(refuse(Reject::Unauthenticated(f))),
        }
    };

    // 4. Bind the model named in the body (OpenAI JSON, gRPC message), bounded.
    // [deadlines, issue 9.3] A body that cannot change the outcome is not read;
    // one that is read has a deadline.
    let limits = &listener.config.limits;
    if route.model_in_body {
        let caller = match &who {
            None => Caller::Public,
            Some(None) => Caller::Anonymous,
            Some(Some(a)) => Caller::Identified(a),
        };
        let models = &p.config.models;
        p.authz
            .check_reach(caller, &facts, &route, &p.routes, models, &listener.config)
            .map_err(refuse)?;
    }
    let deadline = BodyDeadline::start(limits);
    // [/deadlines]
    let mut head = None;
    if route.model_in_body {
        let incoming = body.take().ok_or_else(|| {
            refuse(Reject::Internal {
                detail: "body taken twice".into(),
            })
        })?;
        if facts.grpc {
            let mut incoming = incoming;
            let (name, read) = grpc_model(&mut incoming, limit, deadline)
                .await
                .map_err(refuse)?;
            p.routes
                .bind_body_model(&mut route, &name, facts.host.as_deref(), &facts.headers)
                .map_err(refuse)?;
            head = Some((read, Some(incoming)));
        } else {
            let bytes = read_bounded(incoming, limit, deadline)
                .await
                .map_err(refuse)?;
            let name = openai_model(&bytes).map_err(refuse)?;
            p.routes
                .bind_body_model(&mut route, &name, facts.host.as_deref(), &facts.headers)
                .map_err(refuse)?;
            head = Some((bytes, None));
        }
        note_route(trace, &route);
    }

    // 5. Authorize: a Permit or a refusal (policies, grants, defaults).
    let caller = match &who {
        None => Caller::Public,
        Some(None) => Caller::Anonymous,
        Some(Some(a)) => Caller::Identified(a),
    };
    let permit = p
        .authz
        .authorize(caller, &facts, &route, &listener.config)
        .map_err(refuse)?;
    trace.authorized = true;

    // 6. Backend: modelgate itself, the built-in runtime, or the upstream.
    let request_body: BoxBody = match (head, body.take()) {
        (Some((bytes, None)), _) => full(bytes),
        (Some((bytes, Some(rest))), _) => http_body_util::BodyExt::boxed_unsync(Prefixed::new(
            bytes,
            rest,
            limits.body_idle_timeout,
        )),
        (None, Some(incoming)) => boxed(incoming, limits.body_idle_timeout),
        (None, None) => full(bytes::Bytes::new()),
    };
    let call = Call {
        p,
        runtime,
        listener,
        route: &route,
        permit: &permit,
        ready,
    };
    call.run(facts, request_body, trace).await
}

fn note_route(trace: &mut Trace, route: &RouteMatch) {
    trace.protocol = Some(route.protocol);
    trace.operation = Some(route.operation);
    let name = route.model.log_name();
    trace.model = (!name.is_empty()).then(|| name.to_string());
}
