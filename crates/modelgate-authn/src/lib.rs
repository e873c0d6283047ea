//! Authentication: find the credential a request carries, verify it with an
//! identity source, and produce an [`Authenticated`] value — the only way to
//! obtain one.
//!
//! Sources: API keys ([`keys`]), JWT providers with JWKS ([`jwt`], [`jwks`]),
//! Kubernetes ServiceAccount tokens (offline as a JWT provider, online with
//! [`kubernetes`] TokenReview), OAuth2 introspection ([`introspection`]) and
//! mTLS client certificates ([`mtls`]). The methods are tried in the
//! configured order; the first whose credential is present decides, and a
//! present but invalid credential is refused even if another method might
//! have accepted the request (see `docs/identity.md`).

mod authenticated;
mod cache;
pub(crate) mod credential;
pub(crate) mod fetch;
pub(crate) mod introspection;
pub(crate) mod jwks;
pub(crate) mod jwt;
pub mod keys;
pub(crate) mod kubernetes;
pub(crate) mod metrics;
pub(crate) mod mtls;
pub mod session;
pub(crate) mod single_flight;
mod siphash;
pub(crate) mod token;
pub mod wristband;

/// The parsers of untrusted input, for the fuzz targets in `fuzz/`; the
/// modules behind them are private to this crate.
#[doc(hidden)]
pub mod parsers {
    pub use crate::credential::MAX_CREDENTIAL_LEN;
    pub use crate::token::TokenLocations;

    pub mod jwt {
        pub use crate::jwt::claims::{Times, claim_value};
        pub use crate::jwt::keys::KeySet;
        pub use crate::jwt::parse::{Jwt, parse, peek_issuer};
    }
    pub mod jwks {
        pub use crate::jwks::parse_discovery;
    }
    pub mod introspection {
        pub use crate::introspection::{judge, parse_answer};
    }
    pub mod kubernetes {
        pub use crate::kubernetes::{judge, parse_review};
    }
}

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use modelgate_config::identity::{IdentityMethod, MtlsIdentity};
use modelgate_config::{Auth, ConfigError, CredentialSource};
use modelgate_core::{AuthFailure, AuthMethod, Principal, RequestFacts};

pub use authenticated::Authenticated;
pub use credential::{Credential, find_credential};
pub use keys::{KeyStore, KeyStoreError};
pub use kubernetes::access::AccessRefusal;
pub use metrics::IdentityMetrics;
pub use session::flow::{Redirect, SignInError};
pub use session::sign_out::SignedIn;
pub use session::{SESSION_INVALID, Sessions};

use crate::fetch::{Fetch, HyperFetch};
use crate::introspection::Introspector;
use crate::jwks::{JwksCache, JwksSettings};
use crate::jwt::status as st;
use crate::jwt::{Provider, ProviderKind, claim_value, parse};
use crate::kubernetes::TokenReviewer;
use crate::token::{TokenLocations, rule_locations};

/// Makes the HTTP client for an identity endpoint (a CA file, or web PKI).
pub type FetchFactory<'a> = &'a dyn Fn(Option<&Path>) -> Result<Arc<dyn Fetch>, String>;

/// The real client factory.
pub fn hyper_fetch(ca: Option<&Path>) -> Result<Arc<dyn Fetch>, String> {
    HyperFetch::new(ca).map(|f| f as Arc<dyn Fetch>)
}

/// What to do to a permitted request before it goes upstream.
#[derive(Debug, Default)]
pub struct ForwardPlan {
    /// Keep the token where it was (`forward_original_token`).
    pub keep_token: bool,
    /// Credential headers to leave in place when `keep_token`.
    pub keep_headers: Vec<HeaderName>,
    /// Headers to set from verified claims (`output_claim_to_headers`,
    /// `output_payload_to_header`).
    pub add_headers: Vec<(HeaderName, HeaderValue)>,
}

