//! Raw sections → validated [`Config`]. Each check names its key and a fix.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Uri};
use modelgate_core::{ModelName, Operation, Protocol};
use yaml_serde::Value;

use crate::error::Collector;
use crate::load::de;
use crate::raw::*;
use crate::types::*;
use crate::units::parse_duration;

/// The sections as found in the file, before validation.
#[derive(Default)]
pub(crate) struct Sections {
    pub listen: Option<Value>,
    pub admin: Option<RawAdmin>,
    pub models: Option<Value>,
    pub auth: Option<RawAuth>,
    pub policies: Option<Value>,
    pub log: Option<RawLog>,
    pub runtime: Option<RawRuntime>,
    pub ext_authz: Option<crate::ext_authz::RawExtAuthz>,
}

const DEFAULT_ADMIN: &str = "127.0.0.1:9901";
const DEFAULT_MAX_BODY: u64 = 4 << 20;

pub(crate) fn validate(s: Sections, base: &Path, c: &mut Collector) -> Option<Config> {
    let listeners = listeners(s.listen, base, c);
    let admin = admin(s.admin, c);
    let models = models(s.models, base, c);
    let auth = auth(s.auth.unwrap_or_default(), base, c);
    let policies = crate::policy::policies(s.policies, c);
    let log = log(s.log.unwrap_or_default(), base, c);
    let runtime = runtime(s.runtime.unwrap_or_default(), c);
    let ext_authz = crate::ext_authz::ext_authz(
        s.ext_authz,
        listeners.as_deref(),
        admin.as_ref().map(|a| a.address),
        base,
        c,
    );
    if let (Some(admin), Some(listeners)) = (&admin, &listeners) {
        for (i, l) in listeners.iter().enumerate() {
            if l.address == admin.address {
                c.push(
                    format!("listen[{i}].address"),
                    format!("{} is also the admin address", l.address),
                    "give the admin listener its own port (admin.address)",
                );
            }
        }
    }
    Some(Config {
        listeners: listeners?,
        admin: admin?,
        models: models?,
        auth: auth?,
        policies,
        log: log?,
        runtime: runtime?,
        ext_authz,
    })
}

fn path_of(base: &Path, s: &str) -> PathBuf {
    let p = PathBuf::from(s);
    if p.is_absolute() { p } else { base.join(p) }
}

fn duration(v: Option<&str>, default: Duration, key: &str, c: &mut Collector) -> Duration {
    match v {
        None => default,
        Some(s) => parse_duration(s).unwrap_or_else(|e| {
            c.push(key, e, "write a duration such as 30s, 5m or 1h");
            default
        }),
    }
}

pub(crate) fn socket_addr(s: &str, key: &str, c: &mut Collector) -> Option<SocketAddr> {
    match s.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            c.push(
                key,
                format!("invalid listen address {s:?}"),
                "write IP:PORT, e.g. 0.0.0.0:8080 or 127.0.0.1:9901 (host names are not resolved)",
            );
            None
        }
    }
}

fn listeners(v: Option<Value>, base: &Path, c: &mut Collector) -> Option<Vec<Listener>> {
    let Some(v) = v else {
        c.push(
            "listen",
            "missing section",
            "add `listen: {address: 0.0.0.0:8080}`",
        );
        return None;
    };
    let raws: Vec<(String, Option<RawListener>)> = match v {
        Value::Sequence(items) if items.is_empty() => {
            c.push(
                "listen",
                "no listener configured",
                "add at least one `address:`",
            );
            return None;
        }
        Value::Sequence(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let key = format!("listen[{i}]");
                let raw = de(item, &key, c);
                (key, raw)
            })
            .collect(),
        other => {
            let raw = de(other, "listen", c);
            vec![("listen".to_string(), raw)]
        }
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (key, raw) in raws {
        let Some(raw) = raw else { continue };
        if let Some(l) = listener(raw, &key, base, c) {
            if !seen.insert(l.address) {
                c.push(
                    format!("{key}.address"),
                    "address used twice",
                    "give each listener its own port",
                );
            }
            out.push(l);
        }
    }
    Some(out)
}

