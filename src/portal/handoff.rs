//! The hand-off: `?customer_session_token=…` in, session cookie and a clean URL out.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::cookie::SessionCookie;
use crate::model::TOKEN_PARAM;
use crate::token::SessionToken;

const INVALID_PAGE: &[u8] = b"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Link expired or invalid</title><h1>Link expired or invalid</h1><p>This sign-in link has expired or is not valid. Ask for a new link to your customer portal.</p></html>";
const UNAVAILABLE_PAGE: &[u8] = b"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Try again shortly</title><h1>Try again shortly</h1><p>We cannot check your sign-in link right now. Please reload this page in a moment.</p></html>";

/// Polar's `customer_portal_url` adds the customer's address; it has no use after the
/// hand-off and would end up in browser history and access logs.
const EMAIL_PARAM: &str = "email";

/// The hand-off's settings, fixed when the portal layer is built.
#[derive(Debug, Clone)]
pub(crate) struct HandoffOptions {
    pub(crate) cookie: SessionCookie,
    /// Prepended to the redirect: a prefix a proxy strips before the request arrives.
    /// Empty, or `/…` without a trailing `/`.
    pub(crate) base_path: Box<str>,
    pub(crate) keep_email: bool,
}

/// What the query holds.
pub(crate) enum Query {
    /// No token parameter: not a hand-off.
    Absent,
    /// Exactly one token parameter, and where to send the browser without it.
    Token {
        token: SessionToken,
        location: String,
    },
    /// An empty or repeated token parameter.
    Invalid,
}

/// The path the browser asked for. Behind axum's `Router::nest` the request's own URI has
/// lost the prefix; the router keeps the original in the extensions.
pub(crate) fn original_path<B>(request: &Request<B>) -> &str {
    #[cfg(feature = "axum")]
    if let Some(::axum::extract::OriginalUri(uri)) = request.extensions().get() {
        return uri.path();
    }
    request.uri().path()
}

/// Find the token and build the clean URL.
///
/// The token parameter is matched on the raw query, name and value exactly as sent, never
/// percent-decoded: a link from Polar carries it literally, and anything else is refused
/// (or, for another name, is not a hand-off). The other parameters are decoded and written
/// back in canonical form.
pub(crate) fn split_query(path: &str, query: Option<&str>, options: &HandoffOptions) -> Query {
    let Some(query) = query else {
        return Query::Absent;
    };
    let mut token = None;
    let mut seen = 0;
    let mut kept = form_urlencoded::Serializer::new(String::new());
    let mut any_kept = false;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == TOKEN_PARAM {
            seen += 1;
            token = Some(value);
            continue;
        }
        for (name, value) in form_urlencoded::parse(pair.as_bytes()) {
            if name == EMAIL_PARAM && !options.keep_email {
                continue;
            }
            kept.append_pair(&name, &value);
            any_kept = true;
        }
    }
    match (seen, token) {
        (0, _) => Query::Absent,
        (1, Some(token)) if !token.is_empty() => {
            // Always a path on this origin: `//host` or `/\host` would send the browser (and
            // its fresh session) to another site.
            let mut location = String::from(&*options.base_path);
            location.push('/');
            location.push_str(path.trim_start_matches(['/', '\\']));
            if any_kept {
                location.push('?');
                location.push_str(&kept.finish());
            }
            Query::Token {
                token: SessionToken::from_secret(token.to_owned()),
                location,
            }
        }
        _ => Query::Invalid,
    }
}

/// Common headers: nothing here may be cached or leak a `Referer`.
fn base(status: StatusCode, body: &'static [u8]) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `303` to the clean URL, with the session cookie.
pub(crate) fn redirect(location: &str, set_cookie: HeaderValue) -> Response<Bytes> {
    let mut response = base(StatusCode::SEE_OTHER, b"");
    let headers = response.headers_mut();
    // `location` is a path and query taken from a parsed URI plus a checked base path, so it
    // is header-safe.
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/")),
    );
    headers.insert(header::SET_COOKIE, set_cookie);
    response
}

fn html(status: StatusCode, body: &'static [u8]) -> Response<Bytes> {
    let mut response = base(status, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// The link does not sign anyone in: `401` page, no cookie.
pub(crate) fn refused(challenge: HeaderValue) -> Response<Bytes> {
    let mut response = html(StatusCode::UNAUTHORIZED, INVALID_PAGE);
    // A 401 must name a scheme the client could use (RFC 9110 §15.5.2).
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge);
    response
}

/// The store could not answer: `503` page, retry after `seconds`.
pub(crate) fn unavailable(seconds: u32) -> Response<Bytes> {
    let mut response = html(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE_PAGE);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(base_path: &str, keep_email: bool) -> HandoffOptions {
        HandoffOptions {
            cookie: SessionCookie::new("sid"),
            base_path: base_path.into(),
            keep_email,
        }
    }

    fn location_with(options: &HandoffOptions, path: &str, query: &str) -> Option<String> {
        match split_query(path, Some(query), options) {
            Query::Token { location, .. } => Some(location),
            _ => None,
        }
    }

    fn location(path: &str, query: &str) -> Option<String> {
        location_with(&options("", false), path, query)
    }

    #[test]
    fn token_is_removed_and_other_parameters_kept() {
        assert_eq!(
            location("/portal", "customer_session_token=t").unwrap(),
            "/portal"
        );
        assert_eq!(
            location("/p", "x=1&customer_session_token=t&y=2").unwrap(),
            "/p?x=1&y=2"
        );
        // Re-encoded canonically: still a valid `Location`.
        assert_eq!(
            location("/p", "q=a+b%7E&customer_session_token=t").unwrap(),
            "/p?q=a+b%7E"
        );
    }

    #[test]
    fn email_is_dropped_unless_kept() {
        let query = "customer_session_token=t&email=a%40b.c&x=1";
        assert_eq!(location("/portal", query).unwrap(), "/portal?x=1");
        assert_eq!(
            location_with(&options("", true), "/portal", query).unwrap(),
            "/portal?email=a%40b.c&x=1"
        );
    }

    #[test]
    fn base_path_is_prepended() {
        let shop = options("/shop", false);
        assert_eq!(
            location_with(&shop, "/portal", "customer_session_token=t").unwrap(),
            "/shop/portal"
        );
        assert_eq!(
            location_with(&shop, "//evil.example", "customer_session_token=t").unwrap(),
            "/shop/evil.example"
        );
    }

    #[test]
    fn location_never_leaves_the_origin() {
        assert_eq!(
            location("//evil.example/x", "customer_session_token=t").unwrap(),
            "/evil.example/x"
        );
        assert_eq!(
            location("/\\evil.example", "customer_session_token=t").unwrap(),
            "/evil.example"
        );
    }

    #[test]
    fn absent_empty_and_repeated_tokens() {
        let options = options("", false);
        let split = |query| split_query("/p", query, &options);
        assert!(matches!(split(None), Query::Absent));
        assert!(matches!(split(Some("email=x")), Query::Absent));
        assert!(matches!(
            split(Some("customer%5Fsession%5Ftoken=x")),
            Query::Absent
        ));
        assert!(matches!(
            split(Some("customer_session_token=")),
            Query::Invalid
        ));
        assert!(matches!(
            split(Some("customer_session_token")),
            Query::Invalid
        ));
        assert!(matches!(
            split(Some("customer_session_token=a&customer_session_token=a")),
            Query::Invalid
        ));
    }
}
