//! The one place where a [`Reject`] becomes a response, in the error shape the
//! client's protocol expects.

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use crate::{AuthFailure, BoxBody, ErrorShape, Reject, empty, full};

/// Authorino's header explaining a 401/403.
pub const X_EXT_AUTH_REASON: HeaderName = HeaderName::from_static("x-ext-auth-reason");

/// Settings that shape error responses.
#[derive(Debug, Clone)]
pub struct RenderContext<'a> {
    /// `realm` in `WWW-Authenticate: Bearer realm="…"`.
    pub realm: &'a str,
}

/// Renders `reject` for a client that speaks `shape`.
pub fn render(reject: &Reject, shape: ErrorShape, ctx: &RenderContext<'_>) -> Response<BoxBody> {
    if let Reject::External(d) = reject {
        return external(reject, d, shape);
    }
    let mut resp = match shape {
        ErrorShape::Grpc => grpc(reject),
        ErrorShape::KServe => json(
            reject.status(),
            serde_json::json!({ "error": reject.client_message() }),
        ),
        ErrorShape::OpenAi => json(reject.status(), openai_body(reject)),
        ErrorShape::EnvoyText => text(reject.status(), envoy_text(reject)),
    };
    let headers = resp.headers_mut();
    if let Reject::Unauthenticated(failure) = reject {
        if let Ok(v) = HeaderValue::from_str(&www_authenticate(ctx.realm, failure)) {
            headers.insert(WWW_AUTHENTICATE, v);
        }
        if let Ok(v) = HeaderValue::from_str(failure.reason()) {
            headers.insert(X_EXT_AUTH_REASON, v);
        }
    }
    let retry = match reject {
        Reject::RateLimited {
            retry_after_secs, ..
        } => Some(*retry_after_secs),
        Reject::Unavailable {
            retry_after_secs, ..
        }
        | Reject::BudgetExceeded {
            retry_after_secs, ..
        } => *retry_after_secs,
        _ => None,
    };
    if let Some(secs) = retry {
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Turns a rendered refusal into a forward-auth answer: a proxy such as nginx
/// `auth_request` understands only 2xx, 401 and 403, so every refusal that is
/// not a 401 becomes a 403; the short reason goes in `x-ext-auth-reason`.
pub fn for_proxy(resp: &mut Response<BoxBody>, reject: &Reject) {
    if resp.status() != StatusCode::UNAUTHORIZED {
        *resp.status_mut() = StatusCode::FORBIDDEN;
    }
    if !resp.headers().contains_key(X_EXT_AUTH_REASON)
        && let Ok(v) = HeaderValue::from_str(&reject.client_message())
    {
        resp.headers_mut().insert(X_EXT_AUTH_REASON, v);
    }
}

/// An external authorizer's refusal, passed on as it was sent (gRPC clients
/// get the status as a gRPC code, with the allowed headers).
fn external(
    reject: &Reject,
    d: &crate::reject::ExternalDenial,
    shape: ErrorShape,
) -> Response<BoxBody> {
    let mut resp = match shape {
        ErrorShape::Grpc => grpc(reject),
        _ => {
            let mut r = Response::new(full(d.body.clone()));
            *r.status_mut() = d.status;
            r
        }
    };
    for (k, v) in &d.headers {
        resp.headers_mut().append(k, v.clone());
    }
    resp
}

/// `Bearer realm="…"`, plus `error="invalid_token"` for a token that was
/// present but bad (as Envoy's jwt_authn and RFC 6750 do).
fn www_authenticate(realm: &str, failure: &AuthFailure) -> String {
    let realm: String = realm
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .take(256)
        .collect();
    match failure {
        AuthFailure::CredentialNotFound => format!("Bearer realm=\"{realm}\""),
        _ => format!("Bearer realm=\"{realm}\", error=\"invalid_token\""),
    }
}

fn envoy_text(reject: &Reject) -> String {
    match reject {
        Reject::Forbidden(_) => "RBAC: access denied".into(),
        Reject::Unauthenticated(AuthFailure::CredentialNotFound) => "Jwt is missing".into(),
        other => other.client_message(),
    }
}

fn openai_body(reject: &Reject) -> serde_json::Value {
    let (kind, code) = match reject {
        Reject::BadRequest(_) | Reject::PayloadTooLarge { .. } | Reject::RequestTimeout => {
            ("invalid_request_error", None)
        }
        Reject::NotFound(_) => ("invalid_request_error", Some("model_not_found")),
        Reject::MethodNotAllowed => ("invalid_request_error", None),
        Reject::Unauthenticated(AuthFailure::AudienceNotAllowed) => ("permission_error", None),
        Reject::Unauthenticated(_) => ("authentication_error", Some("invalid_api_key")),
        Reject::Forbidden(_) => ("permission_error", None),
        Reject::RateLimited { .. } => ("rate_limit_error", Some("rate_limit_exceeded")),
        Reject::BudgetExceeded { .. } => ("insufficient_quota", Some("insufficient_quota")),
        _ => ("server_error", None),
    };
    serde_json::json!({
        "error": {
            "message": reject.client_message(),
            "type": kind,
            "param": null,
            "code": code,
        }
    })
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<BoxBody> {
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn text(status: StatusCode, body: String) -> Response<BoxBody> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// A trailers-only gRPC response carrying the status.
fn grpc(reject: &Reject) -> Response<BoxBody> {
    let mut resp = Response::new(empty());
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(
        HeaderName::from_static("grpc-status"),
        HeaderValue::from(u16::from(reject.grpc_code())),
    );
    let msg = grpc_percent_encode(&reject.client_message());
    if let Ok(v) = HeaderValue::from_str(&msg) {
        headers.insert(HeaderName::from_static("grpc-message"), v);
    }
    resp
}

/// gRPC's `grpc-message` encoding: printable ASCII except `%` is kept, the rest
/// is percent-encoded byte by byte.
fn grpc_percent_encode(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    for b in msg.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    const CTX: RenderContext<'static> = RenderContext {
        realm: "kubernetes-user",
    };

    async fn body(resp: Response<BoxBody>) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        // Bodies here are single in-memory frames, so one poll completes them.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("in-memory body did not complete"),
        }
    }

    #[test]
    fn missing_credential_is_authorino_401() {
        let r = render(
            &Reject::Unauthenticated(AuthFailure::CredentialNotFound),
            ErrorShape::OpenAi,
            &CTX,
        );
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer realm=\"kubernetes-user\""
        );
        assert_eq!(r.headers()["x-ext-auth-reason"], "credential not found");
        let b: serde_json::Value = serde_json::from_str(&block_on(body(r))).unwrap();
        assert_eq!(b["error"]["type"], "authentication_error");
        assert_eq!(b["error"]["message"], "credential not found");
    }

    #[test]
    fn invalid_token_adds_error_param() {
        let r = render(
            &Reject::Unauthenticated(AuthFailure::InvalidToken("Jwt is expired".into())),
            ErrorShape::KServe,
            &CTX,
        );
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer realm=\"kubernetes-user\", error=\"invalid_token\""
        );
        assert_eq!(block_on(body(r)), r#"{"error":"Jwt is expired"}"#);
    }

    #[test]
    fn audience_mismatch_is_403() {
        let r = render(
            &Reject::Unauthenticated(AuthFailure::AudienceNotAllowed),
            ErrorShape::EnvoyText,
            &CTX,
        );
        assert_eq!(r.status(), 403);
        assert_eq!(block_on(body(r)), "Audiences in Jwt are not allowed");
    }

    #[test]
    fn envoy_rbac_text() {
        let r = render(&Reject::Forbidden("x".into()), ErrorShape::EnvoyText, &CTX);
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()["content-type"], "text/plain");
        assert_eq!(block_on(body(r)), "RBAC: access denied");
    }

    #[test]
    fn grpc_status_in_headers() {
        let r = render(
            &Reject::Unauthenticated(AuthFailure::CredentialNotFound),
            ErrorShape::Grpc,
            &CTX,
        );
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "16");
        assert_eq!(r.headers()["grpc-message"], "credential not found");
        let r = render(&Reject::Forbidden("no".into()), ErrorShape::Grpc, &CTX);
        assert_eq!(r.headers()["grpc-status"], "7");
    }

    #[test]
    fn retry_after_on_overload() {
        let r = render(
            &Reject::Unavailable {
                message: "busy".into(),
                retry_after_secs: Some(1),
            },
            ErrorShape::KServe,
            &CTX,
        );
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
    }

    #[test]
    fn budget_exceeded_is_429_or_402_with_retry_only_when_it_resets() {
        let over = |payment_required, retry_after_secs| Reject::BudgetExceeded {
            message: "budget exceeded: key k daily budget $5.00 spent".into(),
            retry_after_secs,
            payment_required,
        };
        let r = render(&over(false, Some(60)), ErrorShape::OpenAi, &CTX);
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "60");
        let v: serde_json::Value = serde_json::from_str(&block_on(body(r))).unwrap();
        assert_eq!(v["error"]["code"], "insufficient_quota");
        assert!(v["error"]["message"].as_str().unwrap().contains("$5.00"));
        let r = render(&over(true, None), ErrorShape::OpenAi, &CTX);
        assert_eq!(r.status(), 402);
        assert!(r.headers().get("retry-after").is_none());
    }

    #[test]
    fn upstream_detail_not_shown() {
        let rej = Reject::UpstreamUnavailable {
            detail: "connect 10.0.0.1:8080 refused".into(),
        };
        let r = render(&rej, ErrorShape::KServe, &CTX);
        assert_eq!(r.status(), 502);
        assert_eq!(block_on(body(r)), r#"{"error":"upstream unavailable"}"#);
        assert!(rej.log_reason().contains("refused"));
    }

    #[test]
    fn external_denial_passes_through() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-reason", HeaderValue::from_static("no badge"));
        let rej = Reject::External(Box::new(crate::reject::ExternalDenial {
            status: StatusCode::UNAUTHORIZED,
            headers,
            body: bytes::Bytes::from_static(b"go away"),
        }));
        let r = render(&rej, ErrorShape::OpenAi, &CTX);
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["x-reason"], "no badge");
        assert_eq!(block_on(body(r)), "go away");
        let r = render(&rej, ErrorShape::Grpc, &CTX);
        assert_eq!(r.headers()["grpc-status"], "16");
        assert_eq!(r.headers()["x-reason"], "no badge");
    }

    #[test]
    fn grpc_message_encoding() {
        assert_eq!(grpc_percent_encode("a b%é"), "a b%25%C3%A9");
    }
}
