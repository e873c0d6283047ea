//! Protocol-independent inference: check decoded inputs against the model
//! (names, datatypes, shapes, batch limits), order them, and pick outputs.
//! Every refusal is a `BadRequest` naming the input or output.

use modelgate_core::Reject;
use tract_onnx::prelude::{IntoTValue, TValue, TVec};
use tract_onnx::tract_core::internal::tract_smallvec::SmallVec;

use crate::model::{Dim, LoadedModel};
use crate::{InputTensor, OutputTensor, TensorData};

fn bad(msg: String) -> Reject {
    Reject::BadRequest(msg)
}

/// Request inputs checked against a model, in the model's input order, still
/// as typed elements: the native kernel reads them in place, and only a
/// tract run turns them into tensors ([`Checked::into_tract`]).
#[derive(Debug)]
pub struct Checked {
    /// One inline slot (most models take one input): a small value to move
    /// into the inference future.
    inputs: SmallVec<[(TVec<usize>, TensorData); 1]>,
}

impl Checked {
    /// The only input, when it is FP32: its shape and elements.
    pub fn single_f32(&self) -> Option<(&[usize], &[f32])> {
        match self.inputs.as_slice() {
            [(shape, TensorData::Fp32(x))] => Some((shape, x)),
            _ => None,
        }
    }

    /// Tract values, in the model's input order (moves the elements).
    pub fn into_tract(self) -> Result<TVec<TValue>, Reject> {
        let mut values = TVec::new();
        for (shape, data) in self.inputs {
            let tensor = data.into_tensor(&shape).map_err(|e| Reject::Internal {
                detail: format!("building an input tensor: {e}"),
            })?;
            values.push(tensor.into_tvalue());
        }
        Ok(values)
    }
}

/// Validates `inputs` against `model` and returns tract values in the model's
/// input order (what [`check`] returns, as tensors).
#[cfg(test)]
pub fn prepare(model: &LoadedModel, inputs: Vec<InputTensor<'_>>) -> Result<TVec<TValue>, Reject> {
    check(model, inputs)?.into_tract()
}

/// Validates `inputs` against `model` and orders them like the model's inputs.
///
/// A model with one input takes one request tensor under any name, as
/// MLServer and the KServe sklearn server do (the KServe docs' iris body names
/// it `input-0`, Seldon's `predict`); a model with several inputs needs each
/// by its own name.
pub fn check<'a>(
    model: &LoadedModel,
    inputs: impl IntoIterator<Item = InputTensor<'a>, IntoIter: ExactSizeIterator>,
) -> Result<Checked, Reject> {
    let mut inputs = inputs.into_iter();
    let mut bound: TVec<Option<usize>> = (0..model.symbols).map(|_| None).collect();
    let mut checked = SmallVec::new();
    // One input for a one-input model (the usual call): taken under any
    // name, nothing to order, nothing missing or given twice.
    if model.inputs.len() == 1 && inputs.len() == 1 {
        if let Some(input) = inputs.next() {
            checked.push(check_one(model, 0, input, &mut bound)?);
        }
        return Ok(Checked { inputs: checked });
    }
    let mut slots: TVec<Option<(TVec<usize>, TensorData)>> =
        model.inputs.iter().map(|_| None).collect();
    for input in inputs {
        let Some(idx) = model.inputs.iter().position(|s| s.name == input.name) else {
            return Err(bad(format!(
                "unexpected inference input '{}' for model '{}'",
                shown(&input.name),
                model.name
            )));
        };
        if slots[idx].is_some() {
            let name = &model.inputs[idx].name;
            return Err(bad(format!("input '{name}' is given more than once")));
        }
        slots[idx] = Some(check_one(model, idx, input, &mut bound)?);
    }
    for (spec, slot) in model.inputs.iter().zip(slots) {
        let Some(input) = slot else {
            return Err(bad(format!(
                "missing inference input '{}' for model '{}'",
                spec.name, model.name
            )));
        };
        checked.push(input);
    }
    Ok(Checked { inputs: checked })
}

