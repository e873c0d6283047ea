//! The hand-written V2 reader reads what the serde reader reads, or declines:
//! over the bodies clients send (which it must take), over the unusual ones
//! (which it must decline or read alike), and over random numbers and
//! random mutations of both.

use super::*;

/// Bodies the fast reader must take (and read as serde does).
const TAKEN: &[&str] = &[
    // The bench's and the e2e tests' iris body (Python's json.dumps).
    r#"{"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}]}"#,
    // Flat data, compact, id and outputs (tritonclient's layout).
    r#"{"id":"req-1","inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}],"outputs":[{"name":"label"},{"name":"probabilities"}]}"#,
    "{\n  \"inputs\" : [ {\n \"name\" : \"x\" ,\t\"shape\" : [ 3 ] , \"datatype\" : \"FP64\" , \"data\" : [ 1 , -2.5e3 , 0.125 ] } ] ,\r\n \"id\" : \"\" }\n",
    r#"{"inputs":[{"name":"a","shape":[2],"datatype":"INT64","data":[-9007199254740993,123456789012345678]},{"name":"b","shape":[2,1],"datatype":"INT32","data":[[2147483647],[-2147483648]]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[-0, -0.0, 0e5, 1E+2]}],"outputs":[]}"#,
    r#"{"inputs":[{"name":"x","shape":[1,1,1,2],"datatype":"FP32","data":[[[[1e-22,9007199254740992e22]]]]}]}"#,
    r#"{"inputs":[{"name":"ünï","shape":[],"datatype":"FP64","data":[1]}]}"#,
    r#"{"inputs":[]}"#,
    // Shape and nesting disagree: read alike, refused later by decode_input.
    r#"{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[[1,2],[3,4]]}]}"#,
    r#"{"outputs":[{"name":"label"}],"inputs":[{"shape":[-1,4],"name":"x","datatype":"FP32","data":[1,2,3,4]}],"id":"z"}"#,
];

/// Bodies the fast reader must decline (the serde reader answers them).
const DECLINED: &[&str] = &[
    // Unusual keys, parameters, escapes, null.
    r#"{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[1,2,3,4]}],"parameters":{"binary_data_output":true}}"#,
    r#"{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[1,2,3,4],"parameters":{}}]}"#,
    r#"{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}"#,
    r#"{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[1,2,3,4]}],"extra":1}"#,
    r#"{"inputs":[{"name":"x\u0041","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[1,2,3,4]}],"id":null}"#,
    r#"{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":null}]}"#,
    r#"{"inputs":[{"name":"x","shape":[4],"datatype":"FP32"}]}"#,
    // datatype after data, BOOL, unknown datatype.
    r#"{"inputs":[{"name":"x","shape":[4],"data":[1,2,3,4],"datatype":"FP32"}]}"#,
    r#"{"inputs":[{"name":"x","shape":[2],"datatype":"BOOL","data":[true,false]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[2],"datatype":"BYTES","data":["a","b"]}]}"#,
    // Data the serde reader flags: ragged, empty, not a list, not numbers,
    // out of range for the datatype.
    r#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[[1,2],[3]]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,[2,3]]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[[1,2],3]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[0],"datatype":"FP32","data":[]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":5}]}"#,
    r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,"2"]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[2],"datatype":"INT32","data":[1,2.5]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[2],"datatype":"INT32","data":[1,3000000000]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,1e39]}]}"#,
    // Numbers it does not compute itself, and invalid ones.
    r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP64","data":[1,0.1234567890123456789]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP64","data":[1,1e23]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP64","data":[1,18446744073709551615]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP64","data":[1,01]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP64","data":[1,.5]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP64","data":[1,1.]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP64","data":[1,1e]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP64","data":[1,2,]}]}"#,
    r#"{"inputs":[{"name":"x","shape":[2.0],"datatype":"FP64","data":[1,2]}]}"#,
    // Duplicates, missing fields, trailing bytes, not JSON.
    r#"{"inputs":[{"name":"x","name":"y","shape":[1],"datatype":"FP64","data":[1]}]}"#,
    r#"{"inputs":[],"inputs":[]}"#,
    r#"{"inputs":[{"shape":[1],"datatype":"FP64","data":[1]}]}"#,
    r#"{"id":"x"}"#,
    r#"{"inputs":[]} x"#,
    r#"{"inputs":[]"#,
    "",
    "[]",
];

