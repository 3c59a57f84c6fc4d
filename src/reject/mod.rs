//! Why a request was not authenticated, and the response it gets.
//!
//! Every outcome other than success is a [`Rejection`]. The layer turns it into Polar's
//! response for that case (within RFC 6750), lets an [`OnRejection`] adjust the response, and
//! puts the `Rejection` into the response extensions so outer layers can see what happened.
//!
//! | rejection | status | `WWW-Authenticate` |
//! |---|---|---|
//! | [`MissingCredentials`](Rejection::MissingCredentials), [`UnsupportedScheme`](Rejection::UnsupportedScheme) | 401 | `Bearer realm="…"` |
//! | [`InvalidRequest`](Rejection::InvalidRequest) | 400 | `Bearer realm="…", error="invalid_request", …` |
//! | [`InvalidToken`](Rejection::InvalidToken) | 401 + `Cache-Control: no-store` | `Bearer realm="…", error="invalid_token", …` |
//! | [`CrossSiteRequest`](Rejection::CrossSiteRequest) | 403 | none |
//! | [`StoreUnavailable`](Rejection::StoreUnavailable) | 503 + `Retry-After` | none |
//!
//! Browsers are better served by pages than by JSON: [`BrowserRejection`] turns these into
//! HTML pages or a redirect to your sign-in page, for browser requests only.

mod browser;
mod on_rejection;
mod response;

use http::StatusCode;

use crate::store::StoreError;

pub use browser::BrowserRejection;
pub use on_rejection::{DefaultRejection, OnRejection, on_rejection_fn};
pub(crate) use response::{Responses, is_valid_realm};

/// Why the layer refused a request. Never carries the token or any request bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// No `Authorization` header and no session cookie (required mode only).
    #[error("no customer session credentials")]
    MissingCredentials,
    /// `Authorization` uses a scheme other than `Bearer` (required mode only).
    #[error("unsupported authorization scheme")]
    UnsupportedScheme,
    /// The credentials are malformed at the HTTP level.
    #[error("malformed request: {0}")]
    InvalidRequest(InvalidRequest),
    /// The token is well-formed HTTP but does not authenticate anyone.
    #[error("invalid customer session token: {0}")]
    InvalidToken(InvalidToken),
    /// An unsafe method (POST, PUT, PATCH, DELETE) authenticated by the session cookie came
    /// from another site, or without the headers that prove it did not (CSRF guard).
    #[error("cross-site request refused")]
    CrossSiteRequest,
    /// The store failed or timed out; the layer cannot decide, so it fails closed.
    #[error("session store unavailable: {0}")]
    StoreUnavailable(StoreUnavailable),
}

/// The ways a request can be malformed (400 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// More than one `Authorization` field line.
    #[error("more than one Authorization header")]
    DuplicateAuthorization,
    /// `Bearer` with no token, or a token outside RFC 6750's `b64token` grammar.
    #[error("bearer credentials outside the b64token grammar")]
    MalformedBearer,
    /// The session cookie appears more than once with different values.
    #[error("session cookie sent more than once with different values")]
    DuplicateCookie,
    /// The session cookie value is outside the `b64token` grammar (quoted, percent-encoded…).
    #[error("session cookie value outside the b64token grammar")]
    MalformedCookie,
    /// The credential is longer than any token could be.
    #[error("credential too long")]
    TooLong,
}

/// Why a well-formed credential does not authenticate (401 `invalid_token`).
///
/// Responses do not tell these apart; logs and the response extensions do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Wrong prefix, length, alphabet or checksum: refused before any cache or store work.
    #[error("token shape is wrong")]
    Malformed,
    /// No such session (never issued, revoked or purged).
    #[error("no such session")]
    Unknown,
    /// The session has expired.
    #[error("session expired")]
    Expired,
    /// The customer was deleted.
    #[error("customer deleted")]
    CustomerDeleted,
}

/// Why the store could not answer (503).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreUnavailable {
    /// The store did not answer within the configured timeout.
    #[error("timed out")]
    Timeout,
    /// The store returned an error.
    #[error("backend error")]
    Error,
    /// The upstream authority is rate limiting; its `Retry-After` is passed on.
    #[error("rate limited")]
    RateLimited {
        /// Seconds the upstream asked to wait, if it said.
        retry_after: Option<u32>,
    },
}

impl From<&StoreError> for StoreUnavailable {
    /// What a client may learn of a store failure: timeout, rate limit (with its wait), or
    /// an error, never its detail.
    fn from(error: &StoreError) -> Self {
        match error {
            StoreError::Timeout => Self::Timeout,
            StoreError::RateLimited { retry_after } => Self::RateLimited {
                retry_after: *retry_after,
            },
            _ => Self::Error,
        }
    }
}

impl Rejection {
    /// The HTTP status this rejection maps to.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_customer_session::{InvalidToken, Rejection};
    ///
    /// assert_eq!(Rejection::InvalidToken(InvalidToken::Expired).status(), StatusCode::UNAUTHORIZED);
    /// ```
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingCredentials | Self::UnsupportedScheme | Self::InvalidToken(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::CrossSiteRequest => StatusCode::FORBIDDEN,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short machine-readable label, for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing_credentials",
            Self::UnsupportedScheme => "unsupported_scheme",
            Self::InvalidRequest(_) => "invalid_request",
            Self::CrossSiteRequest => "cross_site_request",
            Self::InvalidToken(InvalidToken::Malformed) => "malformed_token",
            Self::InvalidToken(InvalidToken::Unknown) => "unknown_token",
            Self::InvalidToken(InvalidToken::Expired) => "expired",
            Self::InvalidToken(InvalidToken::CustomerDeleted) => "customer_deleted",
            Self::StoreUnavailable(StoreUnavailable::Timeout) => "store_timeout",
            Self::StoreUnavailable(StoreUnavailable::Error) => "store_error",
            Self::StoreUnavailable(StoreUnavailable::RateLimited { .. }) => "store_rate_limited",
        }
    }
}
