//! The admin pages, rendered on the server with `format!`: every value from
//! configuration, key files, requests or decisions passes through
//! [`esc`]. Charts are inline SVG sparklines; every control has a label.

use std::fmt::Write as _;
use std::sync::Arc;

use modelgate_audit::tap::TapEvent;
use modelgate_authn::keys::KeySummary;
use modelgate_config::Model;

use super::api::PolicyView;
use super::console::AdminRequest;
use super::explain::Answer;
use super::html::{csrf_field, esc, page, seg};
use super::keys::NewKey;
use super::models::ModelView;
use super::stream::Filter;

/// A small line chart of `values` (oldest first), labelled for screen readers.
pub(super) fn sparkline(values: &[f64], label: &str) -> String {
    const W: f64 = 120.0;
    const H: f64 = 24.0;
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let step = if values.len() > 1 {
        W / (values.len() - 1) as f64
    } else {
        W
    };
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let y = if max > 0.0 {
                H - 2.0 - (v / max) * (H - 4.0)
            } else {
                H - 2.0
            };
            format!("{:.1},{:.1}", i as f64 * step, y)
        })
        .collect();
    format!(
        r#"<svg class="spark" role="img" aria-label="{}" width="120" height="24" viewBox="0 0 120 24"><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{}"/></svg>"#,
        esc(label),
        points.join(" ")
    )
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.1} ms"))
}

pub(super) fn models(req: &AdminRequest, models: &[ModelView]) -> String {
    let mut rows = String::new();
    for m in models {
        let rate: Vec<f64> = m
            .stats
            .rate_series
            .iter()
            .map(|n| *n as f64 / 5.0)
            .collect();
        let _ = write!(
            rows,
            r#"<tr data-model="{name}"><th scope="row">{name}</th><td>{kind} {backend}</td><td>{protocols}</td><td class="health-{health}">{health}</td><td>{token}</td><td>{rate:.2}/s {rs}</td><td>{p50} / {p99} {ls}</td></tr>"#,
            name = esc(&m.name),
            kind = m.kind,
            backend = esc(&m.backend),
            protocols = m.protocols.join(", "),
            health = m.health,
            token = if m.require_token {
                "required"
            } else {
                "not required"
            },
            rate = m.stats.rate_per_s,
            rs = sparkline(
                &rate,
                &format!("{} requests per second, last minute", m.name)
            ),
            p50 = ms(m.stats.p50_ms),
            p99 = ms(m.stats.p99_ms),
            ls = sparkline(
                &m.stats.latency_series,
                &format!("{} median latency, last minute", m.name)
            ),
        );
    }
    let main = format!(
        r#"<table id="models"><caption>Configured models, traffic over the last minute</caption>
<thead><tr><th scope="col">Model</th><th scope="col">Backend</th><th scope="col">Protocols</th><th scope="col">Health</th><th scope="col">Token</th><th scope="col">Request rate</th><th scope="col">Latency p50 / p99</th></tr></thead>
<tbody>{rows}</tbody></table>"#
    );
    page(req, "Models", &main)
}

