//! Wristbands (Authorino's name): after a permitted decision modelgate signs
//! a short-lived JWT stating who called, which model and operation, and which
//! rule allowed it, for the upstream to verify against the JWKS modelgate
//! publishes (with OIDC discovery). The first configured key signs; all are
//! published, so keys rotate with an overlap. No credential is ever copied.

mod keys;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use modelgate_config::ConfigError;
use modelgate_config::wristband::Wristband;
use modelgate_core::{AuthMethod, Principal};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use serde_json::json;

use keys::SigningKey;

/// Discovery and key-set paths, relative to the issuer's path.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// What the token says about one permitted request.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The verified caller; `None` on a public route.
    pub principal: Option<&'a Principal>,
    pub model: &'a str,
    pub protocol: &'a str,
    pub operation: &'a str,
    /// How the verdict was reached (`grant`, `policy`, `public`, …).
    pub basis: Option<&'a str>,
    /// The policy that allowed, if one did.
    pub policy: Option<&'a str>,
}

/// A signed token and what the decision log records about it.
#[derive(Debug, Clone)]
pub struct Minted {
    pub token: HeaderValue,
    pub kid: String,
    pub jti: String,
}

/// The wristband signer and its published documents, built from one
/// configuration (key files are read here, so a reload re-reads them).
pub struct Wristbands {
    issuer: String,
    issuer_path: String,
    header: HeaderName,
    ttl: Duration,
    audience: Option<String>,
    signer: SigningKey,
    /// `{"alg":…,"typ":"JWT","kid":…}`, base64url-encoded once.
    jose_header: String,
    jwks: Bytes,
    discovery: Bytes,
    rng: SystemRandom,
}

impl std::fmt::Debug for Wristbands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wristbands")
            .field("issuer", &self.issuer)
            .field("kid", &self.signer.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: &'a str,
    model: &'a str,
    protocol: &'a str,
    operation: &'a str,
    decision: serde_json::Value,
    identity: serde_json::Value,
}

