//! The one decision function. Every caller — `serve`, `modelgate check`,
//! and the ext_authz, forward-auth and admin-explainer adapters — hands it
//! what it was asked ([`Ask`]) and gets back the whole [`Decision`]: facts,
//! route, authentication outcome, authorization verdict (naming its rule)
//! and, on request, the explanation. It never reads the body itself and never
//! calls the backend: the body model, and the body an external authorizer
//! asks for, come from the adapter through [`BodyModel`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{HeaderMap, Method};
use modelgate_authn::{Authenticated, Authenticator};
use modelgate_authz::{Authorizer, Caller, Permit, Ruling};
use modelgate_config::Listener;
use modelgate_core::{AuthFailure, PeerIdentity, Principal, Reject, RequestFacts};
use modelgate_route::{RouteMatch, RouteTable};

use crate::body::check_declared_length;
use crate::facts;

/// What an adapter was asked: the request head as it arrived, not yet
/// normalised.
#[derive(Debug)]
pub struct Ask {
    pub method: Method,
    /// The path as sent (no query), before normalisation.
    pub path: String,
    pub query: Option<String>,
    /// `:authority` (HTTP/2) or the absolute-form authority, if any; else the
    /// `Host` header is used.
    pub authority: Option<String>,
    pub headers: HeaderMap,
    pub client: SocketAddr,
    pub local: SocketAddr,
    /// The verified client certificate, on mTLS listeners.
    pub peer: Option<PeerIdentity>,
    /// Index of the listener (in `listen:`) the request arrived on.
    pub listener: usize,
    pub received: Instant,
}

/// Where the identity comes from.
#[derive(Debug, Clone)]
pub enum Claimed {
    /// Verify the credential the request carries (what `serve` does).
    FromRequest,
    /// Take this identity on trust (`check --identity/--claims`): judged like
    /// a verified one, never given a [`Permit`].
    Assumed(Arc<Principal>),
    /// The adapter already knows the credential fails.
    Refused(AuthFailure),
}

/// The model named in the request body (OpenAI `model`, gRPC `model_name`),
/// asked for only when the route needs it, after authentication.
pub trait BodyModel {
    fn model(&mut self, grpc: bool) -> impl Future<Output = Result<String, Reject>>;

    /// The body for an external authorizer (`includeRequestBodyInCheck`):
    /// at most `max` bytes. A longer body is refused with 413 unless
    /// `allow_partial` (then its first `max` bytes, marked partial). What is
    /// read is kept for the upstream. `None`: this adapter has no body.
    fn for_check(
        &mut self,
        _max: u64,
        _allow_partial: bool,
    ) -> impl Future<Output = Result<Option<CheckBody>, Reject>> {
        std::future::ready(Ok(None))
    }
}

/// The request body sent with an external check.
#[derive(Debug, Clone)]
pub struct CheckBody {
    /// At most `maxRequestBytes`.
    pub bytes: bytes::Bytes,
    /// The body was longer and was cut (`x-envoy-auth-partial-body: true`).
    pub partial: bool,
}

impl CheckBody {
    /// What Envoy sends for a body of which `bytes` were read: at most
    /// `max` bytes; more is a 413 unless `allow_partial`. An empty body is
    /// sent as none.
    pub fn cut(bytes: bytes::Bytes, max: u64, allow_partial: bool) -> Result<Option<Self>, Reject> {
        let max_len = usize::try_from(max).unwrap_or(usize::MAX);
        if bytes.is_empty() {
            Ok(None)
        } else if bytes.len() <= max_len {
            Ok(Some(Self {
                bytes,
                partial: false,
            }))
        } else if allow_partial {
            Ok(Some(Self {
                bytes: bytes.slice(..max_len),
                partial: true,
            }))
        } else {
            Err(Reject::PayloadTooLarge { limit: max })
        }
    }
}

/// An adapter with no body (Envoy ext_authz without `with_request_body`):
/// routes that name their model in the body are refused with a clear reason.
pub struct NoBody;

impl BodyModel for NoBody {
    async fn model(&mut self, _grpc: bool) -> Result<String, Reject> {
        Err(Reject::BadRequest(
            "this route names its model in the request body, which was not passed to the decision"
                .into(),
        ))
    }
}

/// An adapter that already extracted the body model (or knows there is none).
pub struct GivenModel(pub Option<String>);

