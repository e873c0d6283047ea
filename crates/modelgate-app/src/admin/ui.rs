//! The admin UI's routes: server-rendered pages (in [`super::ui_pages`])
//! and the no-JavaScript form posts, which redirect back — or, for a new or
//! rotated key, answer with the page that shows its secret once.

use http::{Method, Response, StatusCode};
use modelgate_core::{BoxBody, Reject};

use super::console::{AdminRequest, Console};
use super::html::{asset, form_value, html, redirect};
use super::keys::Change;
use super::stream::Filter;
use super::ui_pages as pages;

const JS: &str = include_str!("assets/admin.js");
const CSS: &str = include_str!("assets/admin.css");

/// Answers one UI request (`/admin`, `/admin/...` outside `/admin/api`).
pub(super) async fn handle(c: &Console, req: &AdminRequest) -> Result<Response<BoxBody>, Reject> {
    let parts: Vec<&str> = req
        .path
        .trim_start_matches("/admin")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let field = |name: &str| form_value(&req.body, name);
    match (&req.method, parts.as_slice()) {
        (&Method::GET, []) => Ok(redirect("/admin/models")),
        (&Method::GET, ["assets", "admin.js"]) => Ok(asset("text/javascript; charset=utf-8", JS)),
        (&Method::GET, ["assets", "admin.css"]) => Ok(asset("text/css; charset=utf-8", CSS)),
        (&Method::GET, ["models"]) => {
            let models = super::models::models(c).await;
            Ok(html(req, StatusCode::OK, pages::models(req, &models)))
        }
        (&Method::GET, ["keys"]) => keys_page(c, req, StatusCode::OK, None, None).await,
        (&Method::POST, ["keys"]) => {
            let change = Change::Create {
                name: field("name").unwrap_or_default(),
                models: field("models")
                    .filter(|m| !m.trim().is_empty())
                    .unwrap_or_else(|| "*".into()),
                expires: field("expires"),
            };
            key_change(c, req, change).await
        }
        (&Method::POST, ["keys", name, "rotate"]) => {
            let change = Change::Rotate {
                name: (*name).to_string(),
                grace: field("grace"),
            };
            key_change(c, req, change).await
        }
        (&Method::POST, ["keys", name, "revoke"]) => {
            let change = Change::Revoke {
                name: (*name).to_string(),
            };
            match super::keys::apply(c, change).await {
                Ok(_) => Ok(redirect("/admin/keys")),
                Err(Reject::BadRequest(m)) => {
                    keys_page(c, req, StatusCode::BAD_REQUEST, None, Some(&m)).await
                }
                Err(r) => Err(r),
            }
        }
        (&Method::POST, ["models", model, "require_token"]) => {
            let require = field("require").is_some_and(|v| v == "on");
            match super::require_token::set(c, model, require).await {
                Ok(_) => Ok(redirect("/admin/keys")),
                Err(Reject::BadRequest(m)) => {
                    keys_page(c, req, StatusCode::BAD_REQUEST, None, Some(&m)).await
                }
                Err(r) => Err(r),
            }
        }
        (&Method::GET, ["policies"]) => {
            let body = pages::policies(req, &super::api::policies(c), None);
            Ok(html(req, StatusCode::OK, body))
        }
        (&Method::POST, ["policies", "explain"]) => explain(c, req).await,
        (&Method::GET, ["decisions"]) => {
            let f = Filter::parse(req.query.as_deref())?;
            let recent = super::stream::recent(c, &f);
            let models: Vec<String> = c
                .shared
                .pipeline
                .load()
                .config
                .models
                .iter()
                .map(|m| m.name.as_str().to_string())
                .collect();
            Ok(html(
                req,
                StatusCode::OK,
                pages::decisions(req, &f, &models, &recent),
            ))
        }
        _ => Err(Reject::NotFound("no such admin page".into())),
    }
}

async fn keys_page(
    c: &Console,
    req: &AdminRequest,
    status: StatusCode,
    created: Option<&super::keys::NewKey>,
    error: Option<&str>,
) -> Result<Response<BoxBody>, Reject> {
    let keys = super::keys::list(c).await?;
    let p = c.shared.pipeline.load_full();
    let body = pages::keys(req, &keys, &p.config.models, created, error);
    Ok(html(req, status, body))
}

async fn key_change(
    c: &Console,
    req: &AdminRequest,
    change: Change,
) -> Result<Response<BoxBody>, Reject> {
    match super::keys::apply(c, change).await {
        Ok(created) => keys_page(c, req, StatusCode::OK, created.as_ref(), None).await,
        Err(Reject::BadRequest(m)) => {
            keys_page(c, req, StatusCode::BAD_REQUEST, None, Some(&m)).await
        }
        Err(r) => Err(r),
    }
}

async fn explain(c: &Console, req: &AdminRequest) -> Result<Response<BoxBody>, Reject> {
    let field = |name: &str| form_value(&req.body, name).filter(|v| !v.trim().is_empty());
    let mut q = super::explain::Question {
        method: field("method"),
        path: field("path").unwrap_or_else(|| "/".into()),
        identity: field("identity"),
        model: field("model"),
        ..Default::default()
    };
    let mut error = None;
    if let Some(claims) = field("claims") {
        match serde_json::from_str(&claims) {
            Ok(map) => q.claims = Some(map),
            Err(e) => error = Some(format!("claims: not a JSON object: {e}")),
        }
    }
    for line in field("headers").unwrap_or_default().lines() {
        if let Some((k, v)) = line.split_once(':') {
            q.headers.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let answer = match error {
        Some(e) => Err(e),
        None => match super::explain::explain(c, q).await {
            Ok(a) => Ok(a),
            Err(Reject::BadRequest(m)) => Err(m),
            Err(r) => return Err(r),
        },
    };
    let body = pages::policies(req, &super::api::policies(c), Some(&answer));
    Ok(html(req, StatusCode::OK, body))
}
