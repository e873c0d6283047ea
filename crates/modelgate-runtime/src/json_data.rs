//! Tensor `data` in JSON, nested or flat, read in one serde pass without
//! building a `serde_json::Value`: numbers go straight into a flat list, the
//! nesting is checked to be rectangular, and a non-number is remembered (not
//! failed on) so the caller can name the input in its message.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};

use crate::{Datatype, TensorData};

/// One JSON scalar as parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
}

/// The first thing in `data` that is not a tensor element.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Problem {
    /// A string, null or object where a number or bool belongs.
    NotAScalar(String),
    /// Nested lists of unequal lengths or depths.
    Ragged,
    /// `data` is a bare scalar, not a list.
    NotAList,
}

/// Parsed `data`: elements in row-major order and, for nested lists, the
/// shape the nesting spells.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct JsonData {
    pub values: Vec<Scalar>,
    /// Length of the lists at each depth; `[n]` for flat data.
    pub dims: Vec<usize>,
    pub problem: Option<Problem>,
}

impl JsonData {
    /// Whether the lists nest (a `[[..],..]` layout) rather than being flat.
    pub fn is_nested(&self) -> bool {
        self.dims.len() > 1
    }

    /// Converts the elements as `declared`, checking each value; the error
    /// is the client message tail (the caller prefixes the input name).
    pub fn to_tensor_data(&self, declared: Datatype) -> Result<TensorData, String> {
        if let Some(p) = &self.problem {
            return Err(match p {
                Problem::NotAScalar(what) => {
                    format!("data contains {what}, expected {declared} values")
                }
                Problem::Ragged => "data is a ragged nested list".into(),
                Problem::NotAList => "data must be a list".into(),
            });
        }
        let v = &self.values;
        Ok(match declared {
            Datatype::Bool => TensorData::Bool(convert(v, declared, |s| match s {
                Scalar::Bool(b) => Some(b),
                _ => None,
            })?),
            Datatype::Int32 => TensorData::Int32(convert(v, declared, |s| match s {
                Scalar::Int(i) => i32::try_from(i).ok(),
                Scalar::UInt(u) => i32::try_from(u).ok(),
                _ => None,
            })?),
            Datatype::Int64 => TensorData::Int64(convert(v, declared, |s| match s {
                Scalar::Int(i) => Some(i),
                Scalar::UInt(u) => i64::try_from(u).ok(),
                _ => None,
            })?),
            Datatype::Fp32 => TensorData::Fp32(convert(v, declared, |s| {
                let f = match s {
                    Scalar::Int(i) => i as f32,
                    Scalar::UInt(u) => u as f32,
                    Scalar::Float(f) => f as f32,
                    Scalar::Bool(_) => return None,
                };
                f.is_finite().then_some(f)
            })?),
            Datatype::Fp64 => TensorData::Fp64(convert(v, declared, |s| match s {
                Scalar::Int(i) => Some(i as f64),
                Scalar::UInt(u) => Some(u as f64),
                Scalar::Float(f) => Some(f),
                Scalar::Bool(_) => None,
            })?),
        })
    }
}

fn convert<T>(
    values: &[Scalar],
    declared: Datatype,
    f: impl Fn(Scalar) -> Option<T>,
) -> Result<Vec<T>, String> {
    let mut out = Vec::with_capacity(values.len());
    for (i, s) in values.iter().enumerate() {
        match f(*s) {
            Some(x) => out.push(x),
            None => {
                return Err(format!(
                    "element {i} ({}) is not a valid {declared} value",
                    show(*s)
                ));
            }
        }
    }
    Ok(out)
}

fn show(s: Scalar) -> String {
    match s {
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::UInt(u) => u.to_string(),
        Scalar::Float(f) => {
            serde_json::Number::from_f64(f).map_or_else(|| f.to_string(), |n| n.to_string())
        }
    }
}

impl<'de> de::Deserialize<'de> for JsonData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = JsonData::default();
        let mut dims = Vec::new();
        let mut leaf_depth = None;
        Node {
            depth: 0,
            out: &mut out,
            dims: &mut dims,
            leaf_depth: &mut leaf_depth,
        }
        .deserialize(d)?;
        if out.problem.is_none() {
            if dims.is_empty() {
                out.problem = Some(Problem::NotAList);
            } else if leaf_depth.is_some_and(|l| l != dims.len()) {
                out.problem = Some(Problem::Ragged);
            }
        }
        out.dims = dims.into_iter().map(|d| d.unwrap_or(0)).collect();
        Ok(out)
    }
}

