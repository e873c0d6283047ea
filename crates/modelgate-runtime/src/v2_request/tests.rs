//! Tests of the V2 request decoder: the typed path (datatype before data)
//! answers exactly as the generic one (datatype after data), and adversarial
//! bodies are refused with the input named, or as invalid JSON.

use bytes::Bytes;

use super::*;

/// Decodes the one input of `body`: the JSON error, or the decode result.
fn decode(body: &str) -> Result<Result<InputTensor<'static>, Reject>, String> {
    let req: InferRequest<'_> = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let mut inputs = req.inputs.into_iter();
    let input = inputs.next().ok_or("no input")?;
    Ok(
        decode_input(input, &mut Tail::new(Bytes::new())).map(|t| InputTensor {
            name: Cow::Owned(t.name.into_owned()),
            shape: t.shape,
            data: t.data,
        }),
    )
}

fn body(datatype_first: bool, datatype: &str, shape: &str, data: &str) -> String {
    if datatype_first {
        format!(
            r#"{{"inputs": [{{"name": "x", "shape": {shape}, "datatype": "{datatype}", "data": {data}}}]}}"#
        )
    } else {
        format!(
            r#"{{"inputs": [{{"data": {data}, "name": "x", "shape": {shape}, "datatype": "{datatype}"}}]}}"#
        )
    }
}

fn message(r: &Result<InputTensor<'_>, Reject>) -> String {
    match r {
        Ok(t) => format!("ok {t:?}"),
        Err(Reject::BadRequest(m)) => m.clone(),
        Err(other) => format!("not a 400: {other:?}"),
    }
}

#[test]
fn typed_and_generic_paths_agree() {
    let datas = [
        "[1, 2.5, 3, 4]",
        "[[1, 2], [3, 4]]",
        "[true, false, true, false]",
        "[1, 2, 3, 3000000000]",
        "[-1, 2, 3, 18446744073709551615]",
        "[1, 2, 3, 1e39]",
        "[1.5, 2, 3, 4]",
        r#"[1, "NaN", 3, 4]"#,
        "[1, null, 3, 4]",
        r#"[1, {"a": [1]}, 3, 4]"#,
        "[[1, 2], [3]]",
        "[[1, 2], 3, 4]",
        "[1, [2, 3], 4]",
        "[[1, 2, 3, 4]]",
        "[[[1, 2]], [[3, 4]]]",
        "5",
        "[]",
        "[[]]",
        "null",
        "[1, 2, 3, true]",
        "[1e308, -1e308, 0, -0.0]",
    ];
    let shapes = ["[4]", "[2, 2]", "[1, 4]"];
    for dt in ["BOOL", "INT32", "INT64", "FP32", "FP64", "BYTES", "nope"] {
        for data in datas {
            for shape in shapes {
                let typed = decode(&body(true, dt, shape, data));
                let generic = decode(&body(false, dt, shape, data));
                let typed = typed.map(|r| message(&r));
                let generic = generic.map(|r| message(&r));
                assert_eq!(typed, generic, "{dt} {shape} {data}");
            }
        }
    }
}

#[test]
fn typed_path_fills_the_element_buffer() {
    let r = decode(&body(true, "FP32", "[2, 2]", "[[1, 2.5], [-3, 4e-3]]"))
        .unwrap()
        .unwrap();
    assert_eq!(r.data, TensorData::Fp32(vec![1.0, 2.5, -3.0, 0.004]));
    assert_eq!(r.shape, vec![2, 2]);
    assert_eq!(r.name, "x");
    let r = decode(&body(true, "INT32", "[3]", "[-2147483648, 0, 2147483647]"))
        .unwrap()
        .unwrap();
    assert_eq!(r.data, TensorData::Int32(vec![i32::MIN, 0, i32::MAX]));
}

