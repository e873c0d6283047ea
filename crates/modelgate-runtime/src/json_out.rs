//! Serializing output tensors into JSON without copying them: flat `data`
//! for V2, nested lists for V1 `predictions`.

use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};

use crate::TensorData;

/// A tensor's elements as one flat JSON list.
pub struct Flat<'a>(pub &'a TensorData);

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
