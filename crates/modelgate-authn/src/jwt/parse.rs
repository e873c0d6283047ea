//! Decoding a compact JWS into header, claims and signature, checking each
//! field the way jwt_verify_lib does and failing with its status string.
//! Nothing here trusts the token: it only says what the token claims.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::claims::Times;
use super::status as st;

/// The signing algorithms modelgate verifies. `none` and ES512 (P-521,
/// which ring lacks) are not among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl Alg {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "EdDSA" => Self::EdDSA,
            "HS256" => Self::HS256,
            "HS384" => Self::HS384,
            "HS512" => Self::HS512,
            _ => return None,
        })
    }

    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }
}

/// A decoded, not yet verified token.
#[derive(Debug)]
pub struct Jwt {
    pub alg: Alg,
    pub kid: Option<String>,
    /// `base64(header).base64(payload)`: what the signature covers.
    pub signing_input: String,
    pub signature: Vec<u8>,
    pub claims: Map<String, Value>,
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Vec<String>,
    /// `exp`, `nbf` and `iat`, checked by [`Times::check`].
    pub times: Times,
}

fn b64(s: &str, err: &'static str) -> Result<Vec<u8>, &'static str> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| err)
}

fn optional_string(
    claims: &Map<String, Value>,
    name: &str,
    err: &'static str,
) -> Result<Option<String>, &'static str> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(err),
    }
}

fn optional_time(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, &'static str> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else if n.as_i64().is_some() {
                Err(st::out_of_range(name))
            } else {
                match n.as_f64() {
                    Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Ok(Some(f as u64)),
                    Some(f) if f < 0.0 => Err(st::out_of_range(name)),
                    _ => Err(st::not_integer(name)),
                }
            }
        }
        Some(_) => Err(st::not_integer(name)),
    }
}

/// RFC 7515 §4.1.11: a `crit` header lists extensions the recipient must
/// understand. modelgate understands none, so any `crit` fails — and a
/// malformed one (not an array, empty, not strings, naming a registered
/// header) fails all the more.
pub fn check_crit(header: &Map<String, Value>) -> Result<(), &'static str> {
    match header.get("crit") {
        None => Ok(()),
        Some(_) => Err(st::HEADER_BAD_CRIT),
    }
}

/// Decodes `token`, checking its structure in jwt_verify_lib's order.
pub fn parse(token: &str) -> Result<Jwt, &'static str> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(st::BAD_FORMAT);
    };
    let header: Value =
        serde_json::from_slice(&b64(h, st::HEADER_BAD_BASE64)?).map_err(|_| st::HEADER_BAD_JSON)?;
    let Value::Object(header) = header else {
        return Err(st::HEADER_BAD_JSON);
    };
    let alg = match header.get("alg") {
        Some(Value::String(a)) => Alg::parse(a).ok_or(st::HEADER_ALG_NOT_SUPPORTED)?,
        _ => return Err(st::HEADER_BAD_ALG),
    };
    let kid = optional_string(&header, "kid", st::HEADER_BAD_KID)?;
    check_crit(&header)?;
    let payload: Value = serde_json::from_slice(&b64(p, st::PAYLOAD_BAD_BASE64)?)
        .map_err(|_| st::PAYLOAD_BAD_JSON)?;
    let Value::Object(claims) = payload else {
        return Err(st::PAYLOAD_BAD_JSON);
    };
    let iss = optional_string(&claims, "iss", st::ISS_NOT_STRING)?;
    let sub = optional_string(&claims, "sub", st::SUB_NOT_STRING)?;
    let iat = optional_time(&claims, "iat")?;
    let nbf = optional_time(&claims, "nbf")?;
    let exp = optional_time(&claims, "exp")?;
    optional_string(&claims, "jti", st::JTI_NOT_STRING)?;
    let aud = match claims.get("aud") {
        None => Vec::new(),
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or(st::AUD_NOT_STRING))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(st::AUD_NOT_STRING),
    };
    let signature = b64(s, st::SIGNATURE_BAD_BASE64)?;
    Ok(Jwt {
        alg,
        kid,
        signing_input: format!("{h}.{p}"),
        signature,
        claims,
        iss,
        sub,
        aud,
        times: Times { exp, nbf, iat },
    })
}

/// The `iss` claim, read without any check, to pick the rule that will verify.
pub fn peek_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let iss = serde::Deserializer::deserialize_map(&mut de, IssuerOnly).ok()?;
    de.end().ok()?;
    iss
}

/// Whether an object key is `iss` (escaped or not), without keeping it.
struct IsIss(bool);

impl<'de> serde::Deserialize<'de> for IsIss {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IsIss;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IsIss, E> {
                Ok(IsIss(v == "iss"))
            }
        }
        d.deserialize_str(V)
    }
}

/// The payload's `iss` when it is a string (the last one, as a `Value` map
/// keeps it); every other claim is skipped without being built.
struct IssuerOnly;