/// The identity sources of one configuration.
pub struct Authenticator {
    /// The live API-key store (swapped in place when the key file changes).
    keys: Option<Arc<ArcSwap<KeyStore>>>,
    order: Vec<IdentityMethod>,
    providers: Vec<Provider>,
    token_review: Option<TokenReviewer>,
    /// SubjectAccessReview, with the TokenReview client settings.
    access: Option<kubernetes::access::AccessReviewer>,
    introspection: Option<Introspector>,
    mtls: Option<MtlsIdentity>,
    locations: TokenLocations,
    output_headers: Vec<HeaderName>,
    /// Browser sign-in sessions (`auth.sign_in`).
    sessions: Option<Arc<Sessions>>,
}

impl Authenticator {
    /// API keys only (the default order with nothing else configured).
    pub fn new(keys: Option<Arc<ArcSwap<KeyStore>>>) -> Self {
        let order = if keys.is_some() {
            vec![IdentityMethod::ApiKey]
        } else {
            Vec::new()
        };
        Self {
            keys,
            order,
            providers: Vec::new(),
            token_review: None,
            access: None,
            introspection: None,
            mtls: None,
            locations: TokenLocations::default(),
            output_headers: Vec::new(),
            sessions: None,
        }
    }

    /// Builds every configured source. Key caches of `previous` whose
    /// settings are unchanged are kept, so a reload does not go cold.
    pub fn build(
        auth: &Auth,
        keys: Option<Arc<ArcSwap<KeyStore>>>,
        metrics: &IdentityMetrics,
        previous: Option<&Authenticator>,
        fetch: FetchFactory<'_>,
    ) -> Result<Self, Vec<ConfigError>> {
        let id = &auth.identity;
        let mut errors = Vec::new();
        let mut me = Self::new(keys);
        me.order = id.order.clone();
        me.mtls = id.mtls.clone();
        me.output_headers = id.output_headers();
        let web = fetch(None).map_err(|e| {
            vec![ConfigError::new(
                "auth",
                format!("cannot create an HTTP client: {e}"),
                "report this as a bug",
            )]
        })?;
        me.add_jwt_providers(auth, previous, &web, metrics, &mut errors);
        if let Some(cfg) = &auth.sign_in {
            let prev = previous.and_then(|p| p.sessions.as_deref());
            match Sessions::new(
                cfg.clone(),
                web.clone(),
                id.jwks.allowed_hosts.clone(),
                prev,
            ) {
                Ok(s) => me.sessions = Some(Arc::new(s)),
                Err(e) => errors.push(ConfigError::new(
                    "auth.sign_in.cookie",
                    e,
                    "give 32 random bytes in base64",
                )),
            }
        }
        if let Some(t) = &id.kubernetes.token_review {
            match fetch(t.ca_file.as_deref()).and_then(|f| {
                let access =
                    kubernetes::access::AccessReviewer::new(t.clone(), f.clone(), metrics.clone())?;
                Ok((TokenReviewer::new(t.clone(), f, metrics.clone())?, access))
            }) {
                Ok((r, a)) => {
                    me.token_review = Some(r);
                    me.access = Some(a);
                }
                Err(e) => errors.push(ConfigError::new(
                    "auth.kubernetes.token_review",
                    e,
                    "check api_server and ca_file",
                )),
            }
        }
        if let Some(i) = &id.introspection {
            match fetch(i.ca_file.as_deref()) {
                Ok(f) => me.introspection = Some(Introspector::new(i.clone(), f, metrics.clone())),
                Err(e) => errors.push(ConfigError::new(
                    "auth.introspection.ca_file",
                    e,
                    "point ca_file at a PEM bundle",
                )),
            }
        }
        if errors.is_empty() {
            Ok(me)
        } else {
            Err(errors)
        }
    }

