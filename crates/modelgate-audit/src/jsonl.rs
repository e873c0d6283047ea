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

/// Room for the keys, fixed words, numbers and quotes of a record, beyond
/// its variable strings (reserved once, so no push regrows the line).
const FIXED_PART: usize = 512;

/// Appends `d` as compact JSON to `out` (no newline).
pub(crate) fn write(out: &mut Vec<u8>, d: &Decision<'_>) {
    let opt = |s: Option<&str>| s.map_or(0, str::len);
    out.reserve(
        FIXED_PART
            + d.request_id.len()
            + d.method.len()
            + d.path.len()
            + opt(d.host)
            + opt(d.model)
            + opt(d.identity)
            + opt(d.issuer)
            + opt(d.reason)
            + opt(d.upstream)
            + d.rule.policy.as_ref().map_or(0, |p| p.name.len()),
    );
    put(out, b"{\"ts\":\"");
    crate::decision::write_rfc3339_micros(out, d.ts);
    put(out, b"\",\"request_id\":");
    string(out, d.request_id);
    put(out, b",\"client\":");
    if !crate::decision::write_ipv4_port(out, &d.client) {
        string(out, &d.client.to_string());
    }
    put(out, b",\"method\":");
    string(out, d.method);
    put(out, b",\"path\":");
    string(out, d.path);
    opt_str(out, b",\"host\":", d.host);
    opt_str(out, b",\"model\":", d.model);
    opt_fixed(out, b",\"protocol\":", d.protocol);
    opt_fixed(out, b",\"operation\":", d.operation);
    opt_str(out, b",\"identity\":", d.identity);
    opt_fixed(out, b",\"auth_method\":", d.auth_method);
    opt_str(out, b",\"issuer\":", d.issuer);
    put(out, b",\"decision\":\"");
    put(out, d.decision.as_str().as_bytes());
    put(
        out,
        if d.authorized {
            b"\",\"authorized\":true,\"response\":"
        } else {
            b"\",\"authorized\":false,\"response\":"
        },
    );
    fixed(out, d.response);
    opt_str(out, b",\"reason\":", d.reason);
    put(out, b",\"status\":");
    uint(out, u64::from(d.status));
    opt_str(out, b",\"upstream\":", d.upstream);
    opt_ms(out, b",\"upstream_ms\":", d.upstream_ms);
    opt_ms(out, b",\"upstream_ttfb_ms\":", d.upstream_ttfb_ms);
    opt_ms(out, b",\"stream_ms\":", d.stream_ms);
    opt_ms(out, b",\"total_ms\":", Some(d.total_ms));
    rule(out, &d.rule);
    if let Some(w) = &d.wristband {
        put(out, b",\"wristband\":{\"kid\":");
        string(out, w.kid);
        put(out, b",\"jti\":");
        string(out, w.jti);
        out.push(b'}');
    }
    if let Some(t) = &d.tokens {
        put(out, b",\"tokens\":{\"input\":");
        uint(out, t.input);
        put(out, b",\"output\":");
        uint(out, t.output);
        put(out, b",\"total\":");
        uint(out, t.total);
        if let Some(c) = &t.cost_usd {
            // Rare (priced LLM answers only): serde_json's shortest f64 form.
            put(out, b",\"cost_usd\":");
            let _ = serde_json::to_writer(&mut *out, c);
        }
        out.push(b'}');
    }
    out.push(b'}');
}

/// Appends bytes; inlined so that a key's constant length becomes a few
/// stores instead of a `memcpy` call.
#[inline(always)]
fn put(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(b);
}

/// The flattened [`Rule`] fields.
fn rule(out: &mut Vec<u8>, r: &Rule<'_>) {
    opt_fixed(out, b",\"basis\":", r.basis);
    if let Some(p) = &r.policy {
        put(out, b",\"policy\":");
        policy(out, p);
    }
    for (key, list) in [
        (&b",\"dry_run\":["[..], &r.dry_run),
        (b",\"audit\":[", &r.audit),
    ] {
        if list.is_empty() {
            continue;
        }
        put(out, key);
        for (i, p) in list.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            policy(out, p);
        }
        out.push(b']');
    }
    if let Some(e) = &r.external {
        put(out, b",\"external\":{\"provider\":");
        string(out, e.provider);
        put(out, b",\"outcome\":");
        fixed(out, e.outcome);
        out.push(b'}');
    }
}

#[inline(always)]
fn policy(out: &mut Vec<u8>, p: &PolicyNote<'_>) {
    put(out, b"{\"name\":");
    string(out, p.name);
    put(out, b",\"action\":");
    fixed(out, p.action);
    opt_fixed(out, b",\"would\":", p.would);
    out.push(b'}');
}

