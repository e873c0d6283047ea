//! Tests of the decision-record serializer: byte-identical to serde_json.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::*;
use crate::{Decision, ExternalNote, Outcome, PolicyNote, Rule, WristbandNote};

fn same_as_serde_json(v: &Decision<'_>) {
    let mut ours = Vec::new();
    write(&mut ours, v);
    let theirs = serde_json::to_vec(v).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs)
    );
}

pub(crate) fn full<'a>(path: &'a str, identity: &'a str, client: SocketAddr) -> Decision<'a> {
    Decision {
        ts: SystemTime::UNIX_EPOCH + Duration::new(1_795_434_695, 123_456_789),
        request_id: "0b6f1c1e-7a2d-4a57-9a39-2c0d7e1f3a44",
        client,
        method: "POST",
        path,
        host: Some("models.example.com"),
        model: Some("iris"),
        protocol: Some("v2"),
        operation: Some("infer"),
        identity: Some(identity),
        auth_method: Some("api_key"),
        issuer: Some("https://issuer.example.com/realms/x"),
        decision: Outcome::Deny,
        authorized: false,
        response: "PERMISSION_DENIED",
        reason: Some("no policy allows"),
        status: 403,
        upstream: Some("http://127.0.0.1:8080"),
        upstream_ms: Some(Duration::from_micros(1234)),
        upstream_ttfb_ms: Some(Duration::from_nanos(1)),
        stream_ms: Some(Duration::from_secs(3)),
        total_ms: Duration::from_micros(1500),
        rule: Rule {
            basis: Some("policy"),
            policy: Some(PolicyNote {
                name: "deny-all",
                action: "DENY",
                would: None,
            }),
            dry_run: vec![PolicyNote {
                name: "try",
                action: "ALLOW",
                would: Some("not_allow"),
            }],
            audit: vec![
                PolicyNote {
                    name: "a1",
                    action: "AUDIT",
                    would: None,
                },
                PolicyNote {
                    name: "a\"2",
                    action: "AUDIT",
                    would: None,
                },
            ],
            external: Some(ExternalNote {
                provider: "opa",
                outcome: "denied",
            }),
        },
        wristband: Some(WristbandNote {
            kid: "k1",
            jti: "j1",
        }),
        tokens: Some(crate::TokenNote {
            input: 12,
            output: 7,
            total: 19,
            cost_usd: Some(crate::MicroUsd(1_500)),
        }),
    }
}

#[test]
fn records_are_written_as_serde_json_writes_them() {
    let v4: SocketAddr = "10.1.2.3:4567".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::5]:1".parse().unwrap();
    for path in [
        "/v2/models/iris/infer",
        "",
        "/quote\"and\\backslash",
        "/ctl\u{1}\n\t\u{7f}",
        "/ünïcødé/路径/a-long-path-that-is-more-than-sixteen-bytes-long\"",
        "0123456789abcdef",
        "0123456789abcde\"",
        "01234567\u{1f}",
        "\u{1f}1234567",
        "a\\bcdefgh",
        "abcdefg\\",
        "\u{80}\u{ff}ÿÿÿÿ !#[]",
    ] {
        for client in [v4, v6] {
            let d = full(path, path, client);
            same_as_serde_json(&d);
            let sparse = Decision {
                host: None,
                model: None,
                protocol: None,
                operation: None,
                identity: None,
                auth_method: None,
                issuer: None,
                reason: None,
                upstream: None,
                upstream_ms: None,
                upstream_ttfb_ms: None,
                stream_ms: None,
                rule: Rule::default(),
                wristband: None,
                tokens: None,
                decision: Outcome::Reject,
                ..d
            };
            same_as_serde_json(&sparse);
        }
    }
}

