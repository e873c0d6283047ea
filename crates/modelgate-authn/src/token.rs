//! Where JWT rules look for tokens (Istio `fromHeaders`, `fromParams`,
//! `fromCookies`; with none given, `Authorization: Bearer` and the
//! `access_token` query parameter), and removing them before forwarding.

use std::borrow::Cow;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};
use modelgate_config::identity::{JwtHeader, JwtRule};
use modelgate_core::AuthFailure;

use crate::credential::MAX_CREDENTIAL_LEN;
#[cfg(test)]
use crate::jwt::status as st;

/// The union of every rule's token locations.
#[derive(Debug, Clone, Default)]
pub struct TokenLocations {
    pub headers: Vec<JwtHeader>,
    pub params: Vec<String>,
    pub cookies: Vec<String>,
}

fn invalid(s: &str) -> AuthFailure {
    AuthFailure::InvalidToken(s.to_string())
}

fn decode_component(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// The locations of one rule, with Istio's defaults when it names none.
pub fn rule_locations(r: &JwtRule) -> TokenLocations {
    if r.from_headers.is_empty() && r.from_params.is_empty() && r.from_cookies.is_empty() {
        return TokenLocations {
            headers: vec![JwtHeader {
                name: AUTHORIZATION,
                prefix: "Bearer ".into(),
            }],
            params: vec!["access_token".into()],
            cookies: Vec::new(),
        };
    }
    TokenLocations {
        headers: r.from_headers.clone(),
        params: r.from_params.clone(),
        cookies: r.from_cookies.clone(),
    }
}

impl TokenLocations {
    pub fn merge(&mut self, other: TokenLocations) {
        for h in other.headers {
            if !self.headers.contains(&h) {
                self.headers.push(h);
            }
        }
        for p in other.params {
            if !self.params.contains(&p) {
                self.params.push(p);
            }
        }
        for c in other.cookies {
            if !self.cookies.contains(&c) {
                self.cookies.push(c);
            }
        }
    }

    /// Header names that may carry a token.
    pub fn header_names(&self) -> Vec<HeaderName> {
        let mut out: Vec<HeaderName> = Vec::new();
        for h in &self.headers {
            if !out.contains(&h.name) {
                out.push(h.name.clone());
            }
        }
        out
    }

    /// Every distinct token found in these locations, owned (the tests' and
    /// the fuzz targets' view of [`Self::each`]).
    pub fn find(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Vec<String>, AuthFailure> {
        let mut found: Vec<String> = Vec::new();
        self.each(headers, query, &mut |v| {
            if !found.iter().any(|f| *f == *v) {
                found.push(v.into_owned());
            }
        })?;
        Ok(found)
    }

    /// Calls `add` with every non-empty token found, in [`Self::find`]'s
    /// order and with its errors (checked before any token is judged), as a
    /// slice of the request where it needs no decoding.
    pub(crate) fn each<'a>(
        &self,
        headers: &'a HeaderMap,
        query: Option<&'a str>,
        add: &mut dyn FnMut(Cow<'a, str>),
    ) -> Result<(), AuthFailure> {
        self.each_with(headers, None, query, add)
    }

    /// [`Self::each`], given the request's `Authorization` value already
    /// read as text: `authorization` is `Some` only when `headers` hold
    /// exactly one `Authorization` header and it is that header's text.
    pub(crate) fn each_with<'a>(
        &self,
        headers: &'a HeaderMap,
        authorization: Option<&'a str>,
        query: Option<&'a str>,
        add: &mut dyn FnMut(Cow<'a, str>),
    ) -> Result<(), AuthFailure> {
        let mut add = |v: Cow<'a, str>| -> Result<(), AuthFailure> {
            if v.is_empty() {
                return Ok(());
            }
            if v.len() > MAX_CREDENTIAL_LEN {
                return Err(invalid("credential too long"));
            }
            add(v);
            Ok(())
        };
        for loc in &self.headers {
            let p = loc.prefix.as_str();
            let mut take = |v: &'a str| {
                if v.len() >= p.len()
                    && v.is_char_boundary(p.len())
                    && v[..p.len()].eq_ignore_ascii_case(p)
                {
                    add(Cow::Borrowed(v[p.len()..].trim()))?;
                }
                Ok(())
            };
            if let (Some(v), true) = (authorization, loc.name == AUTHORIZATION) {
                take(v)?;
                continue;
            }
            for v in headers.get_all(&loc.name) {
                let Ok(v) = v.to_str() else {
                    return Err(invalid("malformed credential header"));
                };
                take(v)?;
            }
        }
        if let Some(q) = query
            && !self.params.is_empty()
        {
            for pair in q.split('&') {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if self.params.iter().any(|p| *p == decode_component(k)) {
                    add(Cow::Owned(decode_component(v)))?;
                }
            }
        }
        if !self.cookies.is_empty() {
            for h in headers.get_all(COOKIE) {
                let Ok(h) = h.to_str() else { continue };
                for c in h.split(';') {
                    let (k, v) = c.trim().split_once('=').unwrap_or((c.trim(), ""));
                    if self.cookies.iter().any(|n| n == k) {
                        add(Cow::Borrowed(v.trim_matches('"')))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The query without token parameters (`None` if nothing is left).
    pub fn strip_query(&self, query: Option<String>) -> Option<String> {
        let q = query?;
        if self.params.is_empty() {
            return Some(q);
        }
        let kept: Vec<&str> = q
            .split('&')
            .filter(|pair| {
                let k = pair.split_once('=').map_or(*pair, |(k, _)| k);
                !self.params.iter().any(|p| *p == decode_component(k))
            })
            .collect();
        (!kept.is_empty()).then(|| kept.join("&"))
    }

    /// Removes token cookies from the `Cookie` header(s).
    pub fn strip_cookies(&self, headers: &mut HeaderMap) {
        if !self.cookies.is_empty() {
            strip_cookies(headers, |k| self.cookies.iter().any(|n| n == k));
        }
    }
}

/// Removes the cookies whose name `drop` accepts from the `Cookie`
/// header(s), keeping the others in one header.
pub(crate) fn strip_cookies(headers: &mut HeaderMap, drop: impl Fn(&str) -> bool) {
    if !headers.contains_key(COOKIE) {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .map(str::trim)
        .filter(|c| {
            let k = c.split_once('=').map_or(*c, |(k, _)| k);
            !c.is_empty() && !drop(k)
        })
        .map(str::to_string)
        .collect();
    headers.remove(COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(COOKIE, v);
    }
}

/// The one token a request carries across all locations; several distinct
/// ones are refused (Envoy requires all to be valid; we do not guess).
/// `Authenticator::presented_token` applies the same rule as it goes.
#[cfg(test)]
pub fn single(tokens: Vec<String>) -> Result<Option<String>, AuthFailure> {
    match tokens.len() {
        0 => Ok(None),
        1 => Ok(tokens.into_iter().next()),
        _ => Err(invalid(st::MULTIPLE_TOKENS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locs() -> TokenLocations {
        TokenLocations {
            headers: vec![
                JwtHeader {
                    name: AUTHORIZATION,
                    prefix: "Bearer ".into(),
                },
                JwtHeader {
                    name: HeaderName::from_static("x-jwt"),
                    prefix: String::new(),
                },
            ],
            params: vec!["access_token".into()],
            cookies: vec!["session".into()],
        }
    }

    fn hm(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn finds_in_every_location() {
        let l = locs();
        assert_eq!(
            l.find(&hm(&[("authorization", "Bearer a.b.c")]), None)
                .unwrap(),
            ["a.b.c"]
        );
        assert_eq!(
            l.find(&hm(&[("authorization", "Basic xyz")]), None)
                .unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(l.find(&hm(&[("x-jwt", "t1")]), None).unwrap(), ["t1"]);
        assert_eq!(
            l.find(&hm(&[]), Some("a=1&access_token=t%2B2&b=3"))
                .unwrap(),
            ["t+2"]
        );
        assert_eq!(
            l.find(&hm(&[("cookie", "x=1; session=t3")]), None).unwrap(),
            ["t3"]
        );
        let same = l
            .find(
                &hm(&[("authorization", "Bearer t")]),
                Some("access_token=t"),
            )
            .unwrap();
        assert_eq!(single(same).unwrap().as_deref(), Some("t"));
        let two = l
            .find(
                &hm(&[("authorization", "Bearer t")]),
                Some("access_token=u"),
            )
            .unwrap();
        assert_eq!(
            single(two).unwrap_err(),
            AuthFailure::InvalidToken(st::MULTIPLE_TOKENS.into())
        );
    }

    #[test]
    fn strips_params_and_cookies() {
        let l = locs();
        assert_eq!(
            l.strip_query(Some("a=1&access_token=t&b=2".into()))
                .as_deref(),
            Some("a=1&b=2")
        );
        assert_eq!(l.strip_query(Some("access_token=t".into())), None);
        assert_eq!(l.strip_query(Some("access%5Ftoken=t".into())), None);
        let mut h = hm(&[("cookie", "x=1; session=t3; y=2")]);
        l.strip_cookies(&mut h);
        assert_eq!(h["cookie"], "x=1; y=2");
        let mut h = hm(&[("cookie", "session=t3")]);
        l.strip_cookies(&mut h);
        assert!(h.get("cookie").is_none());
    }

    #[test]
    fn oversized_token_is_refused() {
        let big = format!("access_token={}", "a".repeat(MAX_CREDENTIAL_LEN + 1));
        assert!(locs().find(&HeaderMap::new(), Some(&big)).is_err());
    }
}
