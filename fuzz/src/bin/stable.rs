//! The fuzz targets on stable Rust without libFuzzer: seeds from `corpus/`
//! plus random mutations of them, for a bounded time.
//! `cargo run --release --no-default-features --bin stable -- SECONDS`

use std::time::{Duration, Instant};

fn main() {
    let secs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let targets: [(&str, fn(&[u8])); 2] = [("normalize", modelgate_fuzz::normalize), ("policy_parse", modelgate_fuzz::policy_parse)];
    let per = Duration::from_secs(secs.max(2)) / 2;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    const DICT: &[&[u8]] = &[b"/", b"//", b"/./", b"/../", b"%2F", b"%2e", b"%00", b"%", b";", b"#", b"\\", b"*", b"{*}", b"{**}", b"- ", b": ", b"\n", b"[", b"]", b"{", b"}", b"'", b"rules:", b"from:", b"to:", b"when:", b"key: ", b"notPaths: ", b"values: ", b"action: DENY", b"name: x", b"request.headers[", b"cel: "];
    for (name, f) in targets {
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(root.join(name)).map(|d| d.filter_map(|e| e.ok()).filter_map(|e| std::fs::read(e.path()).ok()).collect()).unwrap_or_default();
        if seeds.is_empty() {
            seeds.push(b"/".to_vec());
        }
        for s in &seeds {
            f(s);
        }
        let start = Instant::now();
        let mut runs = 0u64;
        while start.elapsed() < per {
            let mut input = seeds[(next() as usize) % seeds.len()].clone();
            for _ in 0..1 + next() % 4 {
                let pos = if input.is_empty() { 0 } else { (next() as usize) % (input.len() + 1) };
                match next() % 4 {
                    0 => input.insert(pos, next() as u8),
                    1 if !input.is_empty() => {
                        input.remove(pos.min(input.len() - 1));
                    }
                    2 => {
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
            f(&input);
            runs += 1;
        }
        println!("{name}: {runs} inputs in {:.1}s, no failure", start.elapsed().as_secs_f64());
    }
}
