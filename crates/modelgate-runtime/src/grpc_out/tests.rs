//! The directly written answer is byte for byte prost's encoding of the
//! message the generated server's path builds, for every datatype, raw or
//! typed, with empty and non-empty ids, names and shapes.

use prost::Message;

use super::Answer;
use crate::load::{load, tests::fixture};
use crate::{OutputTensor, TensorData};

fn output(index: usize, shape: &[usize], data: TensorData) -> OutputTensor {
    OutputTensor {
        index,
        shape: shape.into(),
        data,
    }
}

#[test]
fn frame_is_what_prost_encodes() {
    let iris = load(&fixture("iris-logreg")).unwrap();
    let typed = load(&fixture("typed")).unwrap();
    let sets = vec![
        vec![
            output(0, &[2], TensorData::Int64(vec![1, 2])),
            output(
                1,
                &[2, 3],
                TensorData::Fp32(vec![0.1, 0.2, 0.7, 1e-30, -0.0, 1.0]),
            ),
        ],
        vec![output(1, &[1, 3], TensorData::Fp32(vec![0.5, 0.25, 0.25]))],
        vec![
            output(0, &[1, 2], TensorData::Fp64(vec![f64::MAX, -1.5])),
            output(1, &[1, 2], TensorData::Int32(vec![i32::MIN, -1])),
            output(2, &[1, 2], TensorData::Int64(vec![i64::MIN, i64::MAX])),
            output(3, &[1, 2], TensorData::Bool(vec![true, false])),
        ],
        // Empty elements and shape, a scalar, a huge dimension, an index
        // past the model's outputs (no name).
        vec![
            output(0, &[], TensorData::Fp32(vec![])),
            output(0, &[0], TensorData::Bool(vec![])),
            output(7, &[usize::MAX, 300, 1], TensorData::Int32(vec![5])),
        ],
        vec![],
    ];
    for model in [&iris, &typed] {
        for outputs in &sets {
            for raw in [false, true] {
                for id in ["", "req-1", &"x".repeat(300)] {
                    let got = Answer {
                        model,
                        id,
                        outputs,
                        raw,
                    }
                    .frame();
                    let msg = crate::grpc::response(model, id.to_string(), outputs.clone(), raw)
                        .encode_to_vec();
                    let mut want = vec![0u8];
                    want.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
                    want.extend_from_slice(&msg);
                    assert_eq!(
                        &got[..],
                        &want[..],
                        "{} raw={raw} id={id:?} {outputs:?}",
                        model.name
                    );
                }
            }
        }
    }
}
