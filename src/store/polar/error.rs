//! What can go wrong building or asking the Polar API store. No variant carries a token, a
//! URL with one, or a response body.

/// Why [`PolarApiStoreBuilder::build`](super::PolarApiStoreBuilder::build) refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolarBuildError {
    /// The base URL is not an absolute `http`/`https` URL without query or fragment.
    #[error("the Polar API base URL must be an absolute http(s) URL without query or fragment")]
    BaseUrl,
    /// The organization access token holds characters an HTTP header cannot carry.
    #[error("the organization access token contains characters not allowed in an HTTP header")]
    OrganizationToken,
    /// The `Polar-Version` value holds characters an HTTP header cannot carry.
    #[error("the Polar-Version value is not a valid HTTP header value")]
    PolarVersion,
    /// The HTTP client (TLS roots, connection pool) could not be set up.
    #[error("the HTTP client could not be built")]
    Client(#[source] reqwest::Error),
}

/// Why a load through Polar's API failed; the source of
/// [`StoreError::Backend`](crate::StoreError::Backend). Timeouts and rate limits have their
/// own `StoreError` variants.
///
/// Endpoints are named by their path template, never by a URL; response bodies are never
/// quoted (a decoding error keeps only its position).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolarApiError {
    /// The endpoint answered a status this store does not expect (5xx, 403, …).
    #[error("{endpoint} answered HTTP {status}")]
    Status {
        /// Method and path template, e.g. `GET /v1/customers/{id}`.
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// The request did not complete: no connection, reset, TLS failure.
    #[error("{endpoint}: the request failed ({kind})")]
    Transport {
        /// Method and path template.
        endpoint: &'static str,
        /// `connect` or `request`.
        kind: &'static str,
        /// The client's error, with its URL removed.
        #[source]
        source: reqwest::Error,
    },
    /// A `200` whose body is not the JSON the endpoint documents.
    #[error("{endpoint}: the body is not the documented JSON (line {line}, column {column})")]
    Decode {
        /// Method and path template.
        endpoint: &'static str,
        /// Where decoding stopped.
        line: usize,
        /// Where decoding stopped.
        column: usize,
    },
    /// A body larger than any answer of the endpoint can be.
    #[error("{endpoint}: the body exceeds {limit} bytes")]
    TooLarge {
        /// Method and path template.
        endpoint: &'static str,
        /// The limit.
        limit: usize,
    },
    /// Polar's answers about one token disagree (e.g. two different customer ids).
    #[error("Polar's answers disagree: {0}")]
    Inconsistent(&'static str),
    /// `GET /v1/customers/{id}` refused the organization access token: it is wrong, revoked,
    /// or lacks the `customers:read` scope. Every load fails until it is fixed.
    #[error("the organization access token was refused (HTTP {status}); it needs customers:read")]
    OrganizationToken {
        /// `401` or `403`.
        status: u16,
    },
}
