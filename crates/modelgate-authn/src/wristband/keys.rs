//! Wristband signing keys: PKCS#8 PEM files read into ring key pairs (ES256
//! or Ed25519, told apart by their contents), and each key's public JWK with
//! its RFC 7638 thumbprint as `kid`.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use modelgate_config::wristband::WristbandAlgorithm;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A private key able to sign wristbands.
pub(crate) enum Pair {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// One key from `wristband.signing_keys`.
pub(crate) struct SigningKey {
    pub pair: Pair,
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The public JWK, as published.
    pub jwk: Value,
}

impl SigningKey {
    /// Reads a PKCS#8 PEM private key (P-256 or Ed25519). The error never
    /// quotes the file's contents.
    pub fn load(path: &Path, rng: &SystemRandom) -> Result<Self, String> {
        let der = PrivatePkcs8KeyDer::from_pem_file(path).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no PKCS#8 `PRIVATE KEY` PEM block found".to_string()
            }
            other => format!("cannot read the key: {other}"),
        })?;
        Self::from_pkcs8(der.secret_pkcs8_der(), rng)
    }

    pub fn from_pkcs8(der: &[u8], rng: &SystemRandom) -> Result<Self, String> {
        let pair =
            if let Ok(p) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, rng) {
                Pair::Es256(p)
            } else if let Ok(p) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
                Pair::EdDsa(p)
            } else {
                return Err("not a P-256 (ES256) or Ed25519 (EdDSA) PKCS#8 private key".into());
            };
        let (thumb_input, mut jwk) = match &pair {
            Pair::Es256(p) => {
                // Uncompressed point: 0x04 || x || y.
                let point = p.public_key().as_ref();
                let (x, y) = point
                    .get(1..)
                    .unwrap_or_default()
                    .split_at(point.len().saturating_sub(1) / 2);
                let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
                (
                    format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
                    json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                )
            }
            Pair::EdDsa(p) => {
                let x = URL_SAFE_NO_PAD.encode(p.public_key().as_ref());
                (
                    format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
                    json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
                )
            }
        };
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumb_input.as_bytes()));
        if let Value::Object(m) = &mut jwk {
            m.insert("kid".into(), kid.clone().into());
            m.insert("alg".into(), pair.algorithm().as_str().into());
            m.insert("use".into(), "sig".into());
        }
        Ok(Self { pair, kid, jwk })
    }
}

impl Pair {
    pub fn algorithm(&self) -> WristbandAlgorithm {
        match self {
            Pair::Es256(_) => WristbandAlgorithm::Es256,
            Pair::EdDsa(_) => WristbandAlgorithm::EdDsa,
        }
    }

    /// The JWS signature over `input` (ES256: fixed-size r || s).
    pub fn sign(&self, input: &[u8], rng: &SystemRandom) -> Option<Vec<u8>> {
        match self {
            Pair::Es256(p) => p.sign(rng, input).ok().map(|s| s.as_ref().to_vec()),
            Pair::EdDsa(p) => Some(p.sign(input).as_ref().to_vec()),
        }
    }
}
