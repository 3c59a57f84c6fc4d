//! [`BrowserRejection`]: pages or a sign-in redirect instead of JSON, for browsers.

use bytes::Bytes;
use http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE,
};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use super::{OnRejection, Rejection};
use crate::error::{ConfigError, is_local_path};

const SIGN_IN_PAGE: &[u8] = b"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Sign-in required</title><h1>Sign-in required</h1><p>Your session has ended or is not valid. Open your customer portal again from the link you were given.</p></html>";
const REFUSED_PAGE: &[u8] = b"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Request refused</title><h1>Request refused</h1><p>This request did not come from this site's own pages. Go back and try again.</p></html>";
const UNAVAILABLE_PAGE: &[u8] = b"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Try again shortly</title><h1>Try again shortly</h1><p>Your session cannot be checked right now. Please reload this page in a moment.</p></html>";

/// An [`OnRejection`] for browser pages: HTML pages, or a redirect to a sign-in page,
/// instead of Polar's JSON.
///
/// It changes only responses to *browser* requests: those that accept `text/html` and carry
/// no `Authorization` header (a browser never adds one by itself), so API clients on the
/// same routes keep Polar's JSON. Status, `Cache-Control` and the `Set-Cookie` that clears a
/// dead session cookie are kept.
///
/// | rejection | [`pages`](Self::pages) | [`redirect_to`](Self::redirect_to) |
/// |---|---|---|
/// | 401 / 400 (no, dead or malformed session) | sign-in page | `303 See Other` to the sign-in location |
/// | 403 (cross-site request) | "request refused" page | same |
/// | 503 (store unavailable) | "try again shortly" page, `Retry-After` kept | same |
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_customer_session::reject::BrowserRejection;
/// use tower_customer_session::{Customer, CustomerSessionLayer, SessionManager, MemoryStore};
///
/// let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
/// let auth = CustomerSessionLayer::new(sessions)
///     .cookie("customer_session")
///     .on_rejection(BrowserRejection::redirect_to("/signin")?);
/// let app: Router = Router::new()
///     .route("/account", get(|c: Customer| async move { c.id.to_string() }))
///     .route_layer(auth);
/// # Ok::<(), tower_customer_session::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct BrowserRejection {
    sign_in: SignIn,
    refused: Bytes,
    unavailable: Bytes,
}

#[derive(Debug, Clone)]
enum SignIn {
    Page(Bytes),
    Redirect(HeaderValue),
}

impl BrowserRejection {
    /// Plain built-in pages for every rejection. Replace any of them with
    /// [`sign_in_page`](Self::sign_in_page), [`refused_page`](Self::refused_page) and
    /// [`unavailable_page`](Self::unavailable_page).
    ///
    /// ```
    /// use tower_customer_session::reject::BrowserRejection;
    ///
    /// let pages = BrowserRejection::pages().sign_in_page("<p>Please open your portal link again.</p>");
    /// # let _ = pages;
    /// ```
    pub fn pages() -> Self {
        Self {
            sign_in: SignIn::Page(Bytes::from_static(SIGN_IN_PAGE)),
            refused: Bytes::from_static(REFUSED_PAGE),
            unavailable: Bytes::from_static(UNAVAILABLE_PAGE),
        }
    }

    /// Send browsers without a valid session to `location` (`303 See Other`); the other
    /// rejections get the built-in pages.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Path`] unless `location` is a path on this site (`/signin`, not
    /// `//host`) or an absolute `https://`/`http://` URL that is a valid header value.
    ///
    /// ```
    /// use tower_customer_session::reject::BrowserRejection;
    ///
    /// assert!(BrowserRejection::redirect_to("/signin").is_ok());
    /// assert!(BrowserRejection::redirect_to("https://shop.example/signin").is_ok());
    /// assert!(BrowserRejection::redirect_to("//evil.example").is_err());
    /// ```
    pub fn redirect_to(location: &str) -> Result<Self, ConfigError> {
        let absolute = location.starts_with("https://") || location.starts_with("http://");
        let value = HeaderValue::from_str(location)
            .ok()
            .filter(|_| absolute || is_local_path(location))
            .ok_or_else(|| ConfigError::Path(location.to_owned()))?;
        Ok(Self {
            sign_in: SignIn::Redirect(value),
            ..Self::pages()
        })
    }

    /// The page for a request without a usable session (400 and 401), replacing the
    /// built-in page or the redirect. Default: a plain built-in page.
    ///
    /// ```
    /// # use tower_customer_session::reject::BrowserRejection;
    /// let pages = BrowserRejection::pages().sign_in_page("<h1>Sign in again</h1>");
    /// # let _ = pages;
    /// ```
    pub fn sign_in_page(mut self, html: impl Into<Bytes>) -> Self {
        self.sign_in = SignIn::Page(html.into());
        self
    }

