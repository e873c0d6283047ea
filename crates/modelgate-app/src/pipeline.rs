//! One configuration's request pipeline, built once per (re)load and swapped
//! whole: in-flight requests finish on the pipeline they started with.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderName;
use http::header::AUTHORIZATION;
use modelgate_audit::DecisionLog;
use modelgate_authn::{Authenticator, KeyStore};
use modelgate_authz::Authorizer;
use modelgate_config::{Backend, Config, ConfigError, CredentialSource, Listener};
use modelgate_core::ModelName;
use modelgate_route::RouteTable;
use modelgate_upstream::UpstreamTarget;

/// What the pipeline does for one model once a request is permitted.
pub enum ModelBackend {
    Proxy(Arc<UpstreamTarget>),
    Builtin,
}

/// Per-listener settings the pipeline needs.
pub struct ListenerView {
    pub config: Listener,
    /// Headers that may carry credentials; always stripped before forwarding.
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
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Config(Vec<ConfigError>),
    #[error("cannot open the decision log: {0}")]
    DecisionLog(std::io::Error),
}

impl Pipeline {
    /// Builds a pipeline. `decisions` is reused when its sink is unchanged.
    pub fn build(config: Config, keys: Arc<ArcSwap<KeyStore>>, decisions: Option<Arc<DecisionLog>>) -> Result<Self, BuildError> {
        let routes = RouteTable::build(&config).map_err(BuildError::Config)?;
        let authz = Authorizer::new(&config).map_err(BuildError::Config)?;
        let mut backends = HashMap::new();
        let mut errors = Vec::new();
        for (i, m) in config.models.iter().enumerate() {
            let b = match &m.backend {
                Backend::Upstream(u) => match UpstreamTarget::new(u) {
                    Ok(t) => ModelBackend::Proxy(Arc::new(t)),
                    Err(e) => {
                        errors.push(ConfigError::new(format!("models[{i}].upstream"), e, "check the upstream URL"));
                        continue;
                    }
                },
                Backend::Builtin(_) => ModelBackend::Builtin,
            };
            backends.insert(m.name.clone(), b);
        }
        if !errors.is_empty() {
            return Err(BuildError::Config(errors));
        }
        let decisions = match decisions {
            Some(d) if d.sink() == &config.log.decisions => d,
            _ => Arc::new(DecisionLog::open(&config.log.decisions).map_err(BuildError::DecisionLog)?),
        };
        let listeners = config
            .listeners
            .iter()
            .map(|l| ListenerView {
                credential_headers: credential_headers(&l.credentials),
                config: l.clone(),
            })
            .collect();
        let authn = Authenticator::new(config.auth.api_keys.as_ref().map(|_| keys));
        Ok(Self {
            routes,
            authn,
            authz,
            backends,
            listeners,
            decisions,
            config,
        })
    }
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