/// Checks one request input against model input `idx`: datatype, shape,
/// element count; widens its elements to the model's datatype.
fn check_one(
    model: &LoadedModel,
    idx: usize,
    input: InputTensor<'_>,
    bound: &mut [Option<usize>],
) -> Result<(TVec<usize>, TensorData), Reject> {
    let spec = &model.inputs[idx];
    let name = &spec.name;
    let declared = input.data.datatype();
    if !declared.widens_to(spec.datatype) {
        return Err(bad(format!(
            "input '{name}': datatype {declared} does not match the model's {}",
            spec.datatype
        )));
    }
    let shape = check_shape(model, idx, &input.shape, bound)?;
    let volume = shape
        .iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(*d))
        .ok_or_else(|| bad(format!("input '{name}': shape is too large")))?;
    if volume == 0 {
        return Err(bad(format!(
            "input '{name}': empty tensor (shape {:?})",
            input.shape
        )));
    }
    if input.data.len() != volume {
        return Err(bad(format!(
            "input '{name}': shape {:?} needs {volume} values, data has {}",
            input.shape,
            input.data.len()
        )));
    }
    let data = input.data.widen(spec.datatype).ok_or_else(|| {
        bad(format!(
            "input '{name}': cannot convert {declared} to {}",
            spec.datatype
        ))
    })?;
    Ok((shape, data))
}

/// Checks a request shape against input `idx` of `model`, binding variable
/// dimensions (the same symbol must get the same size in every input).
fn check_shape(
    model: &LoadedModel,
    idx: usize,
    shape: &[i64],
    bound: &mut [Option<usize>],
) -> Result<TVec<usize>, Reject> {
    let spec = &model.inputs[idx];
    let name = &spec.name;
    if shape.len() != spec.dims.len() {
        return Err(bad(format!(
            "input '{name}': shape {shape:?} has rank {}, the model expects {:?}",
            shape.len(),
            spec.shape()
        )));
    }
    let mut out = TVec::new();
    for (axis, (&got, want)) in shape.iter().zip(&spec.dims).enumerate() {
        let got = usize::try_from(got).map_err(|_| {
            bad(format!(
                "input '{name}': negative dimension in shape {shape:?}"
            ))
        })?;
        match *want {
            Dim::Fixed(n) if n != got => {
                return Err(bad(format!(
                    "input '{name}': shape {shape:?} does not match the model's {:?} at axis {axis}",
                    spec.shape()
                )));
            }
            Dim::Fixed(_) => {}
            Dim::Var(sym) => {
                match bound.get(sym).copied().flatten() {
                    Some(b) if b != got => {
                        return Err(bad(format!(
                            "input '{name}': dimension {axis} is {got}, another input has {b}"
                        )));
                    }
                    Some(_) => {}
                    None => {
                        if let Some(slot) = bound.get_mut(sym) {
                            *slot = Some(got);
                        }
                    }
                }
                if model.batch_symbol == Some(sym)
                    && let Some(max) = model.max_batch_size
                    && got > max
                {
                    return Err(bad(format!(
                        "input '{name}': batch of {got} exceeds the model's max_batch_size {max}"
                    )));
                }
            }
        }
        out.push(got);
    }
    Ok(out)
}

/// Indexes of the outputs to return: the requested ones in request order, or
/// all of them.
pub fn select_outputs<'a>(
    model: &LoadedModel,
    requested: impl IntoIterator<Item = &'a str>,
) -> Result<TVec<usize>, Reject> {
    let mut picked = TVec::new();
    for name in requested {
        let idx = model.output_index(name).ok_or_else(|| {
            bad(format!(
                "unexpected inference output '{}' for model '{}'",
                shown(name),
                model.name
            ))
        })?;
        if !picked.contains(&idx) {
            picked.push(idx);
        }
    }
    if picked.is_empty() {
        picked = (0..model.outputs.len()).collect();
    }
    Ok(picked)
}