    /// The page for a cross-site request the CSRF guard refused (403). Default: a plain
    /// built-in page.
    ///
    /// ```
    /// # use tower_customer_session::reject::BrowserRejection;
    /// let pages = BrowserRejection::pages().refused_page("<h1>Refused</h1>");
    /// # let _ = pages;
    /// ```
    pub fn refused_page(mut self, html: impl Into<Bytes>) -> Self {
        self.refused = html.into();
        self
    }

    /// The page for a store outage (503). Default: a plain built-in page.
    ///
    /// ```
    /// # use tower_customer_session::reject::BrowserRejection;
    /// let pages = BrowserRejection::pages().unavailable_page("<h1>Back soon</h1>");
    /// # let _ = pages;
    /// ```
    pub fn unavailable_page(mut self, html: impl Into<Bytes>) -> Self {
        self.unavailable = html.into();
        self
    }
}

impl OnRejection for BrowserRejection {
    fn on_rejection(
        &mut self,
        rejection: &Rejection,
        request: &Parts,
        response: &mut Response<Bytes>,
    ) {
        if !is_browser(&request.headers) {
            return;
        }
        let page = match (rejection.status(), &self.sign_in) {
            (StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST, SignIn::Redirect(location)) => {
                *response.status_mut() = StatusCode::SEE_OTHER;
                *response.body_mut() = Bytes::new();
                let headers = response.headers_mut();
                headers.remove(WWW_AUTHENTICATE);
                headers.remove(CONTENT_TYPE);
                headers.remove(CONTENT_LENGTH);
                headers.insert(LOCATION, location.clone());
                return;
            }
            (StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST, SignIn::Page(page)) => page,
            (StatusCode::FORBIDDEN, _) => &self.refused,
            (StatusCode::SERVICE_UNAVAILABLE, _) => &self.unavailable,
            _ => return,
        };
        *response.body_mut() = page.clone();
        let headers = response.headers_mut();
        headers.remove(CONTENT_LENGTH);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
}

/// A browser navigation or form post: it accepts HTML and carries no `Authorization`.
fn is_browser(headers: &HeaderMap) -> bool {
    !headers.contains_key(AUTHORIZATION)
        && headers.get_all(ACCEPT).iter().any(|accept| {
            accept
                .as_bytes()
                .windows(b"text/html".len())
                .any(|w| w.eq_ignore_ascii_case(b"text/html"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&'static str, &'static str)]) -> Parts {
        let mut request = http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn rejected(status: StatusCode) -> Response<Bytes> {
        let mut response = Response::new(Bytes::from_static(b"{}"));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }

    const NAVIGATION: (&str, &str) = ("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
    const UNKNOWN: Rejection = Rejection::InvalidToken(crate::reject::InvalidToken::Unknown);

    #[test]
    fn api_clients_keep_json() {
        let mut hook = BrowserRejection::redirect_to("/signin").unwrap();
        for headers in [
            &[][..],
            &[("accept", "application/json")][..],
            &[NAVIGATION, ("authorization", "Bearer x")][..],
        ] {
            let mut response = rejected(StatusCode::UNAUTHORIZED);
            hook.on_rejection(&UNKNOWN, &parts(headers), &mut response);
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{headers:?}");
            assert_eq!(response.body().as_ref(), b"{}");
        }
    }

    #[test]
    fn browsers_are_sent_to_sign_in() {
        let mut hook = BrowserRejection::redirect_to("/signin").unwrap();
        let mut response = rejected(StatusCode::UNAUTHORIZED);
        hook.on_rejection(&UNKNOWN, &parts(&[NAVIGATION]), &mut response);
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[LOCATION], "/signin");
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
        assert!(response.body().is_empty());

        let mut response = rejected(StatusCode::FORBIDDEN);
        hook.on_rejection(
            &Rejection::CrossSiteRequest,
            &parts(&[NAVIGATION]),
            &mut response,
        );
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(response.body().starts_with(b"<!doctype html>"));
    }

    #[test]
    fn pages_keep_the_status() {
        let mut hook = BrowserRejection::pages().sign_in_page("<p>again</p>");
        let mut response = rejected(StatusCode::UNAUTHORIZED);
        hook.on_rejection(&UNKNOWN, &parts(&[("accept", "TEXT/HTML")]), &mut response);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.body().as_ref(), b"<p>again</p>");
    }
}
