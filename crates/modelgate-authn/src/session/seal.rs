//! Cookie crypto: ChaCha20-Poly1305 (ring) over a JSON payload, with the
//! cookie's purpose and name as associated data so a flow cookie can never
//! be replayed as a session cookie. Output: base64url(nonce ‖ ciphertext ‖ tag).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// Longest sealed cookie value accepted or produced (browsers keep ~4 KiB).
pub const MAX_SEALED: usize = 4000;

pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Option<Self> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, key).ok()?;
        Some(Self {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    /// Random bytes for ids, `state`, `nonce` and PKCE verifiers, base64url.
    pub fn random(&self, n: usize) -> Option<String> {
        let mut b = vec![0u8; n];
        self.rng.fill(&mut b).ok()?;
        Some(URL_SAFE_NO_PAD.encode(b))
    }

    /// Encrypts `plain` for `purpose`; `None` if the result is too long.
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Option<String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut buf,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        let s = URL_SAFE_NO_PAD.encode(out);
        (s.len() <= MAX_SEALED).then_some(s)
    }

    /// Decrypts a value sealed for `purpose`; `None` if it was altered,
    /// sealed for another purpose or with another key.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        if sealed.len() > MAX_SEALED {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return None;
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let s = Sealer::new(&[7; 32]).unwrap();
        let c = s.seal("session:a", b"hello").unwrap();
        assert_eq!(s.open("session:a", &c).unwrap(), b"hello");
        // Another purpose, another key, or one flipped character: refused.
        assert!(s.open("flow:a", &c).is_none());
        assert!(
            Sealer::new(&[8; 32])
                .unwrap()
                .open("session:a", &c)
                .is_none()
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(&c).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(
            s.open("session:a", &URL_SAFE_NO_PAD.encode(bytes))
                .is_none()
        );
        assert!(s.open("session:a", "").is_none());
        assert!(s.open("session:a", "not base64!").is_none());
        // Two seals of the same text differ (fresh nonce).
        assert_ne!(c, s.seal("session:a", b"hello").unwrap());
    }

    #[test]
    fn too_long_is_refused() {
        let s = Sealer::new(&[7; 32]).unwrap();
        assert!(s.seal("p", &vec![b'x'; MAX_SEALED]).is_none());
        assert!(s.open("p", &"A".repeat(MAX_SEALED + 1)).is_none());
    }
}
