//! Serializing output tensors into JSON without copying them: flat `data`
//! for V2, nested lists for V1 `predictions`; and the small writers the V2
//! answer is written with directly (no serde structs, no key escaping).

use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};
use serde_json::ser::{CompactFormatter, Formatter};

use crate::TensorData;

/// A tensor's elements as one flat JSON list, through serde (the reference
/// [`flat`] is tested against).
#[cfg(test)]
pub struct Flat<'a>(pub &'a TensorData);

#[cfg(test)]
impl Serialize for Flat<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            TensorData::Bool(v) => v.serialize(s),
            TensorData::Int32(v) => v.serialize(s),
            TensorData::Int64(v) => v.serialize(s),
            TensorData::Fp32(v) => v.serialize(s),
            TensorData::Fp64(v) => v.serialize(s),
        }
    }
}

/// Appends `s` as a JSON string (escaped as serde_json does).
pub fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing to a Vec cannot fail, and a &str always serializes.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Appends an unsigned integer.
pub fn usize(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `[a,b,…]`.
pub fn usizes(out: &mut Vec<u8>, v: &[usize]) {
    out.push(b'[');
    for (i, n) in v.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        usize(out, *n);
    }
    out.push(b']');
}

/// The longest one element of `datatype` is in a flat list, with its comma
/// (`false,`, `-9223372036854775808,`; floats as serde_json writes them:
/// decimal notation up to 10^15, e.g. `-1234567800000000.0,`). A longer
/// one only makes the buffer grow.
pub fn max_len(datatype: crate::Datatype) -> usize {
    match datatype {
        crate::Datatype::Bool => 6,
        crate::Datatype::Int32 => 12,
        crate::Datatype::Int64 => 21,
        crate::Datatype::Fp32 => 20,
        crate::Datatype::Fp64 => 25,
    }
}

/// Appends a tensor's elements as one flat JSON list, byte for byte what
/// serde_json writes for the slice (its own number formatting, `null` for a
/// non-finite float), without serde's per-element calls.
pub fn flat(out: &mut Vec<u8>, data: &TensorData) -> Result<(), modelgate_core::Reject> {
    fn list<T: Copy>(
        out: &mut Vec<u8>,
        v: &[T],
        per: usize,
        write: impl Fn(&mut Vec<u8>, T) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        out.reserve(2 + v.len() * per);
        out.push(b'[');
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write(out, *x)?;
        }
        out.push(b']');
        Ok(())
    }
    let written = match data {
        TensorData::Bool(v) => list(out, v, 6, |o, x| CompactFormatter.write_bool(o, x)),
        TensorData::Int32(v) => list(out, v, 4, |o, x| CompactFormatter.write_i32(o, x)),
        TensorData::Int64(v) => list(out, v, 4, |o, x| CompactFormatter.write_i64(o, x)),
        TensorData::Fp32(v) => list(out, v, 12, |o, x| {
            if x.is_finite() {
                CompactFormatter.write_f32(o, x)
            } else {
                CompactFormatter.write_null(o)
            }
        }),
        TensorData::Fp64(v) => list(out, v, 20, |o, x| {
            if x.is_finite() {
                CompactFormatter.write_f64(o, x)
            } else {
                CompactFormatter.write_null(o)
            }
        }),
    };
    written.map_err(|e| modelgate_core::Reject::Internal {
        detail: format!("serializing response: {e}"),
    })
}

/// A tensor's elements as JSON lists nested like `shape`.
pub struct Nested<'a> {
    pub shape: &'a [usize],
    pub data: &'a TensorData,
}

impl Serialize for Nested<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.data {
            TensorData::Bool(v) => NestedSlice {
                shape: self.shape,
                data: v,
            }
            .serialize(s),
            TensorData::Int32(v) => NestedSlice {
                shape: self.shape,
                data: v,
            }
            .serialize(s),
            TensorData::Int64(v) => NestedSlice {
                shape: self.shape,
                data: v,
            }
            .serialize(s),
            TensorData::Fp32(v) => NestedSlice {
                shape: self.shape,
                data: v,
            }
            .serialize(s),
            TensorData::Fp64(v) => NestedSlice {
                shape: self.shape,
                data: v,
            }
            .serialize(s),
        }
    }
}

