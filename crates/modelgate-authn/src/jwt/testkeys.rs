//! Test signers: real keys (RSA from checked-in test-only PKCS#8 files, EC
//! and Ed25519 generated per run) that sign tokens and publish their JWKs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self as s, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

pub const RSA_A: &[u8] = include_bytes!("testdata/rsa2048.der");
pub const RSA_B: &[u8] = include_bytes!("testdata/rsa2048-other.der");

pub enum Signer {
    Rsa(RsaKeyPair, &'static str),
    Ec(EcdsaKeyPair, &'static str),
    Ed(Ed25519KeyPair),
}

pub struct TestKey {
    pub kid: String,
    pub signer: Signer,
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

impl TestKey {
    pub fn rsa(kid: &str, der: &[u8], alg: &'static str) -> Self {
        let kp = RsaKeyPair::from_der(der).unwrap();
        Self {
            kid: kid.into(),
            signer: Signer::Rsa(kp, alg),
        }
    }

    pub fn ec(kid: &str, alg: &'static str) -> Self {
        let rng = SystemRandom::new();
        let algo = if alg == "ES256" {
            &s::ECDSA_P256_SHA256_FIXED_SIGNING
        } else {
            &s::ECDSA_P384_SHA384_FIXED_SIGNING
        };
        let pk8 = EcdsaKeyPair::generate_pkcs8(algo, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(algo, pk8.as_ref(), &rng).unwrap();
        Self {
            kid: kid.into(),
            signer: Signer::Ec(kp, alg),
        }
    }

    pub fn ed(kid: &str) -> Self {
        let pk8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self {
            kid: kid.into(),
            signer: Signer::Ed(Ed25519KeyPair::from_pkcs8(pk8.as_ref()).unwrap()),
        }
    }

    pub fn alg(&self) -> &'static str {
        match &self.signer {
            Signer::Rsa(_, a) | Signer::Ec(_, a) => a,
            Signer::Ed(_) => "EdDSA",
        }
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Rsa(kp, alg) => {
                let c: s::RsaPublicKeyComponents<Vec<u8>> = kp.public().into();
                json!({"kty":"RSA","kid":self.kid,"alg":alg,"use":"sig", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Signer::Ec(kp, alg) => {
                let pt = kp.public_key().as_ref();
                let n = (pt.len() - 1) / 2;
                let crv = if *alg == "ES256" { "P-256" } else { "P-384" };
                json!({"kty":"EC","kid":self.kid,"crv":crv,"x":b64(&pt[1..1 + n]),"y":b64(&pt[1 + n..])})
            }
            Signer::Ed(kp) => {
                json!({"kty":"OKP","kid":self.kid,"crv":"Ed25519","x":b64(kp.public_key().as_ref())})
            }
        }
    }

    /// The RSA public key's DER (`RSAPublicKey`), for alg-confusion tests.
    pub fn rsa_public_der(&self) -> Vec<u8> {
        match &self.signer {
            Signer::Rsa(kp, _) => kp.public().as_ref().to_vec(),
            _ => Vec::new(),
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"});
        sign_with(&header, claims, |msg| self.raw_sign(msg))
    }

    pub fn raw_sign(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(kp, alg) => {
                let pad: &dyn s::RsaEncoding = match *alg {
                    "RS256" => &s::RSA_PKCS1_SHA256,
                    "RS384" => &s::RSA_PKCS1_SHA384,
                    "RS512" => &s::RSA_PKCS1_SHA512,
                    "PS256" => &s::RSA_PSS_SHA256,
                    "PS384" => &s::RSA_PSS_SHA384,
                    _ => &s::RSA_PSS_SHA512,
                };
                let mut sig = vec![0; kp.public().modulus_len()];
                kp.sign(pad, &rng, msg, &mut sig).unwrap();
                sig
            }
            Signer::Ec(kp, _) => kp.sign(&rng, msg).unwrap().as_ref().to_vec(),
            Signer::Ed(kp) => kp.sign(msg).as_ref().to_vec(),
        }
    }
}

/// `header.payload.signature` with a caller-made signature.
pub fn sign_with(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

pub fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    sign_with(header, claims, |m| {
        ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret), m)
            .as_ref()
            .to_vec()
    })
}

pub fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}
