//! A hand-written reader for the usual V2 `/infer` body: one scan of the
//! bytes, numbers converted straight into the input's typed buffer. It
//! accepts only a strict subset of what the serde reader ([`InferRequest`]'s
//! `Deserialize`) accepts — keys `id`, `inputs`, `outputs`; inputs with
//! `name`, `shape`, then `datatype` (BOOL excepted) before `data` holding a
//! non-empty rectangular list of numbers that each convert to the datatype;
//! outputs with only a `name`; strings without escapes; numbers whose value
//! both readers compute exactly alike — and for those it returns what the
//! serde reader returns. Anything else is declined (`None`) and the serde
//! reader decides, so answers and error messages stay its own.

use std::borrow::Cow;

use crate::json_data::{JsonData, Scalar, as_f32, as_f64, as_i32, as_i64};
use crate::{Datatype, TensorData};

use super::{InferRequest, RequestInput, RequestOutput, reserve};

/// Deepest `data` nesting read here (serde_json allows 128).
const MAX_DEPTH: usize = 32;

/// Significand digits read at most: 10^18 < 2^63, so no overflow.
const MAX_DIGITS: usize = 18;

/// Exponent digits read at most.
const MAX_EXP_DIGITS: usize = 4;

/// Powers of ten exact in an `f64` (as serde_json's table spells them).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Reads `body`, or declines (`None`) when the serde reader must decide.
pub(crate) fn read(body: &[u8]) -> Option<InferRequest<'_>> {
    let mut c = Cursor { b: body, i: 0 };
    let mut id = None;
    let mut inputs = None;
    let mut outputs = None;
    c.eat(b'{')?;
    loop {
        // Keys are compared as bytes: one that is not ours declines anyway.
        match c.key()? {
            b"id" if id.is_none() => id = Some(Cow::Borrowed(c.string()?)),
            b"inputs" if inputs.is_none() => inputs = Some(read_inputs(&mut c)?),
            b"outputs" if outputs.is_none() => outputs = Some(read_outputs(&mut c)?),
            _ => return None,
        }
        if !c.more(b'}')? {
            break;
        }
    }
    c.ws();
    if c.i != body.len() {
        return None;
    }
    Some(InferRequest {
        id,
        parameters: None,
        inputs: inputs?,
        outputs,
    })
}

fn read_inputs<'a>(c: &mut Cursor<'a>) -> Option<Vec<RequestInput<'a>>> {
    let mut out = Vec::with_capacity(1);
    c.eat(b'[')?;
    if c.close(b']')? {
        return Some(out);
    }
    loop {
        out.push(read_input(c)?);
        if !c.more(b']')? {
            return Some(out);
        }
    }
}

/// The datatypes read here; BOOL and every other name decline (an input
/// without a served datatype, or with BOOL `data`, is the serde reader's).
fn datatype(name: &[u8]) -> Option<Datatype> {
    match name {
        b"FP32" => Some(Datatype::Fp32),
        b"FP64" => Some(Datatype::Fp64),
        b"INT32" => Some(Datatype::Int32),
        b"INT64" => Some(Datatype::Int64),
        _ => None,
    }
}

fn read_input<'a>(c: &mut Cursor<'a>) -> Option<RequestInput<'a>> {
    let mut name = None;
    let mut shape: Option<Vec<i64>> = None;
    let mut declared = None;
    let mut data = None;
    c.eat(b'{')?;
    loop {
        match c.key()? {
            b"name" if name.is_none() => name = Some(c.string()?),
            b"shape" if shape.is_none() => shape = Some(read_shape(c)?),
            b"datatype" if declared.is_none() => declared = Some(datatype(c.raw_string()?)?),
            b"data" if data.is_none() => {
                data = Some(read_data(c, declared?, reserve(shape.as_deref()))?);
            }
            _ => return None,
        }
        if !c.more(b'}')? {
            break;
        }
    }
    Some(RequestInput {
        name: Cow::Borrowed(name?),
        shape: shape?,
        // The body spelled exactly this name (see `datatype`).
        datatype: Cow::Borrowed(declared?.as_str()),
        parameters: None,
        data: Some(data?),
    })
}

