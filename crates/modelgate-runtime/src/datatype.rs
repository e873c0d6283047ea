//! OIP tensor datatypes: which ones the runtime serves, and which request
//! datatype may feed which model input.
//!
//! Casting policy: a request's declared datatype must equal the model input's,
//! or widen to it without loss — INT32 → INT64, INT32 → FP64, FP32 → FP64.
//! Anything lossy (FP64 → FP32, INT64 → FP32, …) is refused with 400 naming
//! the input, because silently rounding a client's data changes predictions.
//! JSON numbers are checked value by value against the declared type (range,
//! integer-ness, finiteness); see `crate::json_data`.

use std::fmt;

/// A tensor element type the built-in runtime can take in and give out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Datatype {
    Bool,
    Int32,
    Int64,
    Fp32,
    Fp64,
}

/// Every datatype name of the OIP table, served or not.
const OIP_NAMES: [&str; 13] = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
    "FP32", "FP64", "BYTES",
];

impl Datatype {
    /// The OIP name (`FP32`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Datatype::Bool => "BOOL",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
        }
    }

    /// Size of one element in raw (binary) tensor contents.
    pub const fn byte_size(self) -> usize {
        match self {
            Datatype::Bool => 1,
            Datatype::Int32 | Datatype::Fp32 => 4,
            Datatype::Int64 | Datatype::Fp64 => 8,
        }
    }

    /// Parses a request's datatype; the error is the client message tail.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "BOOL" => Datatype::Bool,
            "INT32" => Datatype::Int32,
            "INT64" => Datatype::Int64,
            "FP32" => Datatype::Fp32,
            "FP64" => Datatype::Fp64,
            other if OIP_NAMES.contains(&other) => {
                return Err(format!(
                    "datatype {other} is not supported by the built-in runtime"
                ));
            }
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(format!("unknown datatype {shown:?}"));
            }
        })
    }

    /// Whether data declared as `self` may feed a model input of type `model`.
    pub const fn widens_to(self, model: Datatype) -> bool {
        matches!(
            (self, model),
            (Datatype::Bool, Datatype::Bool)
                | (
                    Datatype::Int32,
                    Datatype::Int32 | Datatype::Int64 | Datatype::Fp64
                )
                | (Datatype::Int64, Datatype::Int64)
                | (Datatype::Fp32, Datatype::Fp32 | Datatype::Fp64)
                | (Datatype::Fp64, Datatype::Fp64)
        )
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in [
            Datatype::Bool,
            Datatype::Int32,
            Datatype::Int64,
            Datatype::Fp32,
            Datatype::Fp64,
        ] {
            assert_eq!(Datatype::parse(d.as_str()), Ok(d));
        }
        assert!(
            Datatype::parse("BYTES")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(Datatype::parse("fp32").unwrap_err().contains("unknown"));
    }

    #[test]
    fn only_lossless_widening() {
        assert!(Datatype::Fp32.widens_to(Datatype::Fp64));
        assert!(Datatype::Int32.widens_to(Datatype::Int64));
        assert!(!Datatype::Fp64.widens_to(Datatype::Fp32));
        assert!(!Datatype::Int64.widens_to(Datatype::Fp32));
        assert!(!Datatype::Int32.widens_to(Datatype::Fp32));
        assert!(!Datatype::Bool.widens_to(Datatype::Int32));
    }
}