impl BodyModel for GivenModel {
    async fn model(&mut self, _grpc: bool) -> Result<String, Reject> {
        self.0.clone().ok_or_else(|| {
            Reject::BadRequest("this route names its model in the body: pass the model".into())
        })
    }
}

/// The authentication outcome.
#[derive(Debug, Clone)]
pub enum Identity {
    /// The decision stopped before authentication.
    NotReached,
    /// A public route: no credential asked for.
    NotNeeded,
    /// No credential, on an Istio-compatible listener: the policies decide.
    Anonymous,
    Verified(Authenticated),
    Assumed(Arc<Principal>),
    Failed(AuthFailure),
}

impl Identity {
    pub fn principal(&self) -> Option<&Principal> {
        self.shared_principal().map(|p| &**p)
    }

    /// [`Self::principal`], shared.
    pub fn shared_principal(&self) -> Option<&Arc<Principal>> {
        match self {
            Identity::Verified(a) => Some(a.shared_principal()),
            Identity::Assumed(p) => Some(p),
            _ => None,
        }
    }
}

/// Everything decided about one request.
#[derive(Debug)]
pub struct Decision {
    pub request_id: Arc<str>,
    /// Whether the request is gRPC (known even when the head was refused).
    pub grpc: bool,
    /// The normalised request; `None` if the head was refused.
    pub facts: Option<RequestFacts>,
    /// Model, protocol, operation and upstream path; `None` if not routed.
    pub route: Option<RouteMatch>,
    pub identity: Identity,
    /// The authorization ruling: verdict with its basis and policy, dry-run
    /// and AUDIT policies; `None` if the decision stopped before authorization.
    pub ruling: Option<Ruling>,
    /// `Ok` when allowed — with the [`Permit`] unless the identity was
    /// assumed — else the refusal the client gets.
    pub result: Result<Option<Permit>, Reject>,
    /// One line per step, when asked for.
    pub explain: Vec<String>,
    /// Headers an external authorizer asked to add upstream on allow
    /// (`headersToUpstreamOnAllow`), set after the header policy strips
    /// client-sent identity headers.
    pub upstream_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// The configuration a decision reads: routes, identity sources, policies
/// and the listeners.
pub struct Decider<'a> {
    pub routes: &'a RouteTable,
    pub authn: &'a Authenticator,
    pub authz: &'a Authorizer,
    /// The configured models (to tell, before a body is read, whether it can
    /// change the outcome).
    pub models: &'a [modelgate_config::Model],
    /// The models with remote checks, by name (decide/remote.rs).
    pub remote: &'a RemoteModels,
    pub listeners: Listeners<'a>,
    /// The external authorizers CUSTOM policies name (decide/custom.rs).
    pub providers: &'a Providers,
    /// Whether `/admin` paths route (to the admin-role step) for this
    /// caller: on the admin listener, and on public listeners with
    /// `admin.ui.on_public`. Otherwise they are unknown paths (404).
    pub admin_routes: bool,
}

/// The listener settings, as the serving pipeline or a bare configuration
/// holds them.
#[derive(Clone, Copy)]
pub enum Listeners<'a> {
    Views(&'a [crate::pipeline::ListenerView]),
    Configs(&'a [Listener]),
}

impl<'a> Listeners<'a> {
    fn get(self, i: usize) -> Option<&'a Listener> {
        match self {
            Listeners::Views(v) => v.get(i).map(|l| &l.config),
            Listeners::Configs(c) => c.get(i),
        }
    }
}

