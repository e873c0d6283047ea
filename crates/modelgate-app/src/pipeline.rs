//! One configuration's request pipeline, built once per (re)load and swapped
//! whole: in-flight requests finish on the pipeline they started with.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderName;
use http::header::AUTHORIZATION;
use modelgate_audit::DecisionLog;
use modelgate_audit::Metrics;
use modelgate_authn::wristband::Wristbands;
use modelgate_authn::{Authenticator, IdentityMetrics, KeyStore};
use modelgate_authz::Authorizer;
use modelgate_config::{Backend, Config, ConfigError, CredentialSource, Listener};
use modelgate_core::ModelName;
use modelgate_route::RouteTable;
use modelgate_upstream::UpstreamTarget;
use modelgate_upstream::metrics::UpstreamMetrics;

use crate::decide::{Decider, Listeners, Providers, RemoteModels};

/// What the pipeline does for one model once a request is permitted.
pub enum ModelBackend {
    Proxy(Arc<UpstreamTarget>),
    Builtin,
}

/// Per-listener settings the pipeline needs.
pub struct ListenerView {
    pub config: Listener,
    /// Headers that may carry credentials (API keys, tokens); stripped before
    /// forwarding unless a JWT rule forwards its token.
    pub credential_headers: Vec<HeaderName>,
}

pub struct Pipeline {
    pub config: Config,
    pub routes: RouteTable,
    pub authn: Authenticator,
    pub authz: Authorizer,
    pub backends: HashMap<ModelName, ModelBackend>,
    pub listeners: Vec<ListenerView>,
    pub decisions: Arc<DecisionLog>,
    /// Identity headers to strip from every request: `auth.strip_headers`,
    /// `auth.identity_header` and the JWT rules' claim headers.
    pub strip_headers: Vec<HeaderName>,
    /// Identity-source metrics, shared by every pipeline of the process.
    pub identity_metrics: IdentityMetrics,
    /// The wristband signer (`wristband:`); its key files are read per build,
    /// so a reload picks up rotated keys.
    pub wristband: Option<Wristbands>,
    /// External authorizers (`extension_providers`), with their pools.
    pub providers: Arc<Providers>,
    /// The models with remote checks, by name.
    pub remote: RemoteModels,
    /// Upstream attempt and GenAI metrics, shared likewise.
    pub upstream_metrics: UpstreamMetrics,
    /// The rate-limit step (`limits:`), with its counter store.
    pub limiter: Option<Arc<crate::ratelimit::Limiter>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Config(Vec<ConfigError>),
    #[error("cannot open the decision log: {0}")]
    DecisionLog(std::io::Error),
}

