//! The fuzzed functions, shared by the libFuzzer targets and the stable runner.
//! Each checks properties, not just "no panic".

mod authn;
mod bodies;
mod signin;

pub use authn::{credentials, jwks_parse, jwt_parse, remote_answers};
pub use bodies::{grpc_body, grpc_peek, openai_model, v2_reader, v2_rest};
pub use signin::signin;

use std::path::Path;

/// A fuzzed function: property checks on one input.
pub type Target = fn(&[u8]);

/// Every target, by name, for the stable runner and `run.sh`.
pub const TARGETS: &[(&str, Target)] = &[
    ("normalize", normalize),
    ("policy_parse", policy_parse),
    ("jwt_parse", jwt_parse),
    ("jwks_parse", jwks_parse),
    ("credentials", credentials),
    ("remote_answers", remote_answers),
    ("openai_model", openai_model),
    ("v2_rest", v2_rest),
    ("v2_reader", v2_reader),
    ("grpc_body", grpc_body),
    ("grpc_peek", grpc_peek),
    ("signin", signin),
    ("h1_answer", h1_answer),
];

/// Path normalisation: never panics; a normalised path is canonical and a
/// fixed point; refused inputs stay refused after any prefix of `/`.
pub fn normalize(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = modelgate_route::normalize_host(s);
    if let Ok(n) = modelgate_route::normalize_path(s) {
        assert!(n.starts_with('/'), "{s:?} → {n:?}");
        assert!(!n.contains("//"), "{s:?} → {n:?}");
        assert!(
            !n.split('/').any(|seg| seg == "." || seg == ".."),
            "{s:?} → {n:?}"
        );
        assert!(!n.contains(['#', ';', '\\', '\0']), "{s:?} → {n:?}");
        assert_eq!(
            modelgate_route::normalize_path(&n).as_deref(),
            Ok(n.as_str()),
            "not idempotent for {s:?}"
        );
    }
}

const BASE: &str = "listen: {address: \"127.0.0.1:8080\"}\nmodels:\n  - {name: iris, upstream: {url: \"http://127.0.0.1:9000\"}}\npolicies:\n";

/// The policy parser: any text under `policies:` is either a configuration or
/// a list of errors that each name a key — never a panic.
pub fn policy_parse(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if s.len() > 4096 {
        return;
    }
    let text = format!("{BASE}{s}");
    match modelgate_config::parse_str(&text, "fuzz.yaml", Path::new("."), &|_| None) {
        Ok(cfg) => {
            for p in &cfg.policies {
                assert!(!p.name.is_empty());
            }
        }
        Err(e) => assert!(!e.errors.is_empty()),
    }
}

/// Upstream HTTP/1 answers (`modelgate_upstream::h1wire`): the head parser
/// and the chunked decoder never panic, buffer at most their bounds, and give
/// the same result whatever the reads' sizes.
pub fn h1_answer(data: &[u8]) {
    use modelgate_upstream::h1wire::{Chunked, Decoded, Framing, MAX_HEAD, parse_response};
    let run = |step: usize| {
        let mut buf = bytes::BytesMut::new();
        let mut fed = 0;
        let head = loop {
            match parse_response(&mut buf, false) {
                Ok(Some(h)) => break Some(h),
                Ok(None) if fed < data.len() => {
                    assert!(buf.len() < MAX_HEAD + step, "head buffer past its bound");
                    let to = (fed + step).min(data.len());
                    buf.extend_from_slice(&data[fed..to]);
                    fed = to;
                }
                _ => break None,
            }
        };
        let Some(head) = head else {
            return None;
        };
        let mut body = Vec::new();
        if head.framing == Framing::Chunked {
            let mut c = Chunked::new();
            loop {
                match c.decode(&mut buf) {
                    Ok(Decoded::Data(d)) => body.extend_from_slice(&d),
                    Ok(Decoded::More) if fed < data.len() => {
                        let to = (fed + step).min(data.len());
                        buf.extend_from_slice(&data[fed..to]);
                        fed = to;
                    }
                    Ok(Decoded::Trailers(_)) | Ok(Decoded::End) => break,
                    _ => return Some((head.status, None)),
                }
            }
        }
        Some((head.status, Some(body)))
    };
    let whole = run(data.len().max(1));
    let split = run(7);
    // A whole input may fail where a split one needs more (or the reverse at
    // the bounds); when both decode, they agree.
    if let (Some((s1, Some(b1))), Some((s2, Some(b2)))) = (&whole, &split) {
        assert_eq!(s1, s2);
        assert_eq!(b1, b2);
    }
}

/// The fuzz crate's folder, from `CARGO_MANIFEST_DIR` as cargo sets it when it
/// runs the binary, else as compiled in: the compile-time value names
/// whichever clone built the artifact, and a shared target dir shares
/// artifacts across clones.
pub fn crate_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        std::path::PathBuf::from,
    )
}
