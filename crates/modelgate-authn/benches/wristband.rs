#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Wristband minting time (ES256 and EdDSA, no cache): claims serialisation,
//! base64url and the signature. Prints the median and p99 of single mints.
//! `cargo bench -p modelgate-authn --bench wristband`.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use modelgate_authn::wristband::{Facts, Wristbands};
use modelgate_config::wristband::{Wristband, WristbandAlgorithm};
use modelgate_core::{Grants, Principal};
use ring::rand::SystemRandom;
use ring::signature::{self as s, EcdsaKeyPair, Ed25519KeyPair};

fn signer(dir: &std::path::Path, algorithm: WristbandAlgorithm) -> Wristbands {
    let rng = SystemRandom::new();
    let der = match algorithm {
        WristbandAlgorithm::Es256 => {
            EcdsaKeyPair::generate_pkcs8(&s::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .unwrap()
                .as_ref()
                .to_vec()
        }
        WristbandAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng)
            .unwrap()
            .as_ref()
            .to_vec(),
    };
    let path = dir.join(format!("{}.pem", algorithm.as_str()));
    std::fs::write(
        &path,
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der)
        ),
    )
    .unwrap();
    Wristbands::build(&Wristband {
        issuer: "https://gw.example".into(),
        issuer_path: String::new(),
        header: http::HeaderName::from_static("x-modelgate-wristband"),
        ttl: Duration::from_secs(300),
        audience: None,
        algorithm,
        signing_keys: vec![path],
    })
    .unwrap()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut who = Principal::api_key("alice", Grants::default());
    who.groups = vec!["ml".into(), "admins".into()];
    let facts = Facts {
        principal: Some(&who),
        model: "iris",
        protocol: "v2",
        operation: "infer",
        basis: Some("policy"),
        policy: Some("allow-ml"),
    };
    for alg in [WristbandAlgorithm::Es256, WristbandAlgorithm::EdDsa] {
        let w = signer(dir.path(), alg);
        for _ in 0..200 {
            black_box(w.mint(&facts, SystemTime::now()));
        }
        let mut times: Vec<Duration> = (0..5000)
            .map(|_| {
                let t = Instant::now();
                black_box(w.mint(&facts, SystemTime::now()).unwrap());
                t.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "wristband mint {}: median {:.1} µs, p99 {:.1} µs ({} mints)",
            alg.as_str(),
            times[times.len() / 2].as_secs_f64() * 1e6,
            times[times.len() * 99 / 100].as_secs_f64() * 1e6,
            times.len()
        );
    }
}
