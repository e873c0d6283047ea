//! Validated configuration: every value here has been checked, so the rest of
//! modelgate never re-checks it.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Uri};
use modelgate_core::{ModelName, Operation, Protocol};

/// A whole, valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listeners: Vec<Listener>,
    pub admin: Admin,
    pub models: Vec<Model>,
    pub auth: Auth,
    /// Authorization policies, in file order (see `docs/policy.md`).
    pub policies: Vec<crate::policy::Policy>,
    pub log: Log,
    pub runtime: Runtime,
    /// Envoy ext_authz service (`ext_authz:`), if configured.
    pub ext_authz: Option<crate::ext_authz::ExtAuthz>,
    /// Signed identity sent upstream (`wristband:`), if configured.
    pub wristband: Option<crate::wristband::Wristband>,
    /// External authorizers CUSTOM policies name (`extension_providers:`).
    pub extension_providers: Vec<crate::providers::ExtensionProvider>,
    /// The rate-limit step's limits (`limits:`); `None`: no rate-limit step.
    pub rate_limits: Option<crate::rate_limits::RateLimits>,
}

impl Config {
    pub fn model(&self, name: &ModelName) -> Option<&Model> {
        self.models.iter().find(|m| &m.name == name)
    }
}

/// One client-facing listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: Option<Tls>,
    /// Serve HTTP/2 (h2c prior knowledge on plain TCP, ALPN `h2` on TLS).
    pub http2: bool,
    pub max_body_bytes: u64,
    pub header_read_timeout: Duration,
    pub drain_timeout: Duration,
    /// Where API keys are read from, in order.
    pub credentials: Vec<CredentialSource>,
    /// Peers whose `X-Forwarded-For` is believed. Empty: none.
    pub trusted_proxies: Vec<IpNet>,
    /// Istio-compatibility: a request with no credential is evaluated by the
    /// policies as anonymous (instead of a 401), and authentication and
    /// authorization refusals are Envoy's plain-text replies
    /// (`RBAC: access denied`). See `docs/policy.md`.
    pub istio_compat: bool,
    /// Connection and body deadlines and caps (`limits:`).
    pub limits: Limits,
    /// Forward-auth endpoints (`forward_auth:`); see [`crate::forward_auth`].
    pub forward_auth: Vec<crate::forward_auth::ForwardAuth>,
}

/// A listener's connection and body limits. Defaults and checks live in
/// [`crate::limits`]; meanings in `docs/config.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections per listener; at the cap, accepting pauses.
    pub max_connections: u32,
    /// A connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// Whole-body deadline for bodies read before authorization (the
    /// OpenAI JSON body, the first gRPC message).
    pub body_read_timeout: Duration,
    /// Longest gap between two chunks of any request body.
    pub body_idle_timeout: Duration,
    /// Concurrent streams per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// HTTP/2 PING interval, and how long to wait for its ACK.
    pub h2_keepalive_interval: Duration,
    pub h2_keepalive_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub require_client_cert: bool,
}

/// Where a credential may be carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `Authorization: <scheme> <credential>`; the scheme matches case-insensitively.
    AuthorizationHeader { scheme: String },
    /// A header that carries the credential alone.
    Header { name: HeaderName },
}

/// An IP network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("invalid IP address {a:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("invalid prefix length {p:?} (0..={max})"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (_, ip) => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The admin listener (`/healthz`, `/readyz`, `/metrics`, and the admin API
/// and UI under `/admin`), and who may use the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub address: SocketAddr,
    /// Identities with the admin role (`admin.roles`, `admin.keys`).
    pub role: crate::admin::AdminRole,
    /// Serve `/admin` on the public listeners too (`admin.ui.on_public`).
    pub on_public: bool,
}

/// One model that clients may call.
#[derive(Debug, Clone)]
pub struct Model {
    pub name: ModelName,
    pub protocols: BTreeSet<Protocol>,
    pub backend: Backend,
    /// Extra path-prefix routes that rewrite onto a protocol path.
    pub routes: Vec<PrefixRoute>,
    /// If non-empty, the model answers only for these hosts (lower-case, no port).
    pub hosts: Vec<String>,
    /// Operations on this model that need no credential (e.g. `model_ready`).
    pub public_operations: BTreeSet<Operation>,
    /// The SubjectAccessReview a caller must pass (`kube_access.rs`).
    pub kubernetes_access: Option<crate::kube_access::KubernetesAccess>,
    /// Send a wristband upstream (when `wristband:` is configured; default on).
    pub wristband: bool,
    /// Price per 1000 tokens (`models[].cost`), for budgets and cost reports.
    pub cost: Option<crate::cost::Cost>,
    /// `models[].limits`: validated into `limits.per_model` (needs `limits:`).
    pub limits: Option<crate::rate_limits::LimitSet>,
}

