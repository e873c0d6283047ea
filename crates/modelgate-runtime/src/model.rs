//! A loaded model: its optimized tract plan and the metadata the protocols
//! report and validate against. Immutable once built; shared by `Arc`.

use std::sync::Arc;

use modelgate_core::ModelName;
use tract_onnx::prelude::{TValue, TVec, TypedRunnableModel};

use crate::reload::Fingerprint;
use crate::{Datatype, OutputTensor, TensorData};

/// One dimension of a model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    /// A variable dimension; inputs sharing a symbol index must agree on it.
    Var(usize),
}

/// A model input as the protocols describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub name: String,
    pub datatype: Datatype,
    pub dims: Vec<Dim>,
}

impl InputSpec {
    /// The OIP shape: variable dimensions are -1.
    pub fn shape(&self) -> Vec<i64> {
        self.dims
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => i64::try_from(*n).unwrap_or(i64::MAX),
                Dim::Var(_) => -1,
            })
            .collect()
    }
}

/// Class labels of a classifier's probability output, from the ONNX ZipMap
/// node (`classlabels_int64s` / `classlabels_strings`) or `model.yaml` `labels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassLabels {
    Int(Vec<i64>),
    Text(Vec<String>),
}

impl ClassLabels {
    pub fn len(&self) -> usize {
        match self {
            ClassLabels::Int(v) => v.len(),
            ClassLabels::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A model output as the protocols describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    pub name: String,
    pub datatype: Datatype,
    /// OIP shape: variable dimensions are -1.
    pub shape: Vec<i64>,
    /// Set on a ZipMap-fed probability output (served as FP32 `[N, C]`).
    pub class_labels: Option<ClassLabels>,
}

/// A model ready to run.
pub struct LoadedModel {
    pub name: ModelName,
    pub version: String,
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<OutputSpec>,
    /// Number of distinct variable-dimension symbols in `inputs`.
    pub symbols: usize,
    /// The symbol of the first input's first dimension, if variable: the batch.
    pub batch_symbol: Option<usize>,
    pub max_batch_size: Option<usize>,
    pub(crate) plan: Arc<TypedRunnableModel>,
    pub(crate) fingerprint: Fingerprint,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl LoadedModel {
    /// Runs the plan on inputs already validated and ordered like
    /// `self.inputs`. Blocking and CPU-bound: call it on the inference pool.
    pub fn run(&self, inputs: TVec<TValue>) -> Result<Vec<OutputTensor>, String> {
        let outs = self.plan.run(inputs).map_err(|e| format!("{e:#}"))?;
        outs.iter()
            .enumerate()
            .map(|(index, v)| {
                Ok(OutputTensor {
                    index,
                    shape: v.shape().to_vec(),
                    data: TensorData::from_tract(v)?,
                })
            })
            .collect()
    }

    /// Index of the output called `name`.
    pub fn output_index(&self, name: &str) -> Option<usize> {
        self.outputs.iter().position(|o| o.name == name)
    }
}
