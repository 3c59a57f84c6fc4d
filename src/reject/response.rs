//! Polar's rejection responses, built once per layer from constants and the realm.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response};

use super::{Rejection, StoreUnavailable};

const INVALID_TOKEN_DESCRIPTION: &str =
    "The access token provided is expired, revoked, malformed, or invalid for other reasons.";
const INVALID_REQUEST_DESCRIPTION: &str =
    "The request carries malformed or conflicting customer session credentials.";

const UNAUTHORIZED_BODY: &[u8] = br#"{"error":"Unauthorized","detail":"Unauthorized"}"#;
const INVALID_TOKEN_BODY: &[u8] = br#"{"error":"invalid_token","error_description":"The access token provided is expired, revoked, malformed, or invalid for other reasons."}"#;
const INVALID_REQUEST_BODY: &[u8] = br#"{"error":"invalid_request","error_description":"The request carries malformed or conflicting customer session credentials."}"#;
const FORBIDDEN_BODY: &[u8] = br#"{"error":"Forbidden","detail":"Cross-site request refused."}"#;
const UNAVAILABLE_BODY: &[u8] = br#"{"error":"ServiceUnavailable","detail":"Customer sessions cannot be verified right now. Retry later."}"#;

/// Every rejection's headers, built once per layer: a rejection then costs one map clone and
/// no formatting or header-name hashing.
#[derive(Debug, Clone)]
pub(crate) struct Responses {
    challenge: HeaderValue,
    unauthorized: HeaderMap,
    invalid_token: HeaderMap,
    invalid_request: HeaderMap,
    forbidden: HeaderMap,
    unavailable: HeaderMap,
}

/// Whether `realm` may sit inside a quoted auth-param (RFC 6750 §3: no `"`, no `\`, no
/// control characters).
pub(crate) fn is_valid_realm(realm: &str) -> bool {
    realm
        .bytes()
        .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

impl Responses {
    /// Callers check the realm with [`is_valid_realm`] first.
    pub(crate) fn new(realm: &str, retry_after_secs: u32) -> Self {
        let value = |s: String| HeaderValue::try_from(s).expect("realm checked by is_valid_realm");
        let challenge = value(format!("Bearer realm=\"{realm}\""));
        let invalid_token = value(format!(
            "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{INVALID_TOKEN_DESCRIPTION}\""
        ));
        let invalid_request = value(format!(
            "Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"{INVALID_REQUEST_DESCRIPTION}\""
        ));
        let headers = |challenge: Option<HeaderValue>, no_store: bool, retry: Option<u32>| {
            let mut map = HeaderMap::with_capacity(5);
            map.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Some(challenge) = challenge {
                map.insert(header::WWW_AUTHENTICATE, challenge);
            }
            if no_store {
                map.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                map.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            }
            if let Some(seconds) = retry {
                map.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            map
        };
        Self {
            unauthorized: headers(Some(challenge.clone()), false, None),
            invalid_token: headers(Some(invalid_token), true, None),
            invalid_request: headers(Some(invalid_request), true, None),
            forbidden: headers(None, true, None),
            unavailable: headers(None, true, Some(retry_after_secs)),
            challenge,
        }
    }

    /// The bare `Bearer realm="…"` challenge.
    pub(crate) fn challenge(&self) -> HeaderValue {
        self.challenge.clone()
    }

    /// Polar's response for `rejection`.
    pub(crate) fn build(&self, rejection: &Rejection) -> Response<Bytes> {
        let (body, headers) = match rejection {
            Rejection::MissingCredentials | Rejection::UnsupportedScheme => {
                (UNAUTHORIZED_BODY, &self.unauthorized)
            }
            Rejection::InvalidToken(_) => (INVALID_TOKEN_BODY, &self.invalid_token),
            Rejection::InvalidRequest(_) => (INVALID_REQUEST_BODY, &self.invalid_request),
            Rejection::CrossSiteRequest => (FORBIDDEN_BODY, &self.forbidden),
            Rejection::StoreUnavailable(_) => (UNAVAILABLE_BODY, &self.unavailable),
        };
        let mut response = Response::new(Bytes::from_static(body));
        *response.status_mut() = rejection.status();
        *response.headers_mut() = headers.clone();
        if let Rejection::StoreUnavailable(StoreUnavailable::RateLimited {
            retry_after: Some(seconds),
        }) = rejection
        {
            // The upstream knows how long it will refuse; a shorter wait would only be refused.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reject::{InvalidRequest, InvalidToken};

    #[test]
    fn realm_grammar() {
        assert!(is_valid_realm("polar"));
        assert!(is_valid_realm("my shop!"));
        assert!(!is_valid_realm("a\"b"));
        assert!(!is_valid_realm("a\\b"));
        assert!(!is_valid_realm("a\nb"));
    }

    #[test]
    fn store_unavailable_has_retry_after_and_no_challenge() {
        let r = Responses::new("polar", 3)
            .build(&Rejection::StoreUnavailable(StoreUnavailable::Timeout));
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn invalid_request_challenge_names_the_error() {
        let r = Responses::new("shop", 1)
            .build(&Rejection::InvalidRequest(InvalidRequest::DuplicateCookie));
        assert_eq!(r.status(), 400);
        let challenge = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Bearer realm=\"shop\", error=\"invalid_request\""));
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["error"], "invalid_request");
        let _ = InvalidToken::Unknown;
    }
}
