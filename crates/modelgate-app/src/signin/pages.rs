//! The small HTML pages of browser sign-in: the signed-in landing page and
//! the sign-out page (`GET` of `logout_path`), whose form `POST`s the
//! session's sign-out token back (see `docs/signin.md`, Sign-out).

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use modelgate_authn::SignedIn;
use modelgate_authn::session::sign_out::TOKEN_FIELD;
use modelgate_core::{BoxBody, full};

/// The sign-out form: a button that `POST`s the token (and `rd`).
fn sign_out_form(user: &SignedIn, logout: &str, rd: Option<&str>) -> String {
    let rd = rd.map_or_else(String::new, |r| {
        format!(
            "<input type=\"hidden\" name=\"rd\" value=\"{}\">",
            escape(r)
        )
    });
    format!(
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"{TOKEN_FIELD}\" value=\"{}\">{rd}\
         <button type=\"submit\">Sign out</button></form>",
        escape(logout),
        escape(&user.sign_out_token)
    )
}

/// The signed-in landing page.
pub(super) fn landing(user: &SignedIn, logout: &str) -> Response<BoxBody> {
    page(&format!(
        "<p>Signed in as <strong>{}</strong>.</p>{}",
        escape(&user.name),
        sign_out_form(user, logout, None)
    ))
}

/// The sign-out page: a button for a signed-in browser, else a note.
/// Showing it changes nothing (prefetchers and links are harmless).
pub(super) fn sign_out(
    user: Option<&SignedIn>,
    logout: &str,
    landing: &str,
    rd: Option<&str>,
) -> Response<BoxBody> {
    match user {
        Some(u) => page(&format!(
            "<p>Signed in as <strong>{}</strong>. Sign out of modelgate?</p>{}",
            escape(&u.name),
            sign_out_form(u, logout, rd)
        )),
        None => page(&format!(
            "<p>You are not signed in.</p><p><a href=\"{}\">Continue</a></p>",
            escape(landing)
        )),
    }
}

fn page(main: &str) -> Response<BoxBody> {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>modelgate</title></head>\
         <body><main><h1>modelgate</h1>{main}</main></body></html>"
    );
    let mut resp = Response::new(full(bytes::Bytes::from(html)));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    async fn text(r: Response<BoxBody>) -> String {
        let b = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_sign_out_page_posts_the_token_and_rd() {
        let u = SignedIn {
            name: "a<b@example.com".into(),
            sign_out_token: "tok-1".into(),
        };
        let html = text(sign_out(Some(&u), "/oauth2/sign_out", "/", Some("/x?\"y"))).await;
        assert!(
            html.contains("<form method=\"post\" action=\"/oauth2/sign_out\">"),
            "{html}"
        );
        assert!(html.contains("name=\"csrf\" value=\"tok-1\""), "{html}");
        assert!(html.contains("name=\"rd\" value=\"/x?&quot;y\""), "{html}");
        assert!(html.contains("a&lt;b@example.com"), "{html}");
        let html = text(sign_out(None, "/oauth2/sign_out", "/home", None)).await;
        assert!(
            !html.contains("<form") && html.contains("href=\"/home\""),
            "{html}"
        );
    }
}
