//! Builds a [`KeyStore`] from the stretches of a key file (`part.rs`),
//! merged in file order: slots appended to one table, names to one arena,
//! grant sets interned across stretches; then each key id checked for a
//! duplicate (one sort of the packed ids, not a hash set) and the slots
//! indexed by digest. The first problem in file order is the one reported,
//! whichever thread met it.

use std::collections::HashMap;
use std::path::Path;

use super::part::{ID_SHIFT, Part, unpack_id};
use super::store::{EMPTY, KeyStore, KeyStoreError, Slot, home};
use super::tag::FastPath;

/// At most this many slots are reserved ahead of a load (16M slots, 1.5 GB
/// of address space; beyond that the table grows as entries arrive).
const MAX_RESERVED_SLOTS: usize = 1 << 24;

/// Merges parts into a store.
pub(super) struct Builder<'p> {
    path: &'p Path,
    store: KeyStore,
    /// File index of each slot, for error messages.
    origin: Vec<u32>,
    /// Every slot's packed id and slot number (see `part.rs`).
    ids: Vec<u128>,
    interned: HashMap<String, u32, foldhash::fast::RandomState>,
}

impl<'p> Builder<'p> {
    pub(super) fn new(path: &'p Path) -> Self {
        Self {
            path,
            store: KeyStore::default(),
            origin: Vec::new(),
            ids: Vec::new(),
            interned: HashMap::default(),
        }
    }

    /// Sizes the tables for a key file of `len` bytes, so they are not
    /// regrown (each regrowth copies and frees the old table) while it
    /// loads. Every slot takes at least its 64 hex digits plus quotes and
    /// `"sha256":` in the file, so `len / 75` slots is an upper bound; the
    /// part never written is never touched (address space, not memory).
    /// A reservation the allocator refuses is skipped.
    pub(super) fn reserve_for_file(&mut self, len: u64) {
        let slots = usize::try_from(len / 75)
            .unwrap_or(usize::MAX)
            .min(MAX_RESERVED_SLOTS);
        let _ = self.store.slots.try_reserve_exact(slots);
        let _ = self.origin.try_reserve_exact(slots);
        let _ = self.ids.try_reserve_exact(slots);
    }

    /// Appends the next stretch of the file. Its refusal, if any, is
    /// returned (a duplicate id before it wins, as it comes first).
    pub(super) fn merge(&mut self, part: Part) -> Result<(), KeyStoreError> {
        let slot_base = self.store.slots.len();
        let name_base = self.store.names.len();
        let too_many = u32::try_from(name_base + part.names.len()).is_err()
            || u32::try_from(slot_base + part.slots.len()).map_or(true, |n| n == EMPTY);
        if too_many {
            let err = crate::keys::KeyFileError::Corrupt {
                path: self.path.into(),
                message: "too many keys or names for one key file (4 GB of names, 2^32 keys)"
                    .into(),
            };
            return Err(self.fail(err.into()));
        }
        let mut map = Vec::with_capacity(part.grants.len());
        for (key, g) in part.grants {
            let next = u32::try_from(self.store.grants.len()).unwrap_or(u32::MAX);
            let at = *self.interned.entry(key).or_insert_with(|| {
                self.store.grants.push(g);
                next
            });
            map.push(at);
        }
        self.store.names.push_str(&part.names);
        // Both bounds checked above.
        let name_base = name_base as u32;
        self.store.slots.extend(part.slots.into_iter().map(|mut s| {
            s.name.0 += name_base;
            s.grants = map.get(s.grants as usize).copied().unwrap_or_default();
            s
        }));
        self.origin.extend_from_slice(&part.origin);
        let base = slot_base as u128;
        self.ids.extend(part.ids.iter().map(|&p| p + base));
        self.store.revoked += part.revoked;
        match part.error {
            Some(err) => Err(self.fail(err)),
            None => Ok(()),
        }
    }

    /// `err`, unless a key id was already seen twice before it (that
    /// entry's error comes first in the file).
    pub(super) fn fail(&mut self, err: KeyStoreError) -> KeyStoreError {
        self.duplicate_id().unwrap_or(err)
    }

