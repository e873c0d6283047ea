//! What an OpenAI-compatible upstream may be sent: the model it serves must be
//! the one modelgate read from the JSON body and authorized, so nothing else
//! it could read a model (or a different body) from is forwarded.
//!
//! - **No query string.** OpenAI's inference endpoints take no query
//!   parameters, but servers read them: LiteLLM takes `?model=` over the body
//!   (and `api-version`, `target_model_names` elsewhere). Rather than keep a
//!   list of names one server reads today, any query left after credential
//!   parameters are removed is refused.
//! - **A JSON body, as sent.** The content type must be `application/json`
//!   (parameters allowed: `charset` only), with no `Content-Encoding`: LiteLLM
//!   parses form content types as forms, which can name another model than the
//!   JSON modelgate read.

use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use modelgate_core::Reject;

/// Refuses an OpenAI request an upstream could read another model from.
/// `query` is what would be forwarded (credential parameters already removed).
pub fn check_request(headers: &HeaderMap, query: Option<&str>) -> Result<(), Reject> {
    if query.is_some_and(|q| !q.is_empty()) {
        return Err(Reject::BadRequest(
            "query parameters are not accepted on OpenAI endpoints; send the model in the JSON body"
                .into(),
        ));
    }
    if headers.contains_key(CONTENT_ENCODING) {
        return Err(Reject::BadRequest(
            "Content-Encoding is not accepted on OpenAI endpoints; send plain JSON".into(),
        ));
    }
    let mut types = headers.get_all(CONTENT_TYPE).iter();
    let json = match (types.next(), types.next()) {
        (Some(v), None) => v.to_str().is_ok_and(is_json),
        _ => false,
    };
    if !json {
        return Err(Reject::BadRequest(
            "OpenAI endpoints need Content-Type: application/json".into(),
        ));
    }
    Ok(())
}

/// `application/json`, optionally with a `charset` parameter, and nothing else.
fn is_json(ct: &str) -> bool {
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
        && parts.all(|param| {
            param.split_once('=').is_some_and(|(k, v)| {
                let v = v.trim().trim_matches('"');
                k.trim().eq_ignore_ascii_case("charset")
                    && !v.is_empty()
                    && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_type(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn json_bodies_pass() {
        for ct in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(check_request(&with_type(ct), None).is_ok(), "{ct}");
            assert!(check_request(&with_type(ct), Some("")).is_ok(), "{ct}");
        }
    }

    #[test]
    fn anything_that_could_name_another_model_is_refused() {
        for ct in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; x=form",
            "application/json; boundary=form",
            "application/json, application/x-www-form-urlencoded",
            "text/plain",
            "application/jsonx",
            "",
        ] {
            assert!(
                matches!(
                    check_request(&with_type(ct), None),
                    Err(Reject::BadRequest(_))
                ),
                "{ct}"
            );
        }
        assert!(check_request(&HeaderMap::new(), None).is_err());
        let mut two = with_type("application/json");
        two.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert!(check_request(&two, None).is_err());
        let mut gz = with_type("application/json");
        gz.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(check_request(&gz, None).is_err());
        for q in ["model=granite", "MODEL=granite", "api-version=1", "x"] {
            let r = check_request(&with_type("application/json"), Some(q));
            assert!(matches!(r, Err(Reject::BadRequest(_))), "{q}");
        }
    }
}
