//! The loader against the document path: same keys, same first error.

use super::*;
use crate::keys::KeyFile;

/// The streaming loader and `KeyFile::read` + `from_file` agree on
/// what they accept and refuse.
#[test]
fn streaming_load_matches_the_document_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let entry = r#"{"name":"x","id":"AAAAAAAAAAAA","sha256":"00000000000000000000000000000000000000000000000000000000000000ff","models":["*"],"created_at":"2026-01-01T00:00:00Z"}"#;
    let cases = [
        (format!(r#"{{"version":1,"keys":[{entry}]}}"#), true),
        (format!(r#"{{"keys":[{entry}],"version":1}}"#), true),
        (r#"{"version":1}"#.to_string(), true),
        (
            format!("{{\n  \"version\": 1,\n  \"keys\": [\n    {entry}\n  ]\n}}\n"),
            true,
        ),
        (format!(r#"{{"version":1,"k\u0065ys":[{entry}]}}"#), true),
        (format!(r#"{{"version":1,"keys":[{entry},]}}"#), false),
        (
            format!(r#"{{"version":1,"keys":[{entry} {entry}]}}"#),
            false,
        ),
        (format!(r#"{{"version":1,"keys":[{entry}"#), false),
        (
            format!(r#"{{"version":1,"keys":[{entry}],"keys":[]}}"#),
            false,
        ),
        (r#"{"version":1,"keys":{}}"#.to_string(), false),
        (r#"{"version":1,"keys":[1]}"#.to_string(), false),
        (format!("[{entry}]"), false),
        (format!(r#"{{"version":2,"keys":[{entry}]}}"#), false),
        (format!(r#"{{"keys":[{entry}]}}"#), false),
        (format!(r#"{{"version":1,"keys":[{entry}],"x":1}}"#), false),
        (
            format!(r#"{{"version":1,"keys":[{entry},{entry}]}}"#),
            false,
        ),
        (
            format!(r#"{{"version":1,"keys":[{entry}]}} trailing"#),
            false,
        ),
        (
            format!(
                r#"{{"version":1,"keys":[{}]}}"#,
                entry.replace(r#""models""#, r#""extra":1,"models""#)
            ),
            false,
        ),
        (
            format!(
                r#"{{"version":1,"keys":[{}]}}"#,
                entry.replace("\"x\"", r#""\u0078""#)
            ),
            true,
        ),
    ];
    for (text, ok) in cases {
        std::fs::write(&path, &text).unwrap();
        let streamed = KeyStore::load(&path);
        let via_doc = KeyFile::read(&path)
            .map_err(KeyStoreError::from)
            .and_then(|d| KeyStore::from_file(&d, &path));
        assert_eq!(streamed.is_ok(), ok, "{text}");
        assert_eq!(via_doc.is_ok(), ok, "{text}");
        if let (Ok(a), Ok(b)) = (streamed, via_doc) {
            assert_eq!(a.len(), b.len());
            assert_eq!(
                a.assume("x", std::time::SystemTime::now()).is_some(),
                a.len() == 1
            );
        }
    }
}

/// A key file of `n` entries spanning several blocks (so the pool parses
/// it): every 7th revoked, every 5th in rotation with a key in grace, a few
/// grant sets, some expiring. Returns the document and the plaintext keys
/// (current, then in grace) by entry.
fn many(n: usize) -> (KeyFile, Vec<(String, Option<String>)>) {
    use crate::keys::{KeyEntry, PreviousKey, format};
    let models = [
        vec!["*".to_string()],
        vec!["iris".into()],
        vec!["a".into(), "b".into()],
    ];
    let mut doc = KeyFile {
        version: 1,
        keys: Vec::new(),
    };
    let mut plain = Vec::new();
    for i in 0..n {
        let g = format::generate();
        let old = (i % 5 == 0).then(format::generate);
        doc.keys.push(KeyEntry {
            name: format!("k{i:05}"),
            id: g.id.clone(),
            sha256: g.hash.clone(),
            models: models[i % 3].clone(),
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at: (i % 11 == 0).then(|| "2030-01-01T00:00:00Z".into()),
            revoked_at: (i % 7 == 0).then(|| "2026-02-01T00:00:00Z".into()),
            previous: old
                .iter()
                .map(|o| PreviousKey {
                    id: o.id.clone(),
                    sha256: o.hash.clone(),
                    valid_until: "2029-01-01T00:00:00Z".into(),
                })
                .collect(),
            limits: None,
        });
        plain.push((g.key, old.map(|o| o.key)));
    }
    (doc, plain)
}

const N: usize = 9000;

#[test]
fn a_file_of_many_blocks_loads_like_the_document_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let (doc, plain) = many(N);
    let text = serde_json::to_vec(&doc).unwrap();
    assert!(text.len() > 3 * BLOCK, "{}", text.len());
    std::fs::write(&path, &text).unwrap();
    let streamed = KeyStore::load(&path).unwrap();
    let via_doc = KeyStore::from_file(&doc, &path).unwrap();
    assert_eq!(streamed.len(), via_doc.len());
    assert_eq!(streamed.grants.len(), 3);
    let now = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    for (i, (key, old)) in plain.iter().enumerate() {
        for k in std::iter::once(key).chain(old) {
            let (a, b) = (streamed.verify(k, now), via_doc.verify(k, now));
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "k{i:05}");
            if i % 7 != 0 {
                let p = a.unwrap();
                assert_eq!(p.name, format!("k{i:05}"));
            }
        }
    }
    assert!(streamed.assume("k00001", now).is_some());
    assert!(streamed.assume("k00007", now).is_none());
}

/// Loads `text` twice (the answer must not depend on which thread is
/// faster) and returns the error.
fn refused(path: &std::path::Path, text: &[u8]) -> String {
    std::fs::write(path, text).unwrap();
    let a = KeyStore::load(path).err().expect("refused").to_string();
    let b = KeyStore::load(path).err().expect("refused").to_string();
    assert_eq!(a, b);
    a
}

#[test]
fn the_first_problem_in_file_order_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let (doc, _) = many(N);
    // Refusals the document path reports the same way.
    type Edit = fn(&mut KeyFile);
    let edits: [(Edit, &str); 6] = [
        (
            |d| {
                d.keys[8000].sha256.pop();
                d.keys[5000].models = vec!["no such/model".into()];
            },
            "keys[5000] (k05000): models",
        ),
        (
            |d| {
                d.keys[8500].sha256 = "x".repeat(64);
                d.keys[7500].id = d.keys[10].id.clone();
            },
            "keys[7500] (k07500): id: key id",
        ),
        (
            |d| {
                d.keys[7500].id = d.keys[10].id.clone();
                d.keys[7000].sha256 = "x".repeat(64);
            },
            "keys[7000] (k07000): id: not a SHA-256",
        ),
        (
            |d| {
                d.keys[6000].previous[0].id = d.keys[2].id.clone();
                d.keys[6001].expires_at = Some("never".into());
            },
            "keys[6000] (k06000): previous[0]: key id",
        ),
        (
            |d| d.keys[8999].sha256 = d.keys[3].sha256.clone(),
            "keys[8999] (k08999): sha256: the same digest",
        ),
        (
            |d| {
                d.keys[8999].sha256 = d.keys[3].sha256.clone();
                d.keys[8998].id = d.keys[8997].id.clone();
            },
            "keys[8998] (k08998): id: key id",
        ),
    ];
    for (edit, want) in edits {
        let mut d = doc.clone();
        edit(&mut d);
        let got = refused(&path, &serde_json::to_vec(&d).unwrap());
        assert!(got.contains(want), "{got}\nwanted {want}");
        let sequential = KeyStore::from_file(&d, &path).err().unwrap().to_string();
        assert_eq!(got, sequential);
    }
    // Malformed entries: named by their index, before a later refusal.
    let mut d = doc.clone();
    d.keys[8000].sha256.pop();
    let text = String::from_utf8(serde_json::to_vec(&d).unwrap()).unwrap();
    let text = text.replacen(r#""name":"k06000""#, r#""nmae":"k06000""#, 1);
    let got = refused(&path, text.as_bytes());
    assert!(got.contains("keys[6000] (at byte "), "{got}");
    // A duplicate id before a malformed entry or a broken list wins.
    let mut d = doc.clone();
    d.keys[4000].id = d.keys[3999].id.clone();
    let text = String::from_utf8(serde_json::to_vec(&d).unwrap()).unwrap();
    for broken in [
        text.replacen(r#""name":"k06000""#, r#""nmae":"k06000""#, 1),
        text.replacen(r#"},{"name":"k06000""#, r#"} {"name":"k06000""#, 1),
        text.replacen(r#""version":1"#, r#""version":2"#, 1),
        text[..text.len() - 10].to_string(),
    ] {
        let got = refused(&path, broken.as_bytes());
        assert!(got.contains("keys[4000] (k04000): id: key id"), "{got}");
    }
    // A broken list after good entries: the list's error.
    let broken = text.replacen(r#"},{"name":"k03000""#, r#"} {"name":"k03000""#, 1);
    let got = refused(&path, broken.as_bytes());
    assert!(got.contains("keys[2999] (at byte "), "{got}");
}

#[test]
fn an_entry_that_is_not_utf8_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let (doc, _) = many(N);
    let text = serde_json::to_vec(&doc).unwrap();
    let at = text.windows(8).position(|w| w == b"\"k05000\"").unwrap();
    let mut bad = text.clone();
    bad[at + 2] = 0xff;
    let got = refused(&path, &bad);
    assert!(
        got.contains("keys[5000] (at byte ") && got.contains("unicode"),
        "{got}"
    );
}
