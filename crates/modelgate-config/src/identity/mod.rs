//! Identity sources beyond API keys: `auth.order`, `auth.jwks`, `auth.jwt`,
//! `auth.kubernetes`, `auth.introspection` and `auth.mtls` — raw serde types
//! and the validated types they become, one file per source. See
//! `docs/identity.md`.
//!
//! JWT rules take Istio's `jwtRules` field names in either spelling
//! (`jwks_uri` or `jwksUri`), so a RequestAuthentication can be pasted in.

mod introspection;
mod jwt;
mod kubernetes;
mod mtls;
mod session;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::Path;

use http::HeaderName;

use crate::error::Collector;

pub use introspection::*;
pub use jwt::*;
pub use kubernetes::*;
pub use mtls::*;
pub use session::*;

/// The identity keys of `auth`, as found in the file.
#[derive(Debug, Clone, Default)]
pub struct RawIdentity {
    pub order: Option<Vec<String>>,
    pub jwks: Option<RawJwks>,
    pub jwt: Option<Vec<RawJwtRule>>,
    pub kubernetes: Option<RawKubernetes>,
    pub introspection: Option<RawIntrospection>,
    pub mtls: Option<RawMtls>,
}

/// An identity method, as named in `auth.order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentityMethod {
    ApiKey,
    Jwt,
    Kubernetes,
    Introspection,
    Mtls,
}

impl IdentityMethod {
    pub const ALL: [IdentityMethod; 5] = [
        Self::ApiKey,
        Self::Jwt,
        Self::Kubernetes,
        Self::Introspection,
        Self::Mtls,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Jwt => "jwt",
            Self::Kubernetes => "kubernetes",
            Self::Introspection => "introspection",
            Self::Mtls => "mtls",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Every identity source of one configuration.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The configured methods, in the order they are tried.
    pub order: Vec<IdentityMethod>,
    pub jwks: JwksSettings,
    pub jwt: Vec<JwtRule>,
    pub kubernetes: Kubernetes,
    pub introspection: Option<Introspection>,
    pub mtls: Option<MtlsIdentity>,
}

impl Identity {
    /// Every header a JWT rule writes: stripped from every inbound request.
    pub fn output_headers(&self) -> Vec<HeaderName> {
        let mut out: Vec<HeaderName> = Vec::new();
        for r in self
            .jwt
            .iter()
            .chain(self.kubernetes.service_account_tokens.as_ref())
        {
            for h in r
                .output_claim_to_headers
                .iter()
                .map(|c| &c.header)
                .chain(r.output_payload_to_header.as_ref())
            {
                if !out.contains(h) {
                    out.push(h.clone());
                }
            }
        }
        out
    }
}

/// Validates `auth.sign_in` (needs the validated JWT rules).
pub(crate) fn sign_in_of(
    raw: Option<RawSignIn>,
    jwt: &[JwtRule],
    base: &Path,
    c: &mut Collector,
) -> Option<SignIn> {
    raw.and_then(|r| session::sign_in(r, jwt, base, c))
}

const DEFAULT_K8S_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Validates the identity keys. `api_keys` tells whether `auth.api_keys` is set.
pub(crate) fn identity(
    raw: RawIdentity,
    api_keys: bool,
    base: &Path,
    c: &mut Collector,
) -> Identity {
    let jwt: Vec<JwtRule> = raw
        .jwt
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| jwt_rule(r, &format!("auth.jwt[{i}]"), None, c))
        .collect();
    let raw_k8s = raw.kubernetes.unwrap_or_default();
    let kubernetes = Kubernetes {
        service_account_tokens: raw_k8s.service_account_tokens.and_then(|r| {
            jwt_rule(
                r,
                "auth.kubernetes.service_account_tokens",
                Some(DEFAULT_K8S_ISSUER),
                c,
            )
        }),
        token_review: raw_k8s.token_review.and_then(|t| token_review(t, base, c)),
    };
    let mut issuers = BTreeSet::new();
    for r in jwt.iter().chain(kubernetes.service_account_tokens.as_ref()) {
        if !issuers.insert(r.issuer.as_str()) {
            c.push(
                "auth.jwt",
                format!("issuer {} is configured twice", r.issuer),
                "merge the rules: a token's `iss` must pick exactly one rule",
            );
        }
    }
    let jwks = jwks_settings(
        raw.jwks.unwrap_or_default(),
        &jwt,
        kubernetes.service_account_tokens.as_ref(),
        c,
    );
    let introspection = raw.introspection.and_then(|i| introspection(i, base, c));
    let mtls = raw.mtls.map(|m| mtls(m, c));
    let configured = |m: IdentityMethod| match m {
        IdentityMethod::ApiKey => api_keys,
        IdentityMethod::Jwt => !jwt.is_empty(),
        IdentityMethod::Kubernetes => {
            kubernetes.service_account_tokens.is_some() || kubernetes.token_review.is_some()
        }
        IdentityMethod::Introspection => introspection.is_some(),
        IdentityMethod::Mtls => mtls.is_some(),
    };
    let order = order(raw.order, configured, c);
    Identity {
        order,
        jwks,
        jwt,
        kubernetes,
        introspection,
        mtls,
    }
}

/// `auth.order`: the methods in the order they are tried. Absent: every
/// configured method, in [`IdentityMethod::ALL`] order.
fn order(
    names: Option<Vec<String>>,
    configured: impl Fn(IdentityMethod) -> bool,
    c: &mut Collector,
) -> Vec<IdentityMethod> {
    match names {
        None => IdentityMethod::ALL
            .into_iter()
            .filter(|m| configured(*m))
            .collect(),
        Some(names) => {
            let mut out = Vec::new();
            for (i, n) in names.iter().enumerate() {
                let k = format!("auth.order[{i}]");
                match IdentityMethod::parse(n) {
                    None => c.push(
                        k,
                        format!("unknown identity method {n:?}"),
                        "use api_key, jwt, kubernetes, introspection or mtls",
                    ),
                    Some(m) if out.contains(&m) => {
                        c.push(k, format!("{n} is listed twice"), "list each method once")
                    }
                    Some(m) if !configured(m) => c.push(
                        k,
                        format!("{n} is listed but not configured"),
                        format!(
                            "configure auth.{} or remove it from auth.order",
                            if m == IdentityMethod::ApiKey {
                                "api_keys"
                            } else {
                                n
                            }
                        ),
                    ),
                    Some(m) => out.push(m),
                }
            }
            for m in IdentityMethod::ALL {
                if configured(m) && !out.contains(&m) {
                    c.push(
                        "auth.order",
                        format!("{} is configured but not listed", m.as_str()),
                        "add it to auth.order, or remove its configuration",
                    );
                }
            }
            out
        }
    }
}
