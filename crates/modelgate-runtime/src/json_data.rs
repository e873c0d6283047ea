//! Tensor `data` in JSON, nested or flat, read in one serde pass without
//! building a `serde_json::Value`. When the datatype is known before `data`
//! is read (a V2 input that declares `datatype` ahead of `data`, as clients
//! do), each number is converted as it is read, straight into the typed
//! element buffer ([`DataSeed`]); otherwise numbers are kept as parsed
//! scalars and converted afterwards. Either way the nesting is checked to be
//! rectangular, and a non-number or a value the datatype cannot hold is
//! remembered (not failed on) so the caller can name the input in its message.

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
    leaves: Leaves,
    /// Length of the lists at each depth; `[n]` for flat data.
    pub dims: Vec<usize>,
    pub problem: Option<Problem>,
}

/// The elements, as read.
#[derive(Debug, Clone, PartialEq)]
enum Leaves {
    /// The datatype was not known while reading: scalars as parsed.
    Scalars(Vec<Scalar>),
    /// Converted while reading into `data`'s datatype; `count` elements were
    /// read, `bad` is the first one that did not convert (the rest are then
    /// only counted).
    Typed {
        data: TensorData,
        count: usize,
        bad: Option<(usize, Scalar)>,
    },
}

impl Default for Leaves {
    fn default() -> Self {
        Leaves::Scalars(Vec::new())
    }
}

impl JsonData {
    /// Whether the lists nest (a `[[..],..]` layout) rather than being flat.
    pub fn is_nested(&self) -> bool {
        self.dims.len() > 1
    }

    fn push(&mut self, s: Scalar) {
        match &mut self.leaves {
            Leaves::Scalars(v) => v.push(s),
            Leaves::Typed { data, count, bad } => {
                let i = *count;
                *count += 1;
                if bad.is_some() {
                    return;
                }
                if !push_converted(data, s) {
                    *bad = Some((i, s));
                }
            }
        }
    }

    /// Data read by another reader straight into `data` (every element
    /// converted), nested as `dims`: what the typed serde path builds for it.
    pub fn typed(data: TensorData, dims: Vec<usize>) -> Self {
        JsonData {
            leaves: Leaves::Typed {
                count: data.len(),
                data,
                bad: None,
            },
            dims,
            problem: None,
        }
    }

    /// The elements as `declared`, each value checked; the error is the
    /// client message tail (the caller prefixes the input name).
    pub fn into_tensor_data(self, declared: Datatype) -> Result<TensorData, String> {
        if let Some(p) = &self.problem {
            return Err(match p {
                Problem::NotAScalar(what) => {
                    format!("data contains {what}, expected {declared} values")
                }
                Problem::Ragged => "data is a ragged nested list".into(),
                Problem::NotAList => "data must be a list".into(),
            });
        }
        let v = match self.leaves {
            Leaves::Scalars(v) => v,
            Leaves::Typed { data, bad, .. } => {
                // A seed is made from the input's own datatype, so the two
                // agree; refuse rather than mislabel if a caller mixed them.
                if data.datatype() != declared {
                    return Err(format!(
                        "data was read as {} values, expected {declared}",
                        data.datatype()
                    ));
                }
                return match bad {
                    Some((i, s)) => Err(not_valid(i, s, declared)),
                    None => Ok(data),
                };
            }
        };
        Ok(match declared {
            Datatype::Bool => TensorData::Bool(convert(&v, declared, as_bool)?),
            Datatype::Int32 => TensorData::Int32(convert(&v, declared, as_i32)?),
            Datatype::Int64 => TensorData::Int64(convert(&v, declared, as_i64)?),
            Datatype::Fp32 => TensorData::Fp32(convert(&v, declared, as_f32)?),
            Datatype::Fp64 => TensorData::Fp64(convert(&v, declared, as_f64)?),
        })
    }