#[test]
fn takes_usual_bodies_and_reads_them_as_serde_does() {
    for body in TAKEN {
        assert_eq!(readers_agree(body.as_bytes()), Ok(true), "{body}");
    }
}

#[test]
fn declines_unusual_bodies() {
    for body in DECLINED {
        assert!(read(body.as_bytes()).is_none(), "{body}");
    }
}

#[test]
fn bench_body_values() {
    let req = read(TAKEN[0].as_bytes()).map(|r| format!("{:?}", r.inputs));
    let expected = "[RequestInput { name: \"input\", shape: [2, 4], datatype: \"FP32\", parameters: None, \
                    data: Some(JsonData { leaves: Typed { data: Fp32([6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6]), \
                    count: 8, bad: None }, dims: [2, 4], problem: None }) }]";
    assert_eq!(req.as_deref(), Some(expected));
}

/// A small xorshift generator: reproducible random cases without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random JSON number (valid or not) of the shapes clients write.
fn number(r: &mut Rng) -> String {
    let mut s = String::new();
    if r.below(3) == 0 {
        s.push('-');
    }
    let long = r.below(4) == 0;
    let int_digits = 1 + r.below(if long { 20 } else { 4 });
    for i in 0..int_digits {
        let d = r.below(10);
        // Mostly no leading zero (invalid JSON), sometimes one.
        let d = if i == 0 && int_digits > 1 && r.below(20) > 0 {
            1 + d % 9
        } else {
            d
        };
        s.push(char::from(b'0' + d as u8));
    }
    if r.below(3) > 0 {
        s.push('.');
        let long = r.below(4) == 0;
        for _ in 0..r.below(if long { 24 } else { 9 }) {
            s.push(char::from(b'0' + r.below(10) as u8));
        }
    }
    if r.below(4) == 0 {
        s.push(if r.below(2) == 0 { 'e' } else { 'E' });
        match r.below(3) {
            0 => s.push('-'),
            1 => s.push('+'),
            _ => {}
        }
        for _ in 0..r.below(4) {
            s.push(char::from(b'0' + r.below(10) as u8));
        }
    }
    s
}

#[test]
fn random_numbers_read_as_serde_reads_them() {
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let mut taken = 0;
    for i in 0..20_000 {
        let dt = ["FP32", "FP64", "INT32", "INT64"][i % 4];
        let values: Vec<String> = (0..4).map(|_| number(&mut r)).collect();
        let body = format!(
            r#"{{"inputs":[{{"name":"x","shape":[4],"datatype":"{dt}","data":[{}]}}]}}"#,
            values.join(",")
        );
        match readers_agree(body.as_bytes()) {
            Ok(took) => taken += usize::from(took),
            Err(e) => panic!("{body}: {e}"),
        }
    }
    // Many bodies hold an invalid number or a float for an INT datatype;
    // a good share is still taken (2,043 of 20,000 when written).
    assert!(taken > 1_500, "taken {taken}");
}

#[test]
fn mutated_bodies_are_read_alike_or_declined() {
    const BYTES: &[u8] = b" \t\n[]{},:\"\\-+.eE0123456789ax";
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut taken = 0;
    for i in 0..30_000 {
        let seed = TAKEN[i % TAKEN.len()].as_bytes();
        let mut body = seed.to_vec();
        for _ in 0..1 + r.below(3) {
            let at = r.below(body.len() as u64 + 1) as usize;
            let b = BYTES[r.below(BYTES.len() as u64) as usize];
            match r.below(3) {
                0 => body.insert(at, b),
                1 if at < body.len() => {
                    body.remove(at);
                }
                _ if at < body.len() => body[at] = b,
                _ => {}
            }
        }
        match readers_agree(&body) {
            Ok(took) => taken += usize::from(took),
            Err(e) => panic!("{}: {e}", String::from_utf8_lossy(&body)),
        }
    }
    assert!(taken > 1_000, "taken {taken}");
}
