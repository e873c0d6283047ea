//! A `ModelInferResponse` written straight from the model and its outputs
//! into one gRPC frame: byte for byte what prost encodes for the message
//! `grpc::model_infer` would otherwise build (names, shapes and elements are
//! not copied into an intermediate message first).

use bytes::{BufMut, BytesMut};
use prost::encoding::{
    WireType, bool as pb_bool, double, encode_key, encode_varint, encoded_len_varint, float, int32,
    int64, key_len,
};

use crate::model::LoadedModel;
use crate::{OutputTensor, TensorData};

/// What the answer to one `ModelInfer` call holds.
pub(crate) struct Answer<'a> {
    pub model: &'a LoadedModel,
    pub id: &'a str,
    pub outputs: &'a [OutputTensor],
    /// Elements go in `raw_output_contents` (the request used raw inputs),
    /// else in each output's typed `contents`.
    pub raw: bool,
}

/// `ModelInferResponse` field numbers.
const MODEL_NAME: u32 = 1;
const MODEL_VERSION: u32 = 2;
const ID: u32 = 3;
const OUTPUTS: u32 = 5;
const RAW_OUTPUT_CONTENTS: u32 = 6;
/// `InferOutputTensor` field numbers.
const NAME: u32 = 1;
const DATATYPE: u32 = 2;
const SHAPE: u32 = 3;
const CONTENTS: u32 = 5;

impl Answer<'_> {
    /// The gRPC frame: flag byte, big-endian length, message.
    pub fn frame(&self) -> BytesMut {
        let len = self.encoded_len();
        let mut buf = BytesMut::with_capacity(5 + len);
        buf.put_u8(0);
        buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        self.encode(&mut buf);
        buf
    }

    fn name(&self, o: &OutputTensor) -> &str {
        self.model
            .outputs
            .get(o.index)
            .map_or("", |spec| spec.name.as_str())
    }

    fn encoded_len(&self) -> usize {
        let mut len = string_len(MODEL_NAME, self.model.name.as_str())
            + string_len(MODEL_VERSION, &self.model.version)
            + string_len(ID, self.id);
        for o in self.outputs {
            len += message_len(OUTPUTS, self.output_len(o));
            if self.raw {
                len += message_len(RAW_OUTPUT_CONTENTS, raw_len(&o.data));
            }
        }
        len
    }

    fn output_len(&self, o: &OutputTensor) -> usize {
        let mut len = string_len(NAME, self.name(o))
            + string_len(DATATYPE, o.data.datatype().as_str())
            + shape_len(&o.shape);
        if !self.raw {
            len += message_len(CONTENTS, contents_len(&o.data));
        }
        len
    }

    fn encode(&self, buf: &mut BytesMut) {
        string(MODEL_NAME, self.model.name.as_str(), buf);
        string(MODEL_VERSION, &self.model.version, buf);
        string(ID, self.id, buf);
        for o in self.outputs {
            encode_key(OUTPUTS, WireType::LengthDelimited, buf);
            encode_varint(self.output_len(o) as u64, buf);
            string(NAME, self.name(o), buf);
            string(DATATYPE, o.data.datatype().as_str(), buf);
            shape(&o.shape, buf);
            if !self.raw {
                encode_key(CONTENTS, WireType::LengthDelimited, buf);
                encode_varint(contents_len(&o.data) as u64, buf);
                contents(&o.data, buf);
            }
        }
        if self.raw {
            for o in self.outputs {
                encode_key(RAW_OUTPUT_CONTENTS, WireType::LengthDelimited, buf);
                encode_varint(raw_len(&o.data) as u64, buf);
                raw(&o.data, buf);
            }
        }
    }
}

/// A length-delimited field holding `len` bytes (always written, as prost
/// writes every repeated message and every set sub-message).
fn message_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A proto3 string field (left out when empty).
fn string_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        message_len(tag, s.len())
    }
}

fn string(tag: u32, s: &str, buf: &mut BytesMut) {
    if !s.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(s.len() as u64, buf);
        buf.put_slice(s.as_bytes());
    }
}

fn dim(d: usize) -> u64 {
    // The int64 varint of the dimension (as `grpc::model_infer` converted it).
    i64::try_from(d).unwrap_or(i64::MAX) as u64
}

/// The packed `shape` field (left out when empty).
fn shape_len(shape: &[usize]) -> usize {
    if shape.is_empty() {
        return 0;
    }
    let body: usize = shape.iter().map(|d| encoded_len_varint(dim(*d))).sum();
    message_len(SHAPE, body)
}

fn shape(shape: &[usize], buf: &mut BytesMut) {
    if shape.is_empty() {
        return;
    }
    let body: usize = shape.iter().map(|d| encoded_len_varint(dim(*d))).sum();
    encode_key(SHAPE, WireType::LengthDelimited, buf);
    encode_varint(body as u64, buf);
    for d in shape {
        encode_varint(dim(*d), buf);
    }
}

/// `InferTensorContents` with the elements in the field of their datatype.
fn contents_len(data: &TensorData) -> usize {
    match data {
        TensorData::Bool(v) => pb_bool::encoded_len_packed(1, v),
        TensorData::Int32(v) => int32::encoded_len_packed(2, v),
        TensorData::Int64(v) => int64::encoded_len_packed(3, v),
        TensorData::Fp32(v) => float::encoded_len_packed(6, v),
        TensorData::Fp64(v) => double::encoded_len_packed(7, v),
    }
}

fn contents(data: &TensorData, buf: &mut BytesMut) {
    match data {
        TensorData::Bool(v) => pb_bool::encode_packed(1, v, buf),
        TensorData::Int32(v) => int32::encode_packed(2, v, buf),
        TensorData::Int64(v) => int64::encode_packed(3, v, buf),
        TensorData::Fp32(v) => float::encode_packed(6, v, buf),
        TensorData::Fp64(v) => double::encode_packed(7, v, buf),
    }
}

/// Little-endian element bytes (`TensorData::append_le_bytes`).
fn raw_len(data: &TensorData) -> usize {
    data.len() * data.datatype().byte_size()
}

fn raw(data: &TensorData, buf: &mut BytesMut) {
    match data {
        TensorData::Bool(v) => v.iter().for_each(|b| buf.put_u8(u8::from(*b))),
        TensorData::Int32(v) => v.iter().for_each(|x| buf.put_i32_le(*x)),
        TensorData::Int64(v) => v.iter().for_each(|x| buf.put_i64_le(*x)),
        TensorData::Fp32(v) => v.iter().for_each(|x| buf.put_f32_le(*x)),
        TensorData::Fp64(v) => v.iter().for_each(|x| buf.put_f64_le(*x)),
    }
}

#[cfg(test)]
mod tests;