fn read_outputs<'a>(c: &mut Cursor<'a>) -> Option<Vec<RequestOutput<'a>>> {
    let mut out = Vec::new();
    c.eat(b'[')?;
    if c.close(b']')? {
        return Some(out);
    }
    loop {
        c.eat(b'{')?;
        if c.key()? != b"name" {
            return None;
        }
        out.push(RequestOutput {
            name: Cow::Borrowed(c.string()?),
            parameters: None,
        });
        c.eat(b'}')?;
        if !c.more(b']')? {
            return Some(out);
        }
    }
}

fn read_shape(c: &mut Cursor<'_>) -> Option<Vec<i64>> {
    let mut out = Vec::with_capacity(4);
    c.eat(b'[')?;
    if c.close(b']')? {
        return Some(out);
    }
    loop {
        c.ws();
        match c.number()? {
            Scalar::UInt(u) => out.push(i64::try_from(u).ok()?),
            Scalar::Int(i) => out.push(i),
            Scalar::Float(_) | Scalar::Bool(_) => return None,
        }
        if !c.more(b']')? {
            return Some(out);
        }
    }
}

/// Reads `data` as the serde reader's typed path would (see
/// `crate::json_data::DataSeed`), declining on anything it would flag.
fn read_data(c: &mut Cursor<'_>, declared: Datatype, capacity: usize) -> Option<JsonData> {
    let data = match declared {
        Datatype::Bool => return None,
        Datatype::Int32 => TensorData::Int32(Vec::with_capacity(capacity)),
        Datatype::Int64 => TensorData::Int64(Vec::with_capacity(capacity)),
        Datatype::Fp32 => TensorData::Fp32(Vec::with_capacity(capacity)),
        Datatype::Fp64 => TensorData::Fp64(Vec::with_capacity(capacity)),
    };
    let mut nest = Nest {
        data,
        dims: [0; MAX_DEPTH],
        leaf_depth: 0,
    };
    nest.list(c, 0)?;
    let dims = nest.dims.get(..nest.leaf_depth)?;
    // Every depth above the elements has had a list (lists are never empty
    // here), so each length is set.
    Some(JsonData::typed(nest.data, dims.to_vec()))
}

/// The state of one `data` read.
struct Nest {
    data: TensorData,
    /// List length at each depth; 0 until the first list there closes
    /// (lists read here are never empty).
    dims: [usize; MAX_DEPTH],
    /// Depth of the elements (0 until the first one).
    leaf_depth: usize,
}

impl Nest {
    /// Reads the list at `depth` (its elements are at `depth + 1`): lists
    /// only, or numbers only (a mix is ragged: the serde reader flags it).
    fn list(&mut self, c: &mut Cursor<'_>, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        c.eat(b'[')?;
        let len = if c.peek()? == b'[' {
            let mut len = 0usize;
            loop {
                self.list(c, depth + 1)?;
                len += 1;
                if !c.more(b']')? {
                    break len;
                }
            }
        } else {
            if self.leaf_depth != depth + 1 {
                if self.leaf_depth != 0 {
                    return None;
                }
                self.leaf_depth = depth + 1;
            }
            match &mut self.data {
                TensorData::Fp32(v) => c.numbers(v, as_f32)?,
                TensorData::Fp64(v) => c.numbers(v, as_f64)?,
                TensorData::Int32(v) => c.numbers(v, as_i32)?,
                TensorData::Int64(v) => c.numbers(v, as_i64)?,
                TensorData::Bool(_) => return None,
            }
        };
        // The first list to close at a depth sets its length; every other
        // one there must match (else ragged: the serde reader flags it).
        let seen = self.dims.get_mut(depth)?;
        if *seen == 0 {
            *seen = len;
        }
        (*seen == len).then_some(())
    }
}

/// A position in the body.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    /// Skips JSON whitespace.
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// Consumes `byte` (after whitespace), or declines.
    #[inline]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    /// Right after an opening bracket: whether `close` follows (consumed).
    fn close(&mut self, close: u8) -> Option<bool> {
        if self.peek()? == close {
            self.i += 1;
            return Some(true);
        }
        Some(false)
    }

    /// After an element: `Some(true)` on a comma (another element follows),
    /// `Some(false)` on `close`, both consumed; else declines.
    #[inline]
    fn more(&mut self, close: u8) -> Option<bool> {
        let b = self.peek()?;
        self.i += 1;
        if b == b',' {
            Some(true)
        } else {
            (b == close).then_some(false)
        }
    }