impl Pipeline {
    /// The decision function over this pipeline's routes, identity sources,
    /// policies and listeners, for requests on the public listeners (admin
    /// paths route only with `admin.ui.on_public`).
    pub fn decider(&self) -> Decider<'_> {
        Decider {
            routes: &self.routes,
            authn: &self.authn,
            authz: &self.authz,
            models: &self.config.models,
            remote: &self.remote,
            listeners: Listeners::Views(&self.listeners),
            providers: &self.providers,
            admin_routes: self.config.admin.on_public,
        }
    }

    /// [`Pipeline::decider`] for the admin console, where admin paths route.
    pub fn admin_decider(&self) -> Decider<'_> {
        Decider {
            admin_routes: true,
            ..self.decider()
        }
    }

    /// Builds a pipeline. `decisions` is reused when its sink is unchanged.
    pub fn build(
        config: Config,
        keys: Arc<ArcSwap<KeyStore>>,
        decisions: Option<Arc<DecisionLog>>,
    ) -> Result<Self, BuildError> {
        Self::build_after(config, keys, decisions, None)
    }

    /// Builds the pipeline that replaces `previous` (on reload): its identity
    /// metrics and unchanged JWKS caches carry over, so keys stay warm.
    pub fn build_after(
        config: Config,
        keys: Arc<ArcSwap<KeyStore>>,
        decisions: Option<Arc<DecisionLog>>,
        previous: Option<&Pipeline>,
    ) -> Result<Self, BuildError> {
        let routes = RouteTable::build(&config).map_err(BuildError::Config)?;
        let wristband = match &config.wristband {
            Some(w) => Some(Wristbands::build(w).map_err(BuildError::Config)?),
            None => None,
        };
        let authz = Authorizer::new(&config).map_err(BuildError::Config)?;
        let upstream_metrics = previous
            .map(|p| p.upstream_metrics.clone())
            .unwrap_or_default();
        let mut backends = HashMap::new();
        let mut errors = Vec::new();
        for (i, m) in config.models.iter().enumerate() {
            let b = match &m.backend {
                Backend::Upstream(u) => {
                    match UpstreamTarget::new(u, m.name.as_str(), &upstream_metrics) {
                        Ok(t) => ModelBackend::Proxy(Arc::new(t)),
                        Err(e) => {
                            errors.push(ConfigError::new(
                                format!("models[{i}].upstream"),
                                e,
                                "check the upstream URL",
                            ));
                            continue;
                        }
                    }
                }
                Backend::Builtin(_) => ModelBackend::Builtin,
            };
            backends.insert(m.name.clone(), b);
        }
        if !errors.is_empty() {
            return Err(BuildError::Config(errors));
        }
        let decisions = match decisions {
            Some(d) if d.sink() == &config.log.decisions => d,
            _ => {
                Arc::new(DecisionLog::open(&config.log.decisions).map_err(BuildError::DecisionLog)?)
            }
        };
        let identity_metrics = previous
            .map(|p| p.identity_metrics.clone())
            .unwrap_or_default();
        let authn = Authenticator::build(
            &config.auth,
            config.auth.api_keys.as_ref().map(|_| keys),
            &identity_metrics,
            previous.map(|p| &p.authn),
            &modelgate_authn::hyper_fetch,
        )
        .map_err(BuildError::Config)?;
        authn.start();
        // Per request these lists only get read: precompute them here.
        let token_headers = authn.token_headers();
        let listeners = config
            .listeners
            .iter()
            .map(|l| {
                let mut credential_headers = credential_headers(&l.credentials);
                for h in &token_headers {
                    if !credential_headers.contains(h) {
                        credential_headers.push(h.clone());
                    }
                }
                ListenerView {
                    credential_headers,
                    config: l.clone(),
                }
            })
            .collect();
        let mut strip_headers = config.auth.strip_headers.clone();
        strip_headers.extend(config.auth.identity_header.iter().cloned());
        strip_headers.extend(authn.output_headers().iter().cloned());
        // A client's wristband header never reaches an upstream.
        strip_headers.extend(wristband.as_ref().map(|w| w.header().clone()));
        let providers =
            Providers::build_after(&config.extension_providers, previous.map(|p| &*p.providers));
        let limiter = match &config.rate_limits {
            Some(r) => Some(Arc::new(
                crate::ratelimit::Limiter::build(
                    r,
                    config.auth.api_keys.as_ref().map(|k| k.file.as_path()),
                    previous.and_then(|p| p.limiter.as_deref()),
                )
                .map_err(|e| {
                    BuildError::Config(vec![ConfigError::new(
                        "limits.store.redis",
                        e,
                        "check limits.store.redis.url",
                    )])
                })?,
            )),
            None => None,
        };
        Ok(Self {
            limiter,
            remote: RemoteModels::build(&config.models),
            providers,
            routes,
            authn,
            authz,
            backends,
            listeners,
            decisions,
            strip_headers,
            identity_metrics,
            wristband,
            upstream_metrics,
            config,
        })
    }
}

/// Registers the upstream metrics (once per process). The GenAI names follow
/// OpenTelemetry (`gen_ai.server.*`), under the registry's `modelgate_` prefix.
pub fn register_upstream_metrics(metrics: &Metrics, m: &UpstreamMetrics) {
    metrics.register(
        "upstream_attempts",
        "Upstream attempts by model, endpoint index (in upstream.url/urls; grpc) and result",
        m.attempts.clone(),
    );
    metrics.register(
        "gen_ai_server_time_to_first_token_seconds",
        "OpenAI requests: time from the request to the first byte of the answer",
        m.time_to_first_token.clone(),
    );
    metrics.register(
        "gen_ai_server_request_duration_seconds",
        "OpenAI requests: time from the request to the last byte of the answer",
        m.request_duration.clone(),
    );
}

/// Registers the identity-source metrics (once per process).
pub fn register_identity_metrics(metrics: &Metrics, m: &IdentityMetrics) {
    metrics.register(
        "jwks_fetches",
        "JWKS fetches by provider, result and reason",
        m.jwks_fetches.clone(),
    );
    metrics.register(
        "jwks_keys",
        "Usable keys in each provider's cached JWKS (0: its tokens fail closed)",
        m.jwks_keys.clone(),
    );
    metrics.register(
        "jwks_last_success_timestamp_seconds",
        "Unix time of each provider's last successful JWKS fetch (age = time() - value)",
        m.jwks_last_success.clone(),
    );
    metrics.register(
        "identity_remote_checks",
        "TokenReview and introspection answers by source and result",
        m.remote_checks.clone(),
    );
}

fn credential_headers(sources: &[CredentialSource]) -> Vec<HeaderName> {
    let mut out: Vec<HeaderName> = Vec::new();
    for s in sources {
        let h = match s {
            CredentialSource::AuthorizationHeader { .. } => AUTHORIZATION,
            CredentialSource::Header { name } => name.clone(),
        };
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out
}