/// A `tls:` block (listeners, `ext_authz`), under key path `k`.
pub(crate) fn tls(t: RawTls, k: &str, base: &Path, c: &mut Collector) -> Tls {
    let cert = existing_file(base, &t.cert, &format!("{k}.cert"), c);
    let key_path = existing_file(base, &t.key, &format!("{k}.key"), c);
    let client_ca = t
        .client_ca
        .as_deref()
        .map(|ca| existing_file(base, ca, &format!("{k}.client_ca"), c));
    let require = t.require_client_cert.unwrap_or(client_ca.is_some());
    if require && client_ca.is_none() {
        c.push(
            format!("{k}.require_client_cert"),
            "client certificates are required but no client_ca is set",
            "set client_ca to the PEM bundle of CAs that sign client certificates",
        );
    }
    Tls {
        cert,
        key: key_path,
        client_ca,
        require_client_cert: require,
    }
}

fn listener(raw: RawListener, key: &str, base: &Path, c: &mut Collector) -> Option<Listener> {
    let address = socket_addr(&raw.address, &format!("{key}.address"), c);
    let tls = raw.tls.map(|t| tls(t, &format!("{key}.tls"), base, c));
    let max_body_bytes = match raw.max_body_bytes.map(|s| s.bytes()) {
        None => DEFAULT_MAX_BODY,
        Some(Ok(0)) => {
            c.push(
                format!("{key}.max_body_bytes"),
                "must be greater than 0",
                "e.g. 4MiB",
            );
            DEFAULT_MAX_BODY
        }
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            c.push(
                format!("{key}.max_body_bytes"),
                e,
                "write a size such as 4MiB or 1048576",
            );
            DEFAULT_MAX_BODY
        }
    };
    let credentials = match raw.credentials {
        None => vec![
            CredentialSource::AuthorizationHeader {
                scheme: "Bearer".into(),
            },
            CredentialSource::AuthorizationHeader {
                scheme: "APIKEY".into(),
            },
            CredentialSource::Header {
                name: HeaderName::from_static("x-api-key"),
            },
        ],
        Some(list) => {
            if list.is_empty() {
                c.push(
                    format!("{key}.credentials"),
                    "no credential location configured",
                    "list at least one, e.g. `- authorization_header: Bearer`",
                );
            }
            list.into_iter()
                .enumerate()
                .filter_map(|(i, s)| credential_source(s, &format!("{key}.credentials[{i}]"), c))
                .collect()
        }
    };
    let trusted_proxies = raw
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match IpNet::parse(s) {
            Ok(n) => Some(n),
            Err(e) => {
                c.push(
                    format!("{key}.trusted_proxies[{i}]"),
                    e,
                    "write a CIDR such as 10.0.0.0/8",
                );
                None
            }
        })
        .collect();
    Some(Listener {
        address: address?,
        tls,
        http2: raw.http2.unwrap_or(true),
        max_body_bytes,
        header_read_timeout: duration(
            raw.header_read_timeout.as_deref(),
            Duration::from_secs(10),
            &format!("{key}.header_read_timeout"),
            c,
        ),
        drain_timeout: duration(
            raw.drain_timeout.as_deref(),
            Duration::from_secs(30),
            &format!("{key}.drain_timeout"),
            c,
        ),
        credentials,
        trusted_proxies,
        istio_compat: raw.istio_compat.unwrap_or(false),
    })
}

fn credential_source(
    s: RawCredentialSource,
    key: &str,
    c: &mut Collector,
) -> Option<CredentialSource> {
    match s {
        RawCredentialSource::AuthorizationHeader(scheme) => {
            if scheme.is_empty()
                || !scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                c.push(
                    key,
                    format!("invalid authorization scheme {scheme:?}"),
                    "use a single word such as Bearer or APIKEY",
                );
                return None;
            }
            Some(CredentialSource::AuthorizationHeader { scheme })
        }
        RawCredentialSource::CustomHeader(name) => {
            let name = header_name(&name, key, c)?;
            Some(CredentialSource::Header { name })
        }
    }
}

