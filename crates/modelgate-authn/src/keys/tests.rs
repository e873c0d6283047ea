//! Key store tests: lifecycle, rotation grace, revocation, corrupt files,
//! atomic writes under concurrent writers and readers.

use std::time::{Duration, SystemTime};

use modelgate_core::{AuthFailure, Grants};

use crate::keys::{KeyFile, KeyStore};

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

#[test]
fn create_verify_and_grants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let k = KeyFile::update(&path, |f| {
        f.create("alice", vec!["iris".into()], None, t(0))
    })
    .unwrap();
    let store = KeyStore::load(&path).unwrap();
    let p = store.verify(&k.key, t(1)).unwrap();
    assert_eq!(p.name, "alice");
    assert!(matches!(p.grants, Grants::Models(ref s) if s.len() == 1));
    // The file never holds the key.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&k.key));
    let secret = k.key.rsplit('_').next().unwrap();
    assert!(!text.contains(secret));
}

#[test]
fn wrong_unknown_and_malformed_keys_fail_alike() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let k = KeyFile::update(&path, |f| f.create("a", vec!["*".into()], None, t(0))).unwrap();
    let store = KeyStore::load(&path).unwrap();
    let mut wrong = k.key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'a' { 'b' } else { 'a' });
    for bad in [
        wrong.as_str(),
        "mgk_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "garbage",
        "",
    ] {
        assert_eq!(
            store.verify(bad, t(1)).unwrap_err(),
            AuthFailure::InvalidApiKey
        );
    }
}

#[test]
fn expiry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let k = KeyFile::update(&path, |f| {
        f.create("a", vec!["*".into()], Some(Duration::from_secs(60)), t(0))
    })
    .unwrap();
    let store = KeyStore::load(&path).unwrap();
    assert!(store.verify(&k.key, t(59)).is_ok());
    let err = store.verify(&k.key, t(60)).unwrap_err();
    assert_eq!(err, AuthFailure::InactiveApiKey("a".into()));
    assert_eq!(err.reason(), AuthFailure::InvalidApiKey.reason());
}

#[test]
fn rotation_keeps_old_key_for_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let old = KeyFile::update(&path, |f| f.create("svc", vec!["iris".into()], None, t(0))).unwrap();
    let new =
        KeyFile::update(&path, |f| f.rotate("svc", Duration::from_secs(3600), t(10))).unwrap();
    let store = KeyStore::load(&path).unwrap();
    assert_eq!(store.verify(&old.key, t(3609)).unwrap().name, "svc");
    assert_eq!(store.verify(&new.key, t(3609)).unwrap().name, "svc");
    assert!(store.verify(&old.key, t(3610)).is_err());
    assert!(store.verify(&new.key, t(99999)).is_ok());
    // Zero grace: the old key stops at once.
    let newer = KeyFile::update(&path, |f| f.rotate("svc", Duration::ZERO, t(20))).unwrap();
    let store = KeyStore::load(&path).unwrap();
    assert!(store.verify(&new.key, t(21)).is_err());
    assert!(store.verify(&newer.key, t(21)).is_ok());
    assert!(
        store.verify(&old.key, t(21)).is_ok(),
        "first grace period still runs"
    );
}

#[test]
fn revocation_ends_key_and_grace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let old = KeyFile::update(&path, |f| f.create("svc", vec!["*".into()], None, t(0))).unwrap();
    let new = KeyFile::update(&path, |f| f.rotate("svc", Duration::from_secs(3600), t(1))).unwrap();
    KeyFile::update(&path, |f| f.revoke("svc", t(2))).unwrap();
    let store = KeyStore::load(&path).unwrap();
    assert!(store.verify(&old.key, t(3)).is_err());
    assert!(store.verify(&new.key, t(3)).is_err());
    let listed = KeyFile::read(&path).unwrap().summaries(t(3));
    assert_eq!(listed[0].status, "revoked");
    // Rotating a revoked key is refused; creating the name again is allowed.
    assert!(KeyFile::update(&path, |f| f.rotate("svc", Duration::ZERO, t(4))).is_err());
    assert!(KeyFile::update(&path, |f| f.create("svc", vec![], None, t(5))).is_ok());
}

#[test]
fn duplicate_names_and_bad_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    KeyFile::update(&path, |f| f.create("a", vec![], None, t(0))).unwrap();
    assert!(KeyFile::update(&path, |f| f.create("a", vec![], None, t(0))).is_err());
    assert!(KeyFile::update(&path, |f| f.create("a b", vec![], None, t(0))).is_err());
    assert!(KeyFile::update(&path, |f| f.create("", vec![], None, t(0))).is_err());
}

#[test]
fn corrupt_file_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    std::fs::write(&path, "{\"version\": 1, \"keys\": [").unwrap();
    let err = KeyStore::load(&path).err().unwrap().to_string();
    assert!(
        err.contains("keys.json") && err.contains("not valid"),
        "{err}"
    );
    std::fs::write(&path, r#"{"version":1,"keys":[{"name":"x","id":"AAAAAAAAAAAA","sha256":"zz","models":[],"created_at":"2026-01-01T00:00:00Z"}]}"#).unwrap();
    let err = KeyStore::load(&path).err().unwrap().to_string();
    assert!(
        err.contains("keys[0] (x)") && err.contains("SHA-256"),
        "{err}"
    );
    std::fs::write(&path, r#"{"version":1,"keys":[],"extra":1}"#).unwrap();
    assert!(KeyStore::load(&path).is_err(), "unknown keys are refused");
}

#[test]
fn missing_file_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::load(&dir.path().join("none.json")).unwrap();
    assert!(store.is_empty());
}

#[test]
fn concurrent_writers_lose_nothing_and_readers_never_see_half_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    KeyFile::update(&path, |f| f.create("seed", vec![], None, t(0))).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let path = path.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                KeyStore::load(&path).expect("a reader saw a partial file");
                reads += 1;
            }
            reads
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    KeyFile::update(&path, |f| {
                        f.create(&format!("w{w}-{i}"), vec![], None, t(0))
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(KeyFile::read(&path).unwrap().keys.len(), 41);
}

#[test]
fn a_revoked_key_is_named_but_never_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let k = KeyFile::update(&path, |f| f.create("gone", vec!["*".into()], None, t(0))).unwrap();
    KeyFile::update(&path, |f| f.create("kept", vec!["*".into()], None, t(0))).unwrap();
    KeyFile::update(&path, |f| f.revoke("gone", t(1))).unwrap();
    let store = KeyStore::load(&path).unwrap();
    assert_eq!(store.len(), 1);
    assert_eq!(
        store.verify(&k.key, t(2)).unwrap_err(),
        AuthFailure::InactiveApiKey("gone".into())
    );
    // Its id with another secret is just an invalid key.
    let mut wrong = k.key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'a' { 'b' } else { 'a' });
    assert_eq!(
        store.verify(&wrong, t(2)).unwrap_err(),
        AuthFailure::InvalidApiKey
    );
    assert!(store.assume("gone", t(2)).is_none());
}
