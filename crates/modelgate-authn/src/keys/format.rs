//! The API key format: `mgk_` + 12-character id + `_` + 43-character secret
//! (base62; ~256 bits of entropy in the secret).

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// Recognisable prefix of every modelgate API key (secret scanners can match it).
pub const KEY_PREFIX: &str = "mgk_";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 43;

/// A freshly generated key: the full key (shown once) and what is stored.
pub struct GeneratedKey {
    pub key: String,
    pub id: String,
    pub hash: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn random_base62(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// Generates a new key from the operating system's CSPRNG (via `rand`'s `ThreadRng`).
pub fn generate() -> GeneratedKey {
    let id = random_base62(ID_LEN);
    let key = format!("{KEY_PREFIX}{id}_{}", random_base62(SECRET_LEN));
    let hash = digest_hex(&key);
    GeneratedKey { key, id, hash }
}

/// SHA-256 of the whole key, lower-case hex.
pub fn digest_hex(key: &str) -> String {
    let d = Sha256::digest(key.as_bytes());
    let mut s = String::with_capacity(64);
    for b in d {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// SHA-256 of the whole key (every request with a key pays it): ring's
/// assembly, which uses the CPU's SHA extensions or AVX2 when present.
pub fn digest(key: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The public id of a well-formed key, or `None`.
pub fn parse_key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let ok = id.len() == ID_LEN
        && secret.len() == SECRET_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_differ() {
        let a = generate();
        let b = generate();
        assert_ne!(a.key, b.key);
        assert_eq!(parse_key_id(&a.key), Some(a.id.as_str()));
        assert_eq!(a.key.len(), 4 + 12 + 1 + 43);
        assert_eq!(a.hash, digest_hex(&a.key));
        assert!(!format!("{a:?}").contains(&a.key));
    }

    #[test]
    fn digest_is_sha256() {
        for k in ["", "a", &"x".repeat(55), &"y".repeat(64), &generate().key] {
            let sha: [u8; 32] = Sha256::digest(k.as_bytes()).into();
            assert_eq!(digest(k), sha, "{k}");
        }
    }

    #[test]
    fn malformed_keys_have_no_id() {
        for k in [
            "",
            "mgk_",
            "mgk_short_x",
            "sk-abc",
            "mgk_AAAAAAAAAAAA_tooshort",
            "mgk_AAAAAAAAAAA!_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(parse_key_id(k), None, "{k}");
        }
    }
}
