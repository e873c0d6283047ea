//! The signature-verify floor: ES256 (P-256) and RS256 (RSA-2048) verify
//! with ring (what modelgate uses) and aws-lc-rs (per call, and with a key
//! parsed once), one thread, 5,000 checks each after a warm-up. Compare with
//! `openssl speed -seconds 3 ecdsap256 rsa2048`. Needs `openssl` for the
//! RSA key (ring does not generate RSA keys).
use std::time::Instant;

fn bench(name: &str, n: usize, mut f: impl FnMut()) {
    for _ in 0..200 { f(); }
    let mut t = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Instant::now();
        f();
        t.push(s.elapsed().as_secs_f64() * 1e6);
    }
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("{name}: p50 {:.1} µs  p99 {:.1} µs  min {:.1} µs", t[n / 2], t[n * 99 / 100], t[0]);
}

fn main() {
    let msg = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEiLCJpc3MiOiJodHRwczovL2lkcC5iZW5jaCJ9";
    let n = 5000;
    {
        use ring::signature::*;
        let rng = ring::rand::SystemRandom::new();
        let pk8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pk8.as_ref(), &rng).unwrap();
        let sig = kp.sign(&rng, msg).unwrap();
        let pubk = kp.public_key().as_ref().to_vec();
        let k = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pubk.clone());
        bench("ring ES256 verify", n, || k.verify(msg, sig.as_ref()).unwrap());
        {
            use aws_lc_rs::signature as a;
            let k = a::UnparsedPublicKey::new(&a::ECDSA_P256_SHA256_FIXED, pubk.clone());
            bench("aws-lc-rs ES256 verify", n, || k.verify(msg, sig.as_ref()).unwrap());
            let p = a::ParsedPublicKey::new(&a::ECDSA_P256_SHA256_FIXED, pubk.clone()).unwrap();
            bench("aws-lc-rs ES256 verify (parsed key)", n, || p.verify_sig(msg, sig.as_ref()).unwrap());
        }
    }
    {
        use ring::signature::*;
        let dir = std::env::temp_dir().join(format!("sigbench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rsa.der");
        let ok = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-outform", "DER", "-out"])
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl genpkey failed");
        let der = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let kp = RsaKeyPair::from_der(&der).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let mut sig = vec![0; kp.public().modulus_len()];
        kp.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig).unwrap();
        let c: ring::rsa::PublicKeyComponents<Vec<u8>> = kp.public().into();
        bench("ring RS256 verify (components)", n, || {
            RsaPublicKeyComponents { n: &c.n, e: &c.e }.verify(&RSA_PKCS1_2048_8192_SHA256, msg, &sig).unwrap()
        });
        let pubder = kp.public().as_ref().to_vec();
        let u = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pubder.clone());
        bench("ring RS256 verify (DER)", n, || u.verify(msg, &sig).unwrap());
        use aws_lc_rs::signature as a;
        let ac = a::RsaPublicKeyComponents { n: &c.n, e: &c.e };
        bench("aws-lc-rs RS256 verify (components)", n, || ac.verify(&a::RSA_PKCS1_2048_8192_SHA256, msg, &sig).unwrap());
        match a::ParsedPublicKey::new(&a::RSA_PKCS1_2048_8192_SHA256, pubder.clone()) {
            Ok(p) => bench("aws-lc-rs RS256 verify (parsed key)", n, || p.verify_sig(msg, &sig).unwrap()),
            Err(e) => println!("aws-lc-rs parse RSA DER: {e:?}"),
        }
    }
}