struct NestedSlice<'a, T> {
    shape: &'a [usize],
    data: &'a [T],
}

impl<T: Serialize> Serialize for NestedSlice<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let [outer, inner_shape @ ..] = self.shape else {
            return self.data.serialize(s);
        };
        if inner_shape.is_empty() {
            return self.data.serialize(s);
        }
        let inner: usize = inner_shape.iter().product();
        let mut seq = s.serialize_seq(Some(*outer))?;
        for i in 0..*outer {
            let start = i.saturating_mul(inner).min(self.data.len());
            let end = start.saturating_add(inner).min(self.data.len());
            seq.serialize_element(&NestedSlice {
                shape: inner_shape,
                data: &self.data[start..end],
            })?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_writers_match_serde_json() {
        for s in [
            "iris",
            "",
            "a\"b",
            "tab\there",
            "ünï",
            "\u{7f}",
            "back\\slash",
        ] {
            let mut out = Vec::new();
            string(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
        for n in [0usize, 7, 10, 12345, usize::MAX] {
            let mut out = Vec::new();
            usize(&mut out, n);
            assert_eq!(out, serde_json::to_vec(&n).unwrap());
        }
        let mut out = Vec::new();
        usizes(&mut out, &[2, 3]);
        assert_eq!(out, b"[2,3]");
        usizes(&mut out, &[]);
        assert_eq!(out, b"[2,3][]");
        let mut out = Vec::new();
        flat(
            &mut out,
            &TensorData::Fp32(vec![0.801_548_5, 1.0, f32::NAN]),
        )
        .unwrap();
        assert_eq!(out, b"[0.8015485,1.0,null]");
        // Every datatype, edge values included, exactly as serde_json.
        let cases = [
            TensorData::Bool(vec![true, false]),
            TensorData::Bool(vec![]),
            TensorData::Int32(vec![i32::MIN, -1, 0, 7, i32::MAX]),
            TensorData::Int64(vec![i64::MIN, -42, 0, i64::MAX]),
            TensorData::Fp32(vec![
                0.0,
                -0.0,
                1e-45,
                f32::MAX,
                f32::MIN_POSITIVE,
                1.0 / 3.0,
                f32::INFINITY,
                f32::NEG_INFINITY,
                123_456_790.0,
            ]),
            TensorData::Fp64(vec![
                0.1,
                -0.0,
                5e-324,
                f64::MAX,
                1e21,
                1e-7,
                f64::NAN,
                f64::NEG_INFINITY,
            ]),
        ];
        for d in cases {
            let mut out = vec![b'x'];
            flat(&mut out, &d).unwrap();
            let mut want = vec![b'x'];
            want.extend(serde_json::to_vec(&Flat(&d)).unwrap());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(want).unwrap(),
                "{d:?}"
            );
        }
    }

    #[test]
    fn nests_by_shape() {
        let d = TensorData::Int64(vec![1, 2, 3, 4, 5, 6]);
        let j = serde_json::to_string(&Nested {
            shape: &[2, 3],
            data: &d,
        })
        .unwrap();
        assert_eq!(j, "[[1,2,3],[4,5,6]]");
        let j = serde_json::to_string(&Nested {
            shape: &[6],
            data: &d,
        })
        .unwrap();
        assert_eq!(j, "[1,2,3,4,5,6]");
        let j = serde_json::to_string(&Flat(&TensorData::Fp32(vec![0.5, 1.0]))).unwrap();
        assert_eq!(j, "[0.5,1.0]");
        let e = TensorData::Fp32(vec![]);
        let j = serde_json::to_string(&Nested {
            shape: &[2, 0],
            data: &e,
        })
        .unwrap();
        assert_eq!(j, "[[],[]]");
    }
}
