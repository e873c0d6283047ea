//! Minting: the token verifies with the published key, carries the claims
//! and no credential, rotation publishes every key, bad keys name their entry.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use modelgate_config::wristband::{Wristband, WristbandAlgorithm};
use modelgate_core::{AuthMethod, Grants, Principal};
use ring::rand::SystemRandom;
use ring::signature::{self as s, EcdsaKeyPair, Ed25519KeyPair, UnparsedPublicKey};
use serde_json::Value;

use super::{Facts, Wristbands};

fn pem(dir: &Path, name: &str, der: &[u8]) -> PathBuf {
    let b = STANDARD.encode(der);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        ),
    )
    .unwrap();
    p
}

fn ec_key(dir: &Path, name: &str) -> PathBuf {
    let der =
        EcdsaKeyPair::generate_pkcs8(&s::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    pem(dir, name, der.as_ref())
}

fn ed_key(dir: &Path, name: &str) -> PathBuf {
    let der = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    pem(dir, name, der.as_ref())
}

fn config(keys: Vec<PathBuf>, algorithm: WristbandAlgorithm) -> Wristband {
    Wristband {
        issuer: "https://gw.example/wb".into(),
        issuer_path: "/wb".into(),
        header: http::HeaderName::from_static("x-modelgate-wristband"),
        ttl: Duration::from_secs(300),
        audience: None,
        algorithm,
        signing_keys: keys,
    }
}

fn alice() -> Principal {
    let mut p = Principal::api_key("alice", Grants::default());
    p.method = AuthMethod::Jwt;
    p.subject = "alice-sub".into();
    p.issuer = Some("https://idp.example".into());
    p.groups = vec!["ml".into()];
    p
}

fn facts(p: &Principal) -> Facts<'_> {
    Facts {
        principal: Some(p),
        model: "iris",
        protocol: "v2",
        operation: "infer",
        basis: Some("policy"),
        policy: Some("allow-ml"),
    }
}

/// Verifies `token` with the JWK of the published set that its `kid` names.
fn verify(w: &Wristbands, token: &str) -> Value {
    let jwks: Value =
        serde_json::from_slice(&w.document("/.well-known/jwks.json").unwrap()).unwrap();
    let mut parts = token.split('.');
    let (h, c, sig) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("kid published");
    assert_eq!(jwk["alg"], header["alg"]);
    let d = |v: &Value| URL_SAFE_NO_PAD.decode(v.as_str().unwrap()).unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let input = format!("{h}.{c}");
    let ok = match jwk["kty"].as_str().unwrap() {
        "EC" => {
            let mut point = vec![4u8];
            point.extend(d(&jwk["x"]));
            point.extend(d(&jwk["y"]));
            UnparsedPublicKey::new(&s::ECDSA_P256_SHA256_FIXED, point)
                .verify(input.as_bytes(), &sig)
        }
        _ => UnparsedPublicKey::new(&s::ED25519, d(&jwk["x"])).verify(input.as_bytes(), &sig),
    };
    assert!(ok.is_ok(), "signature does not verify");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).unwrap()).unwrap()
}

#[test]
fn es256_token_verifies_and_carries_the_claims() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wristbands::build(&config(
        vec![ec_key(dir.path(), "a.pem")],
        WristbandAlgorithm::Es256,
    ))
    .unwrap();
    let p = alice();
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let m = w.mint(&facts(&p), now).unwrap();
    let claims = verify(&w, m.token.to_str().unwrap());
    assert_eq!(claims["iss"], "https://gw.example/wb");
    assert_eq!(claims["sub"], "alice-sub");
    assert_eq!(claims["aud"], "iris");
    assert_eq!(claims["iat"], 1_800_000_000u64);
    assert_eq!(claims["exp"], 1_800_000_300u64);
    assert_eq!(claims["jti"], m.jti.as_str());
    assert_eq!(claims["model"], "iris");
    assert_eq!(claims["operation"], "infer");
    assert_eq!(claims["decision"]["basis"], "policy");
    assert_eq!(claims["decision"]["policy"], "allow-ml");
    assert_eq!(claims["identity"]["kind"], "jwt");
    assert_eq!(claims["identity"]["issuer"], "https://idp.example");
    assert_eq!(claims["identity"]["groups"][0], "ml");
    assert_eq!(m.kid, w.kid());
    // A fresh jti each time.
    assert_ne!(w.mint(&facts(&p), now).unwrap().jti, m.jti);
}

