//! The decision as a service for adapters that answer *about* a request
//! instead of serving it (Envoy ext_authz, forward-auth): one call decides
//! through [`crate::decide`], writes the one decision record and the metrics
//! exactly as `serve` does, and says what the proxy must do — the identity
//! headers to set and the client-sent ones to remove, or the refusal `serve`
//! would have sent.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use modelgate_authz::{Permit, Verdict};
use modelgate_core::{BoxBody, Reject, full};
use modelgate_upstream::headers::RequestHeaderPolicy;

use crate::body::openai_model;
use crate::decide::{Ask, BodyModel, Claimed, Decision};
use crate::finish::{Trace, answered, rejected};
use crate::gateway::{Shared, note};
use crate::pipeline::{ListenerView, Pipeline};

/// A handle on the running gateway's decision, for adapters.
#[derive(Clone)]
pub struct Adapter {
    shared: Arc<Shared>,
}

/// What the proxy must do with the request.
#[derive(Debug)]
pub enum Answer {
    /// Let it through, setting `set` (overwriting any client value) and then
    /// removing `remove`. No name is in both.
    Allow {
        set: Vec<(HeaderName, HeaderValue)>,
        remove: Vec<HeaderName>,
    },
    /// Refuse it with this response — the one `serve` sends for the same
    /// request (status, `WWW-Authenticate`, `x-ext-auth-reason`, the
    /// protocol's error body).
    Deny {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
}

/// One checked request: the decision and the answer.
#[derive(Debug)]
pub struct Checked {
    pub decision: Decision,
    pub answer: Answer,
}

impl Checked {
    /// The configured model the request was routed to (empty if none).
    pub fn model(&self) -> &str {
        self.decision
            .route
            .as_ref()
            .map_or("", |r| r.model.log_name())
    }

