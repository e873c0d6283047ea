//! A native kernel for linear ONNX-ML graphs: one `LinearClassifier` or
//! `LinearRegressor` on the model's only input, optionally followed by
//! `Cast`, `Normalizer`, `ZipMap` and `Identity` (what sklearn-onnx emits for
//! linear models). The coefficients are read from the ONNX file at load and
//! evaluated directly, mirroring tract's expansion of these operators
//! (`tract-onnx` `ops/ml`), so a tiny model costs a few hundred instructions
//! instead of a tract plan run.
//!
//! The kernel is only used after it matched tract on probe inputs at load
//! (`load::native_kernel`), and it declines (tract runs instead) on any
//! non-finite input or result, so edge cases keep tract's behaviour.

use std::collections::HashMap;

use tract_onnx::pb::{self, type_proto};
use tract_onnx::prelude::{DatumType, TValue, TVec, tvec};

use crate::{OutputTensor, TensorData};

/// Elementwise transform of the raw scores (ONNX-ML `post_transform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Post {
    None,
    Softmax,
    Logistic,
}

/// ONNX-ML `Normalizer` `norm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Norm {
    Max,
    L1,
    L2,
}

/// What a graph value holds, in terms of the kernel's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Input,
    Label,
    Scores,
    Normalized,
}

#[derive(Debug, Clone, PartialEq)]
enum Head {
    /// Label = `labels[argmax(scores)]`; `binary`: one model, two classes,
    /// scores spread as tract's binary layout.
    Classifier {
        labels: Vec<i64>,
        binary: bool,
    },
    Regressor,
}

/// A linear model evaluated in plain Rust.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LinearKernel {
    features: usize,
    /// Number of linear models (rows of `coef`).
    models: usize,
    /// `[models][features]`, row-major.
    coef: Vec<f32>,
    intercepts: Vec<f32>,
    post: Post,
    head: Head,
    norm: Option<Norm>,
    /// What each model output (in model order) is.
    outputs: Vec<Value>,
}

/// ONNX `Cast` targets that keep the value unchanged here.
const ONNX_FLOAT: i64 = 1;
const ONNX_INT64: i64 = 7;

fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_str(node: &pb::NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

fn parse_post(node: &pb::NodeProto) -> Option<Post> {
    match attr_str(node, "post_transform").as_deref() {
        None | Some("NONE") => Some(Post::None),
        Some("SOFTMAX") => Some(Post::Softmax),
        Some("LOGISTIC") => Some(Post::Logistic),
        _ => None,
    }
}

impl LinearKernel {
    /// Recognizes a linear graph; `None` for anything else (tract serves it).
    /// `output_names` are the model's outputs in serving order.
    pub(crate) fn from_graph(graph: &pb::GraphProto, output_names: &[String]) -> Option<Self> {
        let inputs: Vec<_> = graph
            .input
            .iter()
            .filter(|i| !graph.initializer.iter().any(|t| t.name == i.name))
            .collect();
        let [input] = inputs.as_slice() else {
            return None;
        };
        let Some(type_proto::Value::TensorType(t)) =
            input.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return None;
        };
        if t.elem_type != pb::tensor_proto::DataType::Float as i32 {
            return None;
        }
        let dims = &t.shape.as_ref()?.dim;
        let [_, features] = dims.as_slice() else {
            return None;
        };
        let Some(pb::tensor_shape_proto::dimension::Value::DimValue(features)) = features.value
        else {
            return None;
        };
        let features = usize::try_from(features).ok().filter(|f| *f > 0)?;

        let mut values: HashMap<&str, Value> = HashMap::new();
        values.insert(input.name.as_str(), Value::Input);
        let mut kernel: Option<LinearKernel> = None;
        let mut norm = None;
        for node in &graph.node {
            let ins: Option<Vec<Value>> = node
                .input
                .iter()
                .map(|n| values.get(n.as_str()).copied())
                .collect();
            let ins = ins?;
            let outs: Vec<Value> = match (node.op_type.as_str(), ins.as_slice()) {
                ("LinearClassifier" | "LinearRegressor", [Value::Input]) if kernel.is_none() => {
                    let k = Self::linear_node(node, features)?;
                    let outs = match k.head {
                        Head::Classifier { .. } => vec![Value::Label, Value::Scores],
                        Head::Regressor => vec![Value::Scores],
                    };
                    kernel = Some(k);
                    outs
                }
                ("Normalizer", [Value::Scores]) if norm.is_none() => {
                    norm = Some(match attr_str(node, "norm").as_deref() {
                        None | Some("MAX") => Norm::Max,
                        Some("L1") => Norm::L1,
                        Some("L2") => Norm::L2,
                        _ => return None,
                    });
                    vec![Value::Normalized]
                }
                ("Cast", [v]) => {
                    let to = attr(node, "to")?.i;
                    match v {
                        Value::Label if to == ONNX_INT64 => vec![Value::Label],
                        Value::Scores | Value::Normalized if to == ONNX_FLOAT => vec![*v],
                        _ => return None,
                    }
                }
                ("ZipMap" | "Identity", [v]) if *v != Value::Input => vec![*v],
                _ => return None,
            };
            if outs.len() != node.output.len() {
                return None;
            }
            for (name, v) in node.output.iter().zip(outs) {
                values.insert(name.as_str(), v);
            }
        }
        let mut kernel = kernel?;
        kernel.norm = norm;
        kernel.outputs = output_names
            .iter()
            .map(|n| values.get(n.as_str()).copied())
            .collect::<Option<Vec<_>>>()?;
        if kernel.outputs.is_empty() || kernel.outputs.contains(&Value::Input) {
            return None;
        }
        Some(kernel)
    }

    /// Reads a `LinearClassifier`/`LinearRegressor` node as tract does.
    fn linear_node(node: &pb::NodeProto, features: usize) -> Option<LinearKernel> {
        if !node.domain.is_empty() && node.domain != "ai.onnx.ml" {
            return None;
        }
        let coef = attr(node, "coefficients")?.floats.clone();
        let intercepts = attr(node, "intercepts").map(|a| a.floats.clone());
        let post = parse_post(node)?;
        let (models, head) = if node.op_type == "LinearClassifier" {
            if attr(node, "classlabels_strings").is_some_and(|a| !a.strings.is_empty()) {
                return None;
            }
            let labels = attr(node, "classlabels_ints")?.ints.clone();
            let multi_class = attr(node, "multi_class").map_or(0, |a| a.i);
            let models = match &intercepts {
                Some(i) => i.len(),
                None if labels.len() == 2 && multi_class == 0 => 1,
                None => labels.len(),
            };
            let binary = labels.len() == 2 && models == 1 && multi_class == 0;
            if !binary && labels.len() != models {
                return None;
            }
            (models, Head::Classifier { labels, binary })
        } else {
            let targets = usize::try_from(attr(node, "targets").map_or(1, |a| a.i)).ok()?;
            (targets, Head::Regressor)
        };
        if models == 0 || coef.len() != models.checked_mul(features)? {
            return None;
        }
        let intercepts = match intercepts {
            Some(i) if i.len() == models => i,
            Some(_) => return None,
            None => vec![0.0; models],
        };
        Some(LinearKernel {
            features,
            models,
            coef,
            intercepts,
            post,
            head,
            norm: None,
            outputs: Vec::new(),
        })
    }

    /// Multiply-adds a run over `rows` rows costs (to keep big batches off
    /// the I/O thread).
    pub(crate) fn work(&self, rows: usize) -> usize {
        rows.saturating_mul(self.features)
            .saturating_mul(self.models)
    }

    /// Rows of a request the kernel can take: one f32 `[N, features]` input.
    pub(crate) fn rows(&self, inputs: &TVec<TValue>) -> Option<usize> {
        let [x] = inputs.as_slice() else { return None };
        if x.datum_type() != DatumType::F32 {
            return None;
        }
        self.rows_of(x.shape())
    }

    /// Rows of an FP32 input of `shape` the kernel can take: `[N, features]`.
    pub(crate) fn rows_of(&self, shape: &[usize]) -> Option<usize> {
        match shape {
            [n, f] if *f == self.features => Some(*n),
            _ => None,
        }
    }

    /// Runs the model; `None` when the input is not the kernel's or a value
    /// is not finite (tract decides those).
    pub(crate) fn run(&self, inputs: &TVec<TValue>) -> Option<Vec<OutputTensor>> {
        let rows = self.rows(inputs)?;
        let x = inputs.first()?.try_as_plain_ram().ok()?;
        let x = x.as_slice::<f32>().ok()?;
        self.eval(x, rows)
    }

    /// The outputs for `rows` rows of `x` (`rows * features` values); `None`
    /// when a value is not finite or the top classes nearly tie (tract
    /// decides those).
    pub(crate) fn eval(&self, x: &[f32], rows: usize) -> Option<Vec<OutputTensor>> {
        if x.len() != rows.checked_mul(self.features)? || !x.iter().all(|v| v.is_finite()) {
            return None;
        }
        let (width, labels) = match &self.head {
            Head::Classifier {
                binary: true,
                labels,
            } => (2, Some(labels)),
            Head::Classifier { labels, .. } => (self.models, Some(labels)),
            Head::Regressor => (self.models, None),
        };
        let mut scores = Vec::with_capacity(rows * width);
        let mut picked = Vec::with_capacity(if labels.is_some() { rows } else { 0 });
        for row in x.chunks_exact(self.features) {
            let start = scores.len();
            let dot = |w: &[f32], b: f32| row.iter().zip(w).map(|(a, c)| a * c).sum::<f32>() + b;
            match (&self.head, self.post) {
                (Head::Classifier { binary: true, .. }, post) => {
                    let r = dot(self.coef.get(..self.features)?, *self.intercepts.first()?);
                    if post == Post::Logistic {
                        let p = sigmoid(r);
                        scores.extend([1.0 - p, p]);
                    } else {
                        scores.extend([-r, r]);
                        if post == Post::Softmax {
                            softmax(&mut scores[start..]);
                        }
                    }
                }
                (_, post) => {
                    let models = self.coef.chunks_exact(self.features);
                    scores.extend(models.zip(&self.intercepts).map(|(w, b)| dot(w, *b)));
                    match post {
                        Post::None => {}
                        Post::Softmax => softmax(&mut scores[start..]),
                        Post::Logistic => scores[start..].iter_mut().for_each(|v| *v = sigmoid(*v)),
                    }
                }
            }
            let row_scores = &scores[start..];
            if !row_scores.iter().all(|v| v.is_finite()) {
                return None;
            }
            if let Some(labels) = labels {
                picked.push(*labels.get(argmax(row_scores)?)?);
            }
        }
        let labels = labels.map(|_| picked);
        let normalized = self.norm.map(|n| {
            let mut v = scores.clone();
            for row in v.chunks_exact_mut(width) {
                normalize(n, row);
            }
            v
        });
        let (mut labels, mut scores, mut normalized) = (labels, Some(scores), normalized);
        self.outputs
            .iter()
            .enumerate()
            .map(|(index, v)| {
                // The last output of a value takes it; earlier ones copy it.
                let last = !self.outputs[index + 1..].contains(v);
                let (shape, data) = match v {
                    Value::Label => (tvec![rows], TensorData::Int64(take(&mut labels, last)?)),
                    Value::Scores => (
                        tvec![rows, width],
                        TensorData::Fp32(take(&mut scores, last)?),
                    ),
                    Value::Normalized => (
                        tvec![rows, width],
                        TensorData::Fp32(take(&mut normalized, last)?),
                    ),
                    Value::Input => return None,
                };
                Some(OutputTensor { index, shape, data })
            })
            .collect()
    }
}

