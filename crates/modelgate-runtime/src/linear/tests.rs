//! The native kernel against tract: the sklearn fixtures and hand-built
//! linear graphs (binary layout, every post-transform and norm, multi-target
//! regression) on random inputs; graphs it must not take; inputs it declines.

use prost::Message;
use tract_onnx::pb::{self, tensor_shape_proto::dimension, type_proto};
use tract_onnx::prelude::{IntoTValue, Tensor, tvec};

use super::LinearKernel;
use super::check::{agrees, probe};
use crate::load::{load, tests::fixture};
use crate::model::{LoadedModel, WorkerContext};
use crate::{BuiltinModelSpec, TensorData};

/// xorshift floats in [-10, 10): reproducible random inputs.
fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) % 20_000) as f32 / 1000.0 - 10.0
        })
        .collect()
}

fn assert_agrees_on_random(m: &LoadedModel) {
    let Some(k) = m.native.as_ref() else {
        let names: Vec<String> = m.outputs.iter().map(|o| o.name.clone()).collect();
        panic!("no native kernel; outputs {names:?}")
    };
    let mut served = 0;
    for (rows, seed) in [(1, 1), (2, 2), (3, 3), (5, 6), (17, 4), (64, 5)] {
        let x = random(rows * k.features, seed);
        // A near-tie between classes is left to tract.
        let ok = agrees(k, &m.outputs, &m.plan, &x, rows)
            .unwrap_or_else(|e| panic!("{}: {rows} rows: {e}", m.name));
        served += usize::from(ok);
    }
    assert!(
        served >= 4,
        "{}: the kernel served {served} of 6 batches",
        m.name
    );
}

#[test]
fn sklearn_linear_fixtures_run_natively_and_match_tract() {
    for name in ["iris-logreg", "iris-logreg-nozipmap", "iris-linreg"] {
        let m = load(&fixture(name)).unwrap();
        assert_agrees_on_random(&m);
    }
    for name in ["iris-rf", "typed"] {
        assert!(load(&fixture(name)).unwrap().native.is_none(), "{name}");
    }
}

#[test]
fn iris_answers_are_the_reference_ones() {
    let m = load(&fixture("iris-logreg")).unwrap();
    let x = tvec![
        Tensor::from_shape(&[2, 4], &[6.8f32, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6])
            .unwrap()
            .into_tvalue()
    ];
    let out = m.native.as_ref().unwrap().run(&x).unwrap();
    assert_eq!(out[0].data, TensorData::Int64(vec![1, 1]));
    assert_eq!(out[1].shape.as_slice(), [2, 3]);
    let TensorData::Fp32(p) = &out[1].data else {
        panic!("probabilities are FP32")
    };
    for row in p.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
    }
}

