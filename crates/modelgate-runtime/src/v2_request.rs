//! The V2 REST `/infer` request body, decoded in one serde pass over the
//! borrowed body: names, datatypes and the id are borrowed, and each input's
//! `data` goes straight into its typed element buffer when `datatype` comes
//! before `data` (as clients send it; see `crate::json_data`). Then each
//! input is checked into an [`InputTensor`] with messages naming it.

use std::borrow::Cow;
use std::fmt;

use modelgate_core::Reject;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::binary::{self, Params, Tail};
use crate::json_data::{DataSeed, JsonData};
use crate::{Datatype, InputTensor, TensorData, infer};

/// Elements reserved up front from a declared shape, at most: a shape is the
/// client's word, the data may be shorter (the vector grows past this).
const MAX_RESERVE: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
pub(crate) struct InferRequest<'a> {
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub parameters: Option<Params>,
    #[serde(borrow)]
    pub inputs: Vec<RequestInput<'a>>,
    #[serde(default, borrow)]
    pub outputs: Option<Vec<RequestOutput<'a>>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RequestOutput<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(default)]
    pub parameters: Option<Params>,
}

/// One request input. Its `Deserialize` is written by hand (field for field
/// what a derive would accept and refuse) to read `data` with the datatype
/// already seen.
#[derive(Debug)]
pub(crate) struct RequestInput<'a> {
    pub name: Cow<'a, str>,
    pub shape: Vec<i64>,
    pub datatype: Cow<'a, str>,
    pub parameters: Option<Params>,
    pub data: Option<JsonData>,
}

const FIELDS: &[&str] = &["name", "shape", "datatype", "parameters", "data"];

impl<'de: 'a, 'a> Deserialize<'de> for RequestInput<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(
            "RequestInput",
            FIELDS,
            InputVisitor(std::marker::PhantomData),
        )
    }
}

struct InputVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for InputVisitor<'a> {
    type Value = RequestInput<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct RequestInput")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut name = None;
        let mut shape: Option<Vec<i64>> = None;
        let mut datatype: Option<Cow<'a, str>> = None;
        let mut parameters: Option<Option<Params>> = None;
        let mut data: Option<Option<JsonData>> = None;
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Name => {
                    once(&name, "name")?;
                    name = Some(map.next_value_seed(CowStr(std::marker::PhantomData))?);
                }
                Field::Shape => {
                    once(&shape, "shape")?;
                    shape = Some(map.next_value()?);
                }
                Field::Datatype => {
                    once(&datatype, "datatype")?;
                    datatype = Some(map.next_value_seed(CowStr(std::marker::PhantomData))?);
                }
                Field::Parameters => {
                    once(&parameters, "parameters")?;
                    parameters = Some(map.next_value()?);
                }
                Field::Data => {
                    once(&data, "data")?;
                    let typed = datatype.as_deref().and_then(|d| Datatype::parse(d).ok());
                    data = Some(match typed {
                        Some(t) => {
                            map.next_value_seed(DataSeed::new(t, reserve(shape.as_deref())))?
                        }
                        None => map.next_value()?,
                    });
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(RequestInput {
            name: name.ok_or_else(|| de::Error::missing_field("name"))?,
            shape: shape.ok_or_else(|| de::Error::missing_field("shape"))?,
            datatype: datatype.ok_or_else(|| de::Error::missing_field("datatype"))?,
            parameters: parameters.flatten(),
            data: data.flatten(),
        })
    }
}

/// Refuses a key given twice, as a derived `Deserialize` does.
fn once<T, E: de::Error>(seen: &Option<T>, field: &'static str) -> Result<(), E> {
    match seen {
        Some(_) => Err(E::duplicate_field(field)),
        None => Ok(()),
    }
}

/// Elements to reserve for data of `shape`, bounded by [`MAX_RESERVE`].
fn reserve(shape: Option<&[i64]>) -> usize {
    shape
        .and_then(|s| {
            s.iter()
                .try_fold(1usize, |acc, d| acc.checked_mul(usize::try_from(*d).ok()?))
        })
        .unwrap_or(0)
        .min(MAX_RESERVE)
}

enum Field {
    Name,
    Shape,
    Datatype,
    Parameters,
    Data,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(FieldVisitor)
    }
}

struct FieldVisitor;

impl Visitor<'_> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_str<E>(self, v: &str) -> Result<Field, E> {
        Ok(match v {
            "name" => Field::Name,
            "shape" => Field::Shape,
            "datatype" => Field::Datatype,
            "parameters" => Field::Parameters,
            "data" => Field::Data,
            _ => Field::Other,
        })
    }
}

/// A string borrowed from the body when it has no escapes, else owned (what
/// `#[serde(borrow)]` does for a derived `Cow<str>` field).
struct CowStr<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for CowStr<'a> {
    type Value = Cow<'a, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for CowStr<'a> {
    type Value = Cow<'a, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// Decodes one request input, from JSON `data` or from the binary tail;
/// checks that nested `data` spells its `shape`.
pub(crate) fn decode_input<'a>(
    input: RequestInput<'a>,
    tail: &mut Tail,
) -> Result<InputTensor<'a>, Reject> {
    // The shown name is built only for an error message.
    let bad = |m: String| Reject::BadRequest(format!("input '{}': {m}", infer::shown(&input.name)));
    let declared = Datatype::parse(&input.datatype).map_err(bad)?;
    let size = match input.parameters.as_ref() {
        None => None,
        Some(p) => binary::size(Some(p), &format!("input '{}'", infer::shown(&input.name)))?,
    };
    let data = match (input.data, size) {
        (Some(_), Some(_)) => {
            return Err(bad("has both data and binary_data_size".into()));
        }
        (None, None) => return Err(bad("has no data".into())),
        (None, Some(n)) => {
            let bytes = tail
                .take(n)
                .ok_or_else(|| bad(format!("binary_data_size {n} exceeds the binary data left")))?;
            TensorData::from_le_bytes(declared, &bytes).map_err(bad)?
        }
        (Some(data), None) => {
            if data.is_nested()
                && data.problem.is_none()
                && !data
                    .dims
                    .iter()
                    .map(|d| i64::try_from(*d).ok())
                    .eq(input.shape.iter().map(|s| Some(*s)))
            {
                return Err(bad(format!(
                    "data nested as {:?} does not match shape {:?}",
                    data.dims, input.shape
                )));
            }
            data.into_tensor_data(declared).map_err(bad)?
        }
    };
    Ok(InputTensor {
        name: input.name,
        shape: input.shape,
        data,
    })
}

pub(crate) mod fast;
#[cfg(test)]
mod tests;
