//! The route table built from configuration, and resolution of one request.

use std::collections::{BTreeSet, HashMap};

use http::Method;
use modelgate_config::{Config, ConfigError, PathPattern};
use modelgate_core::{ModelName, Operation, Protocol, Reject};

use crate::protocol_path::{ParsedPath, parse_protocol_path};

/// Which model a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// No model: a server-level operation answered by modelgate itself.
    None,
    /// A configured model that speaks this protocol on this host.
    Known(ModelName),
    /// A name that is not a configured model here; answered 404 *after*
    /// authentication, so unauthenticated clients cannot list models.
    Unknown(String),
}

impl ModelRef {
    pub fn known(&self) -> Option<&ModelName> {
        match self {
            ModelRef::Known(m) => Some(m),
            _ => None,
        }
    }

    /// Name for logs: the model, the unknown name as sent, or empty.
    pub fn log_name(&self) -> &str {
        match self {
            ModelRef::None => "",
            ModelRef::Known(m) => m.as_str(),
            ModelRef::Unknown(s) => s,
        }
    }
}

/// The outcome of routing one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub protocol: Protocol,
    pub operation: Operation,
    pub model: ModelRef,
    pub version: Option<String>,
    /// The model is named in the body; call [`RouteTable::bind_body_model`].
    pub model_in_body: bool,
    /// The path to send upstream (normalised, rewritten by prefix routes).
    pub upstream_path: String,
    /// No credential is needed (public path or public operation).
    pub public: bool,
}

struct ModelEntry {
    protocols: BTreeSet<Protocol>,
    hosts: Vec<String>,
    public_operations: BTreeSet<Operation>,
}

struct PrefixEntry {
    prefix: String,
    rewrite: String,
    methods: Option<Vec<Method>>,
    model: ModelName,
}

/// Routes for one configuration. Immutable; rebuilt on reload.
pub struct RouteTable {
    /// Keyed by configured names only; looked up with client-sent ones
    /// (foldhash, seeded per process: cheaper than SipHash for short names,
    /// and no lookup can grow or degrade a map it cannot insert into).
    models: HashMap<ModelName, ModelEntry, foldhash::fast::RandomState>,
    prefixes: Vec<PrefixEntry>,
    public_paths: Vec<PathPattern>,
    any_openai: bool,
}

/// A `HeaderName` constant: a lookup does not parse the name each time.
const SELDON_MODEL: http::HeaderName = http::HeaderName::from_static("seldon-model");

/// Whether `path` (normalised) is modelgate's admin API or UI: `/admin` or
/// below it. Such paths are never forwarded; the caller serves them only on
/// the admin listener (or on public listeners with `admin.ui.on_public`).
pub fn is_admin_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// The route of an admin path: a server operation that needs the admin role.
fn admin_route(path: &str) -> RouteMatch {
    RouteMatch {
        protocol: Protocol::Admin,
        operation: Operation::Admin,
        model: ModelRef::None,
        version: None,
        model_in_body: false,
        upstream_path: path.to_string(),
        public: false,
    }
}

