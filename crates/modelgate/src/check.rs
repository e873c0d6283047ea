//! `modelgate check`: what the gateway would decide for one described request,
//! and why — run through the same normalisation, routing and policy engine as
//! `serve`. Exit 0 = allow, 1 = deny (any refusal), 2 = bad input.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use modelgate_authn::KeyStore;
use modelgate_authn::keys::KeyFile;
use modelgate_authz::{Authorizer, CallerKind, Input, Verdict};
use modelgate_config::{Config, CredentialSource};
use modelgate_core::{AuthMethod, Grants, ModelName, Principal, RequestFacts};
use modelgate_route::{RouteTable, normalize_host, normalize_path};

#[derive(clap::Args)]
pub struct CheckArgs {
    #[arg(long, short, env = "MODELGATE_CONFIG")]
    config: PathBuf,
    /// HTTP method (upper-case; gRPC is POST).
    #[arg(long, default_value = "GET")]
    method: String,
    /// Request path as the client sends it, query included (e.g. /v2/models/iris/infer).
    #[arg(long)]
    path: String,
    /// Host header (default: none).
    #[arg(long)]
    host: Option<String>,
    /// A request header, `name: value` (repeatable; repeated names are repeated lines).
    #[arg(long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// An API key, verified against the configured key file.
    #[arg(long, conflicts_with_all = ["identity", "claims"])]
    key: Option<String>,
    /// Assume the API-key identity with this name (grants from the key file; not verified).
    #[arg(long, conflicts_with = "claims")]
    identity: Option<String>,
    /// Assume a token identity with these JSON claims (iss, sub, aud, azp, …; not verified).
    #[arg(long)]
    claims: Option<String>,
    /// The model named in the body (OpenAI `model`, gRPC `model_name`).
    #[arg(long)]
    model: Option<String>,
    /// The connecting peer's address.
    #[arg(long, default_value = "127.0.0.1")]
    source_ip: IpAddr,
    /// Which listener (index in `listen:`) the request arrives on.
    #[arg(long, default_value_t = 0)]
    listener: usize,
    /// The request is gRPC (`content-type: application/grpc`).
    #[arg(long)]
    grpc: bool,
}

/// What `check` prints last and exits with.
enum End {
    Allow(String),
    Deny(String),
}

fn bad(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("modelgate check: {msg}");
    ExitCode::from(2)
}