    /// Reads `data` from `d` into `leaves`.
    fn read<'de, D: Deserializer<'de>>(d: D, leaves: Leaves) -> Result<Self, D::Error> {
        let mut out = JsonData {
            leaves,
            ..JsonData::default()
        };
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

/// Converts `s` to `data`'s datatype as the serde readers do and appends
/// it; `false` (nothing appended) when it does not convert.
pub(crate) fn push_converted(data: &mut TensorData, s: Scalar) -> bool {
    let converted = match data {
        TensorData::Bool(v) => as_bool(s).map(|x| v.push(x)),
        TensorData::Int32(v) => as_i32(s).map(|x| v.push(x)),
        TensorData::Int64(v) => as_i64(s).map(|x| v.push(x)),
        TensorData::Fp32(v) => as_f32(s).map(|x| v.push(x)),
        TensorData::Fp64(v) => as_f64(s).map(|x| v.push(x)),
    };
    converted.is_some()
}

fn as_bool(s: Scalar) -> Option<bool> {
    match s {
        Scalar::Bool(b) => Some(b),
        _ => None,
    }
}

pub(crate) fn as_i32(s: Scalar) -> Option<i32> {
    match s {
        Scalar::Int(i) => i32::try_from(i).ok(),
        Scalar::UInt(u) => i32::try_from(u).ok(),
        _ => None,
    }
}

pub(crate) fn as_i64(s: Scalar) -> Option<i64> {
    match s {
        Scalar::Int(i) => Some(i),
        Scalar::UInt(u) => i64::try_from(u).ok(),
        _ => None,
    }
}

pub(crate) fn as_f32(s: Scalar) -> Option<f32> {
    let f = match s {
        Scalar::Int(i) => i as f32,
        Scalar::UInt(u) => u as f32,
        Scalar::Float(f) => f as f32,
        Scalar::Bool(_) => return None,
    };
    f.is_finite().then_some(f)
}

pub(crate) fn as_f64(s: Scalar) -> Option<f64> {
    match s {
        Scalar::Int(i) => Some(i as f64),
        Scalar::UInt(u) => Some(u as f64),
        Scalar::Float(f) => Some(f),
        Scalar::Bool(_) => None,
    }
}

fn convert<T>(
    values: &[Scalar],
    declared: Datatype,
    f: fn(Scalar) -> Option<T>,
) -> Result<Vec<T>, String> {
    let mut out = Vec::with_capacity(values.len());
    for (i, s) in values.iter().enumerate() {
        match f(*s) {
            Some(x) => out.push(x),
            None => return Err(not_valid(i, *s, declared)),
        }
    }
    Ok(out)
}

fn not_valid(i: usize, s: Scalar, declared: Datatype) -> String {
    format!("element {i} ({}) is not a valid {declared} value", show(s))
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

/// Reads an input's `data` (or `null`, as absent) converting each element to
/// `declared` as it is read.
pub(crate) struct DataSeed {
    declared: Datatype,
    /// Elements to reserve room for (the caller bounds it).
    capacity: usize,
}

impl DataSeed {
    pub fn new(declared: Datatype, capacity: usize) -> Self {
        DataSeed { declared, capacity }
    }
}

impl<'de> DeserializeSeed<'de> for DataSeed {
    type Value = Option<JsonData>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for DataSeed {
    type Value = Option<JsonData>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tensor data")
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let n = self.capacity;
        let data = match self.declared {
            Datatype::Bool => TensorData::Bool(Vec::with_capacity(n)),
            Datatype::Int32 => TensorData::Int32(Vec::with_capacity(n)),
            Datatype::Int64 => TensorData::Int64(Vec::with_capacity(n)),
            Datatype::Fp32 => TensorData::Fp32(Vec::with_capacity(n)),
            Datatype::Fp64 => TensorData::Fp64(Vec::with_capacity(n)),
        };
        let leaves = Leaves::Typed {
            data,
            count: 0,
            bad: None,
        };
        JsonData::read(d, leaves).map(Some)
    }
}

impl<'de> de::Deserialize<'de> for JsonData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        JsonData::read(d, Leaves::default())
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
        self.out.push(s);
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
mod tests;
