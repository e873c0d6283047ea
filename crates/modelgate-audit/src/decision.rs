//! One request's decision record: what was asked, by whom, what was decided
//! and by which rule (`basis`, `policy`, dry-run and AUDIT policies), and how
//! long it took. Never a credential.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Whether the request was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Authorized (the backend may still have failed: see `status`).
    Allow,
    /// Refused by authentication or authorization.
    Deny,
    /// Refused before any auth decision (bad request, unknown path, overload).
    Reject,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Reject => "reject",
        }
    }
}

/// The record of one request. It borrows from the request's own state, so
/// writing it copies nothing but the serialised line.
#[derive(Debug, Clone, Serialize)]
pub struct Decision<'a> {
    #[serde(serialize_with = "ser_time")]
    pub ts: SystemTime,
    pub request_id: &'a str,
    #[serde(serialize_with = "ser_addr")]
    pub client: SocketAddr,
    pub method: &'a str,
    /// Normalised path (what was authorized); the raw target if it did not normalise.
    pub path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<&'static str>,
    /// Identity name (API-key name, token subject); never a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<&'a str>,
    pub decision: Outcome,
    /// Authorino-compatible fields.
    pub authorized: bool,
    pub response: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_ms_opt")]
    pub upstream_ms: Option<Duration>,
    /// Streamed (SSE) answers: from the request sent upstream to the first
    /// byte of the answer's body (time to first token).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_ms_opt")]
    pub upstream_ttfb_ms: Option<Duration>,
    /// Streamed (SSE) answers: from the answer's headers to its last byte
    /// (or to the client going away); the record is written then.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_ms_opt")]
    pub stream_ms: Option<Duration>,
    #[serde(serialize_with = "ser_ms")]
    pub total_ms: Duration,
    /// Which rule decided, and which policies watched.
    #[serde(flatten)]
    pub rule: Rule<'a>,
    /// The wristband sent upstream (its key and token id, never the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wristband: Option<WristbandNote<'a>>,
    /// Tokens the request used, as the rate-limit step charged them (OpenAI
    /// answers that reported `usage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenNote>,
}

/// A request's tokens: `input` (cached input weighted), `output`, `total`;
/// and `cost_usd`, what they cost at the model's price (`models[].cost`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TokenNote {
    pub input: u64,
    pub output: u64,
    pub total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<MicroUsd>,
}

/// Money counted in integer micro-USD, written as USD (`0.0015`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MicroUsd(pub u64);

impl Serialize for MicroUsd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Exact: every micro-dollar amount below 2^53 reads back to itself.
        s.serialize_f64(self.0 as f64 / 1_000_000.0)
    }
}

/// Which wristband a request carried upstream.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WristbandNote<'a> {
    pub kid: &'a str,
    pub jti: &'a str,
}

/// The rule behind an authorization decision (absent when the request was
/// refused before authorization).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rule<'a> {
    /// `public`, `grant`, `policy`, `server_operation` or `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basis: Option<&'static str>,
    /// The policy that allowed or denied, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyNote<'a>>,
    /// Dry-run policies that applied, with what each would have done.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<PolicyNote<'a>>,
    /// AUDIT policies that matched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<PolicyNote<'a>>,
    /// The external authorizer a CUSTOM policy asked, and its answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalNote<'a>>,
}

/// An external authorizer's part in a decision.
#[derive(Debug, Clone, Serialize)]
pub struct ExternalNote<'a> {
    /// The `extension_providers[].name`.
    pub provider: &'a str,
    /// `pending`, `allowed`, `denied`, `error` or `error_fail_open`.
    pub outcome: &'static str,
}