#[test]
fn value_errors_name_the_input_and_element() {
    let cases = [
        (
            "FP32",
            "[1, 2, 3, 1e40]",
            "input 'x': element 3 (1e+40) is not a valid FP32 value",
        ),
        (
            "INT64",
            "[1.5, 2, 3, 4]",
            "input 'x': element 0 (1.5) is not a valid INT64 value",
        ),
        (
            "INT32",
            "[1, 2, 3000000000, 4]",
            "input 'x': element 2 (3000000000) is not a valid INT32 value",
        ),
        (
            "FP32",
            "[1, true, 3, 4]",
            "input 'x': element 1 (true) is not a valid FP32 value",
        ),
        (
            "BOOL",
            "[true, 1, false, true]",
            "input 'x': element 1 (1) is not a valid BOOL value",
        ),
        (
            "FP32",
            r#"[1, "NaN", 3, 4]"#,
            "input 'x': data contains the string \"NaN\", expected FP32 values",
        ),
        (
            "FP32",
            r#"[1, "Infinity", 3, 4]"#,
            "data contains the string \"Infinity\"",
        ),
        ("FP32", "[1, null, 3, 4]", "input 'x': data contains null"),
        ("FP32", "4", "input 'x': data must be a list"),
        (
            "FP32",
            "[[1, 2], [3]]",
            "input 'x': data is a ragged nested list",
        ),
        (
            "FP32",
            "[[1, 2, 3, 4]]",
            "input 'x': data nested as [1, 4] does not match shape [2, 2]",
        ),
        ("FP32", "null", "input 'x': has no data"),
        (
            "BYTES",
            r#"["a", "b", "c", "d"]"#,
            "input 'x': datatype BYTES is not supported",
        ),
        (
            "fp32",
            "[1, 2, 3, 4]",
            "input 'x': unknown datatype \"fp32\"",
        ),
    ];
    for (dt, data, want) in cases {
        let got = message(&decode(&body(true, dt, "[2, 2]", data)).unwrap());
        assert!(
            got.contains(want),
            "{dt} {data}: {got:?} should contain {want:?}"
        );
    }
    // A problem anywhere wins over a bad value before it, as in the generic path.
    let got = message(&decode(&body(true, "FP32", "[4]", r#"[1e40, 2, "x", 4]"#)).unwrap());
    assert!(got.contains("the string \"x\""), "{got}");
}

#[test]
fn json_errors_stay_json_errors() {
    // NaN is not JSON; a number beyond f64 neither.
    for data in ["[NaN, 1, 2, 3]", "[1e400, 1, 2, 3]", "[1, 2, 3,]", "[1 2]"] {
        let e = decode(&body(true, "FP32", "[4]", data)).err();
        assert!(e.is_some(), "{data} should be refused as JSON");
    }
    let e = decode(r#"{"inputs": [{"name": "x", "shape": [4], "datatype": "FP32", "data": [1], "data": [2]}]}"#)
        .err()
        .unwrap_or_default();
    assert!(e.contains("duplicate field `data`"), "{e}");
    let e = decode(r#"{"inputs": [{"name": "x", "shape": [4], "name": "y", "datatype": "FP32", "data": [1]}]}"#)
        .err()
        .unwrap_or_default();
    assert!(e.contains("duplicate field `name`"), "{e}");
    let e = decode(r#"{"inputs": [{"name": "x", "datatype": "FP32", "data": [1]}]}"#)
        .err()
        .unwrap_or_default();
    assert!(e.contains("missing field `shape`"), "{e}");
    let e = decode(r#"{"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}"#)
        .err()
        .unwrap_or_default();
    assert!(e.contains("missing field `name`"), "{e}");
    let e = decode(r#"{"inputs": [{"name": "x", "shape": [1], "data": [1]}]}"#)
        .err()
        .unwrap_or_default();
    assert!(e.contains("missing field `datatype`"), "{e}");
    let e = decode(r#"{"inputs": [{"name": 5, "shape": [1], "datatype": "FP32", "data": [1]}]}"#)
        .err()
        .unwrap_or_default();
    assert!(e.contains("invalid type"), "{e}");
    let e = decode(r#"{"inputs": ["x"]}"#).err().unwrap_or_default();
    assert!(e.contains("invalid type"), "{e}");
}

#[test]
fn deep_nesting_is_refused_by_the_parser_not_the_stack() {
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let e = decode(&body(true, "FP32", "[1]", &deep))
        .err()
        .unwrap_or_default();
    assert!(e.contains("recursion limit"), "{e}");
    // Within the parser's limit: read, then refused for its shape.
    let nested = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let got = message(&decode(&body(true, "FP32", "[1]", &nested)).unwrap());
    assert!(got.contains("does not match shape [1]"), "{got}");
}

#[test]
fn a_huge_declared_shape_reserves_a_bounded_buffer() {
    for shape in [
        "[1000000000000, 1000000]",
        "[9223372036854775807]",
        "[-1, 4]",
        "[]",
    ] {
        let r = decode(&body(true, "FP64", shape, "[1, 2]"))
            .unwrap()
            .unwrap();
        let TensorData::Fp64(v) = &r.data else {
            panic!("FP64 data expected, got {:?}", r.data);
        };
        assert_eq!(v, &[1.0, 2.0]);
        assert!(
            v.capacity() <= MAX_RESERVE,
            "{shape}: capacity {}",
            v.capacity()
        );
    }
    // Data longer than the reservation still reads whole.
    let n = MAX_RESERVE + 3;
    let data = format!("[{}]", vec!["1"; n].join(","));
    let r = decode(&body(true, "INT64", &format!("[{n}]"), &data))
        .unwrap()
        .unwrap();
    assert_eq!(r.data, TensorData::Int64(vec![1; n]));
}

#[test]
fn names_with_escapes_and_unknown_fields() {
    let r = decode(
        r#"{"inputs": [{"name": "in\u0070ut\n", "extra": {"a": [1, {}]}, "shape": [1], "datatype": "FP\u0033\u0032", "data": [1]}], "unknown": 1}"#,
    )
    .unwrap()
    .unwrap();
    assert_eq!(r.name, "input\n");
    assert_eq!(r.data, TensorData::Fp32(vec![1.0]));
    let r = decode(r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "parameters": null, "data": [2]}]}"#)
        .unwrap()
        .unwrap();
    assert_eq!(r.data, TensorData::Fp32(vec![2.0]));
}

#[test]
fn binary_data_size_and_data_together_are_refused() {
    let got = message(
        &decode(r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1], "parameters": {"binary_data_size": 4}}]}"#)
            .unwrap(),
    );
    assert!(
        got.contains("input 'x': has both data and binary_data_size"),
        "{got}"
    );
}