impl<'c> Decider<'c> {
    /// Decides one request. `explain` collects the reasons (also collected
    /// when `modelgate_authz` debug logging is on).
    ///
    /// The steps that do no I/O (reading the head into facts, routing) run
    /// when this is called, so the future holds the facts and the route but
    /// never the [`Ask`] (every byte of a future is copied when it is moved
    /// or boxed: it is kept small).
    pub fn decide<'s, B: BodyModel>(
        &'s self,
        ask: Ask,
        claimed: Claimed,
        body: &'s mut B,
        explain: bool,
    ) -> impl Future<Output = Decision> + 's {
        let request_id = facts::request_id(&ask.headers);
        let mut d = Decision {
            grpc: facts::is_grpc(&ask.headers),
            request_id: request_id.clone(),
            facts: None,
            route: None,
            identity: Identity::NotReached,
            ruling: None,
            result: Ok(None),
            explain: Vec::new(),
            upstream_headers: Vec::new(),
        };
        let explain =
            explain || tracing::enabled!(target: "modelgate_authz", tracing::Level::DEBUG);
        let read = self.read(ask, request_id, &mut d);
        async move {
            d.result = match read {
                Ok(listener) => self.steps(listener, claimed, body, explain, &mut d).await,
                Err(r) => Err(r),
            };
            if let (true, Some(v)) = (
                tracing::enabled!(target: "modelgate_authz", tracing::Level::DEBUG),
                &d.ruling,
            ) {
                tracing::debug!(target: "modelgate_authz", request_id = %d.request_id, decision = ?v.verdict, explain = %d.explain.join("; "), "authorization decision");
            }
            d
        }
    }

    /// Steps 1 and 2, which do no I/O: the head read into `d.facts` and
    /// routed into `d.route`. Returns the listener's settings.
    fn read(
        &self,
        ask: Ask,
        request_id: Arc<str>,
        d: &mut Decision,
    ) -> Result<&'c Listener, Reject> {
        let listener = self
            .listeners
            .get(ask.listener)
            .ok_or(Reject::Unavailable {
                message: "listener is being reconfigured".into(),
                retry_after_secs: Some(1),
            })?;
        // 1. Read: normalise the head; refuse ambiguity and declared oversize.
        let facts = facts::build(ask, request_id, d.grpc).map_err(|(_, r)| r)?;
        let facts = &*d.facts.insert(facts);
        check_declared_length(&facts.headers, listener.max_body_bytes)?;
        // 2. Route: only protocol paths (and, where served, admin paths) exist.
        if !self.admin_routes && modelgate_route::is_admin_path(&facts.path) {
            return Err(if facts.grpc {
                Reject::MethodNotAllowed
            } else {
                Reject::NotFound("no route for this path".into())
            });
        }
        let route = self.routes.resolve(
            &facts.method,
            &facts.path,
            facts.host.as_deref(),
            &facts.headers,
            facts.grpc,
        )?;
        d.route = Some(route);
        Ok(listener)
    }

    /// Steps 3-7, after [`Decider::read`] filled the facts and the route.
    async fn steps<B: BodyModel>(
        &self,
        listener: &Listener,
        claimed: Claimed,
        body: &mut B,
        explain: bool,
        d: &mut Decision,
    ) -> Result<Option<Permit>, Reject> {
        let (Some(facts), Some(route)) = (d.facts.as_ref(), d.route.as_mut()) else {
            return Err(Reject::Internal {
                detail: "decision steps without facts or route".into(),
            });
        };
        // 3. Authenticate, unless the route is public.
        d.identity = self.authenticate(facts, route, claimed, listener).await;
        if let Identity::Failed(f) = &d.identity {
            if explain {
                d.explain
                    .push(format!("authentication failed: {}", f.reason()));
            }
            return Err(Reject::Unauthenticated(f.clone()));
        }
        // 4. Bind the model the body names. A body that cannot change the
        //    outcome (the caller may use no model it could name) is not read.
        if route.model_in_body {
            let caller = caller_of(&d.identity);
            self.authz
                .check_reach(caller, facts, route, self.routes, self.models, listener)?;
            // Boxed: only body-model routes (OpenAI, gRPC) read the body here.
            let name = Box::pin(body.model(facts.grpc)).await?;
            self.routes
                .bind_body_model(route, &name, facts.host.as_deref(), &facts.headers)?;
        }
        // 5. Authorize.
        let caller = caller_of(&d.identity);
        let why = explain.then_some(&mut d.explain);
        let judged = self.authz.judge(caller, facts, route, listener, why);
        let mut ruling = judged.ruling;
        // 6. An external CUSTOM authorizer, first as in Istio (custom.rs).
        let why = explain.then_some(&mut d.explain);
        let tls = listener.tls.is_some();
        // Boxed, and only when a CUSTOM policy asked: its future is not part
        // of every request's.
        let external = if ruling.external.is_some() {
            Box::pin(self.external_check(facts, tls, body, &mut ruling, why)).await
        } else {
            Ok(Vec::new())
        };
        let refusal = match &external {
            Err(r) => Some(r.clone()),
            Ok(_) => ruling.verdict.reject(),
        };
        d.ruling = Some(ruling);
        if let Some(r) = refusal {
            return Err(r);
        }
        // 7. Remote checks the verdict is subject to (decide/remote.rs).
        let why = explain.then_some(&mut d.explain);
        let remote = match self.remote_access(route) {
            // Boxed: only models with remote checks await them.
            Some(access) => Box::pin(self.remote_checks(access, &d.identity, why)).await,
            None => Ok(()),
        };
        if let Err(r) = remote {
            // The record names the refusal, not the ALLOW that came before it.
            if let Some(ruling) = d.ruling.as_mut() {
                ruling.verdict = modelgate_authz::Verdict::Forbidden {
                    basis: modelgate_authz::Basis::AccessReview,
                    policy: None,
                    message: r.client_message(),
                };
            }
            return Err(r);
        }
        d.upstream_headers = external.unwrap_or_default();
        Ok(judged.permit)
    }

    async fn authenticate(
        &self,
        facts: &RequestFacts,
        route: &RouteMatch,
        claimed: Claimed,
        listener: &Listener,
    ) -> Identity {
        if route.public {
            return Identity::NotNeeded;
        }
        let verified = match claimed {
            Claimed::Assumed(p) => return Identity::Assumed(p),
            Claimed::Refused(f) => Err(f),
            Claimed::FromRequest => {
                self.authn
                    .authenticate(facts, &listener.credentials, SystemTime::now())
                    .await
            }
        };
        match verified {
            Ok(a) => Identity::Verified(a),
            // On an Istio-compatible listener a request with no credential at
            // all goes on as anonymous and the policies decide (failing
            // closed); a bad credential is always 401.
            Err(AuthFailure::CredentialNotFound) if listener.istio_compat => Identity::Anonymous,
            Err(f) => Identity::Failed(f),
        }
    }
}