impl<'de> serde::de::Visitor<'de> for IssuerOnly {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut iss = None;
        while let Some(IsIss(is_iss)) = map.next_key::<IsIss>()? {
            if is_iss {
                iss = match map.next_value::<Value>()? {
                    Value::String(s) => Some(s),
                    _ => None,
                };
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(iss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    fn tok(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", enc(header), enc(payload), enc("sig"))
    }

    #[test]
    fn peek_issuer_reads_iss_as_a_value_map_would() {
        for (payload, want) in [
            (
                r#"{"iss":"https://idp","sub":"u","aud":["a"],"x":{"iss":"no"}}"#,
                Some("https://idp"),
            ),
            (r#"{"sub":"u"}"#, None),
            (r#"{"iss":7}"#, None),
            (r#"{"iss":"a","iss":"b"}"#, Some("b")),
            (r#"{"iss":"a","iss":null}"#, None),
            (r#"{"i\u0073s":"esc\"aped"}"#, Some("esc\"aped")),
            (r#"["iss"]"#, None),
            (r#""iss""#, None),
            (r#"{"iss":"a"} x"#, None),
            (r#"{"iss":"a","bad":}"#, None),
        ] {
            let t = tok(r#"{"alg":"RS256"}"#, payload);
            assert_eq!(peek_issuer(&t).as_deref(), want, "{payload}");
            let v: Option<Value> = serde_json::from_str(payload).ok();
            let by_value = v.as_ref().and_then(|v| v.get("iss")?.as_str());
            assert_eq!(by_value, want, "{payload}");
        }
        assert_eq!(peek_issuer("onlyone"), None);
        assert_eq!(peek_issuer("a.!!!.c"), None);
    }

    #[test]
    fn good_token_decodes() {
        let t = tok(
            r#"{"alg":"RS256","kid":"k1"}"#,
            r#"{"iss":"https://idp","sub":"u","aud":["a","b"],"exp":20,"nbf":10,"iat":10,"kubernetes.io":{"namespace":"ns"}}"#,
        );
        let j = parse(&t).unwrap();
        assert_eq!(j.alg, Alg::RS256);
        assert_eq!(j.kid.as_deref(), Some("k1"));
        assert_eq!(j.iss.as_deref(), Some("https://idp"));
        assert_eq!(j.aud, ["a", "b"]);
        assert_eq!(
            j.times,
            Times {
                exp: Some(20),
                nbf: Some(10),
                iat: Some(10)
            }
        );
        assert_eq!(j.claims["kubernetes.io"]["namespace"], "ns");
        assert_eq!(j.signature, b"sig");
        assert_eq!(peek_issuer(&t).as_deref(), Some("https://idp"));
    }

    #[test]
    fn envoy_statuses() {
        let cases: &[(&str, &str)] = &[
            ("abc", st::BAD_FORMAT),
            ("a.b", st::BAD_FORMAT),
            ("a.b.c.d", st::BAD_FORMAT),
            ("!!.e30.c2ln", st::HEADER_BAD_BASE64),
            ("e30=.e30.c2ln", st::HEADER_BAD_BASE64),
        ];
        for (t, want) in cases {
            assert_eq!(parse(t).unwrap_err(), *want, "{t}");
        }
        let p = |h: &str, pl: &str| parse(&tok(h, pl)).unwrap_err();
        assert_eq!(p("nope", "{}"), st::HEADER_BAD_JSON);
        assert_eq!(p("[]", "{}"), st::HEADER_BAD_JSON);
        assert_eq!(p("{}", "{}"), st::HEADER_BAD_ALG);
        assert_eq!(p(r#"{"alg":1}"#, "{}"), st::HEADER_BAD_ALG);
        assert_eq!(p(r#"{"alg":"none"}"#, "{}"), st::HEADER_ALG_NOT_SUPPORTED);
        assert_eq!(p(r#"{"alg":"ES512"}"#, "{}"), st::HEADER_ALG_NOT_SUPPORTED);
        assert_eq!(p(r#"{"alg":"RS256","kid":3}"#, "{}"), st::HEADER_BAD_KID);
        for crit in [
            r#"["exp"]"#,
            r#"["b64"]"#,
            "[]",
            r#""b64""#,
            "null",
            r#"["alg"]"#,
            "[1]",
            "{}",
        ] {
            let h = format!(r#"{{"alg":"RS256","crit":{crit},"b64":false,"exp":1}}"#);
            assert_eq!(p(&h, "{}"), st::HEADER_BAD_CRIT, "{crit}");
        }
        assert!(parse(&tok(r#"{"alg":"RS256","b64":false}"#, "{}")).is_ok());
        assert_eq!(p(r#"{"alg":"RS256"}"#, "x"), st::PAYLOAD_BAD_JSON);
        assert_eq!(p(r#"{"alg":"RS256"}"#, r#"{"iss":1}"#), st::ISS_NOT_STRING);
        assert_eq!(p(r#"{"alg":"RS256"}"#, r#"{"sub":[]}"#), st::SUB_NOT_STRING);
        assert_eq!(
            p(r#"{"alg":"RS256"}"#, r#"{"exp":"soon"}"#),
            "Jwt payload [exp] field is not an integer"
        );
        assert_eq!(
            p(r#"{"alg":"RS256"}"#, r#"{"exp":1.5}"#),
            "Jwt payload [exp] field is not an integer"
        );
        assert_eq!(
            p(r#"{"alg":"RS256"}"#, r#"{"nbf":-1}"#),
            "Jwt payload [nbf] field is not a positive 64 bit integer"
        );
        assert_eq!(
            p(r#"{"alg":"RS256"}"#, r#"{"aud":[1]}"#),
            st::AUD_NOT_STRING
        );
        assert_eq!(p(r#"{"alg":"RS256"}"#, r#"{"jti":1}"#), st::JTI_NOT_STRING);
        let bad_sig = format!("{}.{}.%%", enc(r#"{"alg":"RS256"}"#), enc("{}"));
        assert_eq!(parse(&bad_sig).unwrap_err(), st::SIGNATURE_BAD_BASE64);
    }

    #[test]
    fn never_panics_on_garbage() {
        for t in [
            "",
            ".",
            "..",
            "...",
            "\u{0}.\u{0}.\u{0}",
            "eyJ.eyJ.",
            "e30.e30.",
            "😀.😀.😀",
        ] {
            let _ = parse(t);
            let _ = peek_issuer(t);
        }
    }
}
