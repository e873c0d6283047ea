//! JWT providers (Istio `jwtRules`): the token's `iss` picks the rule; then
//! times, audiences and the signature are checked in Envoy's order, each
//! failure carrying Envoy's status string.

pub mod keys;
pub mod parse;
pub mod status;
pub mod verified;

#[cfg(test)]
pub(crate) mod testkeys;

use std::sync::Arc;
use std::time::SystemTime;

use modelgate_config::identity::JwtRule;
use modelgate_core::{AuthFailure, AuthMethod, Grants, Principal};
use serde_json::{Map, Value};

use crate::jwks::{JwksCache, Loaded};
use keys::{VerifyError, verify_hmac};
use parse::{Jwt, check_times};
use verified::{Verified, VerifiedCache};

/// What kind of identity a provider's tokens carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// An ordinary issuer: the principal is `sub`.
    Jwt,
    /// The Kubernetes ServiceAccount issuer: `system:serviceaccount:<ns>:<sa>`
    /// with the namespace from the `kubernetes.io` claim.
    ServiceAccount,
}

/// One issuer: its rule and its keys.
pub struct Provider {
    pub rule: JwtRule,
    pub kind: ProviderKind,
    pub keys: Arc<JwksCache>,
    /// Tokens this provider already verified.
    pub verified: VerifiedCache,
}

fn invalid(s: &str) -> AuthFailure {
    AuthFailure::InvalidToken(s.to_string())
}

impl Provider {
    /// Verifies a raw token whose `iss` names this provider, through the
    /// cache of tokens already verified with the current keys.
    pub async fn verify_token(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<Arc<Principal>, AuthFailure> {
        let r = &self.rule;
        let now_s = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let key = crate::cache::token_key(token);
        if let Some(hit) = self.verified.get(&key) {
            let keys_current = match &hit.keys {
                None => true,
                Some(k) => self.keys.loaded().is_some_and(|cur| Arc::ptr_eq(&cur, k)),
            };
            let times = Jwt::times_only(hit.exp, hit.nbf, hit.iat);
            if keys_current
                && check_times(&times, now_s, r.clock_skew.as_secs(), r.require_expiration).is_ok()
            {
                return Ok(hit.principal);
            }
            self.verified.remove(&key);
        }
        let jwt = parse::parse(token).map_err(invalid)?;
        let (exp, nbf, iat) = (jwt.exp, jwt.nbf, jwt.iat);
        let (principal, keys) = self.verify_with_keys(jwt, now).await?;
        let principal = Arc::new(principal);
        self.verified.put(
            key,
            Verified {
                principal: principal.clone(),
                keys,
                exp,
                nbf,
                iat,
            },
        );
        Ok(principal)
    }

    /// Verifies a decoded token whose `iss` names this provider.
    pub async fn verify(&self, jwt: Jwt, now: SystemTime) -> Result<Principal, AuthFailure> {
        self.verify_with_keys(jwt, now).await.map(|(p, _)| p)
    }

    /// [`Provider::verify`], also returning the key set that verified it.
    async fn verify_with_keys(
        &self,
        jwt: Jwt,
        now: SystemTime,
    ) -> Result<(Principal, Option<Arc<Loaded>>), AuthFailure> {
        let r = &self.rule;
        let now_s = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        check_times(&jwt, now_s, r.clock_skew.as_secs(), r.require_expiration).map_err(invalid)?;
        if !r.audiences.is_empty() && !jwt.aud.iter().any(|a| r.audiences.contains(a)) {
            return Err(AuthFailure::AudienceNotAllowed);
        }
        let used = if jwt.alg.is_hmac() {
            match &r.hmac_secret {
                Some(secret) => verify_hmac(&jwt, secret).map_err(|e| invalid(e.status()))?,
                None => return Err(invalid(VerifyError::NoMatchingKey.status())),
            }
            None
        } else {
            let loaded = self.keys.current().await?;
            match loaded.keys.verify(&jwt) {
                Ok(()) => Some(loaded),
                Err(VerifyError::NoMatchingKey) => {
                    let newer = self.keys.refetch_for_unknown_kid(&loaded).await;
                    let Some(newer) = newer else {
                        return Err(invalid(VerifyError::NoMatchingKey.status()));
                    };
                    newer.keys.verify(&jwt).map_err(|e| invalid(e.status()))?;
                    Some(newer)
                }
                Err(e) => return Err(invalid(e.status())),
            }
        };
        Ok((self.principal(jwt), used))
    }

    fn principal(&self, jwt: Jwt) -> Principal {
        claims_principal(self.kind, Some(&self.rule.issuer), jwt.claims)
    }
}

/// The one mapping from verified (or, for `modelgate check`, assumed) token
/// claims to a [`Principal`]: name from `sub` (else `client_id`, `azp`),
/// audiences, groups, and for ServiceAccount issuers the namespace and the
/// Kubernetes groups.
pub fn claims_principal(
    kind: ProviderKind,
    issuer: Option<&str>,
    claims: Map<String, Value>,
) -> Principal {
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    let sub = str_claim("sub");
    let subject = sub.clone().unwrap_or_default();
    let name = sub
        .or_else(|| str_claim("client_id"))
        .or_else(|| str_claim("azp"))
        .unwrap_or_default();
    let audiences = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let mut groups: Vec<String> = match claims.get("groups") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let mut namespace = None;
    if kind == ProviderKind::ServiceAccount {
        namespace = claims
            .get("kubernetes.io")
            .and_then(|k| k.get("namespace"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| service_account_namespace(&subject));
        if let Some(ns) = &namespace {
            groups.extend([
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".to_string(),
            ]);
        }
    }
    Principal {
        method: AuthMethod::Jwt,
        name,
        issuer: issuer.map(str::to_string),
        subject,
        audiences,
        presenter: str_claim("azp"),
        namespace,
        groups,
        grants: Grants::Nothing,
        claims: Some(Arc::new(claims)),
    }
}

/// `<ns>` of `system:serviceaccount:<ns>:<name>`.
pub fn service_account_namespace(sub: &str) -> Option<String> {
    let rest = sub.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty()).then(|| ns.to_string())
}

/// A claim for `outputClaimToHeaders`: `a.b.c` walks nested objects; only
/// strings, numbers and booleans are copied (arrays and objects are not, as
/// in Envoy, and the header is then absent).
pub fn claim_value(claims: &Map<String, Value>, path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split('.').collect();
    match walk(claims, &segs)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Follows `segs` into nested objects; a key may itself contain dots
/// (`kubernetes.io.namespace`), so the longest matching key wins.
fn walk<'a>(obj: &'a Map<String, Value>, segs: &[&str]) -> Option<&'a Value> {
    for i in (1..=segs.len()).rev() {
        let Some(child) = obj.get(&segs[..i].join(".")) else {
            continue;
        };
        if i == segs.len() {
            return Some(child);
        }
        if let Some(found) = child.as_object().and_then(|o| walk(o, &segs[i..])) {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests;