/// A policy named in a decision record.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyNote<'a> {
    pub name: &'a str,
    /// `ALLOW`, `DENY`, `AUDIT` or `CUSTOM`.
    pub action: &'static str,
    /// For dry-run policies: `allow`, `deny`, `not_allow`, `need_credential`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would: Option<&'static str>,
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 27];
    s.serialize_str(rfc3339_micros(*t, &mut buf))
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` without the formatting machinery (this runs
/// for every request). Civil date from days since the epoch: Howard
/// Hinnant's `civil_from_days`.
pub(crate) fn rfc3339_micros(t: SystemTime, buf: &mut [u8; 27]) -> &str {
    rfc3339_bytes(t, buf);
    std::str::from_utf8(buf).unwrap_or("1970-01-01T00:00:00.000000Z")
}

/// [`rfc3339_micros`]'s bytes (digits and punctuation only).
fn rfc3339_bytes(t: SystemTime, buf: &mut [u8; 27]) {
    thread_local! {
        /// The last second written on this thread, as `YYYY-MM-DDThh:mm:ss.`
        /// (records come many to a second: the date is worked out once).
        static SECOND: std::cell::Cell<Option<(u64, [u8; 20])>> = const { std::cell::Cell::new(None) };
    }
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let prefix = match SECOND.get() {
        Some((s, p)) if s == secs => p,
        _ => {
            let p = second_prefix(secs);
            SECOND.set(Some((secs, p)));
            p
        }
    };
    buf[..20].copy_from_slice(&prefix);
    let mut v = d.subsec_micros();
    for i in (20..26).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    buf[26] = b'Z';
}

/// [`rfc3339_micros`] appended to `out` (no UTF-8 check: digits and
/// punctuation only).
pub(crate) fn write_rfc3339_micros(out: &mut Vec<u8>, t: SystemTime) {
    let mut buf = [0u8; 27];
    rfc3339_bytes(t, &mut buf);
    out.extend_from_slice(&buf);
}

/// `YYYY-MM-DDThh:mm:ss.` of a Unix time in seconds (UTC, proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
fn second_prefix(secs: u64) -> [u8; 20] {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let sod = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let fields: [(usize, u64, usize); 6] = [
        (0, u64::try_from(year).unwrap_or(0), 4),
        (5, u64::try_from(month).unwrap_or(0), 2),
        (8, u64::try_from(day).unwrap_or(0), 2),
        (11, sod / 3600, 2),
        (14, sod % 3600 / 60, 2),
        (17, sod % 60, 2),
    ];
    let mut buf = *b"0000-00-00T00:00:00.";
    for (at, mut v, width) in fields {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    buf
}

fn ser_addr<S: serde::Serializer>(a: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 21];
    match ipv4_port(a, &mut buf) {
        Some(text) => s.serialize_str(text),
        None => s.collect_str(a),
    }
}

/// `a.b.c.d:port` without the formatting machinery (this runs for every
/// request); `None` for IPv6, which goes through `Display`.
pub(crate) fn ipv4_port<'b>(a: &SocketAddr, buf: &'b mut [u8; 21]) -> Option<&'b str> {
    thread_local! {
        /// The last address written on this thread (a connection's requests
        /// come one after another): its text and length.
        static LAST: std::cell::Cell<Option<(std::net::SocketAddrV4, [u8; 21], usize)>> =
            const { std::cell::Cell::new(None) };
    }
    let SocketAddr::V4(v4) = a else { return None };
    if let Some((last, text, n)) = LAST.get()
        && last == *v4
    {
        *buf = text;
        return std::str::from_utf8(&buf[..n]).ok();
    }
    let n = ipv4_port_text(v4, buf);
    LAST.set(Some((*v4, *buf, n)));
    std::str::from_utf8(&buf[..n]).ok()
}

/// [`ipv4_port`] appended to `out` as a JSON string (digits, dots and a
/// colon: nothing to escape); `false` (nothing written) for IPv6.
pub(crate) fn write_ipv4_port(out: &mut Vec<u8>, a: &SocketAddr) -> bool {
    thread_local! {
        /// The last address written on this thread, as [`ipv4_port`]'s.
        static LAST: std::cell::Cell<Option<(std::net::SocketAddrV4, [u8; 24], usize)>> =
            const { std::cell::Cell::new(None) };
    }
    let SocketAddr::V4(v4) = a else { return false };
    let (text, n) = match LAST.get() {
        Some((last, text, n)) if last == *v4 => (text, n),
        _ => {
            let mut buf = [0u8; 21];
            let len = ipv4_port_text(v4, &mut buf);
            // Quoted: `"a.b.c.d:port"`.
            let mut text = [b'"'; 24];
            text[1..=len].copy_from_slice(&buf[..len]);
            LAST.set(Some((*v4, text, len + 2)));
            (text, len + 2)
        }
    };
    out.extend_from_slice(&text[..n.min(text.len())]);
    true
}

/// `0`..=`255` as text: its length, then its digits.
const OCTETS: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut i = 0;
    while i < 256 {
        let (h, d, o) = (
            b'0' + (i / 100) as u8,
            b'0' + (i / 10 % 10) as u8,
            b'0' + (i % 10) as u8,
        );
        t[i] = if i >= 100 {
            [3, h, d, o]
        } else if i >= 10 {
            [2, d, o, 0]
        } else {
            [1, o, 0, 0]
        };
        i += 1;
    }
    t
};

/// Writes `a.b.c.d:port` into `buf`; returns its length. The octets come
/// from a table (three bytes stored, its length kept), the port digit by
/// digit.
fn ipv4_port_text(v4: &std::net::SocketAddrV4, buf: &mut [u8; 21]) -> usize {
    let mut n = 0;
    for (o, sep) in v4.ip().octets().into_iter().zip(*b"...:") {
        let [len, digits @ ..] = OCTETS[usize::from(o)];
        // At most 4 × 4 bytes before the port: always inside `buf`.
        buf[n..n + 3].copy_from_slice(&digits);
        n += usize::from(len);
        buf[n] = sep;
        n += 1;
    }
    let port = v4.port();
    let len = match port {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1000..=9999 => 4,
        _ => 5,
    };
    let mut v = port;
    for i in (n..n + len).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    n + len
}

/// A duration in whole microseconds (rounded), as an `f64`.
pub(crate) fn ms_micros(d: &Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round()
}

fn ms(d: &Duration) -> f64 {
    ms_micros(d) / 1000.0
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(ms(d))
}

fn ser_ms_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(ms(d)),
        None => s.serialize_none(),
    }
}

/// Authorino's `response` field: `OK`, `UNAUTHENTICATED`, `PERMISSION_DENIED`, …
pub fn authorino_response(status: u16, outcome: Outcome) -> &'static str {
    match (outcome, status) {
        (Outcome::Allow, _) => "OK",
        (_, 401) => "UNAUTHENTICATED",
        (_, 403) => "PERMISSION_DENIED",
        (_, 404) => "NOT_FOUND",
        (_, 429) => "RESOURCE_EXHAUSTED",
        (_, 400 | 405 | 413) => "INVALID_ARGUMENT",
        _ => "UNAVAILABLE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_addresses_match_display() {
        for a in [
            "0.0.0.0:0",
            "127.0.0.1:8080",
            "255.255.255.255:65535",
            "10.1.20.255:443",
            "[::1]:9000",
            "[2001:db8::5]:1",
            // Repeats and near-repeats: the per-thread last address.
            "10.1.20.255:443",
            "10.1.20.255:443",
            "10.1.20.255:44",
            "10.1.20.25:443",
            "[::1]:9000",
            "10.1.20.25:443",
        ] {
            let addr: SocketAddr = a.parse().unwrap();
            let json = serde_json::to_string(&SerAddr(addr)).unwrap();
            assert_eq!(json, format!("\"{addr}\""));
        }
    }

    #[test]
    fn every_octet_and_port_length_is_written_as_display_writes_it() {
        let ports = [0u16, 9, 10, 99, 100, 999, 1000, 9999, 10_000, 65_535];
        for o in 0..=255u8 {
            for (k, &port) in ports.iter().enumerate() {
                // Each octet value at each place, with ports of every length.
                let mut ip = [1u8, 22, 255, 7];
                ip[k % 4] = o;
                let v4 = std::net::SocketAddrV4::new(ip.into(), port);
                let mut buf = [0u8; 21];
                let n = ipv4_port_text(&v4, &mut buf);
                assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), v4.to_string());
            }
        }
    }

    struct SerAddr(SocketAddr);

    impl serde::Serialize for SerAddr {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            ser_addr(&self.0, s)
        }
    }

    #[test]
    fn timestamps_match_humantime() {
        for secs in [
            0u64,
            951_782_400,
            1_795_434_695,
            4_102_444_799,
            253_402_300_799,
        ] {
            // The same second again (its cached date), another one, and
            // back (the cache follows the clock either way; the second
            // before, as the last case is humantime's last second).
            for (s, nanos) in [
                (secs, 123_456_789),
                (secs, 999_999_000),
                (secs.saturating_sub(86_399), 0),
                (secs, 7_000),
            ] {
                let t = std::time::UNIX_EPOCH + Duration::new(s, nanos);
                let mut buf = [0u8; 27];
                assert_eq!(
                    rfc3339_micros(t, &mut buf),
                    humantime::format_rfc3339_micros(t).to_string()
                );
            }
        }
    }
}
