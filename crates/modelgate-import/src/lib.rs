//! `modelgate import`: the Kubernetes manifests users already have — Istio
//! `RequestAuthentication`, `AuthorizationPolicy` and `VirtualService`,
//! the mesh config's `extensionProviders` (the `istio` ConfigMap,
//! IstioOperator), Authorino `AuthConfig` (v1beta2, v1beta3) and KServe
//! `InferenceService` —
//! become one modelgate configuration plus a report of everything that was
//! not translated. Pure: text in, text out; the CLI reads the files.

mod apikey;
mod authorino;
mod docs;
mod istio;
mod kserve;
mod mesh;
mod object;
mod out;
mod pattern;
mod report;
mod sar;
mod wristband;

use std::collections::BTreeMap;
use std::fmt;

use yaml_serde::{Mapping, Value};

pub use report::{Finding, Level, Report};

/// One input file.
#[derive(Debug, Clone)]
pub struct Input {
    /// Shown in the report (a path).
    pub name: String,
    pub text: String,
}

/// What the manifests do not say.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--upstream MODEL=URL`: where modelgate reaches a model (adds the model if no manifest names it).
    pub upstreams: BTreeMap<String, String>,
    /// `--keys-file`: the API-key file (default `keys.json`).
    pub keys_file: Option<String>,
    /// `--var NAME=VALUE`: shell variables the manifests use (`$NS` in a heredoc).
    pub vars: BTreeMap<String, String>,
    /// `--jwks-uri ISSUER=URL`: fetch this issuer's keys from URL instead.
    pub jwks_uris: BTreeMap<String, String>,
    /// `--namespace`: for objects without one.
    pub namespace: Option<String>,
    /// `--domain`: Knative's domain; adds `hosts: [NAME.NS.DOMAIN]` to InferenceService models.
    pub domain: Option<String>,
}

/// The result: configuration text (YAML) and the report.
#[derive(Debug, Clone)]
pub struct Imported {
    pub config: String,
    pub report: Report,
}

/// An input that is not YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub source_name: String,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source_name, self.message)
    }
}

impl std::error::Error for ImportError {}

/// Translation state shared by the per-kind converters.
pub(crate) struct State<'a> {
    pub opts: &'a Options,
    pub report: Report,
    pub config: out::Config,
    pub models: out::Models,
    /// An authorization step that could not be translated: never add a default allow.
    pub authz_blocked: bool,
    /// An Istio ALLOW policy was imported.
    pub has_allow_policy: bool,
    /// An Istio ALLOW/DENY policy was imported: refusals look like Envoy's RBAC filter.
    pub istio_rbac: bool,
    pub needs_api_keys: bool,
    /// Keys from Secrets, from an AuthConfig's `apiKey.selector`.
    pub kube_keys: Option<out::KubeKeys>,
    /// SubjectAccessReviews waiting for their model.
    pub kube_access: Vec<sar::Pending>,
    /// Names of the imported `extensionProviders` (ext_authz ones).
    pub providers: Vec<String>,
    /// CUSTOM policies (object id, provider name), checked at the end.
    pub custom_policies: Vec<(String, String)>,
}

impl State<'_> {
    pub(crate) fn keys_file(&self) -> String {
        self.opts
            .keys_file
            .clone()
            .unwrap_or_else(|| "keys.json".into())
    }

    /// Adds an API-key location to the listener (after the defaults).
    pub(crate) fn add_credential(&mut self, kind: &str, value: &str) {
        let creds = self.config.listen.credentials.get_or_insert_with(|| {
            [
                ("authorization_header", "Bearer"),
                ("authorization_header", "APIKEY"),
                ("custom_header", "x-api-key"),
            ]
            .iter()
            .map(|(k, v)| single(k, v))
            .collect()
        });
        let entry = single(kind, value);
        if !creds.contains(&entry) {
            creds.push(entry);
        }
    }
}

fn single(k: &str, v: &str) -> Value {
    let mut m = Mapping::new();
    m.insert(k.into(), v.into());
    Value::Mapping(m)
}