#[test]
fn non_finite_inputs_and_overflow_go_to_tract() {
    let m = load(&fixture("iris-logreg")).unwrap();
    let k = m.native.as_ref().unwrap();
    let mut ctx = WorkerContext::default();
    for bad in [f32::NAN, f32::INFINITY, f32::MIN, 3.0e38] {
        let x = [bad, 1.0, 2.0, 3.0];
        let values = tvec![Tensor::from_shape(&[1, 4], &x).unwrap().into_tvalue()];
        if bad.is_finite() {
            // Huge but finite: the kernel answers as tract, or leaves it to tract.
            agrees(k, &m.outputs, &m.plan, &x, 1).unwrap();
        } else {
            assert!(k.run(&values).is_none(), "{bad}");
        }
        // The model still answers, exactly as tract does.
        let via_model = m.run(&mut ctx, values.clone());
        let via_plan = m.run_plan(&mut ctx, values);
        assert_eq!(via_model.is_ok(), via_plan.is_ok());
        if let (Ok(a), Ok(b)) = (via_model, via_plan) {
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
    }
    // Wrong shapes or types are declined, never a panic.
    let wrong = [
        Tensor::from_shape(&[1, 3], &[1f32, 2.0, 3.0]).unwrap(),
        Tensor::from_shape(&[4], &[1f32, 2.0, 3.0, 4.0]).unwrap(),
        Tensor::from_shape(&[1, 4], &[1f64, 2.0, 3.0, 4.0]).unwrap(),
    ];
    for t in wrong {
        assert!(k.run(&tvec![t.into_tvalue()]).is_none());
    }
    assert!(k.run(&tvec![]).is_none());
}

// --- hand-built graphs --------------------------------------------------

fn attr_floats(name: &str, v: &[f32]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Floats as i32,
        floats: v.to_vec(),
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn attr_str(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::String as i32,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, ins: &[&str], outs: &[&str], attrs: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        domain: if matches!(op, "Cast" | "Identity") {
            String::new()
        } else {
            "ai.onnx.ml".into()
        },
        name: outs.join("_"),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: outs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn graph(features: i64, nodes: Vec<pb::NodeProto>, outputs: &[&str]) -> pb::GraphProto {
    let dim = |v: Option<i64>| pb::tensor_shape_proto::Dimension {
        value: Some(match v {
            Some(v) => dimension::Value::DimValue(v),
            None => dimension::Value::DimParam("N".into()),
        }),
        ..Default::default()
    };
    let input = pb::ValueInfoProto {
        name: "x".into(),
        r#type: Some(pb::TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![dim(None), dim(Some(features))],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    pb::GraphProto {
        name: "g".into(),
        node: nodes,
        input: vec![input],
        output: outputs
            .iter()
            .map(|n| pb::ValueInfoProto {
                name: n.to_string(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn model_of(graph: pb::GraphProto) -> (tempfile::TempDir, LoadedModel) {
    let proto = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![
            pb::OperatorSetIdProto {
                domain: String::new(),
                version: 15,
            },
            pb::OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 1,
            },
        ],
        graph: Some(graph),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = BuiltinModelSpec::new(modelgate_core::ModelName::parse("g").unwrap(), dir.path());
    std::fs::write(spec.model_file(), proto.encode_to_vec()).unwrap();
    let m = load(&spec).unwrap();
    (dir, m)
}

fn classifier(features: usize, labels: &[i64], models: usize, post: &str) -> pb::NodeProto {
    // Small weights: scores of a few units, so probabilities do not saturate.
    let coef: Vec<f32> = random(features * models, 99)
        .iter()
        .map(|c| c / 40.0)
        .collect();
    let intercepts: Vec<f32> = random(models, 7).iter().map(|c| c / 10.0).collect();
    node(
        "LinearClassifier",
        &["x"],
        &["label", "scores"],
        vec![
            attr_ints("classlabels_ints", labels),
            attr_floats("coefficients", &coef),
            attr_floats("intercepts", &intercepts),
            attr_str("post_transform", post),
        ],
    )
}

#[test]
fn binary_and_multiclass_layouts_with_every_post_transform() {
    for post in ["NONE", "SOFTMAX", "LOGISTIC"] {
        let (_d, m) = model_of(graph(
            3,
            vec![classifier(3, &[4, 9], 1, post)],
            &["label", "scores"],
        ));
        assert_agrees_on_random(&m);
        let (_d, m) = model_of(graph(
            5,
            vec![classifier(5, &[10, 20, 30, 40], 4, post)],
            &["scores", "label"],
        ));
        assert_agrees_on_random(&m);
    }
}

#[test]
fn normalizers_casts_and_identities() {
    for norm in ["MAX", "L1", "L2"] {
        let nodes = vec![
            classifier(4, &[0, 1, 2], 3, "LOGISTIC"),
            node("Cast", &["label"], &["label64"], vec![attr_int("to", 7)]),
            node(
                "Normalizer",
                &["scores"],
                &["normed"],
                vec![attr_str("norm", norm)],
            ),
            node("Identity", &["normed"], &["probs"], vec![]),
        ];
        let (_d, m) = model_of(graph(4, nodes, &["label64", "probs", "scores"]));
        assert_agrees_on_random(&m);
    }
}

#[test]
fn multi_target_regressor() {
    for post in ["NONE", "SOFTMAX", "LOGISTIC"] {
        let n = node(
            "LinearRegressor",
            &["x"],
            &["y"],
            vec![
                attr_floats("coefficients", &random(6, 3)),
                attr_floats("intercepts", &[0.5, -1.5]),
                attr_int("targets", 2),
                attr_str("post_transform", post),
            ],
        );
        let (_d, m) = model_of(graph(3, vec![n], &["y"]));
        assert_agrees_on_random(&m);
    }
}

#[test]
fn other_graphs_are_left_to_tract() {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases = [
        // Cast of the label to a type the kernel does not produce.
        graph(
            4,
            vec![
                classifier(4, &[0, 1, 2], 3, "NONE"),
                node("Cast", &["label"], &["l32"], vec![attr_int("to", 6)]),
            ],
            &["l32"],
        ),
        // An unsupported post-transform.
        graph(4, vec![classifier(4, &[0, 1, 2], 3, "PROBIT")], &["label"]),
        // Coefficients that do not fit the declared features.
        graph(5, vec![classifier(4, &[0, 1, 2], 3, "NONE")], &["label"]),
        // Class count and model count disagree.
        graph(4, vec![classifier(4, &[0, 1, 2], 2, "NONE")], &["label"]),
        // Any other operator.
        graph(
            4,
            vec![
                classifier(4, &[0, 1, 2], 3, "NONE"),
                node("Abs", &["scores"], &["a"], vec![]),
            ],
            &["a"],
        ),
        // Graph output that no node produces.
        graph(4, vec![classifier(4, &[0, 1, 2], 3, "NONE")], &["nope"]),
    ];
    for (i, g) in cases.iter().enumerate() {
        let outs: Vec<String> = g.output.iter().map(|o| o.name.clone()).collect();
        assert!(LinearKernel::from_graph(g, &outs).is_none(), "case {i}");
    }
    let mut strings = classifier(4, &[0, 1], 2, "NONE");
    strings.attribute.retain(|a| a.name != "classlabels_ints");
    strings.attribute.push(pb::AttributeProto {
        name: "classlabels_strings".into(),
        strings: vec![b"a".to_vec(), b"b".to_vec()],
        ..Default::default()
    });
    let g = graph(4, vec![strings], &["label"]);
    assert!(LinearKernel::from_graph(&g, &names(&["label"])).is_none());
}

#[test]
fn probe_values_are_finite_and_spread() {
    let p = probe(64);
    assert!(p.iter().all(|v| v.is_finite() && (-4.0..8.0).contains(v)));
    assert!(p.windows(2).any(|w| w[0] != w[1]));
}

#[test]
fn near_ties_are_left_to_tract() {
    // Two identical classes: every row is a tie.
    let n = node(
        "LinearClassifier",
        &["x"],
        &["label", "scores"],
        vec![
            attr_ints("classlabels_ints", &[0, 1, 2]),
            attr_floats("coefficients", &[1.0, 2.0, 1.0, 2.0, -1.0, 0.5]),
            attr_floats("intercepts", &[0.0, 0.0, 0.0]),
        ],
    );
    let g = graph(2, vec![n], &["label"]);
    let k = LinearKernel::from_graph(&g, &["label".to_string()]).unwrap();
    let values = tvec![
        Tensor::from_shape(&[1, 2], &[3f32, 1.0])
            .unwrap()
            .into_tvalue()
    ];
    assert!(k.run(&values).is_none());
    // Loading it keeps tract: no probe is ever served natively.
    let (_d, m) = model_of(g);
    assert!(m.native.is_none());
}