pub(super) fn keys(
    req: &AdminRequest,
    keys: &[KeySummary],
    models: &[Model],
    created: Option<&NewKey>,
    error: Option<&str>,
) -> String {
    let csrf = csrf_field(req);
    let mut main = String::new();
    if let Some(e) = error {
        let _ = write!(main, r#"<p class="error" role="alert">{}</p>"#, esc(e));
    }
    if let Some(k) = created {
        let _ = write!(
            main,
            r#"<section class="secret" role="status"><h2>New key for {name}</h2><p>Copy it now: it is shown only once.</p>
<label for="new-secret">Secret of {name}</label><input id="new-secret" readonly value="{key}" size="60"></section>"#,
            name = esc(&k.name),
            key = esc(&k.key)
        );
    }
    let rows = key_rows(keys, &csrf);
    let _ = write!(
        main,
        r#"<h2>Create a key</h2><form method="post" action="/admin/keys" id="create-key">{csrf}
<label for="key-name">Name</label><input id="key-name" name="name" required maxlength="64">
<label for="key-models">Models (comma-separated, * for all)</label><input id="key-models" name="models" value="*">
<label for="key-expires">Expires in (e.g. 30d; empty: never)</label><input id="key-expires" name="expires" size="6">
<button>Create key</button></form>
<table id="keys"><caption>API keys (secrets are never listed)</caption><thead><tr><th scope="col">Name</th><th scope="col">Id</th><th scope="col">Status</th><th scope="col">Models</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Actions</th></tr></thead><tbody>{rows}</tbody></table>
<h2>Require token authentication</h2><p>Off: anyone may call the model's inference without a credential.</p>"#
    );
    for m in models {
        let n = esc(m.name.as_str());
        let checked = if super::require_token::required(m) {
            " checked"
        } else {
            ""
        };
        let _ = write!(
            main,
            r#"<form method="post" action="/admin/models/{action}/require_token" class="switch">{csrf}<input type="hidden" name="require" value="off">
<input type="checkbox" id="require-{n}" name="require" value="on"{checked}><label for="require-{n}">Require token authentication for {n}</label><button>Save {n}</button></form>"#,
            action = seg(m.name.as_str()),
        );
    }
    page(req, "Keys", &main)
}

/// One table row per key; a revoked key has no actions.
fn key_rows(keys: &[KeySummary], csrf: &str) -> String {
    let mut rows = String::new();
    for k in keys {
        let n = esc(&k.name);
        let action = seg(&k.name);
        let actions = if k.status == "revoked" {
            "–".to_string()
        } else {
            format!(
                r#"<form method="post" action="/admin/keys/{action}/rotate">{csrf}<label for="grace-{n}">Grace for {n}</label><input id="grace-{n}" name="grace" placeholder="0s" size="5"><button>Rotate {n}</button></form>
<form method="post" action="/admin/keys/{action}/revoke">{csrf}<button class="danger">Revoke {n}</button></form>"#
            )
        };
        let _ = write!(
            rows,
            r#"<tr data-key="{n}"><th scope="row">{n}</th><td>{id}</td><td class="status">{status}</td><td>{models}</td><td>{created}</td><td>{expires}</td><td>{actions}</td></tr>"#,
            id = esc(&k.id),
            status = esc(k.status),
            models = esc(&k.models.join(", ")),
            created = esc(&k.created_at),
            expires = esc(k.expires_at.as_deref().unwrap_or("never")),
        );
    }
    rows
}

pub(super) fn policies(
    req: &AdminRequest,
    policies: &[PolicyView],
    answer: Option<&Result<Answer, String>>,
) -> String {
    let mut rows = String::new();
    for p in policies {
        let rules = p
            .rules
            .as_ref()
            .map_or_else(|| "(no rules: matches nothing)".into(), |r| r.join("\n"));
        let _ = write!(
            rows,
            r#"<tr><th scope="row">{name}</th><td>{key}</td><td>{action}{dry}</td><td>{models}</td><td><pre>{rules}</pre></td></tr>"#,
            name = esc(&p.name),
            key = esc(&p.key),
            action = p.action,
            dry = if p.dry_run { " (dry-run)" } else { "" },
            models = esc(&p
                .models
                .as_ref()
                .map_or_else(|| "all".into(), |m| m.join(", "))),
            rules = esc(&rules),
        );
    }
    let mut main = format!(
        r#"<table id="policies"><caption>Policies (read-only, from the configuration)</caption><thead><tr><th scope="col">Name</th><th scope="col">Key</th><th scope="col">Action</th><th scope="col">Models</th><th scope="col">Rules</th></tr></thead><tbody>{rows}</tbody></table>
<h2>Why? Explain a decision</h2><form method="post" action="/admin/policies/explain" id="explain">{csrf}
<label for="x-method">Method</label><input id="x-method" name="method" value="POST" size="6">
<label for="x-path">Path</label><input id="x-path" name="path" value="/v2/models/iris/infer" size="40">
<label for="x-identity">API-key name to assume</label><input id="x-identity" name="identity">
<label for="x-claims">Token claims to assume (JSON)</label><textarea id="x-claims" name="claims" rows="2" cols="40"></textarea>
<label for="x-headers">Headers (one per line, Name: value)</label><textarea id="x-headers" name="headers" rows="2" cols="40"></textarea>
<label for="x-model">Model named in the body</label><input id="x-model" name="model">
<button>Explain</button></form>"#,
        csrf = csrf_field(req)
    );
    match answer {
        Some(Ok(a)) => {
            let why: String = a
                .why
                .iter()
                .map(|w| format!("<li>{}</li>", esc(w)))
                .collect();
            let _ = write!(
                main,
                r#"<section id="answer" role="status"><h2>Decision: {d} ({status})</h2><p>Request: <code>{asked}</code></p><p>{reason}</p><p>Identity: {id}; route: {route}; basis: {basis}; policy: {policy}</p><ol>{why}</ol></section>"#,
                d = a.decision.to_uppercase(),
                asked = esc(&a.asked),
                status = a.status,
                reason = esc(a.reason.as_deref().unwrap_or("")),
                id = esc(a.identity.as_deref().unwrap_or("–")),
                route = esc(&format!(
                    "{} {} {}",
                    a.protocol.unwrap_or("–"),
                    a.operation.unwrap_or("–"),
                    a.model.as_deref().unwrap_or("–")
                )),
                basis = a.basis.unwrap_or("–"),
                policy = esc(a.policy.as_deref().unwrap_or("–")),
            );
        }
        Some(Err(e)) => {
            let _ = write!(main, r#"<p class="error" role="alert">{}</p>"#, esc(e));
        }
        None => {}
    }
    page(req, "Policies", &main)
}

pub(super) fn decisions(
    req: &AdminRequest,
    f: &Filter,
    models: &[String],
    recent: &[Arc<TapEvent>],
) -> String {
    let mut opts = String::from(r#"<option value="">any</option>"#);
    for m in models {
        let sel = if f.model.as_deref() == Some(m.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(opts, r#"<option{sel}>{}</option>"#, esc(m));
    }
    let mut dopts = String::from(r#"<option value="">any</option>"#);
    for d in ["allow", "deny", "reject"] {
        let sel = if f.decision == Some(d) {
            " selected"
        } else {
            ""
        };
        let _ = write!(dopts, r#"<option{sel}>{d}</option>"#);
    }
    let rows: String = recent.iter().rev().map(|e| row(e)).collect();
    let main = format!(
        r#"<form method="get" action="/admin/decisions" id="filters">
<label for="f-model">Model</label><select id="f-model" name="model">{opts}</select>
<label for="f-identity">Identity</label><input id="f-identity" name="identity" value="{identity}" maxlength="256">
<label for="f-decision">Decision</label><select id="f-decision" name="decision">{dopts}</select>
<button>Filter</button></form>
<p id="live-status" role="status">Showing recent decisions; live updates need JavaScript.</p>
<table id="decisions"><caption>Decisions, newest first</caption><thead><tr><th scope="col">Time</th><th scope="col">Decision</th><th scope="col">Status</th><th scope="col">Method</th><th scope="col">Path</th><th scope="col">Model</th><th scope="col">Identity</th><th scope="col">Reason</th><th scope="col">ms</th></tr></thead><tbody>{rows}</tbody></table>"#,
        identity = esc(f.identity.as_deref().unwrap_or("")),
    );
    page(req, "Live decisions", &main)
}

fn row(e: &TapEvent) -> String {
    format!(
        r#"<tr class="d-{d}" data-rid="{rid}" data-identity="{id}"><td data-ts="{ts}">{ts}</td><td>{d}</td><td>{status}</td><td>{method}</td><td>{path}</td><td>{model}</td><td>{id}</td><td>{reason}</td><td>{ms:.1}</td></tr>"#,
        d = e.decision,
        rid = esc(&e.request_id),
        ts = e.ts_ms,
        status = e.status,
        method = esc(&e.method),
        path = esc(&e.path),
        model = esc(e.model.as_deref().unwrap_or("")),
        id = esc(e.identity.as_deref().unwrap_or("")),
        reason = esc(e.reason.as_deref().unwrap_or("")),
        ms = e.total_ms,
    )
}
