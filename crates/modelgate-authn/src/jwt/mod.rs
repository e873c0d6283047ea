//! JWT providers (Istio `jwtRules`): the token's `iss` picks the rule; then
//! times, audiences and the signature are checked in Envoy's order, each
//! failure carrying Envoy's status string.

pub mod claims;
pub mod keys;
pub mod parse;
pub mod status;
pub mod verified;

#[cfg(test)]
pub(crate) mod testkeys;

use std::sync::Arc;
use std::time::SystemTime;

use modelgate_config::identity::JwtRule;
use modelgate_core::{AuthFailure, Principal};

use crate::jwks::{JwksCache, Loaded};
use claims::check_audience;
pub use claims::{claim_value, claims_principal, service_account_namespace};
use keys::{VerifyError, verify_hmac};
use parse::Jwt;
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
        if let Some(hit) = self.verified.get(token) {
            let keys_current = match &hit.keys {
                None => true,
                Some(k) => self.keys.loaded().is_some_and(|cur| Arc::ptr_eq(&cur, k)),
            };
            if keys_current
                && hit
                    .times
                    .check(now_s, r.clock_skew.as_secs(), r.require_expiration)
                    .is_ok()
            {
                return Ok(hit.principal);
            }
            self.verified.remove(token);
        }
        let jwt = parse::parse(token).map_err(invalid)?;
        let times = jwt.times;
        // Boxed: a cache miss (signature check, maybe a JWKS fetch) is rare;
        // the cached path above must not carry its future.
        let (principal, keys) = Box::pin(self.verify_with_keys(jwt, now)).await?;
        let principal = Arc::new(principal);
        self.verified.put(
            token,
            Verified {
                principal: principal.clone(),
                keys,
                times,
            },
        );
        Ok(principal)
    }

    /// Whether this provider verified `token` before (it may have expired
    /// since: [`Self::verify_token`] checks). Only tokens whose `iss` is
    /// this provider's issuer are ever verified here, so a hit names the
    /// token's issuer without decoding it.
    pub(crate) fn verified_before(&self, token: &str) -> bool {
        self.verified.holds(token)
    }

    /// Verifies a decoded token whose `iss` names this provider: times,
    /// audiences, then the signature; returns the principal and the key set
    /// that verified it (`None`: the rule's HMAC secret).
    async fn verify_with_keys(
        &self,
        jwt: Jwt,
        now: SystemTime,
    ) -> Result<(Principal, Option<Arc<Loaded>>), AuthFailure> {
        let r = &self.rule;
        let now_s = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        jwt.times
            .check(now_s, r.clock_skew.as_secs(), r.require_expiration)
            .map_err(invalid)?;
        check_audience(&jwt.aud, &r.audiences)?;
        let used = self.check_signature(&jwt).await?;
        Ok((self.principal(jwt), used))
    }

    /// Checks `jwt`'s signature with this issuer's keys (or HMAC secret),
    /// refetching once for an unknown `kid`; returns the key set used
    /// (`None`: the HMAC secret). Browser sign-in verifies ID tokens with it.
    pub async fn check_signature(&self, jwt: &Jwt) -> Result<Option<Arc<Loaded>>, AuthFailure> {
        let r = &self.rule;
        let used = if jwt.alg.is_hmac() {
            match &r.hmac_secret {
                Some(secret) => verify_hmac(jwt, secret).map_err(|e| invalid(e.status()))?,
                None => return Err(invalid(VerifyError::NoMatchingKey.status())),
            }
            None
        } else {
            let loaded = self.keys.current().await?;
            match loaded.keys.verify(jwt) {
                Ok(()) => Some(loaded),
                Err(VerifyError::NoMatchingKey) => {
                    let newer = self.keys.refetch_for_unknown_kid(&loaded).await;
                    let Some(newer) = newer else {
                        return Err(invalid(VerifyError::NoMatchingKey.status()));
                    };
                    newer.keys.verify(jwt).map_err(|e| invalid(e.status()))?;
                    Some(newer)
                }
                Err(e) => return Err(invalid(e.status())),
            }
        };
        Ok(used)
    }

    fn principal(&self, jwt: Jwt) -> Principal {
        claims_principal(self.kind, Some(&self.rule.issuer), jwt.claims)
    }
}

#[cfg(test)]
mod tests;