    /// `(policy, basis)` of the authorization verdict, for access logs.
    pub fn verdict(&self) -> (Option<&str>, &'static str) {
        let Some(ruling) = &self.decision.ruling else {
            return (None, "not_reached");
        };
        let policy = ruling.verdict.policy().map(|p| &*p.name);
        match &ruling.verdict {
            Verdict::Allow { basis, .. } => (policy, basis.as_str()),
            Verdict::NeedCredential { .. } => (policy, "need_credential"),
            Verdict::Forbidden { .. } => (policy, "forbidden"),
            Verdict::NotFound(_) => (None, "not_found"),
        }
    }
}

/// The request body an adapter was given (Envoy's `with_request_body`), or
/// none: routes that name their model in the body are then refused.
struct GivenBody {
    body: Option<Bytes>,
    limit: u64,
    /// Envoy cut the body at `max_request_bytes` (`allow_partial_message`).
    partial: bool,
}

/// The header Envoy's ext_authz filter sets on the check when it sends the
/// body: `true` when the body was cut at `max_request_bytes`.
const PARTIAL_BODY: &str = "x-envoy-auth-partial-body";

fn partial_body(headers: &HeaderMap) -> bool {
    headers
        .get_all(PARTIAL_BODY)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

impl BodyModel for GivenBody {
    async fn model(&mut self, grpc: bool) -> Result<String, Reject> {
        // Fail closed: a cut body may name a model the whole one does not.
        if self.partial {
            return Err(Reject::Forbidden(
                "the proxy sent only part of the request body (x-envoy-auth-partial-body: true) \
                 and this route names its model there: raise max_request_bytes \
                 (includeRequestBodyInCheck.maxRequestBytes) above the largest request or \
                 turn allow_partial_message off"
                    .into(),
            ));
        }
        let Some(body) = self.body.as_mut() else {
            return crate::decide::NoBody.model(grpc).await;
        };
        if body.len() as u64 > self.limit.saturating_add(5) {
            return Err(Reject::PayloadTooLarge { limit: self.limit });
        }
        if grpc {
            let mut b = http_body_util::Full::new(body.clone());
            let deadline = crate::body::BodyDeadline::within(std::time::Duration::from_secs(5));
            crate::body::grpc_model(&mut b, self.limit, deadline)
                .await
                .map(|(name, _)| name)
        } else {
            openai_model(body)
        }
    }

    /// The body the proxy sent, on to a further external authorizer: still
    /// partial if the proxy cut it.
    async fn for_check(
        &mut self,
        max: u64,
        allow_partial: bool,
    ) -> Result<Option<crate::decide::CheckBody>, Reject> {
        let Some(body) = self.body.clone() else {
            return Ok(None);
        };
        let mut cut = crate::decide::CheckBody::cut(body, max, allow_partial)?;
        if let Some(c) = cut.as_mut() {
            c.partial |= self.partial;
        }
        Ok(cut)
    }
}

impl Adapter {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Decides `ask` (with the request `body`, when the proxy sent it),
    /// records it, and answers.
    pub async fn check(&self, ask: Ask, body: Option<Bytes>) -> Checked {
        let p = self.shared.pipeline.load_full();
        let metrics = &self.shared.metrics;
        let listener = ask.listener;
        let mut trace = Trace::new(ask.client, ask.method.as_str(), &ask.path);
        trace.received = ask.received;
        let Some(view) = p.listeners.get(listener) else {
            let reject = Reject::Unavailable {
                message: "listener is being reconfigured".into(),
                retry_after_secs: Some(1),
            };
            trace.request_id = crate::facts::request_id(&ask.headers);
            let d = Decision::refused(&trace.request_id, reject.clone());
            return Checked {
                decision: d,
                answer: deny(rejected(&p, metrics, &trace, reject, None)).await,
            };
        };
        trace.istio_compat = view.config.istio_compat;
        let mut source = GivenBody {
            partial: body.is_some() && partial_body(&ask.headers),
            body,
            limit: view.config.max_body_bytes,
        };
        let mut d = p
            .decider()
            .decide(ask, Claimed::FromRequest, &mut source, false)
            .await;
        note(&mut trace, &d);
        trace.request_id.clone_from(&d.request_id);
        trace.ruling.clone_from(&d.ruling);
        // modelgate's own admin paths are never a proxied upstream's: refused
        // as `serve` refuses them on a listener without `admin.ui.on_public`.
        if d.result.is_ok()
            && d.route
                .as_ref()
                .is_some_and(|r| r.protocol == modelgate_core::Protocol::Admin)
        {
            d.result = Err(Reject::NotFound("not found".into()));
        }
        let answer = match std::mem::replace(&mut d.result, Ok(None)) {
            Ok(Some(permit)) => match allow(&p, view, &d, &permit, &mut trace) {
                Ok(answer) => {
                    d.result = Ok(Some(permit));
                    let ok = Response::new(full(Bytes::new()));
                    answered(&p, metrics, &trace, ok);
                    answer
                }
                // No wristband, no request (as `serve`).
                Err(r) => {
                    d.result = Err(r.clone());
                    deny(rejected(&p, metrics, &trace, r, None)).await
                }
            },
            Ok(None) => {
                let r = Reject::Internal {
                    detail: "allowed without a permit".into(),
                };
                d.result = Err(r.clone());
                deny(rejected(&p, metrics, &trace, r, None)).await
            }
            Err(r) => {
                d.result = Err(r.clone());
                deny(rejected(&p, metrics, &trace, r, None)).await
            }
        };
        Checked {
            decision: d,
            answer,
        }
    }
}

/// The headers `serve` would set upstream (with the wristband, minted by the
/// same code), and the client-sent identity and credential headers it would
/// strip (those not set again). `Err` when the wristband cannot be signed.
fn allow(
    p: &Pipeline,
    view: &ListenerView,
    d: &Decision,
    permit: &Permit,
    trace: &mut Trace,
) -> Result<Answer, Reject> {
    let mut set: Vec<(HeaderName, HeaderValue)> = Vec::new();
    let plan = p.authn.forward_plan(permit.principal());
    if let (Some(h), Some(who)) = (&p.config.auth.identity_header, permit.principal())
        && let Ok(v) = HeaderValue::from_str(&who.name)
    {
        set.push((h.clone(), v));
    }
    set.extend(plan.add_headers);
    // An external authorizer's headersToUpstreamOnAllow.
    for (n, v) in &d.upstream_headers {
        if !set.iter().any(|(s, _)| s == n) {
            set.push((n.clone(), v.clone()));
        }
    }
    // Last, as in `serve`: an authorizer's headers never replace the wristband.
    if let Some(route) = &d.route {
        let mut stamped = HeaderMap::new();
        crate::wristband::stamp(p, route, permit, trace, &mut stamped)?;
        for (n, v) in stamped {
            if let Some(n) = n {
                set.retain(|(s, _)| *s != n);
                set.push((n, v));
            }
        }
    }
    let Some(facts) = &d.facts else {
        return Ok(Answer::Allow {
            set,
            remove: Vec::new(),
        });
    };
    let credential_headers: Vec<HeaderName> = view
        .credential_headers
        .iter()
        .filter(|h| !(plan.keep_token && plan.keep_headers.contains(h)))
        .cloned()
        .collect();
    // What serve's header policy strips from these headers. Forwarding
    // headers are the proxy's own business, so the peer counts as trusted.
    let mut cleaned = facts.headers.clone();
    RequestHeaderPolicy {
        credential_headers: &credential_headers,
        strip: &p.strip_headers,
        trusted_peer: true,
        client_ip: facts.client.ip(),
    }
    .apply(&mut cleaned);
    const PROXY_OWNED: &[&str] = &[
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "te",
    ];
    let remove = facts
        .headers
        .keys()
        .filter(|k| !cleaned.contains_key(*k))
        .filter(|k| !PROXY_OWNED.contains(&k.as_str()))
        .filter(|k| !set.iter().any(|(s, _)| s == *k))
        .cloned()
        .collect();
    Ok(Answer::Allow { set, remove })
}

async fn deny(resp: Response<BoxBody>) -> Answer {
    let (parts, body) = resp.into_parts();
    // Rendered refusals are small in-memory bodies.
    let body = match tokio::time::timeout(std::time::Duration::from_secs(1), body.collect()).await {
        Ok(Ok(c)) => c.to_bytes(),
        _ => Bytes::new(),
    };
    Answer::Deny {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

impl Decision {
    /// A decision refused before any step ran.
    fn refused(request_id: &Arc<str>, r: Reject) -> Self {
        Self {
            request_id: request_id.clone(),
            grpc: false,
            facts: None,
            route: None,
            identity: crate::decide::Identity::NotReached,
            ruling: None,
            result: Err(r),
            explain: Vec::new(),
            upstream_headers: Vec::new(),
        }
    }
}