    /// One [`Provider`] per JWT rule and ServiceAccount issuer, reusing the
    /// key cache of `previous` when its settings are unchanged.
    fn add_jwt_providers(
        &mut self,
        auth: &Auth,
        previous: Option<&Authenticator>,
        web: &Arc<dyn Fetch>,
        metrics: &IdentityMetrics,
        errors: &mut Vec<ConfigError>,
    ) {
        let id = &auth.identity;
        let rules = id
            .jwt
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("auth.jwt[{i}]"), r, ProviderKind::Jwt))
            .chain(id.kubernetes.service_account_tokens.iter().map(|r| {
                (
                    "auth.kubernetes.service_account_tokens".to_string(),
                    r,
                    ProviderKind::ServiceAccount,
                )
            }));
        for (key, rule, kind) in rules {
            let settings = JwksSettings {
                issuer: rule.issuer.clone(),
                source: rule.keys.clone(),
                allowed_hosts: id.jwks.allowed_hosts.clone(),
                timeout: rule.timeout,
                refresh_interval: id.jwks.refresh_interval,
                unknown_kid_refetch_interval: id.jwks.unknown_kid_refetch_interval,
            };
            let reused = previous
                .and_then(|p| p.providers.iter().find(|o| o.keys.settings() == &settings))
                .map(|o| o.keys.clone());
            let cache = match reused {
                Some(c) => c,
                None => {
                    match JwksCache::new(settings, web.clone(), metrics.clone()) {
                        Ok(c) => c,
                        Err(e) => {
                            errors.push(ConfigError::new(format!("{key}.jwks"), e, "give at least one usable RSA, EC (P-256/P-384) or Ed25519 signing key"));
                            continue;
                        }
                    }
                }
            };
            self.locations.merge(rule_locations(rule));
            self.providers.push(Provider {
                rule: rule.clone(),
                kind,
                keys: cache,
                verified: Default::default(),
            });
        }
    }

    /// Starts the JWKS refresh loops (they end when this is dropped).
    pub fn start(&self) {
        for p in &self.providers {
            p.keys.spawn_refresh();
        }
    }

    /// Verifies the request's credential. A missing credential is
    /// `CredentialNotFound`; a present but bad one is never passed over for
    /// another source.
    /// The SubjectAccessReview verdict on `who` for `what` (a model's
    /// `kubernetes_access`); unavailable when no API server is configured.
    pub async fn access_review(
        &self,
        who: &Principal,
        what: &modelgate_config::kube_access::KubernetesAccess,
    ) -> Result<(), kubernetes::access::AccessRefusal> {
        match &self.access {
            // Boxed: a remote call, rare; it must not size every request's future.
            Some(a) => Box::pin(a.review(who, what)).await,
            None => Err(kubernetes::access::AccessRefusal::Unavailable),
        }
    }

    pub async fn authenticate(
        &self,
        facts: &RequestFacts,
        sources: &[CredentialSource],
        now: SystemTime,
    ) -> Result<Authenticated, AuthFailure> {
        let token = self.presented_token(facts, sources)?;
        if let Some(r) = self.session_identity(facts, token.is_some(), now) {
            return r.map(authenticated::seal);
        }
        // kube: keys from Secrets may have any format.
        let api_key = token.as_deref().is_some_and(|t| {
            t.starts_with(keys::KEY_PREFIX)
                || self
                    .keys
                    .as_ref()
                    .is_some_and(|s| s.load().holds_secret_key(t))
        });
        // A token a provider verified before names that provider's issuer
        // (its `iss` picked the provider): found in its cache, without
        // decoding the token again. Otherwise the issuer is read from it.
        let issuer: Option<Cow<'_, str>> = match token.as_deref().filter(|_| !api_key) {
            None => None,
            Some(t) => match self.providers.iter().find(|p| p.verified_before(t)) {
                Some(p) => Some(Cow::Borrowed(p.rule.issuer.as_str())),
                None => parse::peek_issuer(t).map(Cow::Owned),
            },
        };
        let provider = |kind: ProviderKind| {
            issuer.as_deref().and_then(|iss| {
                self.providers
                    .iter()
                    .find(|p| p.kind == kind && p.rule.issuer == iss)
            })
        };
        for method in &self.order {
            let principal = match (method, token.as_deref()) {
                (IdentityMethod::ApiKey, Some(t)) if api_key => match &self.keys {
                    Some(store) => store.load().verify_shared(t, now)?,
                    None => return Err(AuthFailure::InvalidApiKey),
                },
                (IdentityMethod::Jwt, Some(t)) if !api_key => match provider(ProviderKind::Jwt) {
                    Some(p) => p.verify_token(t, now).await?,
                    None => continue,
                },
                (IdentityMethod::Kubernetes, Some(t)) if !api_key => {
                    match (provider(ProviderKind::ServiceAccount), &self.token_review) {
                        (Some(p), _) => p.verify_token(t, now).await?,
                        (None, Some(r)) => Arc::new(Box::pin(r.verify(t, now)).await?),
                        (None, None) => continue,
                    }
                }
                (IdentityMethod::Introspection, Some(t)) if !api_key => match &self.introspection {
                    Some(i) => Arc::new(Box::pin(i.verify(t, now)).await?),
                    None => continue,
                },
                (IdentityMethod::Mtls, _) => match (&self.mtls, &facts.peer) {
                    // A token no method takes is a bad credential, not an absent one.
                    (Some(_), Some(_))
                        if token.is_some()
                            && !self
                                .order
                                .iter()
                                .any(|m| self.takes(*m, api_key, issuer.as_deref())) =>
                    {
                        return Err(self.unclaimed(token.as_deref(), api_key));
                    }
                    (Some(cfg), Some(peer)) => Arc::new(
                        mtls::principal(cfg, peer)
                            .ok_or_else(|| invalid("client certificate has no usable identity"))?,
                    ),
                    _ => continue,
                },
                _ => continue,
            };
            return Ok(authenticated::seal(principal));
        }
        Err(self.unclaimed(token.as_deref(), api_key))
    }

    /// Browser sign-in, when configured.
    pub fn sessions(&self) -> Option<&Sessions> {
        self.sessions.as_deref()
    }

    /// The one bearer token the request presents (in the listener's
    /// credential sources or a JWT rule's locations), if any; two different
    /// ones are refused.
    fn presented_token<'a>(
        &self,
        facts: &'a RequestFacts,
        sources: &[CredentialSource],
    ) -> Result<Option<Cow<'a, str>>, AuthFailure> {
        let (found, authorization) =
            credential::credential_and_authorization(&facts.headers, sources)?;
        let mut token: Option<Cow<'a, str>> = found.map(Cow::Borrowed);
        let mut several = false;
        self.locations.each_with(
            &facts.headers,
            authorization,
            facts.query.as_deref(),
            &mut |t| match &token {
                // The same slice of the same header is the same token.
                Some(first) if !same_slice(first, &t) && *first != t => several = true,
                Some(_) => {}
                None => token = Some(t),
            },
        )?;
        if several {
            return Err(invalid(st::MULTIPLE_TOKENS));
        }
        Ok(token)
    }

    /// The identity of the active API key named `name`, taken on trust
    /// (`modelgate check --identity`): the key store's own principal, grants
    /// included. `None` if no active key has that name.
    pub fn assume_key(&self, name: &str, now: SystemTime) -> Option<Arc<Principal>> {
        self.keys.as_ref()?.load().assume(name, now)
    }

    /// The identity a token with these claims would carry, taken on trust
    /// (`modelgate check --claims`), through the same claims→principal
    /// mapping as a verified token. `iss` picks the rule (JWT or Kubernetes
    /// ServiceAccount); an issuer no rule names maps as a plain JWT.
    pub fn assume_claims(&self, claims: serde_json::Map<String, serde_json::Value>) -> Principal {
        let issuer = claims
            .get("iss")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        let kind = self
            .providers
            .iter()
            .find(|p| Some(&p.rule.issuer) == issuer.as_ref())
            .map_or(ProviderKind::Jwt, |p| p.kind);
        jwt::claims_principal(kind, issuer.as_deref(), claims)
    }

    /// Whether `method` takes a bearer token (an API key or not, with `issuer`).
    fn takes(&self, method: IdentityMethod, api_key: bool, issuer: Option<&str>) -> bool {
        let jwt = |kind: ProviderKind| {
            issuer.is_some_and(|iss| {
                self.providers
                    .iter()
                    .any(|p| p.kind == kind && p.rule.issuer == iss)
            })
        };
        match method {
            IdentityMethod::ApiKey => api_key,
            IdentityMethod::Jwt => !api_key && jwt(ProviderKind::Jwt),
            IdentityMethod::Kubernetes => {
                !api_key && (jwt(ProviderKind::ServiceAccount) || self.token_review.is_some())
            }
            IdentityMethod::Introspection => !api_key && self.introspection.is_some(),
            IdentityMethod::Mtls => false,
        }
    }

    /// Why no method took the token.
    fn unclaimed(&self, token: Option<&str>, api_key: bool) -> AuthFailure {
        let Some(t) = token else {
            return AuthFailure::CredentialNotFound;
        };
        if api_key || self.providers.is_empty() {
            return AuthFailure::InvalidApiKey;
        }
        match parse::parse(t) {
            Err(e) => invalid(e),
            Ok(_) => invalid(st::UNKNOWN_ISSUER),
        }
    }

    /// Headers a JWT rule writes: removed from every request before anything
    /// else, so a client can never supply them.
    pub fn output_headers(&self) -> &[HeaderName] {
        &self.output_headers
    }

    /// Headers that may carry a JWT (removed unless the token is forwarded).
    pub fn token_headers(&self) -> Vec<HeaderName> {
        self.locations.header_names()
    }

    /// Removes tokens from the query and cookies (unless `plan.keep_token`).
    pub fn strip_token_params(
        &self,
        plan: &ForwardPlan,
        query: Option<String>,
        headers: &mut HeaderMap,
    ) -> Option<String> {
        if let Some(s) = &self.sessions {
            s.strip_cookies(headers);
        }
        if plan.keep_token {
            return query;
        }
        self.locations.strip_cookies(headers);
        self.locations.strip_query(query)
    }

    /// How to forward a request `who` sent.
    pub fn forward_plan(&self, who: Option<&Principal>) -> ForwardPlan {
        let mut plan = ForwardPlan::default();
        let Some(who) = who.filter(|w| w.method == AuthMethod::Jwt) else {
            return plan;
        };
        let Some(p) = self
            .providers
            .iter()
            .find(|p| Some(&p.rule.issuer) == who.issuer.as_ref())
        else {
            return plan;
        };
        if p.rule.forward_original_token {
            plan.keep_token = true;
            plan.keep_headers = rule_locations(&p.rule).header_names();
        }
        let Some(claims) = &who.claims else {
            return plan;
        };
        for o in &p.rule.output_claim_to_headers {
            if let Some(v) =
                claim_value(claims, &o.claim).and_then(|v| HeaderValue::from_str(&v).ok())
            {
                plan.add_headers.push((o.header.clone(), v));
            }
        }
        if let Some(h) = &p.rule.output_payload_to_header {
            let json = serde_json::Value::Object((**claims).clone()).to_string();
            if let Ok(v) = HeaderValue::from_str(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json),
            ) {
                plan.add_headers.push((h.clone(), v));
            }
        }
        plan
    }
}

fn invalid(s: &str) -> AuthFailure {
    AuthFailure::InvalidToken(s.to_string())
}

/// Whether `a` and `b` are the same bytes in memory (then equal, without
/// comparing them).
fn same_slice(a: &str, b: &str) -> bool {
    std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()
}

#[cfg(test)]
mod tests;
