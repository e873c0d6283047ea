//! CEL conditions (modelgate extension): compiled once per configuration,
//! evaluated over four variables — `request`, `source`, `destination`, `auth`.
//!
//! Header values are lists (one item per field line, never joined); bytes
//! that are not UTF-8 are replaced by U+FFFD, so a prefix or suffix test still
//! sees the valid part and an equality test fails, never the other way round.
//! `auth` is `null` for anonymous requests.

use std::collections::BTreeMap;
use std::sync::Arc;

use cel::{Context, Env, Program, Value};
use serde::Serialize;

use crate::input::Input;

/// One compiled CEL condition.
pub struct CelCondition {
    pub path: String,
    pub source: String,
    program: Program,
}

impl std::fmt::Debug for CelCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CelCondition({:?})", self.source)
    }
}

impl CelCondition {
    pub fn compile(path: &str, source: &str) -> Result<Self, String> {
        let program = Program::compile(source).map_err(|e| {
            format!(
                "invalid CEL expression: {}",
                e.to_string().lines().next().unwrap_or("syntax error")
            )
        })?;
        Ok(Self {
            path: path.to_string(),
            source: source.to_string(),
            program,
        })
    }

    /// `Ok(true/false)`, or `Err` if the expression failed or is not a bool.
    pub fn eval(&self, env: &Arc<Env>, input: &Input<'_>) -> Result<bool, String> {
        let mut ctx = Context::with_env(Arc::clone(env));
        let v = vars(input);
        add(&mut ctx, "request", &v.request)?;
        add(&mut ctx, "source", &v.source)?;
        add(&mut ctx, "destination", &v.destination)?;
        add(&mut ctx, "auth", &v.auth)?;
        match self.program.execute(&ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("result is {:?}, not a bool", other.type_of())),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn add<T: Serialize>(ctx: &mut Context<'_, '_>, name: &str, v: &T) -> Result<(), String> {
    ctx.add_variable(name, v)
        .map_err(|e| format!("cannot bind {name}: {e}"))
}

#[derive(Serialize)]
struct Vars<'a> {
    request: RequestVar<'a>,
    source: SourceVar<'a>,
    destination: DestinationVar,
    auth: Option<AuthVar<'a>>,
}

#[derive(Serialize)]
struct RequestVar<'a> {
    method: &'a str,
    path: &'a str,
    host: &'a str,
    headers: BTreeMap<&'a str, Vec<String>>,
    model: &'a str,
    protocol: &'a str,
    operation: &'a str,
}

#[derive(Serialize)]
struct SourceVar<'a> {
    ip: String,
    remote_ip: String,
    principal: &'a str,
    namespace: &'a str,
}

#[derive(Serialize)]
struct DestinationVar {
    ip: String,
    port: u16,
}

#[derive(Serialize)]
struct AuthVar<'a> {
    method: &'a str,
    name: &'a str,
    principal: String,
    issuer: &'a str,
    subject: &'a str,
    audiences: &'a [String],
    presenter: &'a str,
    namespace: &'a str,
    groups: &'a [String],
    claims: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

fn vars<'a>(i: &'a Input<'a>) -> Vars<'a> {
    let mut headers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (k, v) in i.headers {
        headers
            .entry(k.as_str())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let auth = i.principal.map(|p| {
        let (iss, sub) = i.request_principal().unwrap_or(("", ""));
        AuthVar {
            method: p.method.as_str(),
            name: &p.name,
            principal: if iss.is_empty() {
                String::new()
            } else {
                format!("{iss}/{sub}")
            },
            issuer: p.issuer.as_deref().unwrap_or(""),
            subject: &p.subject,
            audiences: &p.audiences,
            presenter: p.presenter.as_deref().unwrap_or(""),
            namespace: p.namespace.as_deref().unwrap_or(""),
            groups: &p.groups,
            claims: p.claims.as_deref(),
        }
    });
    Vars {
        request: RequestVar {
            method: i.method,
            path: i.path,
            host: i.host.unwrap_or(""),
            headers,
            model: i.route.model.known().map_or("", |m| m.as_str()),
            protocol: i.route.protocol.as_str(),
            operation: i.route.operation.as_str(),
        },
        source: SourceVar {
            ip: i.client.to_string(),
            remote_ip: i.remote.map(|r| r.to_string()).unwrap_or_default(),
            principal: i.peer_principal.as_deref().unwrap_or(""),
            namespace: i.namespace().unwrap_or(""),
        },
        destination: DestinationVar {
            ip: i.local.ip().to_string(),
            port: i.local.port(),
        },
        auth,
    }
}

/// The environment shared by every condition of one configuration.
pub fn env() -> Arc<Env> {
    Arc::new(Env::stdlib())
}
