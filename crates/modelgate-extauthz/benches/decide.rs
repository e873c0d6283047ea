//! In-process ext_authz decision cost: a `CheckRequest` converted and
//! decided by the one decision function (routing, identity, policy), with an
//! API key, with a JWT verified each time (a fresh ES256 or RS256 token per
//! check; RS256 is the default of Keycloak, Dex and oidc-provider) and with a
//! JWT already verified (the verified-token cache). A timing
//! loop, not a test: `cargo bench -p modelgate-extauthz --bench decide`.
//! Prints p50/p99/mean per scenario (targets: JWT ≤ 30 µs p99, cached ≤ 5 µs),
//! and the signature check alone (ring, the same keys) in the same run, so
//! the decision's own overhead is the difference.
//! `DECIDE_SLOW=1` also lists the checks over 500 µs (index, µs) on stderr,
//! to tell preemption on a loaded machine from a slow code path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use modelgate_app::{Claimed, Explainer, NoBody};
use modelgate_extauthz::{ask_from_check, bench_support::check_request};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};

const ISS: &str = "https://idp.bench";
const PATH: &str = "/v2/models/iris/infer";
const N: usize = 20_000;

fn es256() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

/// A 2048-bit RSA key (PKCS#1 DER): ring does not generate RSA keys, so
/// `openssl` does.
fn rs256(dir: &std::path::Path) -> RsaKeyPair {
    let der = dir.join("rsa.der");
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .args(["-outform", "DER", "-out"])
        .arg(&der)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (Debian) generates the RS256 bench key")
        .success();
    assert!(ok, "openssl genpkey failed");
    RsaKeyPair::from_der(&std::fs::read(der).unwrap()).unwrap()
}

fn claims(sub: &str, alg: &str, kid: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let head = B64.encode(format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"JWT"}}"#));
    let claims =
        serde_json::json!({"iss": ISS, "sub": sub, "aud": "models", "iat": now, "exp": now + 3600});
    format!("{head}.{}", B64.encode(claims.to_string()))
}

fn token(key: &EcdsaKeyPair, sub: &str) -> String {
    let input = claims(sub, "ES256", "k1");
    let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(sig.as_ref()))
}

fn rs_token(key: &RsaKeyPair, sub: &str) -> String {
    let input = claims(sub, "RS256", "r1");
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", B64.encode(sig))
}

fn explainer(dir: &std::path::Path, key: &EcdsaKeyPair, rsa: &RsaKeyPair) -> (Explainer, String) {
    let keys = dir.join("keys.json");
    let api_key = modelgate_authn::keys::KeyFile::update(&keys, |f| {
        f.create("bench", vec!["*".into()], None, SystemTime::now())
    })
    .unwrap()
    .key;
    let p = key.public_key().as_ref();
    let rsa_pub: ring::rsa::PublicKeyComponents<Vec<u8>> = rsa.public().into();
    let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
        "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65])},
        {"kty": "RSA", "kid": "r1", "alg": "RS256",
        "n": B64.encode(&rsa_pub.n),
        "e": B64.encode(&rsa_pub.e)}]});
    let text = format!(
        r#"
listen: {{address: "127.0.0.1:1"}}
admin: {{address: "127.0.0.1:2"}}
models: [{{name: iris, upstream: {{url: "http://127.0.0.1:3"}}}}]
auth:
  api_keys: {{file: "{}"}}
  identity_header: kubeflow-userid
  jwt: [{{issuer: "{ISS}", audiences: [models], jwks: '{jwks}'}}]
policies:
  - {{name: any-verified, rules: [{{from: [{{source: {{requestPrincipals: ["*"]}}}}]}}]}}
"#,
        keys.display()
    );
    let cfg = modelgate_config::parse_str(&text, "bench.yaml", dir, &|_| None).unwrap();
    (Explainer::build(cfg).unwrap(), api_key)
}

/// Decides each credential once (in order), returning the per-check times.
fn run(rt: &tokio::runtime::Runtime, ex: &Explainer, credentials: &[String]) -> Vec<Duration> {
    let decider = ex.decider();
    let mut times = Vec::with_capacity(credentials.len());
    rt.block_on(async {
        for c in credentials {
            let check = check_request(PATH, &format!("Bearer {c}"));
            let start = Instant::now();
            let (ask, _) = ask_from_check(check, 0, start).unwrap();
            let d = decider
                .decide(ask, Claimed::FromRequest, &mut NoBody, false)
                .await;
            times.push(start.elapsed());
            assert!(d.result.is_ok(), "{:?}", d.result);
        }
    });
    times
}

fn report(name: &str, mut t: Vec<Duration>) {
    if std::env::var_os("DECIDE_SLOW").is_some() {
        let slow: Vec<(usize, u128)> = t
            .iter()
            .enumerate()
            .filter(|(_, d)| d.as_micros() > 500)
            .map(|(i, d)| (i, d.as_micros()))
            .collect();
        eprintln!(
            "{name}: {} slow: {:?}",
            slow.len(),
            &slow[..slow.len().min(40)]
        );
    }
    t.sort();
    let q = |p: f64| t[((t.len() as f64 * p) as usize).min(t.len() - 1)].as_secs_f64() * 1e6;
    let mean = t.iter().sum::<Duration>().as_secs_f64() * 1e6 / t.len() as f64;
    println!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} |",
        t.len(),
        q(0.50),
        q(0.99),
        mean
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let key = es256();
    let rsa = rs256(dir.path());
    let (ex, api_key) = explainer(dir.path(), &key, &rsa);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fresh: Vec<String> = (0..N).map(|i| token(&key, &format!("user-{i}"))).collect();
    let rs_fresh: Vec<String> = (0..N)
        .map(|i| rs_token(&rsa, &format!("user-{i}")))
        .collect();
    let same = vec![token(&key, "cached"); N];
    let api = vec![api_key; N];
    // Warm-up (allocators, caches of the route table).
    run(&rt, &ex, &api[..1000]);
    println!(
        "| in-process decision (CheckRequest → Ask → decide) | checks | p50 µs | p99 µs | mean µs |"
    );
    println!("|---|---:|---:|---:|---:|");
    report("API key", run(&rt, &ex, &api));
    report(
        "JWT ES256, verified each time (fresh token per check)",
        run(&rt, &ex, &fresh),
    );
    report(
        "JWT RS256 (2048-bit), verified each time (fresh token per check)",
        run(&rt, &ex, &rs_fresh),
    );
    report("JWT ES256, cached (same token)", run(&rt, &ex, &same));
    report(
        "signature alone: ES256 verify (ring)",
        sig_only(&fresh, |msg, sig| {
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                key.public_key().as_ref(),
            )
            .verify(msg, sig)
            .is_ok()
        }),
    );
    let rsa_pub: ring::rsa::PublicKeyComponents<Vec<u8>> = rsa.public().into();
    report(
        "signature alone: RS256 verify (ring)",
        sig_only(&rs_fresh, |msg, sig| {
            ring::signature::RsaPublicKeyComponents {
                n: &rsa_pub.n,
                e: &rsa_pub.e,
            }
            .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
            .is_ok()
        }),
    );
}

/// Times the signature check alone over the same tokens.
fn sig_only(tokens: &[String], verify: impl Fn(&[u8], &[u8]) -> bool) -> Vec<Duration> {
    tokens
        .iter()
        .map(|t| {
            let (input, sig) = t.rsplit_once('.').unwrap();
            let sig = B64.decode(sig).unwrap();
            let start = Instant::now();
            assert!(verify(input.as_bytes(), &sig));
            start.elapsed()
        })
        .collect()
}
