//! Istio `RequestAuthentication` (→ `auth.jwt`, or ServiceAccount tokens),
//! `AuthorizationPolicy` (→ `policies`, pasted form without `selector`) and
//! `VirtualService` routes (→ a model's `routes`, `upstream.host`, timeout).

use std::collections::BTreeMap;

use serde::Deserialize;
use yaml_serde::{Mapping, Value};

use crate::State;
use crate::object::Object;
use crate::out::{JwtRule, Route, UrlSource};

const SA_ISSUERS: &[&str] = &[
    "https://kubernetes.default.svc.cluster.local",
    "https://kubernetes.default.svc",
];
const WORKLOAD: &str =
    "modelgate is the gateway itself: no workload to select; applies to every model";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawJwtRule {
    issuer: String,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    jwks: Option<String>,
    #[serde(default)]
    from_headers: Vec<BTreeMap<String, String>>,
    #[serde(default)]
    from_params: Vec<String>,
    #[serde(default)]
    from_cookies: Vec<String>,
    #[serde(default)]
    forward_original_token: Option<bool>,
    #[serde(default)]
    output_claim_to_headers: Vec<BTreeMap<String, String>>,
    #[serde(default)]
    output_payload_to_header: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
}

const JWT_FIELDS: &[&str] = &[
    "issuer",
    "audiences",
    "jwksUri",
    "jwks",
    "fromHeaders",
    "fromParams",
    "fromCookies",
    "forwardOriginalToken",
    "outputClaimToHeaders",
    "outputPayloadToHeader",
    "timeout",
];

fn selectors(obj: &mut Object, st: &mut State<'_>) {
    for key in ["spec.selector", "spec.targetRef", "spec.targetRefs"] {
        if obj.at(key).is_some() {
            obj.note(&mut st.report, key, WORKLOAD);
        }
    }
}

pub(crate) fn request_authentication(mut obj: Object, st: &mut State<'_>) {
    selectors(&mut obj, st);
    let rules: Vec<RawJwtRule> = obj
        .read("spec.jwtRules", &mut st.report)
        .unwrap_or_default();
    for (i, raw) in rules.into_iter().enumerate() {
        let path = format!("spec.jwtRules[{i}]");
        for f in JWT_FIELDS {
            obj.used(format!("{path}.{f}"));
        }
        let mut rule = JwtRule {
            issuer: raw.issuer.clone(),
            audiences: raw.audiences,
            jwks_uri: raw.jwks_uri,
            jwks: raw.jwks,
            from_headers: raw.from_headers,
            from_params: raw.from_params,
            from_cookies: raw.from_cookies,
            forward_original_token: raw.forward_original_token,
            output_claim_to_headers: raw.output_claim_to_headers,
            output_payload_to_header: raw.output_payload_to_header,
            timeout: raw.timeout,
        };
        if let Some(uri) = st.opts.jwks_uris.get(&raw.issuer) {
            obj.note(
                &mut st.report,
                &format!("{path}.jwksUri"),
                format!("replaced by --jwks-uri: {uri}"),
            );
            rule.jwks_uri = Some(uri.clone());
        }
        st.add_jwt_rule(rule, &obj.id, &path);
    }
    obj.finish(
        &mut st.report,
        "no modelgate equivalent for this jwtRules field",
    );
}

impl State<'_> {
    /// A JWT rule: the ServiceAccount issuer goes to `auth.kubernetes`.
    pub(crate) fn add_jwt_rule(&mut self, rule: JwtRule, id: &str, path: &str) {
        let dup = self.config.auth.jwt.iter().any(|r| r.issuer == rule.issuer)
            || self
                .config
                .auth
                .kubernetes
                .as_ref()
                .and_then(|k| k.service_account_tokens.as_ref())
                .is_some_and(|r| r.issuer == rule.issuer);
        if dup {
            self.report.push(
                crate::Level::Untranslated,
                id,
                path,
                format!(
                    "issuer {} is already configured by an earlier object; this rule is not used",
                    rule.issuer
                ),
            );
            return;
        }
        let kube = self
            .config
            .auth
            .kubernetes
            .get_or_insert_with(Default::default);
        if SA_ISSUERS.contains(&rule.issuer.as_str()) && kube.service_account_tokens.is_none() {
            self.report.push(crate::Level::Note, id, path, "Kubernetes ServiceAccount issuer: verified offline as auth.kubernetes.service_account_tokens (namespace and groups from the token)");
            kube.service_account_tokens = Some(rule);
        } else {
            if kube.service_account_tokens.is_none() && kube.token_review.is_none() {
                self.config.auth.kubernetes = None;
            }
            self.config.auth.jwt.push(rule);
        }
    }
}