impl RouteTable {
    /// Builds the table, checking that every prefix route rewrites onto a
    /// protocol path of its own model.
    pub fn build(cfg: &Config) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut prefixes = Vec::new();
        for (mi, m) in cfg.models.iter().enumerate() {
            for (ri, r) in m.routes.iter().enumerate() {
                let key = format!("models[{mi}].routes[{ri}].rewrite");
                match parse_protocol_path(&r.rewrite, false) {
                    Some(parsed)
                        if parsed.model == Some(m.name.as_str())
                            && m.protocols.contains(&parsed.protocol) => {}
                    Some(parsed) if parsed.model != Some(m.name.as_str()) => {
                        errors.push(ConfigError::new(
                            key,
                            format!("{} names a different model than {}", r.rewrite, m.name),
                            format!(
                                "rewrite onto a path of model {}, e.g. /v1/models/{}:predict",
                                m.name, m.name
                            ),
                        ))
                    }
                    Some(parsed) => errors.push(ConfigError::new(
                        key,
                        format!(
                            "{} is a {} path but the model does not enable {}",
                            r.rewrite, parsed.protocol, parsed.protocol
                        ),
                        format!("add {} to models[{mi}].protocols", parsed.protocol),
                    )),
                    None => errors.push(ConfigError::new(
                        key,
                        format!("{} is not a KServe V1 or V2 model path", r.rewrite),
                        "rewrite onto /v1/models/<model>:predict or /v2/models/<model>/infer",
                    )),
                }
                prefixes.push(PrefixEntry {
                    prefix: r.prefix.clone(),
                    rewrite: r.rewrite.clone(),
                    methods: r.methods.clone(),
                    model: m.name.clone(),
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.prefix.len()));
        let models = cfg
            .models
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    ModelEntry {
                        protocols: m.protocols.clone(),
                        hosts: m.hosts.clone(),
                        public_operations: m.public_operations.clone(),
                    },
                )
            })
            .collect();
        Ok(Self {
            models,
            prefixes,
            public_paths: cfg.auth.public_paths.clone(),
            any_openai: cfg
                .models
                .iter()
                .any(|m| m.protocols.contains(&Protocol::OpenAi)),
        })
    }

    /// Routes a request whose path is already normalised. `host` is normalised
    /// (lower-case, no port). Unknown paths are `NotFound` and never forwarded.
    pub fn resolve(
        &self,
        method: &Method,
        path: &str,
        host: Option<&str>,
        headers: &http::HeaderMap,
        grpc: bool,
    ) -> Result<RouteMatch, Reject> {
        if is_admin_path(path) {
            return Ok(admin_route(path));
        }
        let (upstream_path, prefix_model) = match self.prefix_route(method, path, grpc)? {
            Some((rewritten, model)) => (rewritten, Some(model)),
            None => (path.to_string(), None),
        };
        let Some(parsed) = parse_protocol_path(&upstream_path, grpc) else {
            return Err(not_found_path(grpc));
        };
        if method != parsed.method {
            return Err(Reject::MethodNotAllowed);
        }
        let ParsedPath {
            mut protocol,
            mut operation,
            model,
            version,
            model_in_body,
            ..
        } = parsed;
        let header_model = seldon_model(headers)?;
        let mut model_ref = match (model, &header_model) {
            (Some(m), Some(h)) if m != h.as_str() => {
                return Err(Reject::BadRequest(format!(
                    "the seldon-model header names {h} but the path names {m}"
                )));
            }
            (Some(m), _) => self.lookup(m, protocol, host),
            // A public server-level path (health, metadata, lists) is answered
            // by modelgate itself: the header must not turn an unauthenticated
            // probe into a request forwarded to a model's upstream.
            (None, Some(_)) if !operation.is_model_scoped() && self.public_path(path) => {
                ModelRef::None
            }
            (None, Some(h)) if !model_in_body => self.lookup(h.as_str(), protocol, host),
            (None, _) => ModelRef::None,
        };
        if let Some(pm) = prefix_model {
            model_ref = ModelRef::Known(pm);
        }
        // `GET /v1/models/{m}` is KServe readiness, or OpenAI's model retrieval
        // for models that speak only the OpenAI API.
        if protocol == Protocol::V1
            && operation == Operation::ModelReady
            && matches!(model_ref, ModelRef::Unknown(_))
            && let Some(m) = model
            && let Ok(n) = ModelName::parse(m)
            && self.speaks(&n, Protocol::OpenAi, host)
        {
            protocol = Protocol::OpenAi;
            operation = Operation::ModelMetadata;
            model_ref = ModelRef::Known(n);
        }
        if protocol == Protocol::V1 && operation == Operation::ListModels && self.any_openai {
            protocol = Protocol::OpenAi;
        }
        let public = self.is_public(path, operation, &model_ref);
        Ok(RouteMatch {
            protocol,
            operation,
            model: model_ref,
            version: version.map(str::to_string),
            model_in_body,
            upstream_path,
            public,
        })
    }

    /// Binds the model named in the body (OpenAI `model`, gRPC `model_name`).
    pub fn bind_body_model(
        &self,
        m: &mut RouteMatch,
        name: &str,
        host: Option<&str>,
        headers: &http::HeaderMap,
    ) -> Result<(), Reject> {
        if let Some(h) = seldon_model(headers)?
            && h.as_str() != name
        {
            return Err(Reject::BadRequest(format!(
                "the seldon-model header names {h} but the request body names {name}"
            )));
        }
        m.model = self.lookup(name, m.protocol, host);
        m.public = m.public || self.is_public("", m.operation, &m.model);
        Ok(())
    }

    /// Every configured name is a valid [`ModelName`], so a name found in
    /// the table needs no parsing; the configured name is shared, not copied.
    fn lookup(&self, name: &str, protocol: Protocol, host: Option<&str>) -> ModelRef {
        match self.models.get_key_value(name) {
            Some((n, e)) if e.protocols.contains(&protocol) && host_allowed(&e.hosts, host) => {
                ModelRef::Known(n.clone())
            }
            _ => ModelRef::Unknown(sanitize(name)),
        }
    }

    fn speaks(&self, name: &ModelName, protocol: Protocol, host: Option<&str>) -> bool {
        self.models
            .get(name)
            .is_some_and(|e| e.protocols.contains(&protocol) && host_allowed(&e.hosts, host))
    }

    fn public_path(&self, path: &str) -> bool {
        !path.is_empty() && self.public_paths.iter().any(|p| p.matches(path))
    }

    fn is_public(&self, path: &str, op: Operation, model: &ModelRef) -> bool {
        if self.public_path(path) {
            return true;
        }
        match model {
            ModelRef::Known(m) => self
                .models
                .get(m)
                .is_some_and(|e| e.public_operations.contains(&op)),
            _ => false,
        }
    }

    fn prefix_route(
        &self,
        method: &Method,
        path: &str,
        grpc: bool,
    ) -> Result<Option<(String, ModelName)>, Reject> {
        if grpc {
            return Ok(None);
        }
        for e in &self.prefixes {
            let rest = match path.strip_prefix(e.prefix.as_str()) {
                Some("") => "",
                Some(r) if r.starts_with('/') => r,
                _ => continue,
            };
            if let Some(ms) = &e.methods
                && !ms.contains(method)
            {
                return Err(Reject::MethodNotAllowed);
            }
            let rest = rest.trim_start_matches('/');
            let rewritten = if rest.is_empty() {
                e.rewrite.clone()
            } else {
                format!("{}/{}", e.rewrite.trim_end_matches('/'), rest)
            };
            return Ok(Some((rewritten, e.model.clone())));
        }
        Ok(None)
    }
}

fn not_found_path(grpc: bool) -> Reject {
    if grpc {
        Reject::MethodNotAllowed
    } else {
        Reject::NotFound("no route for this path".into())
    }
}

fn seldon_model(headers: &http::HeaderMap) -> Result<Option<ModelName>, Reject> {
    let mut values = headers.get_all(SELDON_MODEL).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Reject::BadRequest(
            "more than one seldon-model header".into(),
        ));
    }
    let s = v
        .to_str()
        .map_err(|_| Reject::BadRequest("invalid seldon-model header".into()))?;
    ModelName::parse(s.trim())
        .map(Some)
        .map_err(|e| Reject::BadRequest(format!("invalid seldon-model header: {e}")))
}

fn host_allowed(hosts: &[String], host: Option<&str>) -> bool {
    if hosts.is_empty() {
        return true;
    }
    let Some(host) = host else { return false };
    hosts.iter().any(|h| match h.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len() + 1
                && host.ends_with(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        }
        None => h == host,
    })
}

/// Keeps an unknown model name printable and short for messages and logs.
fn sanitize(name: &str) -> String {
    name.chars()
        .take(128)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}