fn take<T: Clone>(slot: &mut Option<T>, last: bool) -> Option<T> {
    if last { slot.take() } else { slot.clone() }
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}

/// Index of the first maximum (tract's `ArgMax(false)`); `None` on a
/// near-tie, where rounding differences between this code and tract's
/// (e.g. saturated probabilities) could pick another class: tract decides.
fn argmax(v: &[f32]) -> Option<usize> {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    let top = v[best];
    let margin = 1e-5 * top.abs().max(1.0);
    let tied = v
        .iter()
        .enumerate()
        .any(|(i, x)| i != best && *x >= top - margin);
    (!tied).then_some(best)
}

/// As tract's `Normalizer` expansion: divide by the norm, clamped at 1e-12.
fn normalize(norm: Norm, row: &mut [f32]) {
    const EPS: f32 = 1e-12;
    match norm {
        Norm::Max => {
            let d = row
                .iter()
                .map(|x| x.abs())
                .fold(f32::NEG_INFINITY, f32::max);
            let d = d.max(EPS);
            row.iter_mut().for_each(|x| *x /= d);
        }
        Norm::L1 => {
            let d = row.iter().map(|x| x.abs()).sum::<f32>().max(EPS);
            row.iter_mut().for_each(|x| *x /= d);
        }
        Norm::L2 => {
            let ss = row.iter().map(|x| x * x).sum::<f32>().max(EPS);
            let inv = 1.0 / ss.sqrt();
            row.iter_mut().for_each(|x| *x *= inv);
        }
    }
}

mod check;

pub(crate) use check::checked_kernel;

#[cfg(test)]
mod tests;
