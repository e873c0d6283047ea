//! The decision record's JSON line, written field by field into a `Vec<u8>`:
//! byte for byte what `serde_json::to_writer` writes for [`Decision`]'s
//! `Serialize` derive (compact, same key order, same omissions), which stays
//! the reference (`jsonl/tests.rs` compares the two).
//!
//! Adding a field to [`Decision`]: declare it with its serde attributes as
//! usual, add one `key`/value line at the same position in [`write`], and set
//! it to a non-empty value in the `full` record of `jsonl/tests.rs` (the
//! comparison then fails until both agree).
//!
//! A string that needs no escaping (nearly every one) is checked eight bytes
//! at a time and copied whole; one that does is escaped by serde_json.

use std::time::Duration;

use crate::decision::{Decision, PolicyNote, Rule, ms_micros};

/// Appends `d` as compact JSON to `out` (no newline).
pub(crate) fn write(out: &mut Vec<u8>, d: &Decision<'_>) {
    out.extend_from_slice(b"{\"ts\":\"");
    let mut ts = [0u8; 27];
    out.extend_from_slice(crate::decision::rfc3339_micros(d.ts, &mut ts).as_bytes());
    out.extend_from_slice(b"\",\"request_id\":");
    string(out, d.request_id);
    out.extend_from_slice(b",\"client\":");
    let mut addr = [0u8; 21];
    match crate::decision::ipv4_port(&d.client, &mut addr) {
        // Digits, dots and a colon: nothing to escape.
        Some(a) => unescaped(out, a),
        None => string(out, &d.client.to_string()),
    }
    out.extend_from_slice(b",\"method\":");
    string(out, d.method);
    out.extend_from_slice(b",\"path\":");
    string(out, d.path);
    opt_str(out, b",\"host\":", d.host);
    opt_str(out, b",\"model\":", d.model);
    opt_fixed(out, b",\"protocol\":", d.protocol);
    opt_fixed(out, b",\"operation\":", d.operation);
    opt_str(out, b",\"identity\":", d.identity);
    opt_fixed(out, b",\"auth_method\":", d.auth_method);
    opt_str(out, b",\"issuer\":", d.issuer);
    out.extend_from_slice(b",\"decision\":\"");
    out.extend_from_slice(d.decision.as_str().as_bytes());
    out.extend_from_slice(if d.authorized {
        b"\",\"authorized\":true,\"response\":"
    } else {
        b"\",\"authorized\":false,\"response\":"
    });
    fixed(out, d.response);
    opt_str(out, b",\"reason\":", d.reason);
    out.extend_from_slice(b",\"status\":");
    uint(out, u64::from(d.status));
    opt_str(out, b",\"upstream\":", d.upstream);
    opt_ms(out, b",\"upstream_ms\":", d.upstream_ms);
    opt_ms(out, b",\"upstream_ttfb_ms\":", d.upstream_ttfb_ms);
    opt_ms(out, b",\"stream_ms\":", d.stream_ms);
    opt_ms(out, b",\"total_ms\":", Some(d.total_ms));
    rule(out, &d.rule);
    if let Some(w) = &d.wristband {
        out.extend_from_slice(b",\"wristband\":{\"kid\":");
        string(out, w.kid);
        out.extend_from_slice(b",\"jti\":");
        string(out, w.jti);
        out.push(b'}');
    }
    if let Some(t) = &d.tokens {
        out.extend_from_slice(b",\"tokens\":{\"input\":");
        uint(out, t.input);
        out.extend_from_slice(b",\"output\":");
        uint(out, t.output);
        out.extend_from_slice(b",\"total\":");
        uint(out, t.total);
        if let Some(c) = &t.cost_usd {
            // Rare (priced LLM answers only): serde_json's shortest f64 form.
            out.extend_from_slice(b",\"cost_usd\":");
            let _ = serde_json::to_writer(&mut *out, c);
        }
        out.push(b'}');
    }
    out.push(b'}');
}

