//! `modelgate check`: what the gateway would decide for one described request,
//! and why. It describes the request ([`Ask`]) and calls the same decision
//! function as `serve` ([`modelgate_app::Decider::decide`]); it holds no
//! normalisation, routing or identity mapping of its own.
//! Exit 0 = allow, 1 = deny (any refusal), 2 = bad input.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use modelgate_app::{Ask, Claimed, Decision, Explainer, GivenModel, Identity};
use modelgate_authn::keys::KeyFile;
use modelgate_authz::Verdict;
use modelgate_config::CredentialSource;
use modelgate_core::{AuthFailure, PeerIdentity};

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
    /// A SAN URI of the verified client certificate, as on an mTLS listener
    /// (e.g. spiffe://cluster.local/ns/team-a/sa/scorer; repeatable).
    #[arg(long = "peer-uri", value_name = "URI")]
    peer_uris: Vec<String>,
    /// A SAN DNS name of the verified client certificate (repeatable).
    #[arg(long = "peer-dns", value_name = "NAME")]
    peer_dns: Vec<String>,
    /// The subject common name of the verified client certificate.
    #[arg(long = "peer-cn", value_name = "CN")]
    peer_cn: Option<String>,
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
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return bad(format!("cannot start a runtime: {e}")),
    };
    rt.block_on(check(args, config))
}

async fn check(args: CheckArgs, config: modelgate_config::Config) -> ExitCode {
    let explainer = match Explainer::build(config) {
        Ok(e) => e,
        Err(e) => return bad(e),
    };
    let ask = match ask(&args, &explainer) {
        Ok(a) => a,
        Err(e) => return bad(e),
    };
    let claimed = match claimed(&args, &explainer) {
        Ok(c) => c,
        Err(e) => return bad(e),
    };
    let mut body = GivenModel(args.model.clone());
    let d = explainer
        .decider()
        .decide(ask, claimed, &mut body, true)
        .await;
    print(&d, &args.path, explainer.config().policies.is_empty())
}

/// The request as `serve` would receive it.
fn ask(args: &CheckArgs, explainer: &Explainer) -> Result<Ask, String> {
    let listeners = &explainer.config().listeners;
    let Some(listener) = listeners.get(args.listener) else {
        return Err(format!(
            "--listener {}: the configuration has {} listener(s)",
            args.listener,
            listeners.len()
        ));
    };
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        let Some((k, v)) = h.split_once(':') else {
            return Err(format!("--header {h:?}: write NAME:VALUE"));
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.trim().as_bytes()),
            HeaderValue::from_str(v.trim()),
        ) else {
            return Err(format!("--header {h:?}: invalid name or value"));
        };
        headers.append(name, value);
    }
    if let Some(h) = &args.host {
        let v = HeaderValue::from_str(h).map_err(|_| format!("--host {h:?}: invalid"))?;
        headers.insert(http::header::HOST, v);
    }
    if args.grpc {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
    }
    // The key goes where the listener reads credentials, so that it is
    // verified, and policies see the headers, exactly as `serve` would.
    if let (Some(key), Some(src)) = (&args.key, listener.credentials.first()) {
        if explainer.config().auth.api_keys.is_none() {
            return Err("--key: the configuration has no auth.api_keys".into());
        }
        let (name, value) = match src {
            CredentialSource::AuthorizationHeader { scheme } => {
                (http::header::AUTHORIZATION, format!("{scheme} {key}"))
            }
            CredentialSource::Header { name } => (name.clone(), key.clone()),
        };
        let v = HeaderValue::from_str(&value).map_err(|_| "--key: not a header value")?;
        headers.insert(name, v);
    }
    let method = Method::from_bytes(args.method.as_bytes())
        .map_err(|_| format!("--method {:?}: not an HTTP method", args.method))?;
    let (path, query) = match args.path.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (args.path.clone(), None),
    };
    Ok(Ask {
        method,
        path,
        query,
        authority: None,
        headers,
        client: SocketAddr::new(args.source_ip, 40000),
        local: listener.address,
        peer: peer(args),
        listener: args.listener,
        received: Instant::now(),
    })
}

/// The client certificate described by `--peer-*`, if any.
fn peer(args: &CheckArgs) -> Option<PeerIdentity> {
    let p = PeerIdentity {
        uris: args.peer_uris.clone(),
        dns: args.peer_dns.clone(),
        common_name: args.peer_cn.clone(),
    };
    (p != PeerIdentity::default()).then_some(p)
}

