//! The file's shape as written: serde types that reject unknown keys. They are
//! converted once into the validated types of [`crate::types`].

use serde::Deserialize;

use crate::units::RawSize;

/// A value that may be written as one item or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub address: String,
    #[serde(default)]
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub http2: Option<bool>,
    #[serde(default)]
    pub max_body_bytes: Option<RawSize>,
    #[serde(default)]
    pub header_read_timeout: Option<String>,
    #[serde(default)]
    pub drain_timeout: Option<String>,
    #[serde(default)]
    pub credentials: Option<Vec<RawCredentialSource>>,
    #[serde(default)]
    pub trusted_proxies: Option<Vec<String>>,
    /// See [`crate::Listener::istio_compat`].
    #[serde(default)]
    pub istio_compat: Option<bool>,
    /// Connection and body deadlines and caps; see [`crate::limits`].
    #[serde(default)]
    pub limits: Option<RawLimits>,
    /// Forward-auth endpoints; see [`crate::forward_auth`].
    #[serde(default)]
    pub forward_auth: Option<Vec<crate::forward_auth::RawForwardAuth>>,
}

/// `listen[].limits`: every key optional, defaults in [`crate::Limits`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    #[serde(default)]
    pub max_connections: Option<u64>,
    #[serde(default)]
    pub idle_timeout: Option<String>,
    #[serde(default)]
    pub body_read_timeout: Option<String>,
    #[serde(default)]
    pub body_idle_timeout: Option<String>,
    #[serde(default)]
    pub max_concurrent_streams: Option<u64>,
    #[serde(default)]
    pub h2_keepalive_interval: Option<String>,
    #[serde(default)]
    pub h2_keepalive_timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
    #[serde(default)]
    pub client_ca: Option<String>,
    #[serde(default)]
    pub require_client_cert: Option<bool>,
}

/// Where an API key may be sent (Authorino's `credentials` vocabulary).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawCredentialSource {
    /// `Authorization: <scheme> <key>`, e.g. `Bearer` or `APIKEY`.
    AuthorizationHeader(String),
    /// A header carrying the key alone, e.g. `x-api-key`.
    CustomHeader(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(default)]
    pub address: Option<String>,
    /// Who may use the admin API and UI (`crate::admin`).
    #[serde(default)]
    pub roles: Option<crate::admin::RawAdminRoles>,
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub ui: Option<crate::admin::RawAdminUi>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub name: String,
    #[serde(default)]
    pub protocols: Option<Vec<String>>,
    #[serde(default)]
    pub upstream: Option<RawUpstream>,
    #[serde(default)]
    pub builtin: Option<RawBuiltin>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    #[serde(default)]
    pub public_operations: Option<Vec<String>>,
    /// SubjectAccessReview hook (see `kube_access.rs`).
    #[serde(default)]
    pub kubernetes_access: Option<crate::kube_access::RawKubernetesAccess>,
    /// `false`: no wristband for this model (see [`crate::wristband`]).
    #[serde(default)]
    pub wristband: Option<bool>,
    /// Price per 1000 tokens (see [`crate::cost`]).
    #[serde(default)]
    pub cost: Option<crate::cost::RawCost>,
    /// Limits on this model, all callers together (shorthand for
    /// `limits.per_model.<name>`).
    #[serde(default)]
    pub limits: Option<crate::rate_limits::RawLimitSet>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    #[serde(default)]
    pub url: Option<OneOrMany<String>>,
    /// Several endpoints (same as a list under `url`).
    #[serde(default)]
    pub urls: Option<Vec<String>>,
    #[serde(default)]
    pub grpc_url: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub connect_timeout: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub http2: Option<bool>,
    /// LLM upstream keys (credentials, alias, retries, streaming); see
    /// [`crate::upstream`].
    #[serde(default)]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub stream_idle_timeout: Option<String>,
    #[serde(default)]
    pub cooloff: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuiltin {
    pub dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub prefix: String,
    pub rewrite: String,
    #[serde(default)]
    pub methods: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    pub realm: Option<String>,
    #[serde(default)]
    pub api_keys: Option<RawApiKeys>,
    #[serde(default)]
    pub identity_header: Option<String>,
    #[serde(default)]
    pub strip_headers: Option<Vec<String>>,
    #[serde(default)]
    pub public_paths: Option<Vec<String>>,
    /// Identity sources beyond API keys (see [`crate::identity`]).
    #[serde(default)]
    pub order: Option<Vec<String>>,
    #[serde(default)]
    pub jwks: Option<crate::identity::RawJwks>,
    #[serde(default)]
    pub jwt: Option<Vec<crate::identity::RawJwtRule>>,
    #[serde(default)]
    pub kubernetes: Option<crate::identity::RawKubernetes>,
    #[serde(default)]
    pub introspection: Option<crate::identity::RawIntrospection>,
    #[serde(default)]
    pub mtls: Option<crate::identity::RawMtls>,
    /// Browser sign-in (see [`crate::identity::RawSignIn`]).
    #[serde(default)]
    pub sign_in: Option<crate::identity::RawSignIn>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKeys {
    pub file: String,
    /// Keys from labelled Kubernetes Secrets (see [`crate::kube_keys`]).
    #[serde(default)]
    pub kubernetes: Option<crate::kube_keys::RawKubeKeys>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub decisions: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    #[serde(default)]
    pub io_threads: Option<usize>,
    #[serde(default)]
    pub inference_threads: Option<usize>,
    #[serde(default)]
    pub queue_depth: Option<usize>,
}
