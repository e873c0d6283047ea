//! Who sent a request, once an identity source has verified it.
//!
//! One shape fits every identity source: API-key names, JWT issuer/subject and
//! claims, Kubernetes ServiceAccounts and mTLS peers. It never holds a secret.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use crate::ModelName;

/// How an identity was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A modelgate API key from the key store.
    ApiKey,
    /// A JWT verified against an issuer's keys.
    Jwt,
    /// A Kubernetes token checked with the TokenReview API.
    KubernetesTokenReview,
    /// An opaque token checked with OAuth2 introspection (RFC 7662).
    Introspection,
    /// A verified TLS client certificate.
    Mtls,
    /// A browser session cookie.
    Session,
}

impl AuthMethod {
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Jwt => "jwt",
            AuthMethod::KubernetesTokenReview => "kubernetes_token_review",
            AuthMethod::Introspection => "introspection",
            AuthMethod::Mtls => "mtls",
            AuthMethod::Session => "session",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which models a credential itself grants (API keys carry grants; tokens
/// usually do not and are governed by policies instead).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Grants {
    /// The credential grants no model by itself.
    #[default]
    Nothing,
    /// Every model (`--models '*'`).
    AllModels,
    /// Only these models.
    Models(BTreeSet<ModelName>),
}

impl Grants {
    /// Whether these grants cover `model`.
    pub fn covers(&self, model: &ModelName) -> bool {
        match self {
            Grants::Nothing => false,
            Grants::AllModels => true,
            Grants::Models(set) => set.contains(model),
        }
    }
}

/// A verified request identity.
#[derive(Debug, Clone)]
pub struct Principal {
    /// How it was verified.
    pub method: AuthMethod,
    /// Human-readable name for logs and the identity header: the API-key name,
    /// the JWT `sub`, `system:serviceaccount:<ns>:<sa>`, or the certificate identity.
    pub name: String,
    /// Issuer (`iss`) for tokens; `None` for API keys and certificates.
    pub issuer: Option<String>,
    /// Subject (`sub`) for tokens; the key name for API keys.
    pub subject: String,
    /// Audiences the token was issued for.
    pub audiences: Vec<String>,
    /// Authorized presenter (`azp`) when the token has one.
    pub presenter: Option<String>,
    /// Kubernetes namespace, for ServiceAccount identities.
    pub namespace: Option<String>,
    /// Groups the identity belongs to.
    pub groups: Vec<String>,
    /// All verified claims, for policy conditions and claim-to-header output.
    pub claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
    /// Models the credential grants by itself.
    pub grants: Grants,
}

impl Principal {
    /// A principal for an API key with the given name and grants.
    pub fn api_key(name: impl Into<String>, grants: Grants) -> Self {
        let name = name.into();
        Self {
            method: AuthMethod::ApiKey,
            subject: name.clone(),
            name,
            issuer: None,
            audiences: Vec::new(),
            presenter: None,
            namespace: None,
            groups: Vec::new(),
            claims: None,
            grants,
        }
    }

    /// Istio's request principal, `<iss>/<sub>`, for token identities.
    pub fn request_principal(&self) -> Option<String> {
        self.issuer
            .as_ref()
            .map(|iss| format!("{iss}/{}", self.subject))
    }
}
