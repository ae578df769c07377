//! The admin UI's session cookie, read and written through the `cookie` crate:
//! `__Host-latchkey` (the prefix makes browsers insist on Secure, `Path=/` and no
//! Domain), `Secure; HttpOnly; SameSite=Strict`.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};

/// Name of the session cookie.
pub const COOKIE: &str = "__Host-latchkey";

/// The session id the request carries, if any: the first `__Host-latchkey` in its
/// `Cookie` headers (pairs that do not parse are skipped).
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
}

fn header_value(c: Cookie<'_>) -> HeaderValue {
    // A session id is URL-safe base64, so the value always fits in a header.
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn base(value: String) -> cookie::CookieBuilder<'static> {
    Cookie::build((COOKIE, value))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
}

/// `Set-Cookie` that starts session `id`.
pub fn set(id: &str) -> HeaderValue {
    header_value(base(id.to_string()).build())
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear() -> HeaderValue {
    header_value(
        base(String::new())
            .max_age(cookie::time::Duration::ZERO)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; latchkey=no; __Host-latchkey=abc; b=2"),
        );
        assert_eq!(session_id(&h).as_deref(), Some("abc"));
        h.insert(header::COOKIE, HeaderValue::from_static("latchkey=abc; x"));
        assert_eq!(session_id(&h), None);
    }

    #[test]
    fn set_and_clear_keep_every_attribute() {
        for (v, value) in [(set("tok_-1"), "tok_-1"), (clear(), "")] {
            let s = v.to_str().unwrap_or_default().to_string();
            let c = Cookie::parse(s.clone()).unwrap_or_else(|_| Cookie::new("", ""));
            assert_eq!(c.name(), COOKIE, "{s}");
            assert_eq!(c.value(), value, "{s}");
            assert_eq!(c.path(), Some("/"), "{s}");
            assert_eq!(c.secure(), Some(true), "{s}");
            assert_eq!(c.http_only(), Some(true), "{s}");
            assert_eq!(c.same_site(), Some(SameSite::Strict), "{s}");
            assert_eq!(c.domain(), None, "{s}");
        }
        assert!(clear().to_str().unwrap_or_default().contains("Max-Age=0"));
    }
}