    /// The bytes of a string without escapes or control characters.
    fn raw_string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let rest = self.b.get(self.i..)?;
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        self.i += len + 1;
        rest.get(..len)
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.raw_string()?).ok()
    }

    /// An object key and its colon, as bytes.
    fn key(&mut self) -> Option<&'a [u8]> {
        let key = self.raw_string()?;
        self.eat(b':')?;
        Some(key)
    }

    /// The rest of a list of numbers (the cursor is on its first element)
    /// through its closing bracket, each converted into `out` as the serde
    /// reader converts it; the count read.
    #[inline]
    fn numbers<T>(
        &mut self,
        out: &mut Vec<T>,
        convert: impl Fn(Scalar) -> Option<T>,
    ) -> Option<usize> {
        let mut n = 0usize;
        loop {
            self.ws();
            out.push(convert(self.number()?)?);
            n += 1;
            if !self.more(b']')? {
                return Some(n);
            }
        }
    }

    /// Digits at `i`: how many, and the value of the first up to
    /// [`MAX_DIGITS`] of them appended to `sig` (wrapping past that; the
    /// caller declines such numbers).
    #[inline(always)]
    fn digits(&self, mut i: usize, sig: &mut u64) -> usize {
        let start = i;
        while let Some(&d) = self.b.get(i) {
            let d = d.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            *sig = sig.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
        }
        i - start
    }

    /// A JSON number at the cursor, as serde_json hands it to a visitor:
    /// `UInt` for a non-negative integer, `Int` for a negative one, `-0` and
    /// anything with a fraction or exponent as `Float`. Declines numbers it
    /// could compute differently: more than 18 significant digits, or a
    /// float whose significand exceeds 2^53 or whose decimal exponent is
    /// outside ±22 (within those, `significand × 10^e` is exact before one
    /// rounding, so every correct reader agrees).
    #[inline(always)]
    fn number(&mut self) -> Option<Scalar> {
        let b = self.b;
        let mut i = self.i;
        let negative = b.get(i) == Some(&b'-');
        i += usize::from(negative);
        let mut sig: u64 = 0;
        let int_digits = self.digits(i, &mut sig);
        // No digit, or a leading zero before more digits: not JSON.
        if int_digits == 0 || (int_digits > 1 && b.get(i) == Some(&b'0')) {
            return None;
        }
        i += int_digits;
        let mut digits = int_digits;
        let mut exp: i32 = 0;
        let mut float = false;
        if b.get(i) == Some(&b'.') {
            float = true;
            let frac = self.digits(i + 1, &mut sig);
            if frac == 0 {
                return None;
            }
            i += 1 + frac;
            digits += frac;
            exp = -i32::try_from(frac).ok()?;
        }
        if digits > MAX_DIGITS {
            return None;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            float = true;
            i += 1;
            let exp_negative = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let mut e: u64 = 0;
            let n = self.digits(i, &mut e);
            if n == 0 || n > MAX_EXP_DIGITS {
                return None;
            }
            i += n;
            let e = i32::try_from(e).ok()?;
            exp += if exp_negative { -e } else { e };
        }
        self.i = i;
        if !float {
            return Some(match (negative, sig) {
                (false, _) => Scalar::UInt(sig),
                // serde_json reads `-0` as a float.
                (true, 0) => Scalar::Float(-0.0),
                (true, _) => Scalar::Int(-i64::try_from(sig).ok()?),
            });
        }
        if sig > 1 << 53 {
            return None;
        }
        let pow = *POW10.get(usize::try_from(exp.unsigned_abs()).ok()?)?;
        let mut f = sig as f64; // sig ≤ 2^53: exact
        if exp >= 0 {
            f *= pow;
        } else {
            f /= pow;
        }
        Some(Scalar::Float(if negative { -f } else { f }))
    }
}

/// For the fuzz target and tests: `Ok(true)` when the hand-written reader
/// took `body` and read what the serde reader reads, `Ok(false)` when it
/// declined, `Err` (both readings) when they differ.
pub fn readers_agree(body: &[u8]) -> Result<bool, String> {
    let Some(fast) = read(body) else {
        return Ok(false);
    };
    let fast = format!("{fast:?}");
    match serde_json::from_slice::<InferRequest<'_>>(body) {
        Ok(slow) if format!("{slow:?}") == fast => Ok(true),
        Ok(slow) => Err(format!("fast {fast}\nserde {slow:?}")),
        Err(e) => Err(format!("fast {fast}\nserde refused: {e}")),
    }
}

#[cfg(test)]
mod tests;
