//! Finding the one credential a request carries, in the listener's configured
//! locations (`Authorization: Bearer …`, `Authorization: APIKEY …`, `x-api-key`).

use http::HeaderMap;
use http::header::AUTHORIZATION;
use modelgate_config::CredentialSource;
use modelgate_core::AuthFailure;

/// Longest credential accepted; anything longer is refused unread.
pub const MAX_CREDENTIAL_LEN: usize = 16 * 1024;

/// A credential as presented. `Debug` never prints the value.
pub struct Credential {
    value: String,
}

impl Credential {
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential([redacted])")
    }
}

fn invalid(msg: &str) -> AuthFailure {
    AuthFailure::InvalidToken(msg.to_string())
}

/// Returns the single credential in `sources`. Several different credentials,
/// a repeated header, or a malformed value are refused rather than guessed at.
pub fn find_credential(
    headers: &HeaderMap,
    sources: &[CredentialSource],
) -> Result<Credential, AuthFailure> {
    credential_in(headers, sources)?
        .map(|v| Credential {
            value: v.to_string(),
        })
        .ok_or(AuthFailure::CredentialNotFound)
}

/// [`find_credential`] without the copy: the credential as a slice of its
/// header (`None`: not found).
pub(crate) fn credential_in<'a>(
    headers: &'a HeaderMap,
    sources: &[CredentialSource],
) -> Result<Option<&'a str>, AuthFailure> {
    credential_and_authorization(headers, sources).map(|(found, _)| found)
}

/// [`credential_in`], and the request's one `Authorization` value as text
/// when a source read it (so that it is not validated again).
pub(crate) fn credential_and_authorization<'a>(
    headers: &'a HeaderMap,
    sources: &[CredentialSource],
) -> Result<(Option<&'a str>, Option<&'a str>), AuthFailure> {
    let mut found: Option<&str> = None;
    let mut authorization_text: Option<&str> = None;
    let mut auth_values = headers.get_all(AUTHORIZATION).iter();
    let authorization = auth_values.next();
    if auth_values.next().is_some() {
        return Err(invalid("more than one Authorization header"));
    }
    // `Authorization` split at its first space, once for every scheme.
    let mut scheme_and_rest: Option<Option<(&str, &str)>> = None;
    for source in sources {
        let value = match source {
            CredentialSource::AuthorizationHeader { scheme } => {
                let Some(v) = authorization else { continue };
                let split = match scheme_and_rest {
                    Some(split) => split,
                    None => {
                        let v = v
                            .to_str()
                            .map_err(|_| invalid("malformed Authorization header"))?;
                        authorization_text = Some(v);
                        let split = v
                            .bytes()
                            .position(|b| b == b' ')
                            .map(|at| (&v[..at], &v[at + 1..]));
                        *scheme_and_rest.insert(split)
                    }
                };
                let Some((s, rest)) = split else {
                    continue;
                };
                if !s.eq_ignore_ascii_case(scheme) {
                    continue;
                }
                rest.trim()
            }
            CredentialSource::Header { name } => {
                let mut values = headers.get_all(name).iter();
                let Some(v) = values.next() else { continue };
                if values.next().is_some() {
                    return Err(invalid("credential header repeated"));
                }
                v.to_str()
                    .map_err(|_| invalid("malformed credential header"))?
                    .trim()
            }
        };
        if value.is_empty() {
            return Err(invalid("empty credential"));
        }
        if value.len() > MAX_CREDENTIAL_LEN {
            return Err(invalid("credential too long"));
        }
        match found {
            Some(f) if f != value => return Err(invalid("more than one credential")),
            Some(_) => {}
            None => found = Some(value),
        }
    }
    Ok((found, authorization_text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn sources() -> Vec<CredentialSource> {
        vec![
            CredentialSource::AuthorizationHeader {
                scheme: "Bearer".into(),
            },
            CredentialSource::AuthorizationHeader {
                scheme: "APIKEY".into(),
            },
            CredentialSource::Header {
                name: HeaderName::from_static("x-api-key"),
            },
        ]
    }

    fn find(pairs: &[(&'static str, &'static str)]) -> Result<String, AuthFailure> {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        find_credential(&h, &sources()).map(|c| c.value().to_string())
    }

    #[test]
    fn locations() {
        assert_eq!(find(&[("authorization", "Bearer abc")]).unwrap(), "abc");
        assert_eq!(find(&[("authorization", "bearer abc")]).unwrap(), "abc");
        assert_eq!(find(&[("authorization", "APIKEY abc")]).unwrap(), "abc");
        assert_eq!(find(&[("x-api-key", "abc")]).unwrap(), "abc");
        assert_eq!(
            find(&[("authorization", "Bearer abc"), ("x-api-key", "abc")]).unwrap(),
            "abc"
        );
    }

    #[test]
    fn missing() {
        assert_eq!(find(&[]).unwrap_err(), AuthFailure::CredentialNotFound);
        assert_eq!(
            find(&[("authorization", "Basic dXNlcjpwdw==")]).unwrap_err(),
            AuthFailure::CredentialNotFound
        );
    }

    #[test]
    fn ambiguous_or_malformed_is_refused() {
        assert!(matches!(
            find(&[("authorization", "Bearer a"), ("x-api-key", "b")]),
            Err(AuthFailure::InvalidToken(_))
        ));
        assert!(matches!(
            find(&[("authorization", "Bearer a"), ("authorization", "Bearer a")]),
            Err(AuthFailure::InvalidToken(_))
        ));
        assert!(matches!(
            find(&[("x-api-key", "a"), ("x-api-key", "b")]),
            Err(AuthFailure::InvalidToken(_))
        ));
        assert!(matches!(
            find(&[("authorization", "Bearer ")]),
            Err(AuthFailure::InvalidToken(_))
        ));
    }

    #[test]
    fn debug_hides_value() {
        let c = Credential {
            value: "secret".into(),
        };
        assert!(!format!("{c:?}").contains("secret"));
    }
}
