//! The modelgate configuration being built, in the shape modelgate-config
//! parses (docs/config.md), serialized in the order of the file's sections.

use std::collections::BTreeMap;

use serde::Serialize;
use yaml_serde::Value;

#[derive(Debug, Default, Serialize)]
pub(crate) struct Config {
    pub listen: Listen,
    pub admin: Admin,
    pub auth: Auth,
    pub models: Vec<Model>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wristband: Option<crate::wristband::Wristband>,
    /// Istio `extensionProviders` (ext_authz), as CUSTOM policies name them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension_providers: Vec<Value>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Listen {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub istio_compat: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<Value>>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Admin {
    pub address: String,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Auth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<ApiKeys>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_header: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jwt: Vec<JwtRule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<Kubernetes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introspection: Option<Introspection>,
}

impl Auth {
    /// Whether a bearer-token source (not API keys) is configured.
    pub(crate) fn has_token_sources(&self) -> bool {
        !self.jwt.is_empty() || self.kubernetes.is_some() || self.introspection.is_some()
    }
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct ApiKeys {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubeKeys>,
}

/// `auth.api_keys.kubernetes`: keys from labelled Secrets (Authorino's `apiKey.selector`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct KubeKeys {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    pub selector: Selector,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub default_models: Vec<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Selector {
    #[serde(rename = "matchLabels")]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct JwtRule {
    pub issuer: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from_headers: Vec<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from_params: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from_cookies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_original_token: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output_claim_to_headers: Vec<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_payload_to_header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Kubernetes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_tokens: Option<JwtRule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_review: Option<TokenReview>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct TokenReview {
    pub api_server: String,
    pub token_file: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Introspection {
    pub endpoint: String,
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Model {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<String>,
    pub upstream: Upstream,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub public_operations: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes_access: Option<KubeAccess>,
}

/// `models[].kubernetes_access`: an AuthConfig's SubjectAccessReview.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct KubeAccess {
    pub namespace: String,
    pub name: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Upstream {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Route {
    pub prefix: String,
    pub rewrite: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

/// Where a model's upstream URL came from; a flag beats a VirtualService
/// destination, which beats KServe's predictor Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum UrlSource {
    Predictor,
    VirtualService,
    Flag,
}

/// Models by name, with where each URL came from.
#[derive(Debug, Default)]
pub(crate) struct Models {
    pub by_name: BTreeMap<String, (Model, UrlSource)>,
}

impl Models {
    /// The model `name`, created with `url` if new; `url` replaces the
    /// current one only if its source ranks higher.
    pub(crate) fn upsert(&mut self, name: &str, url: String, source: UrlSource) -> &mut Model {
        let entry = self.by_name.entry(name.to_string()).or_insert_with(|| {
            let model = Model {
                name: name.to_string(),
                upstream: Upstream {
                    url: url.clone(),
                    ..Upstream::default()
                },
                ..Model::default()
            };
            (model, source)
        });
        if source > entry.1 {
            entry.0.upstream.url = url;
            entry.1 = source;
        }
        &mut entry.0
    }
}