    /// The first slot (in file order) whose key id an earlier slot holds.
    fn duplicate_id(&mut self) -> Option<KeyStoreError> {
        self.ids.sort_unstable();
        self.first_duplicate(&self.ids)
    }

    /// [`Self::duplicate_id`] over `ids`, sorted.
    fn first_duplicate(&self, ids: &[u128]) -> Option<KeyStoreError> {
        let slot = |p: u128| (p & ((1 << ID_SHIFT) - 1)) as usize;
        let second = ids
            .windows(2)
            .filter(|w| w[0] >> ID_SHIFT == w[1] >> ID_SHIFT)
            .map(|w| w[1])
            .min_by_key(|&p| slot(p))?;
        let s = slot(second);
        let entry = self.origin.get(s).copied().unwrap_or_default();
        // The entry's slots are contiguous: its first is its `id`, then
        // `previous[0]`, ...
        let first = self
            .origin
            .get(..s)
            .unwrap_or_default()
            .iter()
            .rev()
            .take_while(|&&o| o == entry)
            .count();
        let field = match first {
            0 => "id".to_string(),
            n => format!("previous[{}]", n - 1),
        };
        let name = self.store.slots.get(s).map(|k| self.store.name(k));
        Some(KeyStoreError::Entry {
            path: self.path.into(),
            index: entry as usize,
            name: name.unwrap_or_default().to_string(),
            message: format!("{field}: key id {} appears twice", unpack_id(second)),
        })
    }

    /// Checks the ids (sorted on a second thread for a large file) while
    /// the slots are indexed by digest; a duplicate id comes first, then a
    /// digest held twice.
    pub(super) fn finish(mut self) -> Result<KeyStore, KeyStoreError> {
        let n = self.store.slots.len();
        let mut ids = std::mem::take(&mut self.ids);
        let slots = &self.store.slots;
        let (index, sorted) = std::thread::scope(|sc| {
            let ids = &mut ids;
            let sorter = (n >= PARALLEL_FINISH).then(|| {
                std::thread::Builder::new()
                    .name("modelgate-keyload".into())
                    .spawn_scoped(sc, move || ids.sort_unstable())
            });
            let index = index(slots);
            let sorted = match sorter {
                Some(Ok(h)) => h.join().is_ok(),
                _ => false,
            };
            (index, sorted)
        });
        if !sorted {
            ids.sort_unstable();
        }
        if let Some(err) = self.first_duplicate(&ids) {
            return Err(err);
        }
        drop(ids);
        let index = index.map_err(|s| {
            let at = self.origin.get(s).copied().unwrap_or_default() as usize;
            let name = self.store.slots.get(s).map(|k| self.store.name(k));
            KeyStoreError::Entry {
                path: self.path.into(),
                index: at,
                name: name.unwrap_or_default().to_string(),
                message: "sha256: the same digest as another key".into(),
            }
        })?;
        self.store.index = index;
        self.store.fast = FastPath::new(n);
        self.store.names.shrink_to_fit();
        // `slots` keeps its reserved capacity: the unused tail was never
        // touched (address space, not memory), and shrinking it by more than
        // half makes some allocators (mimalloc) copy the whole table.
        Ok(self.store)
    }
}

/// Slots from which the id sort gets its own thread at `finish`.
const PARALLEL_FINISH: usize = 1 << 13;

/// The open-addressing index of `slots` by digest, or the first slot whose
/// digest an earlier one holds.
fn index(slots: &[Slot]) -> Result<Vec<u32>, usize> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    let size = (slots.len() * 2).next_power_of_two().max(16);
    let mask = size - 1;
    let mut index = vec![EMPTY; size];
    for (s, slot) in slots.iter().enumerate() {
        let mut i = home(&slot.digest, mask);
        while let Some(&other) = index.get(i).filter(|&&o| o != EMPTY) {
            if slots.get(other as usize).map(|o| o.digest) == Some(slot.digest) {
                return Err(s);
            }
            i = (i + 1) & mask;
        }
        if let Some(free) = index.get_mut(i) {
            // s < 2^32 - 1: checked at the merge.
            *free = s as u32;
        }
    }
    Ok(index)
}