/// Converts the inputs into one configuration.
pub fn import(inputs: &[Input], opts: &Options) -> Result<Imported, ImportError> {
    let mut st = State {
        opts,
        report: Report::default(),
        config: out::Config::default(),
        models: out::Models::default(),
        authz_blocked: false,
        has_allow_policy: false,
        istio_rbac: false,
        needs_api_keys: false,
        kube_keys: None,
        kube_access: Vec::new(),
        providers: Vec::new(),
        custom_policies: Vec::new(),
    };
    let mut objects = Vec::new();
    for input in inputs {
        for value in docs::objects(input, &opts.vars, &mut st.report)? {
            match object::Object::new(value, opts.namespace.as_deref()) {
                Some(o) => objects.push(o),
                None => st.report.push(
                    Level::Untranslated,
                    &input.name,
                    "",
                    "a document without apiVersion/kind: not a Kubernetes object",
                ),
            }
        }
    }
    // Models first, so routes and policies find them.
    objects.sort_by_key(|o| if o.kind == "InferenceService" { 0 } else { 1 });
    for obj in objects {
        st.report.objects.push(obj.id.clone());
        dispatch(obj, &mut st);
    }
    finish(&mut st);
    let body = yaml_serde::to_string(&st.config).map_err(|e| ImportError {
        source_name: "output".into(),
        message: e.to_string(),
    })?;
    let header =
        "# Made by `modelgate import`; read the import report for what was not translated.\n";
    Ok(Imported {
        config: format!("{header}{body}"),
        report: st.report,
    })
}

fn dispatch(mut obj: object::Object, st: &mut State<'_>) {
    let group = obj.api_version.split('/').next().unwrap_or("").to_string();
    match (group.as_str(), obj.kind.as_str()) {
        ("security.istio.io", "RequestAuthentication") => istio::request_authentication(obj, st),
        ("security.istio.io", "AuthorizationPolicy") => istio::authorization_policy(obj, st),
        ("networking.istio.io", "VirtualService") => istio::virtual_service(obj, st),
        ("authorino.kuadrant.io", "AuthConfig") => authorino::auth_config(obj, st),
        ("serving.kserve.io", "InferenceService") => kserve::inference_service(obj, st),
        ("v1", "ConfigMap") => mesh::config_map(obj, st),
        ("install.istio.io", "IstioOperator") => mesh::istio_operator(obj, st),
        _ => {
            let why = format!(
                "{} {} is not a kind modelgate import reads",
                obj.api_version, obj.kind
            );
            obj.drop(&mut st.report, "", why);
            obj.used("spec");
            obj.used("data");
            obj.used("metadata");
            obj.finish(&mut st.report, "");
        }
    }
}

fn finish(st: &mut State<'_>) {
    for (name, url) in &st.opts.upstreams {
        if !st.models.by_name.contains_key(name) {
            st.report.push(
                Level::Note,
                "--upstream",
                name,
                "no manifest names this model: added with the default protocols",
            );
        }
        st.models.upsert(name, url.clone(), out::UrlSource::Flag);
    }
    sar::apply(st);
    mesh::custom_policies(st);
    for (name, (model, source)) in &st.models.by_name {
        if *source != out::UrlSource::Flag {
            st.report.push(Level::Note, "models", name, format!(
                "upstream {} is the in-cluster address; pass --upstream {name}=URL where modelgate runs elsewhere", model.upstream.url));
        }
    }
    if st.models.by_name.is_empty() {
        st.report.push(
            Level::Note,
            "models",
            "",
            "no model found: pass --upstream NAME=URL",
        );
    }
    st.config.models = std::mem::take(&mut st.models.by_name)
        .into_values()
        .map(|(m, _)| m)
        .collect();
    let auth = &st.config.auth;
    if st.needs_api_keys || !auth.has_token_sources() {
        if !st.needs_api_keys {
            st.report.push(Level::Note, "auth", "api_keys", "no identity source in the manifests (for an ODH `enable-auth` model, also import its AuthConfig): modelgate API keys are used");
        }
        st.config.auth.api_keys = Some(out::ApiKeys {
            file: st.keys_file(),
            kubernetes: st.kube_keys.take(),
        });
    }
    if st.config.auth.has_token_sources() && !st.authz_blocked && !st.has_allow_policy {
        let mut rule = Mapping::new();
        rule.insert("cel".into(), "auth != null".into());
        let mut p = Mapping::new();
        p.insert("name".into(), "imported-authenticated-callers".into());
        p.insert("rules".into(), Value::Sequence(vec![Value::Mapping(rule)]));
        st.config.policies.push(Value::Mapping(p));
        st.report.push(Level::Note, "policies", "imported-authenticated-callers", "the manifests let every verified token through (no ALLOW policy, no authorization step): so does this policy; modelgate denies anonymous callers");
    }
    st.config.listen.address = "${MODELGATE_LISTEN:-0.0.0.0:8080}".into();
    st.config.admin.address = "${MODELGATE_ADMIN:-127.0.0.1:9901}".into();
    if st.istio_rbac {
        st.config.listen.istio_compat = Some(true);
        st.report.push(Level::Note, "listen", "istio_compat", "Istio ALLOW/DENY policies: anonymous requests are judged by the policies, refusals are `403 RBAC: access denied`");
    }
}

#[cfg(test)]
mod tests;