/// Keeps `outputs` at `picked` indexes, in that order.
pub fn pick(outputs: Vec<OutputTensor>, picked: &[usize]) -> Vec<OutputTensor> {
    // All of them in order (no `outputs` in the request): nothing to move.
    if picked.len() == outputs.len() && picked.iter().enumerate().all(|(i, p)| i == *p) {
        return outputs;
    }
    let mut slots: Vec<Option<OutputTensor>> = outputs.into_iter().map(Some).collect();
    picked
        .iter()
        .filter_map(|i| slots.get_mut(*i).and_then(Option::take))
        .collect()
}

/// A client-supplied name, shortened for error messages.
pub fn shown(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{load, tests::fixture};
    use crate::{TensorData, settings::BuiltinModelSpec};

    fn input<'a>(name: &'a str, shape: &[i64], data: TensorData) -> InputTensor<'a> {
        InputTensor {
            name: name.into(),
            shape: shape.to_vec(),
            data,
        }
    }

    fn bad_request(r: Result<TVec<TValue>, Reject>) -> String {
        match r {
            Err(Reject::BadRequest(m)) => m,
            Err(other) => panic!("expected BadRequest, got {other:?}"),
            Ok(_) => panic!("expected BadRequest, got Ok"),
        }
    }

    #[test]
    fn each_bad_input_names_the_input() {
        let m = load(&fixture("iris-logreg")).unwrap();
        let rows = |n: usize| TensorData::Fp32(vec![1.0; n]);
        let cases: Vec<(Vec<InputTensor>, &str)> = vec![
            (
                vec![
                    input("x", &[1, 4], rows(4)),
                    input("input", &[1, 4], rows(4)),
                ],
                "unexpected inference input 'x'",
            ),
            (vec![], "missing inference input 'input'"),
            (
                vec![input("input", &[1, 4], TensorData::Fp64(vec![1.0; 4]))],
                "input 'input': datatype FP64 does not match the model's FP32",
            ),
            (
                vec![input("input", &[2, 4], rows(7))],
                "input 'input': shape [2, 4] needs 8 values, data has 7",
            ),
            (
                vec![input("input", &[1, 5], rows(5))],
                "input 'input': shape [1, 5] does not match",
            ),
            (
                vec![input("input", &[4], rows(4))],
                "input 'input': shape [4] has rank 1",
            ),
            (
                vec![input("input", &[0, 4], rows(0))],
                "input 'input': empty tensor",
            ),
            (
                vec![input("input", &[-1, 4], rows(4))],
                "input 'input': negative dimension",
            ),
            (
                vec![input("input", &[i64::MAX, 4], rows(4))],
                "input 'input': shape is too large",
            ),
            (
                vec![
                    input("input", &[1, 4], rows(4)),
                    input("input", &[1, 4], rows(4)),
                ],
                "input 'input' is given more than once",
            ),
        ];
        for (inputs, want) in cases {
            let got = bad_request(prepare(&m, inputs));
            assert!(got.contains(want), "{got:?} should contain {want:?}");
        }
    }

    #[test]
    fn batch_limits_and_shared_symbols() {
        let dir = tempfile::tempdir().unwrap();
        let spec =
            BuiltinModelSpec::new(modelgate_core::ModelName::parse("m").unwrap(), dir.path());
        std::fs::copy(fixture("iris-logreg").model_file(), spec.model_file()).unwrap();
        std::fs::write(spec.settings_file(), "max_batch_size: 2\n").unwrap();
        let m = load(&spec).unwrap();
        assert!(
            prepare(
                &m,
                vec![input("input", &[2, 4], TensorData::Fp32(vec![0.0; 8]))]
            )
            .is_ok()
        );
        let e = bad_request(prepare(
            &m,
            vec![input("input", &[3, 4], TensorData::Fp32(vec![0.0; 12]))],
        ));
        assert!(e.contains("max_batch_size 2"), "{e}");

        let typed = load(&fixture("typed")).unwrap();
        let e = bad_request(prepare(
            &typed,
            vec![
                input("f64_in", &[1, 2], TensorData::Fp64(vec![0.0; 2])),
                input("i32_in", &[2, 2], TensorData::Int32(vec![0; 4])),
                input("i64_in", &[1, 2], TensorData::Int64(vec![0; 2])),
                input("bool_in", &[1, 2], TensorData::Bool(vec![true; 2])),
            ],
        ));
        assert!(
            e.contains("input 'i32_in': dimension 0 is 2, another input has 1"),
            "{e}"
        );
    }

    #[test]
    fn one_input_model_takes_any_name_several_inputs_stay_strict() {
        let m = load(&fixture("iris-logreg")).unwrap();
        let rows = || TensorData::Fp32(vec![6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6]);
        let mut ctx = crate::model::WorkerContext::default();
        let by_name = m
            .run(
                &mut ctx,
                prepare(&m, vec![input("input", &[2, 4], rows())]).unwrap(),
            )
            .unwrap();
        for name in ["input-0", "predict", ""] {
            let values = prepare(&m, vec![input(name, &[2, 4], rows())]).unwrap();
            let out = m.run(&mut ctx, values).unwrap();
            assert_eq!(out[0].data, by_name[0].data, "input named {name:?}");
            assert_eq!(out[0].data, TensorData::Int64(vec![1, 1]));
        }

        let typed = load(&fixture("typed")).unwrap();
        let e = bad_request(prepare(
            &typed,
            vec![
                input("f64", &[1, 2], TensorData::Fp64(vec![0.0; 2])),
                input("i32_in", &[1, 2], TensorData::Int32(vec![0; 2])),
                input("i64_in", &[1, 2], TensorData::Int64(vec![0; 2])),
                input("bool_in", &[1, 2], TensorData::Bool(vec![true; 2])),
            ],
        ));
        assert!(e.contains("unexpected inference input 'f64'"), "{e}");
        let e = bad_request(prepare(
            &typed,
            vec![input("x", &[1, 2], TensorData::Fp64(vec![0.0; 2]))],
        ));
        assert!(e.contains("unexpected inference input 'x'"), "{e}");
    }

    #[test]
    fn lossless_widening_is_accepted() {
        let typed = load(&fixture("typed")).unwrap();
        let values = prepare(
            &typed,
            vec![
                input("f64_in", &[1, 2], TensorData::Fp32(vec![0.5, 1.0])),
                input("i32_in", &[1, 2], TensorData::Int32(vec![1, 2])),
                input("i64_in", &[1, 2], TensorData::Int32(vec![3, 4])),
                input("bool_in", &[1, 2], TensorData::Bool(vec![true, false])),
            ],
        )
        .unwrap();
        let out = typed
            .run(&mut crate::model::WorkerContext::default(), values)
            .unwrap();
        assert_eq!(out[0].data, TensorData::Fp64(vec![1.0, 2.0]));
        assert_eq!(out[2].data, TensorData::Int64(vec![4, 5]));
        assert_eq!(out[3].data, TensorData::Bool(vec![false, true]));
    }

    #[test]
    fn output_selection() {
        let m = load(&fixture("iris-logreg")).unwrap();
        assert_eq!(
            select_outputs(&m, ["probabilities"]).unwrap().as_slice(),
            [1]
        );
        assert_eq!(select_outputs(&m, []).unwrap().as_slice(), [0, 1]);
        let e = select_outputs(&m, ["nope"]).unwrap_err();
        assert_eq!(
            e,
            Reject::BadRequest("unexpected inference output 'nope' for model 'iris-logreg'".into())
        );
    }
}