const RULE_KEYS: &[&str] = &["from", "to", "when"];
const SOURCE_KEYS: &[&str] = &[
    "principals",
    "notPrincipals",
    "requestPrincipals",
    "notRequestPrincipals",
    "namespaces",
    "notNamespaces",
    "ipBlocks",
    "notIpBlocks",
    "remoteIpBlocks",
    "notRemoteIpBlocks",
];
const OPERATION_KEYS: &[&str] = &[
    "hosts",
    "notHosts",
    "ports",
    "notPorts",
    "methods",
    "notMethods",
    "paths",
    "notPaths",
];
const CONDITION_KEYS: &[&str] = &["key", "values", "notValues"];

/// Keeps the keys modelgate's policy parser knows; reports the rest.
fn keep_known(
    v: &Value,
    known: &[&str],
    path: &str,
    obj: &mut Object,
    st: &mut State<'_>,
) -> Value {
    let Value::Mapping(m) = v else {
        return v.clone();
    };
    let mut out = Mapping::new();
    for (k, child) in m {
        let key = k.as_str().unwrap_or("?");
        if known.contains(&key) {
            out.insert(k.clone(), child.clone());
        } else {
            obj.drop(
                &mut st.report,
                &format!("{path}.{key}"),
                "no modelgate equivalent for this AuthorizationPolicy field",
            );
        }
    }
    Value::Mapping(out)
}

fn clean_list(
    v: Option<&Value>,
    inner: &str,
    known: &[&str],
    path: &str,
    obj: &mut Object,
    st: &mut State<'_>,
) -> Option<Value> {
    let Value::Sequence(items) = v? else {
        return v.cloned();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if inner.is_empty() {
            out.push(keep_known(item, known, &p, obj, st));
        } else {
            let mut m = Mapping::new();
            if let Some(x) = item.get(inner) {
                m.insert(
                    inner.into(),
                    keep_known(x, known, &format!("{p}.{inner}"), obj, st),
                );
            }
            out.push(Value::Mapping(m));
        }
    }
    Some(Value::Sequence(out))
}

pub(crate) fn authorization_policy(mut obj: Object, st: &mut State<'_>) {
    selectors(&mut obj, st);
    let action = obj
        .at("spec.action")
        .and_then(Value::as_str)
        .unwrap_or("ALLOW")
        .to_string();
    let mut spec = Mapping::new();
    spec.insert("action".into(), action.clone().into());
    obj.used("spec.action");
    match action.as_str() {
        "ALLOW" | "DENY" => {
            st.istio_rbac = true;
            st.has_allow_policy |= action == "ALLOW";
        }
        "CUSTOM" => {
            if let Some(p) = obj.at("spec.provider").cloned() {
                if let Some(name) = p.get("name").and_then(Value::as_str) {
                    st.custom_policies.push((obj.id.clone(), name.to_string()));
                }
                spec.insert("provider".into(), p);
                obj.used("spec.provider"); // reported once providers are known (mesh.rs)
            }
        }
        _ => {}
    }
    if let Some(Value::Sequence(rules)) = obj.at("spec.rules").cloned() {
        let mut out = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let p = format!("spec.rules[{i}]");
            let mut r = match keep_known(rule, RULE_KEYS, &p, &mut obj, st) {
                Value::Mapping(m) => m,
                _ => Mapping::new(),
            };
            if let Some(v) = clean_list(
                rule.get("from"),
                "source",
                SOURCE_KEYS,
                &format!("{p}.from"),
                &mut obj,
                st,
            ) {
                r.insert("from".into(), v);
            }
            if let Some(v) = clean_list(
                rule.get("to"),
                "operation",
                OPERATION_KEYS,
                &format!("{p}.to"),
                &mut obj,
                st,
            ) {
                r.insert("to".into(), v);
            }
            if let Some(v) = clean_list(
                rule.get("when"),
                "",
                CONDITION_KEYS,
                &format!("{p}.when"),
                &mut obj,
                st,
            ) {
                r.insert("when".into(), v);
            }
            out.push(Value::Mapping(r));
        }
        spec.insert("rules".into(), Value::Sequence(out));
        obj.used("spec.rules");
    }
    let mut meta = Mapping::new();
    meta.insert("name".into(), obj.name.clone().into());
    if let Some(ns) = &obj.namespace {
        meta.insert("namespace".into(), ns.clone().into());
    }
    let mut policy = Mapping::new();
    policy.insert("apiVersion".into(), obj.api_version.clone().into());
    policy.insert("kind".into(), "AuthorizationPolicy".into());
    policy.insert("metadata".into(), Value::Mapping(meta));
    policy.insert("spec".into(), Value::Mapping(spec));
    st.config.policies.push(Value::Mapping(policy));
    obj.finish(
        &mut st.report,
        "no modelgate equivalent for this AuthorizationPolicy field",
    );
}