fn header_name(s: &str, key: &str, c: &mut Collector) -> Option<HeaderName> {
    match HeaderName::from_str(s) {
        Ok(h) => Some(h),
        Err(_) => {
            c.push(
                key,
                format!("invalid header name {s:?}"),
                "use letters, digits and '-', e.g. x-api-key",
            );
            None
        }
    }
}

fn existing_file(base: &Path, s: &str, key: &str, c: &mut Collector) -> PathBuf {
    let p = path_of(base, s);
    if !p.is_file() {
        c.push(
            key,
            format!("file {} does not exist or is not a file", p.display()),
            "check the path (relative paths are resolved from the config file's folder)",
        );
    }
    p
}

fn admin(raw: Option<RawAdmin>, c: &mut Collector) -> Option<Admin> {
    let s = raw
        .map(|a| a.address)
        .unwrap_or_else(|| DEFAULT_ADMIN.to_string());
    Some(Admin {
        address: socket_addr(&s, "admin.address", c)?,
    })
}

fn models(v: Option<Value>, base: &Path, c: &mut Collector) -> Option<Vec<Model>> {
    let items = match v {
        Some(Value::Sequence(items)) if !items.is_empty() => items,
        Some(Value::Sequence(_)) | None => {
            c.push(
                "models",
                "no models configured",
                "add a list entry with `name:` and `upstream: {url: …}` or `builtin: {dir: …}`",
            );
            return None;
        }
        Some(_) => {
            c.push(
                "models",
                "must be a list",
                "write `models:` followed by `- name: …` entries",
            );
            return None;
        }
    };
    let mut out: Vec<Model> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("models[{i}]");
        let Some(raw) = de::<RawModel>(item, &key, c) else {
            continue;
        };
        if let Some(m) = model(raw, &key, base, c) {
            if out.iter().any(|o| o.name == m.name) {
                c.push(
                    format!("{key}.name"),
                    format!("model {} is configured twice", m.name),
                    "model names must be unique",
                );
            }
            out.push(m);
        }
    }
    check_route_prefixes(&out, c);
    Some(out)
}

fn model(raw: RawModel, key: &str, base: &Path, c: &mut Collector) -> Option<Model> {
    let name = match ModelName::parse(&raw.name) {
        Ok(n) => Some(n),
        Err(e) => {
            c.push(
                format!("{key}.name"),
                format!("{e}: {:?}", raw.name),
                "use letters, digits, '.', '_' and '-' only",
            );
            None
        }
    };
    let backend = match (raw.upstream, raw.builtin) {
        (Some(u), None) => upstream(u, &format!("{key}.upstream"), c).map(Backend::Upstream),
        (None, Some(b)) => Some(Backend::Builtin(Builtin {
            dir: path_of(base, &b.dir),
        })),
        (Some(_), Some(_)) => {
            c.push(
                key,
                "both `upstream` and `builtin` are set",
                "keep one: proxy to a model server, or serve the ONNX file yourself",
            );
            None
        }
        (None, None) => {
            c.push(
                key,
                "neither `upstream` nor `builtin` is set",
                "add `upstream: {url: http://host:port}` or `builtin: {dir: path/to/model}`",
            );
            None
        }
    };
    let protocols = protocols(
        raw.protocols,
        backend.as_ref(),
        &format!("{key}.protocols"),
        c,
    );
    if let (Some(Backend::Upstream(u)), Some(p)) = (&backend, &protocols)
        && p.contains(&Protocol::Grpc)
        && u.grpc.is_none()
    {
        c.push(
            format!("{key}.upstream.grpc_url"),
            "protocol grpc is enabled but no gRPC endpoint is set",
            "add grpc_url: http://host:grpc-port, or remove grpc from protocols",
        );
    }
    let routes = raw
        .routes
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| prefix_route(r, &format!("{key}.routes[{i}]"), c))
        .collect();
    let hosts = raw
        .hosts
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| host(&h, &format!("{key}.hosts[{i}]"), c))
        .collect();
    let public_operations = raw
        .public_operations
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, op)| public_operation(&op, &format!("{key}.public_operations[{i}]"), c))
        .collect();
    Some(Model {
        name: name?,
        protocols: protocols?,
        backend: backend?,
        routes,
        hosts,
        public_operations,
    })
}

