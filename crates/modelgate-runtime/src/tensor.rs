//! Typed tensor values moving between protocols and tract: what a request's
//! inputs decode to, and what a model's outputs become.

use tract_onnx::prelude::{DatumType, IntoTensor, TDim, TValue, Tensor, tract_ndarray};

use crate::Datatype;

/// Row-major tensor elements of one served datatype.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
}

impl TensorData {
    pub fn datatype(&self) -> Datatype {
        match self {
            TensorData::Bool(_) => Datatype::Bool,
            TensorData::Int32(_) => Datatype::Int32,
            TensorData::Int64(_) => Datatype::Int64,
            TensorData::Fp32(_) => Datatype::Fp32,
            TensorData::Fp64(_) => Datatype::Fp64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::Bool(v) => v.len(),
            TensorData::Int32(v) => v.len(),
            TensorData::Int64(v) => v.len(),
            TensorData::Fp32(v) => v.len(),
            TensorData::Fp64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Converts to the model's element type, which [`Datatype::widens_to`]
    /// must allow; `None` otherwise.
    pub fn widen(self, to: Datatype) -> Option<TensorData> {
        Some(match (self, to) {
            (d, t) if d.datatype() == t => d,
            (TensorData::Int32(v), Datatype::Int64) => {
                TensorData::Int64(v.into_iter().map(i64::from).collect())
            }
            (TensorData::Int32(v), Datatype::Fp64) => {
                TensorData::Fp64(v.into_iter().map(f64::from).collect())
            }
            (TensorData::Fp32(v), Datatype::Fp64) => {
                TensorData::Fp64(v.into_iter().map(f64::from).collect())
            }
            _ => return None,
        })
    }

    /// A tract tensor of `shape` over these elements, without copying them.
    pub fn into_tensor(self, shape: &[usize]) -> Result<Tensor, String> {
        fn build<T: tract_onnx::prelude::Datum>(
            shape: &[usize],
            v: Vec<T>,
        ) -> Result<Tensor, String> {
            tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(shape), v)
                .map(IntoTensor::into_tensor)
                .map_err(|e| e.to_string())
        }
        match self {
            TensorData::Bool(v) => build(shape, v),
            TensorData::Int32(v) => build(shape, v),
            TensorData::Int64(v) => build(shape, v),
            TensorData::Fp32(v) => build(shape, v),
            TensorData::Fp64(v) => build(shape, v),
        }
    }

    /// Little-endian bytes, as in gRPC `raw_output_contents` (BOOL is one byte).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.append_le_bytes(&mut out);
        out
    }

    /// Appends the little-endian bytes of the elements to `out`.
    pub fn append_le_bytes(&self, out: &mut Vec<u8>) {
        fn collect<T: Copy, const N: usize>(out: &mut Vec<u8>, v: &[T], f: fn(T) -> [u8; N]) {
            out.reserve(v.len() * N);
            for x in v {
                out.extend_from_slice(&f(*x));
            }
        }
        match self {
            TensorData::Bool(v) => out.extend(v.iter().map(|b| u8::from(*b))),
            TensorData::Int32(v) => collect(out, v, i32::to_le_bytes),
            TensorData::Int64(v) => collect(out, v, i64::to_le_bytes),
            TensorData::Fp32(v) => collect(out, v, f32::to_le_bytes),
            TensorData::Fp64(v) => collect(out, v, f64::to_le_bytes),
        }
    }

