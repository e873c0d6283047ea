//! Authorino `AuthConfig` (authorino.kuadrant.io v1beta2 and v1beta3; the
//! field names are the CRD's): identity sources → `auth.*`, pattern-matching
//! authorization → a DENY policy with a CEL condition, success headers that
//! carry the identity → `auth.identity_header`, a wristband → `wristband:`.

use std::collections::BTreeMap;

use serde::Deserialize;
use yaml_serde::{Mapping, Value};

use crate::State;
use crate::object::Object;
use crate::out::{Introspection, JwtRule, TokenReview};
use crate::pattern;
use crate::report::Level;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Authentication {
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    credentials: Option<Credentials>,
    #[serde(default)]
    api_key: Option<Value>,
    #[serde(default)]
    jwt: Option<Jwt>,
    #[serde(default)]
    oauth2_introspection: Option<OAuth2>,
    #[serde(default)]
    kubernetes_token_review: Option<TokenReviewSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Credentials {
    #[serde(default)]
    authorization_header: Option<Prefixed>,
    #[serde(default)]
    custom_header: Option<Named>,
    #[serde(default)]
    query_string: Option<Named>,
    #[serde(default)]
    cookie: Option<Named>,
}

#[derive(Debug, Default, Deserialize)]
struct Prefixed {
    #[serde(default)]
    prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Named {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Jwt {
    #[serde(default)]
    issuer_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OAuth2 {
    endpoint: String,
}

#[derive(Debug, Default, Deserialize)]
struct TokenReviewSpec {
    #[serde(default)]
    audiences: Vec<String>,
}

/// `{value}`, `{selector}` (v1beta3) or `{valueFrom: {authJSON}}` (v1beta2).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ValueOrSelector {
    #[serde(default)]
    pub(crate) value: Option<Value>,
    #[serde(default)]
    selector: Option<String>,
    #[serde(default)]
    value_from: Option<BTreeMap<String, String>>,
}

impl ValueOrSelector {
    pub(crate) fn selector(&self) -> Option<&str> {
        self.selector.as_deref().or_else(|| {
            self.value_from
                .as_ref()?
                .get("authJSON")
                .map(String::as_str)
        })
    }
}

pub(crate) fn auth_config(mut obj: Object, st: &mut State<'_>) {
    if !obj.api_version.ends_with("/v1beta2") && !obj.api_version.ends_with("/v1beta3") {
        let v = obj.api_version.clone();
        obj.drop(&mut st.report, "", format!("{v} is not read: `kubectl get authconfigs.v1beta3.authorino.kuadrant.io NAME -o yaml` gives the v1beta3 form"));
        obj.used("spec");
        obj.finish(&mut st.report, "");
        return;
    }
    let hosts: Vec<String> = obj.read("spec.hosts", &mut st.report).unwrap_or_default();
    if !hosts.is_empty() {
        obj.note(&mut st.report, "spec.hosts", "identity sources are global in modelgate; the hosts only scope this AuthConfig's pattern-matching rules");
    }
    authentication(&mut obj, st);
    authorization(&mut obj, st, &hosts);
    response(&mut obj, st);
    obj.finish(
        &mut st.report,
        "no modelgate equivalent for this AuthConfig field",
    );
}

fn names(obj: &Object, path: &str) -> Vec<String> {
    match obj.at(path) {
        Some(Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn authentication(obj: &mut Object, st: &mut State<'_>) {
    let mut entries: Vec<(String, Authentication)> = Vec::new();
    for name in names(obj, "spec.authentication") {
        if let Some(a) =
            obj.read::<Authentication>(&format!("spec.authentication.{name}"), &mut st.report)
        {
            entries.push((name, a));
        }
    }
    entries.sort_by_key(|(n, a)| (a.priority, n.clone()));
    for (name, a) in entries {
        let p = format!("spec.authentication.{name}");
        obj.used(format!("{p}.priority"));
        match &st.config.auth.realm {
            None => {
                st.config.auth.realm = Some(name.clone());
                obj.note(&mut st.report, &p, format!("realm \"{name}\" in WWW-Authenticate, as Authorino names the challenge after the config"));
            }
            Some(r) if *r != name => st.report.push(
                Level::Note,
                &obj.id,
                &p,
                format!("WWW-Authenticate keeps the first realm \"{r}\""),
            ),
            Some(_) => {}
        }
        let creds = a.credentials.unwrap_or_default();
        if a.api_key.is_some() {
            api_key(obj, st, &p, &creds);
        } else if let Some(jwt) = a.jwt {
            let mut rule = JwtRule {
                issuer: jwt.issuer_url.clone(),
                ..JwtRule::default()
            };
            token_credentials(obj, st, &p, &creds, Some(&mut rule));
            if let Some(uri) = st.opts.jwks_uris.get(&jwt.issuer_url) {
                rule.jwks_uri = Some(uri.clone());
            }
            obj.used(format!("{p}.jwt.issuerUrl"));
            let id = obj.id.clone();
            st.add_jwt_rule(rule, &id, &format!("{p}.jwt"));
        } else if let Some(tr) = a.kubernetes_token_review {
            token_credentials(obj, st, &p, &creds, None);
            if tr.audiences.is_empty() {
                obj.note(&mut st.report, &format!("{p}.kubernetesTokenReview"), "no audiences: Authorino expects the requested host; modelgate sends none (the API server's own)");
            }
            obj.used(format!("{p}.kubernetesTokenReview"));
            let kube = st
                .config
                .auth
                .kubernetes
                .get_or_insert_with(Default::default);
            kube.token_review = Some(TokenReview {
                api_server: "${KUBERNETES_API_SERVER:-https://kubernetes.default.svc}".into(),
                token_file:
                    "${KUBERNETES_TOKEN_FILE:-/var/run/secrets/kubernetes.io/serviceaccount/token}"
                        .into(),
                audiences: tr.audiences,
            });
            obj.note(&mut st.report, &p, "TokenReview against ${KUBERNETES_API_SERVER} (default in-cluster) with modelgate's own token ${KUBERNETES_TOKEN_FILE}");
        } else if let Some(o) = a.oauth2_introspection {
            token_credentials(obj, st, &p, &creds, None);
            st.config.auth.introspection = Some(Introspection {
                endpoint: o.endpoint,
                client_id: "${INTROSPECTION_CLIENT_ID}".into(),
                client_secret: "${INTROSPECTION_CLIENT_SECRET}".into(),
            });
            obj.used(format!("{p}.oauth2Introspection.endpoint"));
            obj.note(&mut st.report, &format!("{p}.oauth2Introspection.credentialsRef"), "the client credentials Secret is not read: set INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET");
        } else {
            obj.drop(&mut st.report, &p, "identity method with no modelgate equivalent (x509 needs a TLS listener with client_ca; plain and anonymous are not offered)");
        }
    }
}

fn api_key(obj: &mut Object, st: &mut State<'_>, p: &str, creds: &Credentials) {
    st.needs_api_keys = true;
    crate::apikey::selector(obj, st, p);
    if let Some(h) = &creds.authorization_header {
        let prefix = h.prefix.clone().unwrap_or_else(|| "Bearer".into());
        if prefix != "Bearer" && prefix != "APIKEY" {
            st.add_credential("authorization_header", &prefix);
        }
        obj.used(format!("{p}.credentials.authorizationHeader"));
    }
    if let Some(c) = &creds.custom_header {
        if !c.name.eq_ignore_ascii_case("x-api-key") {
            st.add_credential("custom_header", &c.name);
        }
        obj.used(format!("{p}.credentials.customHeader"));
    }
}

/// Where a token is read: modelgate takes `Authorization: Bearer`; a JWT rule
/// can also read other headers, query parameters and cookies.
fn token_credentials(
    obj: &mut Object,
    st: &mut State<'_>,
    p: &str,
    creds: &Credentials,
    rule: Option<&mut JwtRule>,
) {
    let prefix = creds
        .authorization_header
        .as_ref()
        .map(|h| h.prefix.clone().unwrap_or_else(|| "Bearer".into()));
    let custom = creds.custom_header.as_ref().map(|c| c.name.clone());
    let query = creds.query_string.as_ref().map(|c| c.name.clone());
    let cookie = creds.cookie.as_ref().map(|c| c.name.clone());
    if let Some(rule) = rule {
        match (&prefix, &custom) {
            (Some(pre), _) if pre != "Bearer" => rule.from_headers.push(BTreeMap::from([
                ("name".into(), "Authorization".into()),
                ("prefix".into(), format!("{pre} ")),
            ])),
            (_, Some(name)) => rule
                .from_headers
                .push(BTreeMap::from([("name".into(), name.clone())])),
            _ => {}
        }
        rule.from_params.extend(query);
        rule.from_cookies.extend(cookie);
        obj.used(format!("{p}.credentials"));
        return;
    }
    if prefix.as_deref().is_some_and(|x| x != "Bearer")
        || custom.is_some()
        || query.is_some()
        || cookie.is_some()
    {
        obj.drop(
            &mut st.report,
            &format!("{p}.credentials"),
            "this method reads the token from `Authorization: Bearer` only",
        );
    } else {
        obj.used(format!("{p}.credentials"));
    }
}

fn authorization(obj: &mut Object, st: &mut State<'_>, hosts: &[String]) {
    for name in names(obj, "spec.authorization") {
        let p = format!("spec.authorization.{name}");
        let Some(Value::Mapping(spec)) = obj.at(&p).cloned() else {
            continue;
        };
        if let Some(patterns) = spec.get("patternMatching").and_then(|m| m.get("patterns")) {
            pattern_matching(obj, st, &p, &name, patterns, hosts);
        } else if let Some(key) = ["kubernetesSubjectAccessReview", "kubernetes"]
            .into_iter()
            .find(|k| spec.contains_key(*k))
        {
            crate::sar::subject_access_review(obj, st, &format!("{p}.{key}"));
        } else {
            st.authz_blocked = true;
            obj.drop(&mut st.report, &p, "authorization method with no modelgate equivalent (OPA and SpiceDB are external engines); no caller is let through by a default allow");
        }
    }
}

fn pattern_matching(
    obj: &mut Object,
    st: &mut State<'_>,
    p: &str,
    name: &str,
    patterns: &Value,
    hosts: &[String],
) {
    let pp = format!("{p}.patternMatching.patterns");
    match pattern::all_cel(patterns) {
        Ok(cel) => {
            let mut rule = Mapping::new();
            rule.insert("cel".into(), format!("!({cel})").into());
            if !hosts.is_empty() && !hosts.iter().any(|h| h == "*") {
                let mut op = Mapping::new();
                op.insert(
                    "hosts".into(),
                    Value::Sequence(hosts.iter().map(|h| h.clone().into()).collect()),
                );
                let mut to = Mapping::new();
                to.insert("operation".into(), Value::Mapping(op));
                rule.insert("to".into(), Value::Sequence(vec![Value::Mapping(to)]));
            }
            let mut policy = Mapping::new();
            policy.insert("name".into(), format!("{}-{name}", obj.name).into());
            policy.insert("action".into(), "DENY".into());
            policy.insert("rules".into(), Value::Sequence(vec![Value::Mapping(rule)]));
            st.config.policies.push(Value::Mapping(policy));
            obj.note(
                &mut st.report,
                &pp,
                "a DENY policy whose CEL condition is the negated patterns (an error in it denies)",
            );
        }
        Err(why) => {
            st.authz_blocked = true;
            obj.drop(
                &mut st.report,
                &pp,
                format!("{why}; no caller is let through by a default allow"),
            );
        }
    }
}

fn response(obj: &mut Object, st: &mut State<'_>) {
    for key in ["unauthenticated", "unauthorized"] {
        let p = format!("spec.response.{key}");
        if obj.at(&p).is_some() {
            obj.drop(&mut st.report, &p, "modelgate's refusals are fixed: 401 with WWW-Authenticate and x-ext-auth-reason, or 403, in the protocol's error shape");
        }
    }
    for name in names(obj, "spec.response.success.headers") {
        let p = format!("spec.response.success.headers.{name}");
        if obj.at(&format!("{p}.wristband")).is_some() {
            crate::wristband::translate(obj, st, &name, &p);
            continue;
        }
        let plain: Option<ValueOrSelector> = obj
            .at(&format!("{p}.plain"))
            .and_then(|v| yaml_serde::from_value(v.clone()).ok());
        let sel = plain
            .as_ref()
            .and_then(ValueOrSelector::selector)
            .unwrap_or("");
        let identity = matches!(
            sel,
            "auth.identity.sub"
                | "auth.identity.username"
                | "auth.identity.user.username"
                | "auth.identity.metadata.name"
        );
        if identity && st.config.auth.identity_header.is_none() {
            st.config.auth.identity_header = Some(name.clone());
            obj.note(&mut st.report, &p, "the verified identity's name (API-key name, token subject or username) in auth.identity_header; a client-sent value is removed first");
        } else {
            let what = if plain.as_ref().is_some_and(|v| v.value.is_some()) {
                "static values"
            } else {
                "this selector"
            };
            obj.drop(
                &mut st.report,
                &p,
                format!("modelgate sets only the identity header upstream, not {what}"),
            );
        }
    }
}