/// Whether `b` must be escaped in a JSON string.
const fn special(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

#[test]
fn clean_finds_every_special_byte_at_every_position() {
    // Every length up to three words: the short, overlapping-half and
    // overlapping-tail cases.
    for len in 1usize..=24 {
        for at in 0..len {
            for b in 0..=255u8 {
                let mut s = vec![b'a'; len];
                s[at] = b;
                assert_eq!(clean(&s), !special(b), "byte {b:#x} at {at} of {len}");
            }
        }
    }
    assert!(clean(b""));
}

#[test]
fn durations_are_written_as_serde_json_writes_them() {
    let v4: SocketAddr = "10.1.2.3:4567".parse().unwrap();
    let base = full("/p", "id", v4);
    let mut cases: Vec<Duration> = [
        0u64,
        1,
        9,
        10,
        99,
        100,
        101,
        999,
        1000,
        1001,
        1010,
        1100,
        1234,
        12_340,
        123_400,
        3_000_000,
        86_400_000_000,
        999_999_999_999_999,
        1_000_000_000_000_000,
        123_456_789_012_345_678,
    ]
    .iter()
    .map(|&us| Duration::from_micros(us))
    .collect();
    cases.extend([
        Duration::from_nanos(1),
        Duration::from_nanos(499),
        Duration::from_nanos(500),
        Duration::from_nanos(1_234_567),
        Duration::from_nanos(999_999_999),
        Duration::new(u64::MAX / 4, 999_999_999),
    ]);
    for d in cases {
        let rec = Decision {
            upstream_ms: Some(d),
            total_ms: d,
            ..base.clone()
        };
        same_as_serde_json(&rec);
    }
}

#[test]
fn status_and_tokens_match_at_the_extremes() {
    let v4: SocketAddr = "10.1.2.3:4567".parse().unwrap();
    for (status, n) in [(0u16, 0u64), (9, 9), (10, 10), (u16::MAX, u64::MAX)] {
        let rec = Decision {
            status,
            tokens: Some(crate::TokenNote {
                input: n,
                output: n / 3,
                total: n.wrapping_add(1),
                cost_usd: Some(crate::MicroUsd(n >> 12)),
            }),
            authorized: true,
            decision: Outcome::Allow,
            ..full("/p", "id", v4)
        };
        same_as_serde_json(&rec);
    }
}

#[test]
fn integer_micros_agree_with_the_float_rounding() {
    // Every duration the integer path takes, sampled densely near the
    // rounding points (nanos ending in 499 and 501) and across the range.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut taken = 0;
    for i in 0..200_000u64 {
        let secs = match i % 4 {
            0 => 0,
            1 => next() % 10,
            2 => next() % 1000,
            _ => next() % INTEGER_SECS,
        };
        let nanos = match i % 3 {
            0 => (next() % 1_000_000) * 1000 + [499, 501, 0, 999][(i % 4) as usize],
            _ => next() % 1_000_000_000,
        } % 1_000_000_000;
        let d = Duration::new(secs, nanos as u32);
        if let Some(m) = whole_micros(&d) {
            taken += 1;
            assert_eq!(m as f64, ms_micros(&d), "{d:?}");
        }
    }
    assert!(taken > 190_000, "the integer path took {taken}");
    // Exact halves and long durations are left to the float path.
    assert_eq!(whole_micros(&Duration::from_nanos(1_500)), None);
    assert_eq!(whole_micros(&Duration::from_secs(INTEGER_SECS)), None);
}

#[test]
fn a_line_appended_to_a_batch_keeps_what_was_there() {
    let v4: SocketAddr = "10.1.2.3:4567".parse().unwrap();
    let d = full("/p", "id", v4);
    let mut batch = b"earlier\n".to_vec();
    write(&mut batch, &d);
    let mut alone = Vec::new();
    write(&mut alone, &d);
    assert_eq!(&batch[..8], b"earlier\n");
    assert_eq!(&batch[8..], &alone[..]);
}

#[test]
fn integers_are_written_as_display_writes_them() {
    let mut values: Vec<u64> = (0..=1100).collect();
    values.extend([9_999, 10_000, 65_535, 1 << 32, u64::MAX - 1, u64::MAX]);
    for v in values {
        let mut out = b"x".to_vec();
        uint(&mut out, v);
        assert_eq!(out, format!("x{v}").as_bytes(), "{v}");
    }
}
