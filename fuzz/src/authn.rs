//! Identity parsers an attacker feeds: JWT header and payload, JWKS and
//! OIDC discovery documents, credentials in headers, cookies and the query,
//! and the answers of introspection and TokenReview endpoints.

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};
use modelgate_authn::find_credential;
use modelgate_authn::parsers::jwt as parse;
use modelgate_authn::parsers::{
    MAX_CREDENTIAL_LEN, TokenLocations, introspection, jwks, jwt, kubernetes,
};
use modelgate_config::CredentialSource;
use modelgate_config::identity::JwtHeader;
use modelgate_core::AuthFailure;

/// A compact JWS: decoding never panics; a decoded token's signing input is
/// the token's first two parts; a header with `crit` never decodes.
pub fn jwt_parse(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse::peek_issuer(s);
    if let Ok(j) = parse::parse(s) {
        let (head, _) = s.rsplit_once('.').unwrap_or_default();
        assert_eq!(j.signing_input, head);
        assert_eq!(s.bytes().filter(|b| *b == b'.').count(), 2);
        let times = j.times.check(1_750_000_000, 60, true);
        assert!(times.is_err() || j.times.exp.is_some());
    }
    // The same bytes as a header (and as a payload) of an otherwise fine token.
    use base64::Engine;
    let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let as_header = format!("{}.{}.c2ln", enc(data), enc(b"{}"));
    if parse::parse(&as_header).is_ok() {
        let v: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
        assert!(v.get("crit").is_none(), "crit accepted: {s:?}");
        assert!(v.get("alg").and_then(|a| a.as_str()).is_some());
    }
    let as_payload = format!("{}.{}.c2ln", enc(br#"{"alg":"RS256"}"#), enc(data));
    if let Ok(j) = parse::parse(&as_payload) {
        assert!(j.claims.get("iss").is_none_or(|v| v.is_string()));
        let _ = jwt::claim_value(&j.claims, "a.b.c");
        let _ = jwt::claim_value(&j.claims, "kubernetes.io.namespace");
    }
}

/// A JWKS document, and the same bytes as an OIDC discovery document.
pub fn jwks_parse(data: &[u8]) {
    if let Ok(set) = jwt::KeySet::parse(data) {
        assert!(!set.is_empty());
    }
    const ISS: &str = "https://idp.test";
    if let Ok(uri) = jwks::parse_discovery(data, ISS) {
        assert!(uri.host().is_some());
        let v: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
        let named = v.get("issuer").and_then(|i| i.as_str()).unwrap_or_default();
        assert_eq!(named.trim_end_matches('/'), ISS);
    }
}

fn header_map(parts: &[&[u8]]) -> HeaderMap {
    let names = [
        AUTHORIZATION,
        COOKIE,
        HeaderName::from_static("x-api-key"),
        COOKIE,
    ];
    let mut h = HeaderMap::new();
    for (name, v) in names.iter().zip(parts) {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            h.append(name.clone(), v);
        }
    }
    h
}

/// Credentials: `Authorization` schemes, API-key headers, JWT locations in
/// headers, cookies and the query. A found token is at most 16 KiB, and once
/// the query and cookies are stripped no token is found there again.
pub fn credentials(data: &[u8]) {
    let parts: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let headers = header_map(&parts);
    let query = parts.get(4).and_then(|q| std::str::from_utf8(q).ok());
    let sources = [
        CredentialSource::AuthorizationHeader {
            scheme: "Bearer".into(),
        },
        CredentialSource::AuthorizationHeader {
            scheme: "APIKEY".into(),
        },
        CredentialSource::Header {
            name: HeaderName::from_static("x-api-key"),
        },
    ];
    match find_credential(&headers, &sources) {
        Ok(c) => assert!(
            !c.value().is_empty()
                && c.value().len() <= MAX_CREDENTIAL_LEN
        ),
        Err(e) => assert!(matches!(
            e,
            AuthFailure::CredentialNotFound | AuthFailure::InvalidToken(_)
        )),
    }
    let locs = TokenLocations {
        headers: vec![JwtHeader {
            name: AUTHORIZATION,
            prefix: "Bearer ".into(),
        }],
        params: vec!["access_token".into(), "tok en".into()],
        cookies: vec!["session".into(), "tok".into()],
    };
    let Ok(found) = locs.find(&headers, query) else {
        return;
    };
    for t in &found {
        assert!(!t.is_empty() && t.len() <= MAX_CREDENTIAL_LEN);
    }
    let mut stripped = headers.clone();
    stripped.remove(AUTHORIZATION);
    locs.strip_cookies(&mut stripped);
    let q = locs.strip_query(query.map(str::to_string));
    let again = locs.find(&stripped, q.as_deref());
    assert!(
        matches!(&again, Ok(v) if v.is_empty()),
        "token left after stripping: {again:?} from {data:?}"
    );
}

/// Introspection and TokenReview answers: a principal comes only from an
/// answer that says `active`/`authenticated` with the JSON `true`.
pub fn remote_answers(data: &[u8]) {
    let audiences = ["models".to_string()];
    if let Ok(answer) = introspection::parse_answer(data) {
        let active = answer.get("active") == Some(&serde_json::Value::Bool(true));
        let (v, _) = introspection::judge(answer.clone(), 1_750_000_000, &[]);
        assert!(v.is_err() || active);
        let (v, _) = introspection::judge(answer, 1_750_000_000, &audiences);
        if let Ok(p) = v {
            assert!(p.audiences.iter().any(|a| a == "models"));
        }
    }
    if let Ok(status) = kubernetes::parse_review(data) {
        let yes = status.get("authenticated") == Some(&serde_json::Value::Bool(true));
        for aud in [&[][..], &audiences[..]] {
            let (v, _) = kubernetes::judge(&status, aud);
            if let Ok(p) = v {
                assert!(yes && !p.name.is_empty());
            }
        }
    }
}