/// A value fixed in the code (a protocol, operation, method, basis or
/// policy action name: plain words), which never needs escaping; checked in
/// debug builds.
#[inline(always)]
fn fixed(out: &mut Vec<u8>, s: &'static str) {
    debug_assert!(clean(s.as_bytes()), "{s:?} needs escaping");
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

#[inline(always)]
fn opt_fixed(out: &mut Vec<u8>, key: &[u8], v: Option<&'static str>) {
    if let Some(v) = v {
        put(out, key);
        fixed(out, v);
    }
}

#[inline(always)]
fn opt_str(out: &mut Vec<u8>, key: &[u8], v: Option<&str>) {
    if let Some(v) = v {
        put(out, key);
        string(out, v);
    }
}

/// Below this many seconds, a duration's whole microseconds are worked out
/// in integers: `as_secs_f64() * 1e6` is then within 3·10⁻⁴ µs of the exact
/// value, so it rounds as the integers do except at an exact half, which is
/// left to the float path (as is anything longer).
const INTEGER_SECS: u64 = 100_000;

/// A duration in milliseconds with microsecond precision, as serde_json
/// writes the `f64` (ryu's shortest form: `0.0`, `1.5`, `1.234`, `3000.0`).
/// Below 10^15 µs the decimal `micros / 1000` has at most 15 significant
/// digits, so it is exactly the shortest form; beyond that (never, in
/// practice) serde_json writes it.
#[inline(always)]
fn opt_ms(out: &mut Vec<u8>, key: &[u8], v: Option<Duration>) {
    let Some(d) = v else { return };
    put(out, key);
    let m = match whole_micros(&d) {
        Some(m) => m,
        None => {
            let micros = ms_micros(&d);
            if micros >= 1e15 {
                let _ = serde_json::to_writer(&mut *out, &(micros / 1000.0));
                return;
            }
            // An integer-valued f64 below 10^15: exact as u64.
            micros as u64
        }
    };
    millis(out, m);
}

/// [`ms_micros`] without floats where both agree (see [`INTEGER_SECS`]).
fn whole_micros(d: &Duration) -> Option<u64> {
    let (secs, nanos) = (d.as_secs(), u64::from(d.subsec_nanos()));
    (secs < INTEGER_SECS && nanos % 1000 != 500).then(|| secs * 1_000_000 + (nanos + 500) / 1000)
}

/// `m` microseconds as milliseconds: `12.345`, `12.3`, `12.0`.
fn millis(out: &mut Vec<u8>, m: u64) {
    uint(out, m / 1000);
    let frac = m % 1000;
    if frac == 0 {
        put(out, b".0");
        return;
    }
    let digits = [
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    let len = if !frac.is_multiple_of(10) {
        4
    } else if !frac.is_multiple_of(100) {
        3
    } else {
        2
    };
    out.extend_from_slice(&digits[..len]);
}

fn uint(out: &mut Vec<u8>, mut v: u64) {
    // Statuses and most milliseconds: a fixed-size store, no loop.
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    if v < 100 {
        out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
        return;
    }
    if v < 1000 {
        out.extend_from_slice(&[
            b'0' + (v / 100) as u8,
            b'0' + (v / 10 % 10) as u8,
            b'0' + (v % 10) as u8,
        ]);
        return;
    }
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

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `x` that needs escaping in a JSON string
/// (serde_json escapes exactly the bytes below 0x20, `"` and `\`): the
/// classic "has a byte less than n / equal to c" word tricks (exact for
/// "any"; bytes >= 0x80, UTF-8, never match).
#[inline(always)]
fn hits(x: u64) -> u64 {
    let quote = x ^ (ONES * u64::from(b'"'));
    let backslash = x ^ (ONES * u64::from(b'\\'));
    ((x.wrapping_sub(ONES * 0x20) & !x)
        | (quote.wrapping_sub(ONES) & !quote)
        | (backslash.wrapping_sub(ONES) & !backslash))
        & HIGH
}

/// Whether no byte of `s` needs escaping, eight bytes at a time. The last
/// 1-7 bytes are read as the (overlapping) last eight, and a string shorter
/// than eight as two overlapping halves: fixed-size loads, no copy.
fn clean(s: &[u8]) -> bool {
    let n = s.len();
    if n >= 8 {
        let mut chunks = s.chunks_exact(8);
        let mut found = 0u64;
        for c in &mut chunks {
            found |= hits(word8(c));
        }
        if !chunks.remainder().is_empty() {
            found |= hits(word8(s.get(n - 8..).unwrap_or(&[])));
        }
        found == 0
    } else if n >= 4 {
        let half = |at: usize| {
            let mut w = [0u8; 4];
            if let Some(b) = s.get(at..at + 4) {
                w.copy_from_slice(b);
            }
            u64::from(u32::from_le_bytes(w))
        };
        hits(half(0) | (half(n - 4) << 32)) == 0
    } else {
        // 0-3 bytes, padded with a byte that never matches.
        let mut w = [b'a'; 8];
        for (to, from) in w.iter_mut().zip(s) {
            *to = *from;
        }
        hits(u64::from_le_bytes(w)) == 0
    }
}

/// Eight bytes as a word (`b` is eight bytes long).
#[inline(always)]
fn word8(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    if b.len() == 8 {
        w.copy_from_slice(b);
    }
    u64::from_le_bytes(w)
}

/// `s` as a JSON string.
fn string(out: &mut Vec<u8>, s: &str) {
    if clean(s.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a `str` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

#[cfg(test)]
pub(crate) mod tests;
