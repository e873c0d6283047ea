//! The admin JSON API under `/admin/api` (see `docs/admin.md`): models,
//! keys (create and rotate return the secret once; lists never do),
//! policies (read-only), the explainer, recent decisions and their live
//! stream, and the per-model "require token" switch.

use http::{Method, Response, StatusCode};
use modelgate_audit::tap::TapEvent;
use modelgate_core::{BoxBody, Reject};
use serde::{Deserialize, Serialize};

use super::console::{AdminRequest, Console};
use super::html::json;
use super::keys::Change;
use super::stream::Filter;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    /// Model names, or `["*"]` (default) for all.
    #[serde(default)]
    models: Option<Vec<String>>,
    /// Lifetime, e.g. `30d` (default: no expiry).
    #[serde(default)]
    expires: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rotate {
    /// How long the old secret keeps working, e.g. `1h` (default 0s).
    #[serde(default)]
    grace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequireToken {
    require: bool,
}

/// A policy as configured, for reading.
#[derive(Serialize)]
pub(super) struct PolicyView {
    pub name: String,
    pub key: String,
    pub action: &'static str,
    pub provider: Option<String>,
    pub models: Option<Vec<String>>,
    pub dry_run: bool,
    /// Each rule, as modelgate understood it.
    pub rules: Option<Vec<String>>,
}

pub(super) fn policies(c: &Console) -> Vec<PolicyView> {
    c.shared
        .pipeline
        .load()
        .config
        .policies
        .iter()
        .map(|p| PolicyView {
            name: p.name.clone(),
            key: p.key.clone(),
            action: p.action.as_str(),
            provider: p.provider.clone(),
            models: p
                .models
                .as_ref()
                .map(|ms| ms.iter().map(|m| format!("{m:?}")).collect()),
            dry_run: p.dry_run,
            rules: p
                .rules
                .as_ref()
                .map(|rs| rs.iter().map(|r| format!("{r:?}")).collect()),
        })
        .collect()
}

fn body<'a, T: Deserialize<'a> + Default>(
    req: &'a AdminRequest,
    empty_ok: bool,
) -> Result<T, Reject> {
    if empty_ok && req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&req.body).map_err(|e| Reject::BadRequest(format!("request body: {e}")))
}

fn parsed<'a, T: Deserialize<'a>>(req: &'a AdminRequest) -> Result<T, Reject> {
    serde_json::from_slice(&req.body).map_err(|e| Reject::BadRequest(format!("request body: {e}")))
}

fn not_found() -> Reject {
    Reject::NotFound("no such admin API endpoint".into())
}

/// Answers one `/admin/api/...` request.
pub(super) async fn handle(c: &Console, req: &AdminRequest) -> Result<Response<BoxBody>, Reject> {
    let rest = req.path.trim_start_matches("/admin/api/");
    let parts: Vec<&str> = rest.split('/').collect();
    let m = &req.method;
    match (m, parts.as_slice()) {
        (&Method::GET, ["models"]) => json(req, StatusCode::OK, &super::models::models(c).await),
        (&Method::PUT, ["models", model, "require_token"]) => {
            let q: RequireToken = parsed(req)?;
            let now = super::require_token::set(c, model, q.require).await?;
            json(
                req,
                StatusCode::OK,
                &serde_json::json!({"model": model, "require_token": now}),
            )
        }
        (&Method::GET, ["keys"]) => json(req, StatusCode::OK, &super::keys::list(c).await?),
        (&Method::POST, ["keys"]) => {
            let q: CreateKey = parsed(req)?;
            let models = q.models.unwrap_or_else(|| vec!["*".into()]).join(",");
            let change = Change::Create {
                name: q.name,
                models,
                expires: q.expires,
            };
            let k = super::keys::apply(c, change).await?;
            json(req, StatusCode::CREATED, &k)
        }
        (&Method::POST, ["keys", name, "rotate"]) => {
            let q: Rotate = body(req, true)?;
            let change = Change::Rotate {
                name: (*name).to_string(),
                grace: q.grace,
            };
            json(req, StatusCode::OK, &super::keys::apply(c, change).await?)
        }
        (&Method::POST, ["keys", name, "revoke"]) | (&Method::DELETE, ["keys", name]) => {
            let change = Change::Revoke {
                name: (*name).to_string(),
            };
            super::keys::apply(c, change).await?;
            json(req, StatusCode::OK, &serde_json::json!({"revoked": name}))
        }
        (&Method::GET, ["policies"]) => json(req, StatusCode::OK, &policies(c)),
        (&Method::GET, ["usage"]) => json(req, StatusCode::OK, &super::usage::usage(c).await?),
        (&Method::POST, ["explain"]) => {
            let q = parsed(req)?;
            json(req, StatusCode::OK, &super::explain::explain(c, q).await?)
        }
        (&Method::GET, ["decisions"]) => {
            let f = Filter::parse(req.query.as_deref())?;
            let recent = super::stream::recent(c, &f);
            let shown: Vec<&TapEvent> = recent.iter().map(|e| &**e).collect();
            json(req, StatusCode::OK, &shown)
        }
        (&Method::GET, ["decisions", "stream"]) => {
            super::stream::stream(c, Filter::parse(req.query.as_deref())?)
        }
        (
            _,
            ["models"]
            | ["models", _, "require_token"]
            | ["keys"]
            | ["keys", _, _]
            | ["keys", _]
            | ["policies"]
            | ["usage"]
            | ["explain"]
            | ["decisions"]
            | ["decisions", "stream"],
        ) => Err(Reject::MethodNotAllowed),
        _ => Err(not_found()),
    }
}
