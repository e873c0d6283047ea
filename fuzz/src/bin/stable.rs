//! The fuzz targets on stable Rust without libFuzzer: seeds from `corpus/`
//! plus random mutations of them, for a bounded time split between targets.
//! `cargo run --release --no-default-features --bin stable -- SECONDS [TARGET…]`
//! A failing input is written to `artifacts/<target>/` before the panic.

use std::time::{Duration, Instant};

const DICT: &[&[u8]] = &[
    b"/",
    b"//",
    b"/./",
    b"/../",
    b"%2F",
    b"%2e",
    b"%00",
    b"%",
    b";",
    b"#",
    b"\\",
    b"*",
    b"{*}",
    b"{**}",
    b"- ",
    b": ",
    b"\n",
    b"[",
    b"]",
    b"{",
    b"}",
    b"'",
    b"\"",
    b",",
    b"rules:",
    b"from:",
    b"to:",
    b"when:",
    b"key: ",
    b"notPaths: ",
    b"values: ",
    b"action: DENY",
    b"name: x",
    b"request.headers[",
    b"cel: ",
    b".",
    b"eyJ",
    b"e30",
    b"\"alg\":\"RS256\"",
    b"\"crit\":[\"b64\"]",
    b"\"kid\":",
    b"\"exp\":",
    b"1e400",
    b"-1",
    b"18446744073709551616",
    b"null",
    b"true",
    b"false",
    b"\"keys\":[",
    b"\"kty\":\"RSA\"",
    b"\"kty\":\"EC\"",
    b"\"crv\":\"P-256\"",
    b"\"issuer\":\"https://idp.test\"",
    b"\"jwks_uri\":\"https://idp.test/k\"",
    b"Bearer ",
    b"APIKEY ",
    b"access_token=",
    b"session=",
    b"tok=",
    b"tok%20en=",
    b"+",
    b"&",
    b"=",
    b"\"active\":true",
    b"\"authenticated\":true",
    b"\"user\":{\"username\":\"u\"}",
    b"\"audiences\":[\"models\"]",
    b"\"aud\":\"models\"",
    b"\"model\":\"m\"",
    b"\"inputs\":[",
    b"\"shape\":[1,4]",
    b"\"datatype\":\"FP32\"",
    b"\"datatype\":\"BYTES\"",
    b"\"data\":[1,2,3,4]",
    b"\"parameters\":{\"binary_data_size\":16}",
    b"\"outputs\":[",
    b"\"instances\":[",
    b"\x00\x00\x00\x00\x10",
    b"\x0a\x04iris",
    b"\x22",
    b"\x32",
    b"\xff\xff\xff\xff",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    let only: Vec<String> = args.collect();
    let targets: Vec<_> = modelgate_fuzz::TARGETS
        .iter()
        .filter(|(n, _)| only.is_empty() || only.iter().any(|o| o == n))
        .collect();
    if targets.is_empty() {
        eprintln!(
            "no such target; known: {:?}",
            modelgate_fuzz::TARGETS
                .iter()
                .map(|t| t.0)
                .collect::<Vec<_>>()
        );
        std::process::exit(2);
    }
    let root = modelgate_fuzz::crate_dir();
    let root = root.as_path();
    let per = Duration::from_secs(secs.max(1)).mul_f64(1.0 / targets.len() as f64);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for (name, f) in targets {
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(root.join("corpus").join(name))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        if seeds.is_empty() {
            seeds.push(b"/".to_vec());
        }
        let run = |input: &[u8]| {
            if std::panic::catch_unwind(|| f(input)).is_err() {
                let dir = root.join("artifacts").join(name);
                let _ = std::fs::create_dir_all(&dir);
                let path = dir.join(format!(
                    "crash-{:016x}",
                    input
                        .iter()
                        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b))
                            .wrapping_mul(0x100_0000_01b3))
                ));
                let _ = std::fs::write(&path, input);
                eprintln!("{name}: failure, input saved to {}", path.display());
                std::process::exit(1);
            }
        };
        for s in &seeds {
            run(s);
        }
        let start = Instant::now();
        let mut runs = 0u64;
        while start.elapsed() < per {
            let mut input = seeds[(next() as usize) % seeds.len()].clone();
            if next() % 8 == 0 {
                let other = &seeds[(next() as usize) % seeds.len()];
                let cut = (next() as usize) % (other.len() + 1);
                let at = (next() as usize) % (input.len() + 1);
                input.splice(at..at, other[..cut].iter().copied());
            }
            for _ in 0..1 + next() % 4 {
                let pos = if input.is_empty() {
                    0
                } else {
                    (next() as usize) % (input.len() + 1)
                };
                match next() % 5 {
                    0 => input.insert(pos, next() as u8),
                    1 if !input.is_empty() => {
                        input.remove(pos.min(input.len() - 1));
                    }
                    2 | 3 => {
                        let d = DICT[(next() as usize) % DICT.len()];
                        input.splice(pos..pos, d.iter().copied());
                    }
                    _ if !input.is_empty() => {
                        let i = pos.min(input.len() - 1);
                        input[i] = next() as u8;
                    }
                    _ => {}
                }
            }
            input.truncate(16 * 1024);
            run(&input);
            runs += 1;
        }
        println!(
            "{name}: {runs} inputs in {:.1}s, no failure",
            start.elapsed().as_secs_f64()
        );
    }
}
