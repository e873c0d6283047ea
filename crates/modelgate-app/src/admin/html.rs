//! HTML and HTTP helpers for the admin UI and API: escaping (every value
//! that reaches a page goes through [`esc`]), form decoding, the page
//! layout, and the response shapes (HTML, JSON, redirects) with the admin
//! security headers.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION, SET_COOKIE};
use http::{Response, StatusCode};
use modelgate_core::{BoxBody, Reject, full};

use super::console::AdminRequest;
use super::csrf::FIELD;

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment (key and model names in form actions).
pub(super) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `application/x-www-form-urlencoded` (also a query string).
pub(super) fn form(body: &[u8]) -> Vec<(String, String)> {
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .take(64)
        .map(|pair| {
            let mut it = pair.splitn(2, |b| *b == b'=');
            let k = decode(it.next().unwrap_or_default());
            let v = decode(it.next().unwrap_or_default());
            (k, v)
        })
        .collect()
}

/// The last value of field `name` (a hidden `off` before a checkbox `on`).
pub(super) fn form_value(body: &[u8], name: &str) -> Option<String> {
    form(body)
        .into_iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn secure(resp: &mut Response<BoxBody>, ct: &'static str) {
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
}

fn with_cookie(mut resp: Response<BoxBody>, req: &AdminRequest) -> Response<BoxBody> {
    if let Some(c) = req.csrf.set_cookie(req.tls)
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        resp.headers_mut().insert(SET_COOKIE, v);
    }
    resp
}

/// A JSON response.
pub(super) fn json<T: serde::Serialize>(
    req: &AdminRequest,
    status: StatusCode,
    value: &T,
) -> Result<Response<BoxBody>, Reject> {
    let body = serde_json::to_vec(value).map_err(|e| Reject::Internal {
        detail: format!("admin JSON: {e}"),
    })?;
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    secure(&mut resp, "application/json");
    Ok(with_cookie(resp, req))
}

/// An HTML page (sets the CSRF cookie when the token is new).
pub(super) fn html(req: &AdminRequest, status: StatusCode, body: String) -> Response<BoxBody> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    secure(&mut resp, "text/html; charset=utf-8");
    with_cookie(resp, req)
}

/// A static asset.
pub(super) fn asset(ct: &'static str, body: &'static str) -> Response<BoxBody> {
    let mut resp = Response::new(full(body));
    secure(&mut resp, ct);
    resp
}

/// `303 See Other` back to a page after a form POST.
pub(super) fn redirect(to: &'static str) -> Response<BoxBody> {
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    resp.headers_mut()
        .insert(LOCATION, HeaderValue::from_static(to));
    resp
}

/// The hidden CSRF field every form carries.
pub(super) fn csrf_field(req: &AdminRequest) -> String {
    format!(
        r#"<input type="hidden" name="{FIELD}" value="{}">"#,
        esc(&req.csrf.value)
    )
}

const NAV: [(&str, &str); 4] = [
    ("/admin/models", "Models"),
    ("/admin/keys", "Keys"),
    ("/admin/policies", "Policies"),
    ("/admin/decisions", "Live decisions"),
];

/// The page layout around `main` (already escaped HTML).
pub(super) fn page(req: &AdminRequest, title: &str, main: &str) -> String {
    let nav: String = NAV
        .iter()
        .map(|(href, label)| {
            let current = if req.path == *href {
                r#" aria-current="page""#
            } else {
                ""
            };
            format!(r#"<a href="{href}"{current}>{label}</a>"#)
        })
        .collect();
    let who = req
        .principal
        .as_ref()
        .map(|p| format!("{} ({})", esc(&p.name), p.method))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{csrf}">
<title>{title} · modelgate admin</title>
<link rel="stylesheet" href="/admin/assets/admin.css">
<script src="/admin/assets/admin.js" defer></script>
</head><body>
<header><strong>modelgate admin</strong><nav aria-label="Admin sections">{nav}</nav><span class="who">{who}</span></header>
<main id="main"><h1>{title}</h1>
{main}
</main></body></html>
"#,
        csrf = esc(&req.csrf.value),
        title = esc(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_both_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }

    #[test]
    fn forms_decode_plus_percent_and_keep_the_last_value() {
        let body = b"name=a+b%3Cc&require=off&require=on&bad=%zz";
        assert_eq!(form_value(body, "name").as_deref(), Some("a b<c"));
        assert_eq!(form_value(body, "require").as_deref(), Some("on"));
        assert_eq!(form_value(body, "bad").as_deref(), Some("%zz"));
        assert_eq!(form_value(body, "missing"), None);
        assert_eq!(seg("a b/<"), "a%20b%2F%3C");
    }
}
