//! Tests of JSON tensor data, read generically and straight into typed buffers.

use super::*;

fn parse(s: &str) -> JsonData {
    serde_json::from_str(s).unwrap()
}

#[test]
fn flat_and_nested() {
    let d = parse("[1, 2.5, 3]");
    assert_eq!(d.dims, vec![3]);
    assert!(!d.is_nested());
    assert_eq!(
        d.into_tensor_data(Datatype::Fp32).unwrap(),
        TensorData::Fp32(vec![1.0, 2.5, 3.0])
    );
    let d = parse("[[1, 2], [3, 4], [5, 6]]");
    assert_eq!(d.dims, vec![3, 2]);
    assert!(d.is_nested());
    assert_eq!(
        d.into_tensor_data(Datatype::Int64).unwrap(),
        TensorData::Int64(vec![1, 2, 3, 4, 5, 6])
    );
}

#[test]
fn ragged_is_flagged() {
    assert_eq!(parse("[[1, 2], [3]]").problem, Some(Problem::Ragged));
    assert_eq!(parse("[[1, 2], 3]").problem, Some(Problem::Ragged));
    assert_eq!(parse("[1, [2, 3]]").problem, Some(Problem::Ragged));
    assert_eq!(parse("[[1], []]").problem, Some(Problem::Ragged));
}

#[test]
fn non_numbers_are_flagged_not_failed() {
    let d = parse(r#"[[1, "NaN"], [null, {"a": [1]}]]"#);
    assert!(matches!(d.problem, Some(Problem::NotAScalar(ref s)) if s.contains("NaN")));
    let e = d.into_tensor_data(Datatype::Fp32).unwrap_err();
    assert!(e.contains("NaN") && e.contains("FP32"), "{e}");
    assert_eq!(parse("5").problem, Some(Problem::NotAList));
}

#[test]
fn value_checks() {
    assert!(parse("[1.5]").into_tensor_data(Datatype::Int64).is_err());
    assert!(
        parse("[3000000000]")
            .into_tensor_data(Datatype::Int32)
            .is_err()
    );
    assert!(
        parse("[18446744073709551615]")
            .into_tensor_data(Datatype::Int64)
            .is_err()
    );
    assert!(parse("[1e39]").into_tensor_data(Datatype::Fp32).is_err());
    assert!(parse("[1e39]").into_tensor_data(Datatype::Fp64).is_ok());
    assert!(parse("[true]").into_tensor_data(Datatype::Fp32).is_err());
    assert!(parse("[1]").into_tensor_data(Datatype::Bool).is_err());
    assert_eq!(
        parse("[true, false]")
            .into_tensor_data(Datatype::Bool)
            .unwrap(),
        TensorData::Bool(vec![true, false])
    );
}

#[test]
fn empty() {
    let d = parse("[]");
    assert_eq!(d.dims, vec![0]);
    assert!(d.problem.is_none());
    let d = parse("[[]]");
    assert_eq!(d.dims, vec![1, 0]);
}