#[test]
fn eddsa_and_rotation_publish_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let ed = ed_key(dir.path(), "ed.pem");
    let ec = ec_key(dir.path(), "ec.pem");
    let w = Wristbands::build(&config(
        vec![ed.clone(), ec.clone()],
        WristbandAlgorithm::EdDsa,
    ))
    .unwrap();
    let p = alice();
    let old = w.mint(&facts(&p), std::time::SystemTime::now()).unwrap();
    verify(&w, old.token.to_str().unwrap());
    // Swapped: the EC key signs, the Ed25519 key is still published, so the
    // earlier token still verifies.
    let swapped = Wristbands::build(&config(vec![ec, ed], WristbandAlgorithm::Es256)).unwrap();
    assert_ne!(swapped.kid(), w.kid());
    verify(&swapped, old.token.to_str().unwrap());
    let new = swapped
        .mint(&facts(&p), std::time::SystemTime::now())
        .unwrap();
    verify(&swapped, new.token.to_str().unwrap());
    let disc: Value = serde_json::from_slice(
        &swapped
            .document("/wb/.well-known/openid-configuration")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(disc["issuer"], "https://gw.example/wb");
    assert_eq!(
        disc["jwks_uri"],
        "https://gw.example/wb/.well-known/jwks.json"
    );
    assert_eq!(
        disc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256", "EdDSA"])
    );
}

#[test]
fn kid_is_the_rfc7638_thumbprint() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wristbands::build(&config(
        vec![ec_key(dir.path(), "a.pem")],
        WristbandAlgorithm::Es256,
    ))
    .unwrap();
    let jwks: Value =
        serde_json::from_slice(&w.document("/.well-known/jwks.json").unwrap()).unwrap();
    let k = &jwks["keys"][0];
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
        k["x"], k["y"]
    );
    use sha2::Digest;
    let want = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()));
    assert_eq!(k["kid"], want.as_str());
    assert_eq!(k["use"], "sig");
    assert!(k.get("d").is_none(), "no private part published");
}

#[test]
fn no_credential_and_anonymous_identity() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(vec![ec_key(dir.path(), "a.pem")], WristbandAlgorithm::Es256);
    cfg.audience = Some("kserve".into());
    let w = Wristbands::build(&cfg).unwrap();
    let a = alice();
    let mut f = facts(&a);
    f.principal = None;
    let claims = verify(
        &w,
        w.mint(&f, std::time::SystemTime::now())
            .unwrap()
            .token
            .to_str()
            .unwrap(),
    );
    assert_eq!(claims["aud"], "kserve");
    assert!(claims.get("sub").is_none());
    assert_eq!(claims["identity"], serde_json::json!({"kind": "anonymous"}));
}

#[test]
fn documents_only_at_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let w = Wristbands::build(&config(
        vec![ec_key(dir.path(), "a.pem")],
        WristbandAlgorithm::Es256,
    ))
    .unwrap();
    for p in [
        "/.well-known/jwks.json",
        "/wb/.well-known/jwks.json",
        "/.well-known/openid-configuration",
    ] {
        assert!(w.document(p).is_some(), "{p}");
    }
    for p in [
        "/",
        "/wb",
        "/wbx/.well-known/jwks.json",
        "/.well-known/jwks.json/x",
        "/v2/models/iris",
    ] {
        assert!(w.document(p).is_none(), "{p}");
    }
}

#[test]
fn bad_keys_name_their_entry() {
    let dir = tempfile::tempdir().unwrap();
    let good = ec_key(dir.path(), "a.pem");
    let junk = dir.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = Wristbands::build(&config(vec![good.clone(), junk], WristbandAlgorithm::Es256))
        .unwrap_err();
    assert_eq!(e[0].path, "wristband.signing_keys[1]");
    assert!(!e[0].message.contains("AAAA"));
    let e = Wristbands::build(&config(
        vec![good.clone(), good.clone()],
        WristbandAlgorithm::Es256,
    ))
    .unwrap_err();
    assert_eq!(e[0].path, "wristband.signing_keys[1]");
    let e = Wristbands::build(&config(vec![good], WristbandAlgorithm::EdDsa)).unwrap_err();
    assert_eq!(e[0].path, "wristband.signing_keys[0]");
    assert!(e[0].message.contains("ES256"), "{}", e[0]);
}
