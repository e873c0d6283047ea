//! The verified-key fast path (`tag.rs`) inside the store: only a key whose
//! SHA-256 matched gets a tag; a wrong key is never accepted through the
//! table; expiry, grace and revocation still apply.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use modelgate_core::AuthFailure;

use crate::keys::{KeyFile, KeyStore};

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

/// `key` with its last character changed.
fn altered(key: &str) -> String {
    let mut w = key.to_string();
    let last = w.pop().unwrap();
    w.push(if last == 'a' { 'b' } else { 'a' });
    w
}

#[test]
fn only_verified_keys_get_a_tag_and_wrong_keys_never_pass_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let a = KeyFile::update(&path, |f| f.create("a", vec!["*".into()], None, t(0))).unwrap();
    let b = KeyFile::update(&path, |f| f.create("b", vec!["*".into()], None, t(0))).unwrap();
    let store = KeyStore::load(&path).unwrap();
    let wrong = altered(&a.key);

    // Nothing is tagged before a successful check; a wrong key tags nothing.
    assert!(store.verified_before(store.fast.tag(&a.key)).is_none());
    assert_eq!(
        store.verify(&wrong, t(1)).unwrap_err(),
        AuthFailure::InvalidApiKey
    );
    assert!(
        store
            .slots
            .iter()
            .all(|s| !s.tag.matches(store.fast.tag(&wrong)))
    );
    assert!(store.verified_before(store.fast.tag(&wrong)).is_none());

    // The first success tags the slot; the second goes through the table.
    assert_eq!(store.verify(&a.key, t(1)).unwrap().name, "a");
    let hit = store.verified_before(store.fast.tag(&a.key)).unwrap();
    assert_eq!(store.name(hit), "a");
    assert_eq!(store.verify(&a.key, t(2)).unwrap().name, "a");

    // Attack: point the wrong key's table entry at a's (verified) slot, as a
    // collision would. The slot's tag still decides: refused.
    let wrong_tag = store.fast.tag(&wrong);
    let a_index = store.fast.candidate(store.fast.tag(&a.key)).unwrap();
    store.fast.remember_entry_for_test(wrong_tag, a_index);
    assert_eq!(store.fast.candidate(wrong_tag), Some(a_index));
    assert!(store.verified_before(wrong_tag).is_none());
    for bad in [wrong.as_str(), "", "garbage", &a.key[..a.key.len() - 1]] {
        assert_eq!(
            store.verify(bad, t(3)).unwrap_err(),
            AuthFailure::InvalidApiKey,
            "{bad}"
        );
    }
    // b verifies (and takes turns with a if they share an entry); both keep working.
    for _ in 0..3 {
        assert_eq!(store.verify(&b.key, t(4)).unwrap().name, "b");
        assert_eq!(store.verify(&a.key, t(4)).unwrap().name, "a");
    }
}

#[test]
fn expiry_and_grace_still_apply_on_the_fast_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let k = KeyFile::update(&path, |f| {
        f.create("e", vec!["*".into()], Some(Duration::from_secs(60)), t(0))
    })
    .unwrap();
    let old = KeyFile::update(&path, |f| f.create("r", vec!["*".into()], None, t(0))).unwrap();
    KeyFile::update(&path, |f| f.rotate("r", Duration::from_secs(100), t(10))).unwrap();
    let store = KeyStore::load(&path).unwrap();
    for key in [&k.key, &old.key] {
        assert!(store.verify(key, t(20)).is_ok());
        assert!(store.verified_before(store.fast.tag(key)).is_some());
    }
    assert_eq!(
        store.verify(&k.key, t(60)).unwrap_err(),
        AuthFailure::InactiveApiKey("e".into())
    );
    assert!(store.verify(&old.key, t(109)).is_ok());
    assert_eq!(
        store.verify(&old.key, t(110)).unwrap_err(),
        AuthFailure::InactiveApiKey("r".into())
    );
}

#[test]
fn a_key_revoked_in_the_file_is_refused_after_the_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let k = KeyFile::update(&path, |f| f.create("gone", vec!["*".into()], None, t(0))).unwrap();
    let before = KeyStore::load(&path).unwrap();
    assert!(before.verify(&k.key, t(1)).is_ok());
    assert!(before.verify(&k.key, t(1)).is_ok());
    KeyFile::update(&path, |f| f.revoke("gone", t(2))).unwrap();
    let after = KeyStore::load(&path).unwrap();
    assert!(after.verified_before(after.fast.tag(&k.key)).is_none());
    for _ in 0..2 {
        assert_eq!(
            after.verify(&k.key, t(3)).unwrap_err(),
            AuthFailure::InactiveApiKey("gone".into())
        );
    }
    // A revoked slot never gets a tag.
    assert!(
        after
            .slots
            .iter()
            .all(|s| s.tag.0[0].load(Ordering::Relaxed) == 0)
    );
}
