//! JSON Web Key Sets and signature checks. Each key's type is bound to the
//! algorithms it may verify (RSA → RS*/PS*, EC P-256 → ES256, EC P-384 →
//! ES384, OKP Ed25519 → EdDSA); symmetric (`oct`) keys from a JWKS are never
//! used, so a public key can never serve as an HMAC secret. The primitives
//! are ring's, which also refuses RSA moduli under 2048 bits.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

use super::parse::{Alg, Jwt};
use super::status as st;
use modelgate_core::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyMaterial {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// One usable public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    pub alg: Option<String>,
    material: KeyMaterial,
}

/// The usable keys of a JWKS (keys that are malformed, for encryption, or of
/// an unsupported type are left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
}

/// Why a signature check did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// No key fits the token's `kid` and `alg`.
    NoMatchingKey,
    /// A key fit, but the signature is wrong.
    BadSignature,
}

impl VerifyError {
    pub fn status(self) -> &'static str {
        match self {
            VerifyError::NoMatchingKey => st::JWKS_KID_ALG_MISMATCH,
            VerifyError::BadSignature => st::VERIFICATION_FAILS,
        }
    }
}

fn field(obj: &serde_json::Map<String, Value>, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(obj.get(name)?.as_str()?).ok()
}

fn jwk(v: &Value) -> Option<Jwk> {
    let obj = v.as_object()?;
    if obj
        .get("use")
        .and_then(Value::as_str)
        .is_some_and(|u| u != "sig")
    {
        return None;
    }
    let kid = obj.get("kid").and_then(Value::as_str).map(str::to_string);
    let alg = obj.get("alg").and_then(Value::as_str).map(str::to_string);
    let material = match obj.get("kty")?.as_str()? {
        "RSA" => {
            let n = field(obj, "n")?;
            let e = field(obj, "e")?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < 2048 || e.is_empty() {
                return None;
            }
            KeyMaterial::Rsa { n, e }
        }
        "EC" => {
            let (x, y) = (field(obj, "x")?, field(obj, "y")?);
            let size = match obj.get("crv")?.as_str()? {
                "P-256" => 32,
                "P-384" => 48,
                _ => return None,
            };
            if x.len() != size || y.len() != size {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            if size == 32 {
                KeyMaterial::P256(point)
            } else {
                KeyMaterial::P384(point)
            }
        }
        "OKP" => {
            if obj.get("crv")?.as_str()? != "Ed25519" {
                return None;
            }
            let x = field(obj, "x")?;
            if x.len() != 32 {
                return None;
            }
            KeyMaterial::Ed25519(x)
        }
        _ => return None,
    };
    Some(Jwk { kid, alg, material })
}

impl KeySet {
    /// Parses a JWKS document; fails with Envoy's JWKS statuses.
    pub fn parse(body: &[u8]) -> Result<Self, &'static str> {
        let v: Value = serde_json::from_slice(body).map_err(|_| st::JWKS_BAD_JSON)?;
        let keys = v
            .as_object()
            .ok_or(st::JWKS_BAD_JSON)?
            .get("keys")
            .ok_or(st::JWKS_NO_KEYS)?;
        let list = keys.as_array().ok_or(st::JWKS_BAD_KEYS)?;
        let keys: Vec<Jwk> = list.iter().filter_map(jwk).collect();
        if keys.is_empty() {
            return Err(st::JWKS_NO_VALID_KEYS);
        }
        Ok(Self { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies `jwt`'s signature with the keys whose `kid` and `alg` fit
    /// (jwt_verify_lib's rules: a `kid` on both sides must be equal, a JWK
    /// `alg` must equal the token's, and the key type must fit the algorithm).
    pub fn verify(&self, jwt: &Jwt) -> Result<(), VerifyError> {
        let mut matched = false;
        for k in &self.keys {
            if let (Some(a), Some(b)) = (&jwt.kid, &k.kid)
                && a != b
            {
                continue;
            }
            if k.alg
                .as_deref()
                .is_some_and(|a| Alg::parse(a) != Some(jwt.alg))
            {
                continue;
            }
            let Some(ok) = check(
                jwt.alg,
                &k.material,
                jwt.signing_input.as_bytes(),
                &jwt.signature,
            ) else {
                continue;
            };
            matched = true;
            if ok {
                return Ok(());
            }
        }
        Err(if matched {
            VerifyError::BadSignature
        } else {
            VerifyError::NoMatchingKey
        })
    }
}

/// Checks one signature; `None` when the key type does not fit `alg`.
fn check(alg: Alg, key: &KeyMaterial, msg: &[u8], sig: &[u8]) -> Option<bool> {
    use signature as s;
    let ok = match (alg, key) {
        (
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512,
            KeyMaterial::Rsa { n, e },
        ) => {
            let params: &s::RsaParameters = match alg {
                Alg::RS256 => &s::RSA_PKCS1_2048_8192_SHA256,
                Alg::RS384 => &s::RSA_PKCS1_2048_8192_SHA384,
                Alg::RS512 => &s::RSA_PKCS1_2048_8192_SHA512,
                Alg::PS256 => &s::RSA_PSS_2048_8192_SHA256,
                Alg::PS384 => &s::RSA_PSS_2048_8192_SHA384,
                _ => &s::RSA_PSS_2048_8192_SHA512,
            };
            RsaPublicKeyComponents { n, e }
                .verify(params, msg, sig)
                .is_ok()
        }
        (Alg::ES256, KeyMaterial::P256(point)) => {
            UnparsedPublicKey::new(&s::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, sig)
                .is_ok()
        }
        (Alg::ES384, KeyMaterial::P384(point)) => {
            UnparsedPublicKey::new(&s::ECDSA_P384_SHA384_FIXED, point)
                .verify(msg, sig)
                .is_ok()
        }
        (Alg::EdDSA, KeyMaterial::Ed25519(x)) => UnparsedPublicKey::new(&s::ED25519, x)
            .verify(msg, sig)
            .is_ok(),
        _ => return None,
    };
    Some(ok)
}

/// Verifies an HS256/384/512 token with an explicitly configured shared
/// secret (constant-time comparison inside ring).
pub fn verify_hmac(jwt: &Jwt, secret: &Secret) -> Result<(), VerifyError> {
    let alg = match jwt.alg {
        Alg::HS256 => ring::hmac::HMAC_SHA256,
        Alg::HS384 => ring::hmac::HMAC_SHA384,
        Alg::HS512 => ring::hmac::HMAC_SHA512,
        _ => return Err(VerifyError::NoMatchingKey),
    };
    let key = ring::hmac::Key::new(alg, secret.expose().as_bytes());
    ring::hmac::verify(&key, jwt.signing_input.as_bytes(), &jwt.signature)
        .map_err(|_| VerifyError::BadSignature)
}