    /// Reads little-endian `bytes` as `datatype` elements (gRPC
    /// `raw_input_contents`); the error is the client message tail.
    pub fn from_le_bytes(datatype: Datatype, bytes: &[u8]) -> Result<TensorData, String> {
        fn read<T, const N: usize>(bytes: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
            bytes
                .chunks_exact(N)
                .map(|c| {
                    let mut a = [0u8; N];
                    a.copy_from_slice(c);
                    f(a)
                })
                .collect()
        }
        let size = datatype.byte_size();
        if !bytes.len().is_multiple_of(size) {
            return Err(format!(
                "raw contents of {} bytes are not a whole number of {datatype} elements",
                bytes.len()
            ));
        }
        Ok(match datatype {
            Datatype::Bool => TensorData::Bool(
                bytes
                    .iter()
                    .map(|b| match b {
                        0 => Ok(false),
                        1 => Ok(true),
                        _ => Err(format!("BOOL byte {b} is neither 0 nor 1")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Datatype::Int32 => TensorData::Int32(read(bytes, i32::from_le_bytes)),
            Datatype::Int64 => TensorData::Int64(read(bytes, i64::from_le_bytes)),
            Datatype::Fp32 => TensorData::Fp32(read(bytes, f32::from_le_bytes)),
            Datatype::Fp64 => TensorData::Fp64(read(bytes, f64::from_le_bytes)),
        })
    }

    /// Copies a tract output. Shape dims that tract types as `TDim` (e.g. the
    /// label after ONNX `Cast(to=int64)`) become INT64.
    pub fn from_tract(value: &TValue) -> Result<TensorData, String> {
        let t: &Tensor = value;
        let view = t.try_as_plain_ram().map_err(|e| e.to_string())?;
        let err = |e: tract_onnx::prelude::TractError| e.to_string();
        Ok(match t.datum_type() {
            DatumType::Bool => TensorData::Bool(view.as_slice::<bool>().map_err(err)?.to_vec()),
            DatumType::I32 => TensorData::Int32(view.as_slice::<i32>().map_err(err)?.to_vec()),
            DatumType::I64 => TensorData::Int64(view.as_slice::<i64>().map_err(err)?.to_vec()),
            DatumType::F32 => TensorData::Fp32(view.as_slice::<f32>().map_err(err)?.to_vec()),
            DatumType::F64 => TensorData::Fp64(view.as_slice::<f64>().map_err(err)?.to_vec()),
            DatumType::TDim => TensorData::Int64(
                view.as_slice::<TDim>()
                    .map_err(err)?
                    .iter()
                    .map(|d| d.to_i64().map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?,
            ),
            other => return Err(format!("model produced unsupported type {other:?}")),
        })
    }
}

/// One decoded request input: name (borrowed from the request when it can
/// be), shape and elements, not yet checked against the model.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor<'a> {
    pub name: std::borrow::Cow<'a, str>,
    /// As sent; negative dimensions are caught during validation.
    pub shape: Vec<i64>,
    pub data: TensorData,
}

/// One model output after a run.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor {
    /// Index into the model's outputs (name, datatype, class labels).
    pub index: usize,
    /// Inline up to four dimensions (no allocation for the usual shapes).
    pub shape: tract_onnx::prelude::TVec<usize>,
    pub data: TensorData,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::IntoTValue;

    #[test]
    fn le_bytes_round_trip() {
        let cases = [
            TensorData::Bool(vec![true, false]),
            TensorData::Int32(vec![-1, 7]),
            TensorData::Int64(vec![i64::MIN, 3]),
            TensorData::Fp32(vec![1.5, -0.25]),
            TensorData::Fp64(vec![1e300, -0.0]),
        ];
        for d in cases {
            let b = d.to_le_bytes();
            assert_eq!(TensorData::from_le_bytes(d.datatype(), &b).unwrap(), d);
        }
        assert!(TensorData::from_le_bytes(Datatype::Fp32, &[0; 5]).is_err());
        assert!(TensorData::from_le_bytes(Datatype::Bool, &[2]).is_err());
    }

    #[test]
    fn widening() {
        let w = TensorData::Int32(vec![1, -2])
            .widen(Datatype::Int64)
            .unwrap();
        assert_eq!(w, TensorData::Int64(vec![1, -2]));
        assert!(TensorData::Fp64(vec![1.0]).widen(Datatype::Fp32).is_none());
    }

    #[test]
    fn tdim_labels_become_i64() {
        let t = tract_ndarray::arr1(&[TDim::from(1i64), TDim::from(2i64)]).into_tensor();
        let d = TensorData::from_tract(&t.into_tvalue()).unwrap();
        assert_eq!(d, TensorData::Int64(vec![1, 2]));
    }
}
