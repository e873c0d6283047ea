//! The fields of a connection's previous answer, kept for the next one: an
//! upstream sends the same names in the same order answer after answer, and
//! often the same short values (`Server`, `Content-Type`). Comparing the
//! bytes with what came at the same place last time is cheaper than making
//! the name again (case-folded, a copy for a name `http` does not know) or
//! checking the value's bytes again.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use super::WireError;

/// Fields kept from one answer for the next.
const KEPT: usize = 16;
/// Longest value kept for reuse (longer ones are rarely the same twice).
const VALUE_KEPT: usize = 64;

/// Name and value of one field, as offsets into the head (which is at most
/// [`super::MAX_HEAD`] bytes, so `u32` holds them).
pub(super) type Span = (u32, u32, u32, u32);

/// The fields of the previous answer on a connection, in order, and the
/// scratch space of the parse (reused: nothing to initialise per answer).
/// Boxed: the connection that holds it is moved in and out of its pool on
/// every request, and stays small enough to move without a `memcpy` call.
#[derive(Debug, Default)]
pub struct Names(pub(super) Box<State>);

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) fields: Fields,
    pub(super) spans: Vec<Span>,
}

/// The kept fields themselves.
#[derive(Debug, Default)]
pub(super) struct Fields(Vec<Kept>);

#[derive(Debug)]
struct Kept {
    /// The name as the upstream spelled it.
    raw: Vec<u8>,
    name: HeaderName,
    /// An owned copy of the value (not a view of the read buffer, which it
    /// would keep from being reused), kept while the value repeats.
    value: Option<HeaderValue>,
    /// The previous (short) value at this place, not kept: one that comes
    /// twice in a row (a date, within its second) is kept from then on, one
    /// that changes with every answer never is.
    last: Vec<u8>,
}

impl Fields {
    /// The name of field `i`, spelled `raw` (a token, as `httparse` checked).
    #[inline(always)]
    pub(super) fn name(&mut self, i: usize, raw: &[u8]) -> Result<HeaderName, WireError> {
        if let Some(k) = self.0.get(i)
            && same(&k.raw, raw)
        {
            return Ok(k.name.clone());
        }
        self.renew(i, raw)
    }

    /// A name not at place `i` last time: made, and kept for next time.
    #[cold]
    #[inline(never)]
    fn renew(&mut self, i: usize, raw: &[u8]) -> Result<HeaderName, WireError> {
        let name =
            HeaderName::from_bytes(raw).map_err(|_| WireError("invalid response header name"))?;
        let kept = Kept {
            raw: raw.to_vec(),
            name: name.clone(),
            value: None,
            last: Vec::new(),
        };
        if let Some(k) = self.0.get_mut(i) {
            *k = kept;
        } else if i == self.0.len() && i < KEPT {
            self.0.push(kept);
        }
        Ok(name)
    }

    /// The value of field `i` (named by [`Fields::name`] just before), the
    /// bytes `raw` at `start..end` of `head`.
    #[inline]
    pub(super) fn value(
        &mut self,
        i: usize,
        raw: &[u8],
        head: &Bytes,
        (start, end): (usize, usize),
    ) -> Result<HeaderValue, WireError> {
        let invalid = |_| WireError("invalid response header value");
        if let Some(k) = self.0.get_mut(i) {
            match &k.value {
                Some(v) if same(v.as_bytes(), raw) => return Ok(v.clone()),
                Some(_) => k.value = None,
                None => {}
            }
            if raw.len() <= VALUE_KEPT {
                if same(&k.last, raw) {
                    let v = HeaderValue::from_bytes(raw).map_err(invalid)?;
                    k.value = Some(v.clone());
                    return Ok(v);
                }
                k.last.clear();
                k.last.extend_from_slice(raw);
            }
        }
        HeaderValue::from_maybe_shared(head.slice(start..end)).map_err(invalid)
    }
}

/// `a == b`, for the short names and values most fields have without a
/// `memcmp` call: two overlapping loads from each end.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        // The first, middle and last bytes are all of them.
        1..=3 => [0, n / 2, n - 1].iter().all(|&i| a.get(i) == b.get(i)),
        4..=8 => {
            let w = |s: &[u8], at: usize| u32::from_le_bytes(load(s, at));
            (w(a, 0) ^ w(b, 0)) | (w(a, n - 4) ^ w(b, n - 4)) == 0
        }
        9..=16 => {
            let w = |s: &[u8], at: usize| u64::from_le_bytes(load(s, at));
            (w(a, 0) ^ w(b, 0)) | (w(a, n - 8) ^ w(b, n - 8)) == 0
        }
        17..=32 => {
            let w = |s: &[u8], at: usize| u128::from_le_bytes(load(s, at));
            (w(a, 0) ^ w(b, 0)) | (w(a, n - 16) ^ w(b, n - 16)) == 0
        }
        _ => a == b,
    }
}

/// `N` bytes of `s` from `at` (zeros past its end, which the callers never
/// reach).
#[inline(always)]
fn load<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
    let mut w = [0u8; N];
    if let Some(b) = s.get(at..at + N) {
        w.copy_from_slice(b);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn same_is_slice_equality_at_every_length() {
        for n in 0..=40usize {
            let a: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(same(&a, &a.clone()), "{n}");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same(&a, &b), "{n} differs at {at}");
            }
            let mut longer = a.clone();
            longer.push(b'z');
            assert!(!same(&a, &longer), "{n} vs {}", n + 1);
        }
    }
}