pub fn run(args: CheckArgs) -> ExitCode {
    let config = match modelgate_config::load_file(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    let routes = match RouteTable::build(&config) {
        Ok(r) => r,
        Err(errs) => {
            return bad(errs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"));
        }
    };
    let authz = match Authorizer::new(&config) {
        Ok(a) => a,
        Err(errs) => {
            return bad(errs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"));
        }
    };
    let Some(listener) = config.listeners.get(args.listener) else {
        return bad(format!(
            "--listener {}: the configuration has {} listener(s)",
            args.listener,
            config.listeners.len()
        ));
    };
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        let Some((k, v)) = h.split_once(':') else {
            return bad(format!("--header {h:?}: write NAME:VALUE"));
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.trim().as_bytes()),
            HeaderValue::from_str(v.trim()),
        ) else {
            return bad(format!("--header {h:?}: invalid name or value"));
        };
        headers.append(name, value);
    }
    if args.grpc {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
    }
    let who = match identity(&args, &config, listener, &mut headers) {
        Ok(w) => w,
        Err(e) => return bad(e),
    };
    let end = decide(&args, &config, &routes, &authz, listener, headers, who);
    match end {
        End::Allow(m) => {
            println!("decision: ALLOW ({m})");
            ExitCode::SUCCESS
        }
        End::Deny(m) => {
            println!("decision: DENY ({m})");
            ExitCode::from(1)
        }
    }
}

/// The identity the request carries, and a line describing it.
enum Who {
    None,
    Verified(Principal),
    Assumed(Principal),
    /// A key that failed verification: the gateway answers 401.
    Rejected(String),
}

fn identity(
    args: &CheckArgs,
    config: &Config,
    listener: &modelgate_config::Listener,
    headers: &mut HeaderMap,
) -> Result<Who, String> {
    let now = SystemTime::now();
    if let Some(key) = &args.key {
        let Some(k) = &config.auth.api_keys else {
            return Err("--key: the configuration has no auth.api_keys".into());
        };
        // Put the key where the listener reads credentials, so policies see the same headers.
        if let Some(src) = listener.credentials.first() {
            let (name, value) = match src {
                CredentialSource::AuthorizationHeader { scheme } => {
                    (http::header::AUTHORIZATION, format!("{scheme} {key}"))
                }
                CredentialSource::Header { name } => (name.clone(), key.clone()),
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        let store = KeyStore::load(&k.file).map_err(|e| format!("auth.api_keys.file: {e}"))?;
        return Ok(match store.verify(key, now) {
            Ok(p) => Who::Verified(p),
            Err(f) => Who::Rejected(f.reason().to_string()),
        });
    }
    if let Some(name) = &args.identity {
        let Some(k) = &config.auth.api_keys else {
            return Err("--identity: the configuration has no auth.api_keys".into());
        };
        let file = KeyFile::read(&k.file).map_err(|e| format!("auth.api_keys.file: {e}"))?;
        let s = file
            .summaries(now)
            .into_iter()
            .find(|s| &s.name == name)
            .ok_or_else(|| format!("--identity: no key named {name:?} in {}", k.file.display()))?;
        if s.status != "active" {
            return Ok(Who::Rejected(format!("key {name} is {}", s.status)));
        }
        let grants = if s.models.iter().any(|m| m == "*") {
            Grants::AllModels
        } else {
            Grants::Models(
                s.models
                    .iter()
                    .filter_map(|m| ModelName::parse(m).ok())
                    .collect::<BTreeSet<_>>(),
            )
        };
        return Ok(Who::Assumed(Principal::api_key(name.clone(), grants)));
    }
    if let Some(json) = &args.claims {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("--claims: not JSON: {e}"))?;
        let serde_json::Value::Object(map) = v else {
            return Err("--claims: must be a JSON object".into());
        };
        let s = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let Some(sub) = s("sub") else {
            return Err("--claims: needs a \"sub\" string".into());
        };
        let audiences = match map.get("aud") {
            Some(serde_json::Value::String(a)) => vec![a.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let groups = map
            .get("groups")
            .and_then(|g| g.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        return Ok(Who::Assumed(Principal {
            method: AuthMethod::Jwt,
            name: sub.clone(),
            issuer: s("iss"),
            subject: sub,
            audiences,
            presenter: s("azp"),
            namespace: None,
            groups,
            claims: Some(Arc::new(map)),
            grants: Grants::Nothing,
        }));
    }
    Ok(Who::None)
}

fn decide(
    args: &CheckArgs,
    config: &Config,
    routes: &RouteTable,
    authz: &Authorizer,
    listener: &modelgate_config::Listener,
    headers: HeaderMap,
    who: Who,
) -> End {
    let deny = |status: u16, m: &str| End::Deny(format!("{status} {m}"));
    // 1. Read: as the gateway does.
    if !args.method.bytes().all(|b| b.is_ascii_uppercase()) {
        return deny(400, "method must be upper-case");
    }
    let Ok(method) = Method::from_bytes(args.method.as_bytes()) else {
        return deny(400, "invalid method");
    };
    let (raw_path, query) = match args.path.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (args.path.as_str(), None),
    };
    let path = match normalize_path(raw_path) {
        Ok(p) => p,
        Err(e) => return deny(400, &e.to_string()),
    };
    if args.grpc && path != raw_path {
        return deny(400, "gRPC path is not canonical");
    }
    println!(
        "request: {} {}{}",
        args.method,
        path,
        if path != raw_path {
            format!("  (normalised from {raw_path})")
        } else {
            String::new()
        }
    );
    let host = args.host.as_deref().map(normalize_host);
    let local = SocketAddr::new(listener.address.ip(), listener.address.port());
    let facts = RequestFacts {
        request_id: "check".into(),
        method,
        path,
        query,
        host,
        headers,
        client: SocketAddr::new(args.source_ip, 40000),
        local,
        peer: None,
        received: Instant::now(),
        grpc: args.grpc,
    };
    // 2. Route.
    let mut route = match routes.resolve(
        &facts.method,
        &facts.path,
        facts.host.as_deref(),
        &facts.headers,
        facts.grpc,
    ) {
        Ok(r) => r,
        Err(r) => return deny(r.status().as_u16(), &r.client_message()),
    };
    // 3. Authenticate.
    let (kind, principal) = if route.public {
        println!("identity: none needed (public route)");
        (CallerKind::Public, None)
    } else {
        match who {
            Who::Verified(p) => {
                println!("identity: {} {} (verified)", p.method, p.name);
                (CallerKind::Identified, Some(p))
            }
            Who::Assumed(p) => {
                println!("identity: {} {} (assumed, not verified)", p.method, p.name);
                (CallerKind::Identified, Some(p))
            }
            Who::Rejected(reason) => return deny(401, &reason),
            Who::None if listener.istio_compat => {
                println!("identity: anonymous (no credential; istio_compat listener)");
                (CallerKind::Anonymous, None)
            }
            Who::None => return deny(401, "credential not found"),
        }
    };
    // 4. The model named in the body.
    if route.model_in_body {
        let Some(m) = &args.model else {
            return deny(400, "this route names its model in the body: pass --model");
        };
        if let Err(r) = routes.bind_body_model(&mut route, m, facts.host.as_deref(), &facts.headers)
        {
            return deny(r.status().as_u16(), &r.client_message());
        }
    }
    println!(
        "route: protocol {} operation {} model {}",
        route.protocol,
        route.operation,
        if route.model.log_name().is_empty() {
            "-"
        } else {
            route.model.log_name()
        }
    );
    // 5. Authorize.
    let input = Input::new(
        &facts,
        &route,
        principal.as_ref(),
        &listener.trusted_proxies,
    );
    let mut why = Vec::new();
    let verdict = authz.engine().evaluate(&input, kind, Some(&mut why));
    if config.policies.is_empty() {
        println!("policies: none (grants and defaults decide)");
    }
    println!("why:");
    for line in &why {
        println!("  - {line}");
    }
    match verdict {
        Verdict::Allow { basis, policy } => End::Allow(match policy {
            Some(p) => format!("{}: {p}", basis.as_str()),
            None => basis.as_str().to_string(),
        }),
        Verdict::NeedCredential { .. } => deny(401, "credential not found"),
        Verdict::Forbidden { message, .. } => deny(403, &message),
        Verdict::NotFound(m) => deny(404, &m),
    }
}
