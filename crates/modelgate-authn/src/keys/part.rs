//! One stretch of the key file's entries, checked and laid out as slots on
//! its own (stretches are built in parallel by the loader and merged in file
//! order by `build.rs`): names, digests, end times, grant sets interned
//! within the stretch, and each key id packed for the duplicate check the
//! merge does once for the whole file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::SystemTime;

use modelgate_core::Grants;

use super::file::parse_time;
use super::store::{KeyStoreError, Slot, grants};
use super::tag::SlotTag;

/// One key-file entry, borrowed from wherever it was parsed.
pub(super) struct EntryView<'a, M> {
    pub name: &'a str,
    pub id: &'a str,
    pub sha256: &'a str,
    pub models: &'a [M],
    pub expires_at: Option<&'a str>,
    pub revoked_at: Option<&'a str>,
    /// `(id, sha256, valid_until)` of keys in grace.
    pub previous: Vec<(&'a str, &'a str, &'a str)>,
}

/// Entries of one stretch of the file, as slots.
#[derive(Default)]
pub(super) struct Part {
    /// Name ranges index `names`; grant indexes index `grants`.
    pub(super) slots: Vec<Slot>,
    /// File index of each slot's entry.
    pub(super) origin: Vec<u32>,
    /// Each slot's key id and place: `packed id << 56 | slot in this part`.
    pub(super) ids: Vec<u128>,
    pub(super) names: String,
    /// Distinct grant sets, with the model list they were built from.
    pub(super) grants: Vec<(String, Grants)>,
    interned: HashMap<String, u32, foldhash::fast::RandomState>,
    models_key: String,
    pub(super) revoked: usize,
    /// The first entry refused (the stretch stops there).
    pub(super) error: Option<KeyStoreError>,
}

/// Bits of a packed id below which the slot number goes.
pub(super) const ID_SHIFT: u32 = 56;

/// Hex digit values; 0xff for anything else.
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// A SHA-256 digest from its 64 hex digits (either case).
pub(super) fn hex32(s: &str) -> Option<[u8; 32]> {
    let s: &[u8; 64] = s.as_bytes().try_into().ok()?;
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (HEX[usize::from(pair[0])], HEX[usize::from(pair[1])]);
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 15);
    }
    (bad & 0xf0 == 0).then_some(out)
}

/// Value of a base62 character (`0-9A-Za-z`), 6 bits.
fn b62(b: u8) -> Option<u128> {
    Some(u128::from(match b {
        b'0'..=b'9' => b - b'0',
        b'A'..=b'Z' => b - b'A' + 10,
        b'a'..=b'z' => b - b'a' + 36,
        _ => return None,
    }))
}

/// A 12-character key id in 72 bits, or `None` if it is malformed.
fn pack_id(id: &str) -> Option<u128> {
    let id: &[u8; 12] = id.as_bytes().try_into().ok()?;
    id.iter()
        .try_fold(0u128, |acc, &b| Some((acc << 6) | b62(b)?))
}

/// The id `pack_id` packed into `packed >> ID_SHIFT`.
pub(super) fn unpack_id(packed: u128) -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let bits = packed >> ID_SHIFT;
    (0..12)
        .rev()
        .map(|i| {
            let v = ((bits >> (6 * i)) & 63) as usize;
            char::from(DIGITS.get(v).copied().unwrap_or(b'?'))
        })
        .collect()
}

impl Part {
    fn grants_of<M: AsRef<str>>(&mut self, models: &[M]) -> Result<u32, String> {
        self.models_key.clear();
        for m in models {
            self.models_key.push_str(m.as_ref());
            self.models_key.push('\n');
        }
        if let Some(&g) = self.interned.get(self.models_key.as_str()) {
            return Ok(g);
        }
        let list: Vec<String> = models.iter().map(|m| m.as_ref().to_string()).collect();
        let g = grants(&list)?;
        let at = u32::try_from(self.grants.len()).map_err(|_| "too many grant sets")?;
        self.grants.push((self.models_key.clone(), g));
        self.interned.insert(self.models_key.clone(), at);
        Ok(at)
    }