/// Who is asking, as authorization sees it.
fn caller_of(identity: &Identity) -> Caller<'_> {
    match identity {
        Identity::Verified(a) => Caller::Identified(a),
        Identity::Assumed(p) => Caller::Assumed(p),
        Identity::Anonymous => Caller::Anonymous,
        _ => Caller::Public,
    }
}

/// The decision function over a configuration alone — no listeners bound, no
/// decision log, no background refresh — for `modelgate check` and other
/// callers that explain rather than serve. Identity sources are built as
/// `serve` builds them; remote ones are contacted only when a credential
/// needs them.
pub struct Explainer {
    config: modelgate_config::Config,
    routes: RouteTable,
    authn: Authenticator,
    authz: Authorizer,
    providers: Arc<Providers>,
    remote: RemoteModels,
}

impl Explainer {
    /// Compiles `config`; errors are the configuration problems, one a line.
    pub fn build(config: modelgate_config::Config) -> Result<Self, String> {
        let lines = |errs: Vec<modelgate_config::ConfigError>| {
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        };
        let routes = RouteTable::build(&config).map_err(lines)?;
        let authz = Authorizer::new(&config).map_err(lines)?;
        let keys = match &config.auth.api_keys {
            Some(k) => Some(Arc::new(arc_swap::ArcSwap::from_pointee(
                modelgate_authn::KeyStore::load(&k.file)
                    .map_err(|e| format!("auth.api_keys.file: {e}"))?,
            ))),
            None => None,
        };
        let authn = Authenticator::build(
            &config.auth,
            keys,
            &modelgate_authn::IdentityMetrics::default(),
            None,
            &modelgate_authn::hyper_fetch,
        )
        .map_err(lines)?;
        let providers = Providers::build(&config.extension_providers);
        let remote = RemoteModels::build(&config.models);
        Ok(Self {
            remote,
            config,
            routes,
            authn,
            authz,
            providers,
        })
    }

    pub fn config(&self) -> &modelgate_config::Config {
        &self.config
    }

    /// The identity sources (to assume an identity through their mappings).
    pub fn authn(&self) -> &Authenticator {
        &self.authn
    }

    pub fn decider(&self) -> Decider<'_> {
        Decider {
            routes: &self.routes,
            authn: &self.authn,
            authz: &self.authz,
            models: &self.config.models,
            remote: &self.remote,
            listeners: Listeners::Configs(&self.config.listeners),
            providers: &self.providers,
            // `check` explains admin paths as the admin listener sees them.
            admin_routes: true,
        }
    }
}

mod custom;
mod remote;

pub use custom::Providers;
pub use remote::RemoteModels;
#[cfg(test)]
mod tests;