impl Wristbands {
    /// Reads the signing keys. Errors name `wristband.signing_keys[i]`.
    pub fn build(cfg: &Wristband) -> Result<Self, Vec<ConfigError>> {
        let rng = SystemRandom::new();
        let mut errors = Vec::new();
        let mut loaded: Vec<SigningKey> = Vec::new();
        for (i, path) in cfg.signing_keys.iter().enumerate() {
            let key = format!("wristband.signing_keys[{i}]");
            match SigningKey::load(path, &rng) {
                Ok(k) if loaded.iter().any(|o| o.kid == k.kid) => errors.push(ConfigError::new(
                    key,
                    format!("{} is the same key as an earlier entry", path.display()),
                    "list each key once",
                )),
                Ok(k) => loaded.push(k),
                Err(e) => errors.push(ConfigError::new(
                    key,
                    format!("{}: {e}", path.display()),
                    "give a PKCS#8 PEM private key: `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` (ES256) or `openssl genpkey -algorithm ed25519` (EdDSA)",
                )),
            }
        }
        if let Some(first) = loaded.first()
            && first.pair.algorithm() != cfg.algorithm
        {
            errors.push(ConfigError::new(
                "wristband.signing_keys[0]",
                format!(
                    "the signing key is an {} key but wristband.algorithm is {}",
                    first.pair.algorithm().as_str(),
                    cfg.algorithm.as_str()
                ),
                "set wristband.algorithm to the first key's algorithm, or put a matching key first",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut loaded = loaded.into_iter();
        let Some(signer) = loaded.next() else {
            return Err(vec![ConfigError::new(
                "wristband.signing_keys",
                "no signing key",
                "list at least one PKCS#8 PEM private key file",
            )]);
        };
        let others: Vec<SigningKey> = loaded.collect();
        let published = || std::iter::once(&signer).chain(others.iter());
        let jwks = json!({ "keys": published().map(|k| &k.jwk).collect::<Vec<_>>() });
        let mut algs: Vec<&str> = published().map(|k| k.pair.algorithm().as_str()).collect();
        algs.dedup();
        let discovery = json!({
            "issuer": cfg.issuer,
            "jwks_uri": format!("{}{JWKS_PATH}", cfg.issuer),
            "id_token_signing_alg_values_supported": algs,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
        });
        let jose_header = URL_SAFE_NO_PAD.encode(
            json!({"alg": cfg.algorithm.as_str(), "typ": "JWT", "kid": signer.kid}).to_string(),
        );
        Ok(Self {
            issuer: cfg.issuer.clone(),
            issuer_path: cfg.issuer_path.clone(),
            header: cfg.header.clone(),
            ttl: cfg.ttl,
            audience: cfg.audience.clone(),
            jose_header,
            jwks: Bytes::from(jwks.to_string()),
            discovery: Bytes::from(discovery.to_string()),
            signer,
            rng,
        })
    }

    /// The header the token is sent in.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The `kid` of the signing key.
    pub fn kid(&self) -> &str {
        &self.signer.kid
    }

    /// The discovery document or the JWKS, if `path` names one of them
    /// (at the root, and under the issuer URL's path).
    pub fn document(&self, path: &str) -> Option<Bytes> {
        let rest = path
            .strip_prefix(self.issuer_path.as_str())
            .filter(|r| r.starts_with('/'))
            .unwrap_or(path);
        match rest {
            DISCOVERY_PATH => Some(self.discovery.clone()),
            JWKS_PATH => Some(self.jwks.clone()),
            _ => None,
        }
    }

    /// Signs a wristband for one permitted request, valid from `now` for the
    /// configured ttl. `None` only if the system RNG or signer fails.
    pub fn mint(&self, f: &Facts<'_>, now: SystemTime) -> Option<Minted> {
        let iat = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        let mut raw = [0u8; 16];
        self.rng.fill(&mut raw).ok()?;
        let jti = URL_SAFE_NO_PAD.encode(raw);
        let claims = Claims {
            iss: &self.issuer,
            sub: f.principal.map(|p| p.subject.as_str()),
            aud: self.audience.as_deref().unwrap_or(f.model),
            iat,
            nbf: iat,
            exp: iat + self.ttl.as_secs(),
            jti: &jti,
            model: f.model,
            protocol: f.protocol,
            operation: f.operation,
            decision: json!({ "basis": f.basis, "policy": f.policy }),
            identity: identity(f.principal),
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).ok()?);
        let mut token = String::with_capacity(self.jose_header.len() + payload.len() + 90);
        token.push_str(&self.jose_header);
        token.push('.');
        token.push_str(&payload);
        let sig = self.signer.pair.sign(token.as_bytes(), &self.rng)?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Some(Minted {
            token: HeaderValue::try_from(token).ok()?,
            kid: self.signer.kid.clone(),
            jti,
        })
    }
}

/// The `identity` claim: how the caller was verified, never with what.
fn identity(p: Option<&Principal>) -> serde_json::Value {
    let Some(p) = p else {
        return json!({ "kind": "anonymous" });
    };
    let kind = match p.method {
        AuthMethod::ApiKey => "api_key",
        AuthMethod::Jwt => "jwt",
        AuthMethod::KubernetesTokenReview => "kubernetes",
        AuthMethod::Introspection => "introspection",
        AuthMethod::Mtls => "mtls",
        AuthMethod::Session => "session",
    };
    let mut m = serde_json::Map::new();
    m.insert("kind".into(), kind.into());
    m.insert("name".into(), p.name.clone().into());
    m.insert("groups".into(), p.groups.clone().into());
    if let Some(ns) = &p.namespace {
        m.insert("namespace".into(), ns.clone().into());
    }
    if let Some(iss) = &p.issuer {
        m.insert("issuer".into(), iss.clone().into());
    }
    serde_json::Value::Object(m)
}