    /// Adds entry `index` of the file (and its keys in grace); the first
    /// refusal is kept in `error`. Duplicate ids are found at the merge.
    pub(super) fn add<M: AsRef<str>>(&mut self, path: &Path, index: usize, e: &EntryView<'_, M>) {
        if let Err(err) = self.try_add(path, index, e) {
            self.error = Some(err);
        }
    }

    fn try_add<M: AsRef<str>>(
        &mut self,
        path: &Path,
        index: usize,
        e: &EntryView<'_, M>,
    ) -> Result<(), KeyStoreError> {
        let bad = |message: String| KeyStoreError::Entry {
            path: path.into(),
            index,
            name: e.name.to_string(),
            message,
        };
        let grants = self.grants_of(e.models).map_err(bad)?;
        let expires = e
            .expires_at
            .map(parse_time)
            .transpose()
            .map_err(|m| bad(format!("expires_at: {m}")))?;
        let revoked_at = e
            .revoked_at
            .map(parse_time)
            .transpose()
            .map_err(|m| bad(format!("revoked_at: {m}")))?;
        let start = u32::try_from(self.names.len()).ok();
        let len = u32::try_from(e.name.len()).ok();
        let (Some(start), Some(len)) = (start, len) else {
            return Err(bad("the key file holds too many names".into()));
        };
        let origin = u32::try_from(index).map_err(|_| bad("too many keys".into()))?;
        self.names.push_str(e.name);
        let name = (start, len);
        let add =
            |this: &mut Self, id: &str, sha: &str, not_after: Option<SystemTime>, field: &str| {
                let d =
                    hex32(sha).ok_or_else(|| bad(format!("{field}: not a SHA-256 hex digest")))?;
                let Some(packed) = pack_id(id) else {
                    return Err(bad(format!("{field}: malformed key id {id:?}")));
                };
                this.ids
                    .push((packed << ID_SHIFT) | this.slots.len() as u128);
                this.slots.push(Slot {
                    digest: d,
                    not_after,
                    name,
                    grants,
                    principal: OnceLock::new(),
                    tag: SlotTag::default(),
                });
                this.origin.push(origin);
                Ok(())
            };
        if revoked_at.is_some() {
            // Never verifies (valid until the epoch); kept to be named.
            add(self, e.id, e.sha256, Some(SystemTime::UNIX_EPOCH), "id")?;
            self.revoked += 1;
            return Ok(());
        }
        add(self, e.id, e.sha256, expires, "id")?;
        for (pi, (id, sha, until)) in e.previous.iter().enumerate() {
            let until =
                parse_time(until).map_err(|m| bad(format!("previous[{pi}].valid_until: {m}")))?;
            let not_after = Some(expires.map_or(until, |x| x.min(until)));
            add(self, id, sha, not_after, &format!("previous[{pi}]"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digests_decode_in_either_case_and_nothing_else() {
        let lower = "00ff10a0b1c2d3e4f5968778695a4b3c2d1e0f00112233445566778899aabbcc";
        let d = hex32(lower).unwrap();
        assert_eq!(d[..4], [0x00, 0xff, 0x10, 0xa0]);
        assert_eq!(d[31], 0xcc);
        assert_eq!(hex32(&lower.to_uppercase()), Some(d));
        for bad in [
            &lower[1..],
            &format!("{lower}0"),
            &lower.replacen('a', "g", 1),
            &lower.replacen('0', " ", 1),
            &lower.replacen('f', "\u{e9}", 1)[..64],
        ] {
            assert_eq!(hex32(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_pack_one_to_one() {
        for id in [
            "000000000000",
            "zzzzzzzzzzzz",
            "AbC123xYz789",
            "00000000023k",
        ] {
            let p = pack_id(id).unwrap();
            assert_eq!(unpack_id(p << ID_SHIFT | 7), id);
        }
        assert_ne!(pack_id("00000000000a"), pack_id("00000000000A"));
        for bad in [
            "",
            "00000000000",
            "0000000000000",
            "00000000000_",
            "00000000000\u{e9}",
        ] {
            assert_eq!(pack_id(bad), None, "{bad}");
        }
    }
}
