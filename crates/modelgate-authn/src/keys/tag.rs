//! The verified-key fast path: a keyed 128-bit tag (SipHash-1-3-128 under a
//! random key drawn per store) of a presented key, recorded in its slot only
//! after the SHA-256 of that key matched the slot's digest. A later request
//! with the same key finds the slot through a small table indexed by the tag
//! and compares tags instead of hashing with SHA-256 again.
//!
//! Only verified keys ever get a tag or a table entry, so wrong or unknown
//! keys cannot evict anything; without the per-store key nobody can produce
//! a string whose tag equals a stored one (SipHash is a keyed PRF). The table
//! has a fixed size; two verified keys sharing an entry just take turns.
//! Every reload builds a new store, so a new key and an empty table.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Fast-table entries: the next power of two at or above the number of
/// slots, within these bounds.
const MIN_ENTRIES: usize = 16;
const MAX_ENTRIES: usize = 1 << 16;
const NONE: u32 = u32::MAX;

/// A slot's tag: zero until the slot's key has verified once.
#[derive(Default)]
pub(super) struct SlotTag(pub(super) [AtomicU64; 2]);

/// The per-store SipHash key and the table from tag to slot index.
pub(super) struct FastPath {
    key: (u64, u64),
    table: Box<[AtomicU32]>,
}

impl Default for FastPath {
    fn default() -> Self {
        Self::new(0)
    }
}

impl FastPath {
    /// A fresh random key and an empty table sized for `slots` keys.
    pub(super) fn new(slots: usize) -> Self {
        let size = slots.next_power_of_two().clamp(MIN_ENTRIES, MAX_ENTRIES);
        Self {
            key: (rand::random(), rand::random()),
            table: (0..size).map(|_| AtomicU32::new(NONE)).collect(),
        }
    }

    /// The tag of a presented key under this store's key.
    pub(super) fn tag(&self, presented: &str) -> [u64; 2] {
        crate::siphash::siphash128::<1, 3>(self.key, presented.as_bytes())
    }

    fn entry(&self, tag: [u64; 2]) -> Option<&AtomicU32> {
        let mask = self.table.len() - 1;
        self.table.get((tag[1] as usize) & mask)
    }

    /// The slot index the table holds for `tag`, if any: a candidate whose
    /// own tag the caller must still compare.
    pub(super) fn candidate(&self, tag: [u64; 2]) -> Option<usize> {
        let s = self.entry(tag)?.load(Ordering::Acquire);
        (s != NONE).then_some(s as usize)
    }

    /// Records that slot `index` verified with a key whose tag is `tag`.
    /// Call only after the SHA-256 check succeeded.
    pub(super) fn remember(&self, slot: &SlotTag, index: usize, tag: [u64; 2]) {
        let (Some(e), Ok(i)) = (self.entry(tag), u32::try_from(index)) else {
            return;
        };
        if tag == [0, 0] || i == NONE {
            return;
        }
        // Every writer of this slot writes the same value; the Release store
        // below publishes it to readers that Acquire the table entry.
        slot.0[0].store(tag[0], Ordering::Relaxed);
        slot.0[1].store(tag[1], Ordering::Relaxed);
        e.store(i, Ordering::Release);
    }
}

#[cfg(test)]
impl FastPath {
    /// Points `tag`'s table entry at `index` without touching any slot (as
    /// a collision between two keys would).
    pub(super) fn remember_entry_for_test(&self, tag: [u64; 2], index: usize) {
        if let (Some(e), Ok(i)) = (self.entry(tag), u32::try_from(index)) {
            e.store(i, Ordering::Release);
        }
    }
}

impl SlotTag {
    /// Whether this slot verified before with a key whose tag is `tag`
    /// (compared without an early exit).
    pub(super) fn matches(&self, tag: [u64; 2]) -> bool {
        let a = self.0[0].load(Ordering::Relaxed);
        let b = self.0[1].load(Ordering::Relaxed);
        (a | b) != 0 && ((a ^ tag[0]) | (b ^ tag[1])) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_depend_on_the_store_key_and_every_byte() {
        let a = FastPath::new(1);
        let b = FastPath::new(1);
        let k = "mgk_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert_ne!(a.tag(k), b.tag(k));
        let mut seen = std::collections::HashSet::new();
        for i in 0..k.len() {
            let mut v = k.as_bytes().to_vec();
            v[i] ^= 1;
            assert!(seen.insert(a.tag(std::str::from_utf8(&v).unwrap())));
        }
        assert!(!seen.contains(&a.tag(k)));
    }

    #[test]
    fn an_unset_slot_tag_matches_nothing() {
        let s = SlotTag::default();
        assert!(!s.matches([0, 0]));
        assert!(!s.matches([1, 2]));
    }
}