fn protocols(
    raw: Option<Vec<String>>,
    backend: Option<&Backend>,
    key: &str,
    c: &mut Collector,
) -> Option<BTreeSet<Protocol>> {
    let names = raw.unwrap_or_else(|| match backend {
        Some(Backend::Builtin(_)) => vec!["v1".into(), "v2".into(), "grpc".into()],
        _ => vec!["v1".into(), "v2".into()],
    });
    if names.is_empty() {
        c.push(
            key,
            "no protocol enabled",
            "list at least one of v1, v2, grpc, openai",
        );
        return None;
    }
    let mut out = BTreeSet::new();
    for (i, n) in names.iter().enumerate() {
        match Protocol::parse(n) {
            Some(p) => {
                if p == Protocol::OpenAi && matches!(backend, Some(Backend::Builtin(_))) {
                    c.push(
                        format!("{key}[{i}]"),
                        "built-in models do not speak the OpenAI API",
                        "use v1, v2 or grpc, or proxy to an OpenAI-compatible server",
                    );
                }
                out.insert(p);
            }
            None => c.push(
                format!("{key}[{i}]"),
                format!("unknown protocol {n:?}"),
                "use one of v1, v2, grpc, openai",
            ),
        }
    }
    Some(out)
}

fn upstream(raw: RawUpstream, key: &str, c: &mut Collector) -> Option<Upstream> {
    let urls = raw.url.into_vec();
    if urls.is_empty() {
        c.push(
            format!("{key}.url"),
            "no upstream URL",
            "add url: http://host:port",
        );
    }
    let endpoints: Vec<Uri> = urls
        .iter()
        .enumerate()
        .filter_map(|(i, u)| {
            let k = if urls.len() == 1 {
                format!("{key}.url")
            } else {
                format!("{key}.url[{i}]")
            };
            endpoint(u, &k, c)
        })
        .collect();
    let grpc = raw
        .grpc_url
        .as_deref()
        .and_then(|u| endpoint(u, &format!("{key}.grpc_url"), c));
    let host = raw
        .host
        .as_deref()
        .and_then(|h| match HeaderValue::from_str(h) {
            Ok(v) if !h.is_empty() && !h.contains(['/', ' ', '@']) => Some(v),
            _ => {
                c.push(
                    format!("{key}.host"),
                    format!("invalid Host header value {h:?}"),
                    "write a host name such as iris.models.svc.cluster.local",
                );
                None
            }
        });
    let timeout = duration(
        raw.timeout.as_deref(),
        Duration::from_secs(300),
        &format!("{key}.timeout"),
        c,
    );
    let connect_timeout = duration(
        raw.connect_timeout.as_deref(),
        Duration::from_secs(5),
        &format!("{key}.connect_timeout"),
        c,
    );
    if endpoints.len() != urls.len() || urls.is_empty() {
        return None;
    }
    Some(Upstream {
        endpoints,
        grpc,
        timeout,
        connect_timeout,
        host,
        http2: raw.http2.unwrap_or(false),
    })
}

fn endpoint(s: &str, key: &str, c: &mut Collector) -> Option<Uri> {
    let bad = |c: &mut Collector, why: &str| {
        c.push(key, format!("invalid upstream URL {:?}: {why}", modelgate_core::redact_url(s)), "write scheme://host:port with scheme http or https and no path, e.g. http://127.0.0.1:8080");
        None
    };
    let Ok(uri) = Uri::from_str(s) else {
        return bad(c, "not a URL");
    };
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return bad(c, "scheme must be http or https"),
    }
    let Some(authority) = uri.authority() else {
        return bad(c, "no host");
    };
    if authority.as_str().contains('@') {
        return bad(c, "credentials in the URL are not supported");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return bad(c, "a path or query is not supported");
    }
    Some(uri)
}