/// Visits one JSON value at `depth` of the nesting.
struct Node<'a> {
    depth: usize,
    out: &'a mut JsonData,
    /// List length seen at each depth, filled innermost first.
    dims: &'a mut Vec<Option<usize>>,
    leaf_depth: &'a mut Option<usize>,
}

impl Node<'_> {
    fn leaf<E>(mut self, s: Scalar) -> Result<(), E> {
        match *self.leaf_depth {
            None => *self.leaf_depth = Some(self.depth),
            Some(d) if d != self.depth => self.flag(Problem::Ragged),
            Some(_) => {}
        }
        self.out.values.push(s);
        Ok(())
    }

    fn flag(&mut self, p: Problem) {
        if self.out.problem.is_none() {
            self.out.problem = Some(p);
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tensor data")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.leaf(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.leaf(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.leaf(Scalar::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.leaf(Scalar::Float(v))
    }
    fn visit_str<E>(mut self, v: &str) -> Result<(), E> {
        let shown: String = v.chars().take(32).collect();
        self.flag(Problem::NotAScalar(format!("the string {shown:?}")));
        Ok(())
    }
    fn visit_unit<E>(mut self) -> Result<(), E> {
        self.flag(Problem::NotAScalar("null".into()));
        Ok(())
    }
    fn visit_map<A: de::MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.flag(Problem::NotAScalar("an object".into()));
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut len = 0usize;
        while seq
            .next_element_seed(Node {
                depth: self.depth + 1,
                out: &mut *self.out,
                dims: &mut *self.dims,
                leaf_depth: &mut *self.leaf_depth,
            })?
            .is_some()
        {
            len += 1;
        }
        let mut me = self;
        if me.dims.len() <= me.depth {
            me.dims.resize(me.depth + 1, None);
        }
        match me.dims[me.depth] {
            None => me.dims[me.depth] = Some(len),
            Some(d) if d == len => {}
            Some(_) => me.flag(Problem::Ragged),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> JsonData {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn flat_and_nested() {
        let d = parse("[1, 2.5, 3]");
        assert_eq!(d.dims, vec![3]);
        assert!(!d.is_nested());
        assert_eq!(
            d.to_tensor_data(Datatype::Fp32).unwrap(),
            TensorData::Fp32(vec![1.0, 2.5, 3.0])
        );
        let d = parse("[[1, 2], [3, 4], [5, 6]]");
        assert_eq!(d.dims, vec![3, 2]);
        assert!(d.is_nested());
        assert_eq!(
            d.to_tensor_data(Datatype::Int64).unwrap(),
            TensorData::Int64(vec![1, 2, 3, 4, 5, 6])
        );
    }

    #[test]
    fn ragged_is_flagged() {
        assert_eq!(parse("[[1, 2], [3]]").problem, Some(Problem::Ragged));
        assert_eq!(parse("[[1, 2], 3]").problem, Some(Problem::Ragged));
        assert_eq!(parse("[1, [2, 3]]").problem, Some(Problem::Ragged));
        assert_eq!(parse("[[1], []]").problem, Some(Problem::Ragged));
    }

    #[test]
    fn non_numbers_are_flagged_not_failed() {
        let d = parse(r#"[[1, "NaN"], [null, {"a": [1]}]]"#);
        assert!(matches!(d.problem, Some(Problem::NotAScalar(ref s)) if s.contains("NaN")));
        let e = d.to_tensor_data(Datatype::Fp32).unwrap_err();
        assert!(e.contains("NaN") && e.contains("FP32"), "{e}");
        assert_eq!(parse("5").problem, Some(Problem::NotAList));
    }

    #[test]
    fn value_checks() {
        assert!(parse("[1.5]").to_tensor_data(Datatype::Int64).is_err());
        assert!(
            parse("[3000000000]")
                .to_tensor_data(Datatype::Int32)
                .is_err()
        );
        assert!(
            parse("[18446744073709551615]")
                .to_tensor_data(Datatype::Int64)
                .is_err()
        );
        assert!(parse("[1e39]").to_tensor_data(Datatype::Fp32).is_err());
        assert!(parse("[1e39]").to_tensor_data(Datatype::Fp64).is_ok());
        assert!(parse("[true]").to_tensor_data(Datatype::Fp32).is_err());
        assert!(parse("[1]").to_tensor_data(Datatype::Bool).is_err());
        assert_eq!(
            parse("[true, false]")
                .to_tensor_data(Datatype::Bool)
                .unwrap(),
            TensorData::Bool(vec![true, false])
        );
    }

    #[test]
    fn empty() {
        let d = parse("[]");
        assert_eq!(d.dims, vec![0]);
        assert!(d.problem.is_none());
        let d = parse("[[]]");
        assert_eq!(d.dims, vec![1, 0]);
    }
}