#[derive(Debug, Deserialize)]
struct Http {
    #[serde(default, rename = "match")]
    matches: Vec<Match>,
    #[serde(default)]
    route: Vec<Destination>,
    #[serde(default)]
    rewrite: Option<Rewrite>,
    #[serde(default)]
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Match {
    #[serde(default)]
    uri: Option<BTreeMap<String, String>>,
    #[serde(default)]
    method: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct Destination {
    destination: Target,
    #[serde(default)]
    headers: Option<Headers>,
}

#[derive(Debug, Deserialize)]
struct Target {
    host: String,
    #[serde(default)]
    port: Option<Port>,
}

#[derive(Debug, Deserialize)]
struct Port {
    number: u32,
}

#[derive(Debug, Default, Deserialize)]
struct Headers {
    #[serde(default)]
    request: Option<HeaderOps>,
}

#[derive(Debug, Default, Deserialize)]
struct HeaderOps {
    #[serde(default)]
    set: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct Rewrite {
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    authority: Option<String>,
}

/// `/v1/models/NAME:predict` → (NAME, v1); `/v2/models/NAME/infer` → (NAME, v2).
pub(crate) fn model_path(uri: &str) -> Option<(String, &'static str)> {
    if let Some(rest) = uri.strip_prefix("/v1/models/") {
        let (name, verb) = rest.split_once(':')?;
        return matches!(verb, "predict" | "explain").then(|| (name.to_string(), "v1"));
    }
    let rest = uri.strip_prefix("/v2/models/")?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then(|| (name.to_string(), "v2"))
}

pub(crate) fn virtual_service(mut obj: Object, st: &mut State<'_>) {
    if obj.at("spec.gateways").is_some() {
        obj.note(
            &mut st.report,
            "spec.gateways",
            "modelgate is the gateway: ignored",
        );
    }
    let hosts: Vec<String> = obj.read("spec.hosts", &mut st.report).unwrap_or_default();
    obj.used("spec.hosts");
    let hosts: Vec<String> = hosts.into_iter().filter(|h| h != "*").collect();
    let routes: Vec<Http> = obj.read("spec.http", &mut st.report).unwrap_or_default();
    for (i, http) in routes.into_iter().enumerate() {
        http_route(&mut obj, st, i, http, &hosts);
    }
    obj.finish(
        &mut st.report,
        "no modelgate equivalent for this VirtualService field",
    );
}

fn http_route(obj: &mut Object, st: &mut State<'_>, i: usize, http: Http, hosts: &[String]) {
    let p = format!("spec.http[{i}]");
    let Some((name, proto, rewrite)) = route_target(obj, st, &p, &http) else {
        return;
    };
    let Some(first) = http.route.first() else {
        obj.drop(&mut st.report, &p, "no destination");
        return;
    };
    if http.route.len() > 1 {
        obj.drop(
            &mut st.report,
            &format!("{p}.route[1]"),
            "traffic split over several destinations: only the first is used",
        );
    }
    let url = match &first.destination.port {
        Some(port) => format!("http://{}:{}", first.destination.host, port.number),
        None => format!("http://{}", first.destination.host),
    };
    obj.used(format!("{p}.route[0].destination.host"));
    obj.used(format!("{p}.route[0].destination.port.number"));
    obj.used(format!("{p}.route[0].weight"));
    let model = st.models.upsert(&name, url, UrlSource::VirtualService);
    if !model.protocols.iter().any(|x| x == proto) {
        model.protocols.push(proto.to_string());
    }
    for h in hosts {
        if !model.hosts.contains(h) {
            model.hosts.push(h.clone());
        }
    }
    upstream_options(obj, model, &p, &http, first);
    for (j, m) in http.matches.iter().enumerate() {
        match_route(obj, st, &format!("{p}.match[{j}]"), m, &name, &rewrite);
    }
}

/// The model and protocol a route is rewritten onto, and the rewrite; `None`
/// (the route dropped) when it is not rewritten onto a model's path.
fn route_target(
    obj: &mut Object,
    st: &mut State<'_>,
    p: &str,
    http: &Http,
) -> Option<(String, &'static str, String)> {
    let rewrite = http.rewrite.as_ref().and_then(|r| r.uri.clone());
    let Some((name, proto)) = rewrite.as_deref().and_then(model_path) else {
        obj.drop(&mut st.report, p, "the route is not rewritten onto a model's protocol path (/v1/models/M:predict, /v2/models/M/infer); modelgate routes by protocol path");
        return None;
    };
    obj.used(format!("{p}.rewrite.uri"));
    Some((name, proto, rewrite.unwrap_or_default()))
}

/// The upstream `Host` (a `host` request header set on the destination, or
/// the rewrite's authority) and the timeout.
fn upstream_options(
    obj: &mut Object,
    model: &mut crate::out::Model,
    p: &str,
    http: &Http,
    first: &Destination,
) {
    let set = first
        .headers
        .as_ref()
        .and_then(|h| h.request.as_ref())
        .map(|r| r.set.clone())
        .unwrap_or_default();
    for (k, v) in set {
        if k.eq_ignore_ascii_case("host") {
            model.upstream.host = Some(v);
            obj.used(format!("{p}.route[0].headers.request.set.{k}"));
        }
    }
    if let Some(a) = http.rewrite.as_ref().and_then(|r| r.authority.clone()) {
        model.upstream.host = Some(a);
        obj.used(format!("{p}.rewrite.authority"));
    }
    if let Some(t) = &http.timeout {
        model.upstream.timeout = Some(t.clone());
        obj.used(format!("{p}.timeout"));
    }
}

/// One `match` of a route: a uri prefix (or exact) becomes a model route.
fn match_route(
    obj: &mut Object,
    st: &mut State<'_>,
    mp: &str,
    m: &Match,
    name: &str,
    rewrite: &str,
) {
    let methods: Vec<String> = m
        .method
        .as_ref()
        .and_then(|x| x.get("exact"))
        .cloned()
        .into_iter()
        .collect();
    if !methods.is_empty() {
        obj.used(format!("{mp}.method.exact"));
    }
    let prefix = m
        .uri
        .as_ref()
        .and_then(|u| u.get("prefix").or_else(|| u.get("exact")));
    let Some(prefix) = prefix else {
        obj.drop(
            &mut st.report,
            mp,
            "only uri prefix/exact matches become routes",
        );
        return;
    };
    if m.uri.as_ref().is_some_and(|u| u.contains_key("exact")) {
        obj.note(
            &mut st.report,
            &format!("{mp}.uri.exact"),
            "an exact match becomes a prefix route (paths below it match too)",
        );
    }
    obj.used(format!("{mp}.uri.prefix"));
    let model = st.models.upsert(name, String::new(), UrlSource::Predictor);
    model.routes.push(Route {
        prefix: prefix.clone(),
        rewrite: rewrite.to_string(),
        methods,
    });
}