#[derive(Debug, Clone)]
pub enum Backend {
    Upstream(Upstream),
    Builtin(Builtin),
}

/// A model server modelgate proxies to.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// REST endpoints (scheme + authority), used round-robin.
    pub endpoints: Vec<Uri>,
    /// gRPC endpoint (h2c or h2 over TLS).
    pub grpc: Option<Uri>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// `Host` header sent upstream (seed 002's Host rewrite); default: the endpoint's.
    pub host: Option<HeaderValue>,
    /// Speak HTTP/2 to the REST endpoints.
    pub http2: bool,
    /// Credentials, alias, retries and streaming ([`crate::upstream`]).
    pub llm: Box<crate::upstream::UpstreamExtras>,
}

/// A model served by modelgate's own runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builtin {
    /// Folder holding `model.onnx` (and optionally `model.yaml`).
    pub dir: PathBuf,
}

/// `prefix` (and anything below it) is rewritten onto `rewrite` + remainder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixRoute {
    pub prefix: String,
    pub rewrite: String,
    /// Allowed methods; `None` = any.
    pub methods: Option<Vec<Method>>,
}

/// A path pattern with Istio's string-match meaning: exact, `prefix*`, `*suffix`, or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Any,
}

impl PathPattern {
    pub fn parse(s: &str) -> Self {
        if s == "*" {
            PathPattern::Any
        } else if let Some(p) = s.strip_suffix('*') {
            PathPattern::Prefix(p.to_string())
        } else if let Some(p) = s.strip_prefix('*') {
            PathPattern::Suffix(p.to_string())
        } else {
            PathPattern::Exact(s.to_string())
        }
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(e) => path == e,
            PathPattern::Prefix(p) => path.starts_with(p.as_str()),
            PathPattern::Suffix(s) => path.ends_with(s.as_str()),
            PathPattern::Any => !path.is_empty(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Auth {
    /// `realm` in `WWW-Authenticate`.
    pub realm: String,
    pub api_keys: Option<ApiKeys>,
    /// Header that carries the verified identity upstream (e.g. `kubeflow-userid`).
    pub identity_header: Option<HeaderName>,
    /// Headers removed from every request before it is forwarded (on top of the
    /// built-in list of identity headers).
    pub strip_headers: Vec<HeaderName>,
    /// Paths that need no credential (seed 001's `notPaths`), matched on the
    /// normalised path only.
    pub public_paths: Vec<PathPattern>,
    /// JWT, Kubernetes, introspection and mTLS identity sources, and the
    /// order methods are tried in (see `docs/identity.md`).
    pub identity: crate::identity::Identity,
    /// Browser sign-in (OIDC code flow, session cookie); see `docs/signin.md`.
    pub sign_in: Option<crate::identity::SignIn>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeys {
    pub file: PathBuf,
    /// Keys from labelled Kubernetes Secrets, watched live.
    pub kubernetes: Option<crate::kube_keys::KubeKeys>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// `tracing` filter for operational logs (stderr).
    pub level: String,
    pub format: LogFormat,
    pub decisions: DecisionSink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Where the per-request decision log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionSink {
    Stdout,
    Stderr,
    File(PathBuf),
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runtime {
    /// Threads serving connections, each with its own event loop, listening
    /// sockets (SO_REUSEPORT) and upstream connection pools.
    pub io_threads: usize,
    /// Threads running built-in model inference.
    pub inference_threads: usize,
    pub queue_depth: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let n = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.0.0.1".parse().unwrap()));
        let all = IpNet::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let one = IpNet::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        let v6 = IpNet::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
    }

    #[test]
    fn path_patterns() {
        assert!(PathPattern::parse("/healthz").matches("/healthz"));
        assert!(!PathPattern::parse("/healthz").matches("/healthz/x"));
        assert!(PathPattern::parse("/v2/health/*").matches("/v2/health/live"));
        assert!(PathPattern::parse("*/ready").matches("/v2/models/iris/ready"));
        assert!(PathPattern::parse("*").matches("/x"));
    }
}
