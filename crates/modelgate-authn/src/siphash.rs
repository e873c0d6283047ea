//! SipHash-C-D with a 128-bit output (Aumasson & Bernstein), for the keyed
//! tags of verified API keys (`keys/tag.rs`). A PRF under a secret random
//! key, so nobody without the key can produce an input whose tag equals
//! another's; ~20× cheaper than SHA-256 on the same bytes.

fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

fn compress<const C: usize>(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    for _ in 0..C {
        round(v);
    }
    v[0] ^= m;
}

/// The SipHash state after all of `data` (`wide`: the 128-bit variant).
fn absorb<const C: usize>(key: (u64, u64), data: &[u8], wide: bool) -> [u64; 4] {
    let mut v = [
        key.0 ^ 0x736f_6d65_7073_6575,
        key.1 ^ 0x646f_7261_6e64_6f6d,
        key.0 ^ 0x6c79_6765_6e65_7261,
        key.1 ^ 0x7465_6462_7974_6573,
    ];
    if wide {
        v[1] ^= 0xee;
    }
    let mut blocks = data.chunks_exact(8);
    let mut word = [0u8; 8];
    for b in &mut blocks {
        word.copy_from_slice(b);
        compress::<C>(&mut v, u64::from_le_bytes(word));
    }
    let rest = blocks.remainder();
    word = [0u8; 8];
    word[..rest.len()].copy_from_slice(rest);
    word[7] = data.len() as u8;
    compress::<C>(&mut v, u64::from_le_bytes(word));
    v
}

/// SipHash-C-D with a 128-bit output (two little-endian words).
pub(crate) fn siphash128<const C: usize, const D: usize>(key: (u64, u64), data: &[u8]) -> [u64; 2] {
    let mut v = absorb::<C>(key, data, true);
    v[2] ^= 0xee;
    for _ in 0..D {
        round(&mut v);
    }
    let a = v[0] ^ v[1] ^ v[2] ^ v[3];
    v[1] ^= 0xdd;
    for _ in 0..D {
        round(&mut v);
    }
    [a, v[0] ^ v[1] ^ v[2] ^ v[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: (u64, u64) = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);

    fn bytes(t: [u64; 2]) -> Vec<u8> {
        t.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// The 64-bit variant, only to compare the shared core with std's SipHash-2-4.
    fn siphash64<const C: usize, const D: usize>(key: (u64, u64), data: &[u8]) -> u64 {
        let mut v = absorb::<C>(key, data, false);
        v[2] ^= 0xff;
        for _ in 0..D {
            round(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }

    #[test]
    fn siphash_2_4_128_matches_the_reference_vectors() {
        // vectors_sip128 of the SipHash reference implementation (key 00..0f,
        // message 00 01 .. len-1).
        let want: [[u8; 16]; 4] = [
            [
                0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55,
                0x02, 0x93,
            ],
            [
                0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76, 0x59, 0x11, 0x9b, 0x22,
                0xfc, 0x45,
            ],
            [
                0x81, 0x77, 0x22, 0x8d, 0xa4, 0xa4, 0x5d, 0xc7, 0xfc, 0xa3, 0x8b, 0xde, 0xf6, 0x0a,
                0xff, 0xe4,
            ],
            [
                0x9c, 0x70, 0xb6, 0x0c, 0x52, 0x67, 0xa9, 0x4e, 0x5f, 0x33, 0xb6, 0xb0, 0x29, 0x85,
                0xed, 0x51,
            ],
        ];
        for (len, w) in want.iter().enumerate() {
            let msg: Vec<u8> = (0..len as u8).collect();
            assert_eq!(
                bytes(siphash128::<2, 4>(KEY, &msg)),
                w.to_vec(),
                "len {len}"
            );
        }
    }

    #[test]
    #[allow(deprecated)]
    fn siphash_2_4_64_matches_std_at_every_length() {
        use std::hash::Hasher;
        for len in 0..80usize {
            let msg: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut h = std::hash::SipHasher::new_with_keys(KEY.0, KEY.1);
            h.write(&msg);
            assert_eq!(siphash64::<2, 4>(KEY, &msg), h.finish(), "len {len}");
        }
    }
}