/// The flattened [`Rule`] fields.
fn rule(out: &mut Vec<u8>, r: &Rule<'_>) {
    opt_fixed(out, b",\"basis\":", r.basis);
    if let Some(p) = &r.policy {
        out.extend_from_slice(b",\"policy\":");
        policy(out, p);
    }
    for (key, list) in [
        (&b",\"dry_run\":["[..], &r.dry_run),
        (b",\"audit\":[", &r.audit),
    ] {
        if list.is_empty() {
            continue;
        }
        out.extend_from_slice(key);
        for (i, p) in list.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            policy(out, p);
        }
        out.push(b']');
    }
    if let Some(e) = &r.external {
        out.extend_from_slice(b",\"external\":{\"provider\":");
        string(out, e.provider);
        out.extend_from_slice(b",\"outcome\":");
        fixed(out, e.outcome);
        out.push(b'}');
    }
}

fn policy(out: &mut Vec<u8>, p: &PolicyNote<'_>) {
    out.extend_from_slice(b"{\"name\":");
    string(out, p.name);
    out.extend_from_slice(b",\"action\":");
    fixed(out, p.action);
    opt_fixed(out, b",\"would\":", p.would);
    out.push(b'}');
}

/// A value fixed in the code (a protocol, operation, method, basis or
/// policy action name: plain words), which never needs escaping; checked in
/// debug builds.
fn fixed(out: &mut Vec<u8>, s: &'static str) {
    unescaped(out, s);
}

/// `s`, known to need no escaping, as a JSON string; checked in debug builds.
fn unescaped(out: &mut Vec<u8>, s: &str) {
    debug_assert!(clean(s.as_bytes()), "{s:?} needs escaping");
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

fn opt_fixed(out: &mut Vec<u8>, key: &[u8], v: Option<&'static str>) {
    if let Some(v) = v {
        out.extend_from_slice(key);
        fixed(out, v);
    }
}

fn opt_str(out: &mut Vec<u8>, key: &[u8], v: Option<&str>) {
    if let Some(v) = v {
        out.extend_from_slice(key);
        string(out, v);
    }
}

/// A duration in milliseconds with microsecond precision, as serde_json
/// writes the `f64` (ryu's shortest form: `0.0`, `1.5`, `1.234`, `3000.0`).
/// Below 10^15 µs the decimal `micros / 1000` has at most 15 significant
/// digits, so it is exactly the shortest form; beyond that (never, in
/// practice) serde_json writes it.
fn opt_ms(out: &mut Vec<u8>, key: &[u8], v: Option<Duration>) {
    let Some(d) = v else { return };
    out.extend_from_slice(key);
    let micros = ms_micros(&d);
    if micros >= 1e15 {
        let _ = serde_json::to_writer(&mut *out, &(micros / 1000.0));
        return;
    }
    // An integer-valued f64 below 10^15: exact as u64.
    let m = micros as u64;
    uint(out, m / 1000);
    out.push(b'.');
    let frac = m % 1000;
    if frac == 0 {
        out.push(b'0');
        return;
    }
    let digits = [
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    let len = if !frac.is_multiple_of(10) {
        3
    } else if !frac.is_multiple_of(100) {
        2
    } else {
        1
    };
    out.extend_from_slice(&digits[..len]);
}

fn uint(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

/// Whether no byte of `s` needs escaping (serde_json escapes exactly the
/// bytes below 0x20, `"` and `\`): eight bytes at a time with the
/// classic "has a byte less than n / equal to c" word tricks (exact for
/// "any"; bytes >= 0x80, UTF-8, never match).
fn clean(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let hits = |x: u64| {
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        (x.wrapping_sub(ONES * 0x20) & !x)
            | (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
    };
    let mut chunks = s.chunks_exact(8);
    let mut found = 0u64;
    let mut word = [0u8; 8];
    for c in &mut chunks {
        word.copy_from_slice(c);
        found |= hits(u64::from_le_bytes(word));
    }
    // The last 0-7 bytes, padded with a byte that never matches.
    let rest = chunks.remainder();
    word = [b'a'; 8];
    word[..rest.len()].copy_from_slice(rest);
    found |= hits(u64::from_le_bytes(word));
    found & HIGH == 0
}

/// `s` as a JSON string.
fn string(out: &mut Vec<u8>, s: &str) {
    if clean(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a `str` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

#[cfg(test)]
mod tests;