/// A path that is already in the normalised form requests are compared in.
pub(crate) fn canonical_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err("must start with '/'".into());
    }
    if s.contains("//") {
        return Err("must not contain '//'".into());
    }
    if s.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("must not contain '.' or '..' segments".into());
    }
    if let Some(ch) = s
        .chars()
        .find(|ch| matches!(ch, '%' | '?' | '#' | ';' | '\\' | ' ') || ch.is_control())
    {
        return Err(format!("must not contain {ch:?}"));
    }
    Ok(())
}

fn prefix_route(raw: RawRoute, key: &str, c: &mut Collector) -> Option<PrefixRoute> {
    let mut ok = true;
    for (field, v) in [("prefix", &raw.prefix), ("rewrite", &raw.rewrite)] {
        if let Err(e) = canonical_path(v) {
            c.push(
                format!("{key}.{field}"),
                format!("{v:?} {e}"),
                "write a plain absolute path such as /kfserving/ns/model",
            );
            ok = false;
        }
    }
    let prefix = raw.prefix.trim_end_matches('/').to_string();
    if ok
        && (prefix.is_empty()
            || ["/v1", "/v2", "/inference.GRPCInferenceService"]
                .iter()
                .any(|p| prefix == *p || prefix.starts_with(&format!("{p}/"))))
    {
        c.push(
            format!("{key}.prefix"),
            format!("{:?} overlaps the protocol paths", raw.prefix),
            "choose a prefix outside /v1 and /v2, e.g. /kfserving/<namespace>/<model>",
        );
        ok = false;
    }
    if ok && !(raw.rewrite.starts_with("/v1/") || raw.rewrite.starts_with("/v2/")) {
        c.push(
            format!("{key}.rewrite"),
            format!("{:?} is not a V1 or V2 model path", raw.rewrite),
            "rewrite onto /v1/models/<model>:predict or /v2/models/<model>/infer",
        );
        ok = false;
    }
    let methods = raw.methods.map(|ms| {
        ms.iter()
            .enumerate()
            .filter_map(|(i, m)| match Method::from_bytes(m.as_bytes()) {
                Ok(mm) if m.bytes().all(|b| b.is_ascii_uppercase()) => Some(mm),
                _ => {
                    c.push(
                        format!("{key}.methods[{i}]"),
                        format!("invalid method {m:?}"),
                        "use upper-case HTTP methods such as POST",
                    );
                    ok = false;
                    None
                }
            })
            .collect()
    });
    ok.then_some(PrefixRoute {
        prefix,
        rewrite: raw.rewrite,
        methods,
    })
}

fn check_route_prefixes(models: &[Model], c: &mut Collector) {
    let mut seen: Vec<(&str, &ModelName)> = Vec::new();
    for m in models {
        for r in &m.routes {
            if let Some((_, other)) = seen.iter().find(|(p, _)| *p == r.prefix) {
                c.push(
                    "models",
                    format!(
                        "route prefix {} is used by {} and {}",
                        r.prefix, other, m.name
                    ),
                    "each prefix may route to one model only",
                );
            }
            seen.push((&r.prefix, &m.name));
        }
    }
}

fn host(h: &str, key: &str, c: &mut Collector) -> Option<String> {
    let lower = h.to_ascii_lowercase();
    let bare = match lower.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') => {
            name.to_string()
        }
        _ => lower,
    };
    if bare.is_empty()
        || !bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'*'))
    {
        c.push(
            key,
            format!("invalid host {h:?}"),
            "write a DNS name such as sklearn-iris.models.example.com",
        );
        return None;
    }
    Some(bare)
}

fn public_operation(s: &str, key: &str, c: &mut Collector) -> Option<Operation> {
    let op = match s {
        "model_ready" => Operation::ModelReady,
        "model_metadata" => Operation::ModelMetadata,
        "infer" => Operation::Infer,
        _ => {
            c.push(
                key,
                format!("{s:?} cannot be made public"),
                "use model_ready, model_metadata or infer",
            );
            return None;
        }
    };
    Some(op)
}

/// Identity headers a client must never be able to set (stripped on ingress).
fn reserved_header(h: &HeaderName) -> bool {
    matches!(
        h.as_str(),
        "authorization"
            | "host"
            | "cookie"
            | "content-length"
            | "content-type"
            | "transfer-encoding"
            | "connection"
            | "te"
            | "upgrade"
    )
}

