//! The CSRF guard for cookie-authenticated requests.
//!
//! A browser attaches the session cookie to requests that other sites trigger, so an unsafe
//! method authenticated by the cookie must prove it came from our own pages: Fetch Metadata
//! (`Sec-Fetch-Site: same-origin` or `none`) or an `Origin` on the configured list. Bearer
//! requests are not affected: a browser never adds an `Authorization` header on its own.

use http::header::ORIGIN;
use http::{HeaderMap, HeaderValue, Method};

#[derive(Debug, Clone)]
pub(crate) struct CsrfGuard {
    pub(crate) enabled: bool,
    pub(crate) allowed_origins: Vec<HeaderValue>,
}

impl Default for CsrfGuard {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_origins: Vec::new(),
        }
    }
}

impl CsrfGuard {
    /// Whether a cookie-authenticated request with this method and headers may proceed.
    pub(crate) fn allows(&self, method: &Method, headers: &HeaderMap) -> bool {
        if !self.enabled || is_safe(method) {
            return true;
        }
        let same_origin = headers
            .get("sec-fetch-site")
            .is_some_and(|site| site == "same-origin" || site == "none");
        same_origin
            || headers
                .get(ORIGIN)
                .is_some_and(|origin| self.allowed_origins.iter().any(|allowed| allowed == origin))
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn unsafe_methods_need_same_origin_proof() {
        let guard = CsrfGuard {
            enabled: true,
            allowed_origins: vec![HeaderValue::from_static("https://shop.example")],
        };
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(!guard.allows(&method, &headers(&[])));
            assert!(!guard.allows(&method, &headers(&[("sec-fetch-site", "cross-site")])));
            assert!(!guard.allows(&method, &headers(&[("sec-fetch-site", "same-site")])));
            assert!(!guard.allows(&method, &headers(&[("origin", "https://evil.example")])));
            assert!(guard.allows(&method, &headers(&[("sec-fetch-site", "same-origin")])));
            assert!(guard.allows(&method, &headers(&[("sec-fetch-site", "none")])));
            assert!(guard.allows(
                &method,
                &headers(&[
                    ("sec-fetch-site", "same-site"),
                    ("origin", "https://shop.example")
                ])
            ));
        }
        assert!(guard.allows(&Method::GET, &headers(&[("sec-fetch-site", "cross-site")])));
    }

    #[test]
    fn disabled_guard_allows_everything() {
        let guard = CsrfGuard {
            enabled: false,
            allowed_origins: vec![],
        };
        assert!(guard.allows(&Method::POST, &headers(&[("sec-fetch-site", "cross-site")])));
    }
}