/// The identity to assume, if `--identity` or `--claims` names one.
fn claimed(args: &CheckArgs, explainer: &Explainer) -> Result<Claimed, String> {
    if let Some(name) = &args.identity {
        let Some(k) = &explainer.config().auth.api_keys else {
            return Err("--identity: the configuration has no auth.api_keys".into());
        };
        if let Some(p) = explainer.authn().assume_key(name, SystemTime::now()) {
            return Ok(Claimed::Assumed(p));
        }
        // Tell a typo (bad input) from a key that exists but cannot be used.
        let file = KeyFile::read(&k.file).map_err(|e| format!("auth.api_keys.file: {e}"))?;
        if !file
            .summaries(SystemTime::now())
            .iter()
            .any(|s| &s.name == name)
        {
            return Err(format!(
                "--identity: no key named {name:?} in {}",
                k.file.display()
            ));
        }
        return Ok(Claimed::Refused(AuthFailure::InvalidApiKey));
    }
    if let Some(json) = &args.claims {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("--claims: not JSON: {e}"))?;
        let serde_json::Value::Object(map) = v else {
            return Err("--claims: must be a JSON object".into());
        };
        if !map.get("sub").is_some_and(serde_json::Value::is_string) {
            return Err("--claims: needs a \"sub\" string".into());
        }
        return Ok(Claimed::Assumed(std::sync::Arc::new(
            explainer.authn().assume_claims(map),
        )));
    }
    Ok(Claimed::FromRequest)
}

/// Prints the decision and its explanation; the exit code says allow or deny.
fn print(d: &Decision, raw_path: &str, no_policies: bool) -> ExitCode {
    if let Some(f) = &d.facts {
        let raw = raw_path.split('?').next().unwrap_or_default();
        if f.path == raw {
            println!("request: {} {}", f.method, f.path);
        } else {
            println!("request: {} {}  (normalised from {raw})", f.method, f.path);
        }
    }
    print_identity(d);
    if let Some(route) = &d.route {
        let model = route.model.log_name();
        println!(
            "route: protocol {} operation {} model {}",
            route.protocol,
            route.operation,
            if model.is_empty() { "-" } else { model }
        );
    }
    if d.ruling.is_some() {
        if no_policies {
            println!("policies: none (grants and defaults decide)");
        }
        println!("why:");
        for line in &d.explain {
            println!("  - {line}");
        }
    }
    print_ruling(d);
    print_outcome(d)
}

/// The `identity:` line.
fn print_identity(d: &Decision) {
    match &d.identity {
        Identity::NotReached | Identity::Failed(_) => {}
        Identity::NotNeeded => println!("identity: none needed (public route)"),
        Identity::Anonymous => {
            println!("identity: anonymous (no credential; istio_compat listener)");
        }
        Identity::Verified(a) => {
            let p = a.principal();
            println!("identity: {} {} (verified)", p.method, p.name);
        }
        Identity::Assumed(p) => {
            println!("identity: {} {} (assumed, not verified)", p.method, p.name);
        }
    }
}

/// What the policies said besides the verdict: dry-run and audit matches,
/// the external provider's answer, the basis and the deciding policy.
fn print_ruling(d: &Decision) {
    let Some(r) = &d.ruling else {
        return;
    };
    for w in &r.dry_run {
        let p = &w.policy;
        println!(
            "dry-run: {} {} would {}",
            p.action.as_str(),
            p.name,
            w.would
        );
    }
    for p in &r.audit {
        println!("audit: {} {} matched", p.action.as_str(), p.name);
    }
    if let Some(e) = &r.external {
        println!(
            "external: CUSTOM {} asked provider {}: {}",
            e.policy.name,
            e.provider,
            e.outcome.as_str()
        );
    }
    let v = &r.verdict;
    if let Some(b) = v.basis() {
        println!("basis: {}", b.as_str());
    }
    if let Some(p) = v.policy() {
        println!("policy: {} {}", p.action.as_str(), p.name);
    }
}

/// The `decision:` line and the exit code (0 allow, 1 deny).
fn print_outcome(d: &Decision) -> ExitCode {
    match (&d.result, d.ruling.as_ref().map(|r| &r.verdict)) {
        (Ok(_), Some(Verdict::Allow { basis, policy })) => {
            match policy {
                Some(p) => println!("decision: ALLOW ({}: {})", basis.as_str(), p.name),
                None => println!("decision: ALLOW ({})", basis.as_str()),
            }
            ExitCode::SUCCESS
        }
        (Ok(_), _) => {
            println!("decision: DENY (500 allowed without a verdict)");
            ExitCode::from(1)
        }
        (Err(r), _) => {
            println!(
                "decision: DENY ({} {})",
                r.status().as_u16(),
                r.client_message()
            );
            ExitCode::from(1)
        }
    }
}