fn auth(raw: RawAuth, base: &Path, c: &mut Collector) -> Option<Auth> {
    let realm = raw.realm.unwrap_or_else(|| "modelgate".into());
    if realm.contains(['"', '\\']) || realm.chars().any(char::is_control) {
        c.push(
            "auth.realm",
            "realm must not contain quotes, backslashes or control characters",
            "use a plain name such as kubernetes-user",
        );
    }
    let identity_header = raw.identity_header.as_deref().and_then(|h| {
        let name = header_name(h, "auth.identity_header", c)?;
        if reserved_header(&name) {
            c.push(
                "auth.identity_header",
                format!("{h} cannot carry the identity"),
                "use a dedicated header such as kubeflow-userid or x-forwarded-user",
            );
            return None;
        }
        Some(name)
    });
    let strip_headers = raw
        .strip_headers
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, h)| header_name(h, &format!("auth.strip_headers[{i}]"), c))
        .collect();
    let public_paths = raw
        .public_paths
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let pat = PathPattern::parse(p);
            let literal = match &pat {
                PathPattern::Exact(s) | PathPattern::Prefix(s) => s.as_str(),
                PathPattern::Suffix(s) => s.as_str(),
                PathPattern::Any => {
                    c.push(
                        format!("auth.public_paths[{i}]"),
                        "\"*\" would make every path public",
                        "list the probe paths, e.g. /v2/health/live",
                    );
                    return None;
                }
            };
            let check = if matches!(pat, PathPattern::Suffix(_)) {
                format!("/x{literal}")
            } else {
                literal.to_string()
            };
            match canonical_path(&check) {
                Ok(()) => Some(pat),
                Err(e) => {
                    c.push(
                        format!("auth.public_paths[{i}]"),
                        format!("{p:?} {e}"),
                        "write normalised paths, e.g. /healthz or /v2/health/*",
                    );
                    None
                }
            }
        })
        .collect();
    let raw_identity = crate::identity::RawIdentity {
        order: raw.order,
        jwks: raw.jwks,
        jwt: raw.jwt,
        kubernetes: raw.kubernetes,
        introspection: raw.introspection,
        mtls: raw.mtls,
    };
    let identity = crate::identity::identity(raw_identity, raw.api_keys.is_some(), base, c);
    Some(Auth {
        realm,
        identity,
        api_keys: raw.api_keys.map(|k| ApiKeys {
            file: path_of(base, &k.file),
        }),
        identity_header,
        strip_headers,
        public_paths,
    })
}

fn log(raw: RawLog, base: &Path, c: &mut Collector) -> Option<Log> {
    let level = raw.level.unwrap_or_else(|| "info".into());
    let format = match raw.format.as_deref() {
        None | Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        Some(other) => {
            c.push(
                "log.format",
                format!("unknown format {other:?}"),
                "use json or text",
            );
            LogFormat::Json
        }
    };
    let decisions = match raw.decisions.as_deref() {
        None | Some("stdout") => DecisionSink::Stdout,
        Some("stderr") => DecisionSink::Stderr,
        Some("off") => DecisionSink::Off,
        Some(p) => DecisionSink::File(path_of(base, p)),
    };
    Some(Log {
        level,
        format,
        decisions,
    })
}

fn runtime(raw: RawRuntime, c: &mut Collector) -> Option<Runtime> {
    let cores = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2);
    let io_threads = raw.io_threads.unwrap_or(cores);
    let inference_threads = raw.inference_threads.unwrap_or(cores);
    let queue_depth = raw.queue_depth.unwrap_or(256);
    for (key, v) in [
        ("runtime.io_threads", io_threads),
        ("runtime.inference_threads", inference_threads),
    ] {
        if v == 0 || v > 256 {
            c.push(
                key,
                "must be between 1 and 256",
                format!("this machine has {cores} cores"),
            );
        }
    }
    if queue_depth == 0 {
        c.push("runtime.queue_depth", "must be at least 1", "e.g. 256");
    }
    Some(Runtime {
        io_threads,
        inference_threads,
        queue_depth,
    })
}
