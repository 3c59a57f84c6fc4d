//! The HTTP side: one pooled client with Polar's headers, and what each status means.

use http::HeaderValue;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, RETRY_AFTER};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use super::error::PolarApiError;
use crate::store::StoreError;

/// The largest body any endpoint used here can answer with (a `Customer` with 50 metadata
/// keys of 500 characters is about 30 KiB).
const MAX_BODY: usize = 256 * 1024;

/// The endpoints this store calls.
#[derive(Debug, Clone, Copy)]
pub(super) enum Endpoint {
    Introspect,
    User,
    Me,
    Customer,
}

impl Endpoint {
    /// Method and path template, for errors and logs.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Introspect => "GET /v1/customer-portal/customer-session/introspect",
            Self::User => "GET /v1/customer-portal/customer-session/user",
            Self::Me => "GET /v1/customer-portal/customers/me",
            Self::Customer => "GET /v1/customers/{id}",
        }
    }
}

/// A Polar answer this store acts on; every other status is an error.
pub(super) enum Reply<T> {
    /// `200` with the documented body.
    Found(T),
    /// `401`: the bearer credential is unknown, expired or revoked.
    Unauthorized,
    /// `404`.
    NotFound,
    /// `422`: Polar refuses this subject on this endpoint.
    Unprocessable,
}

/// `reqwest::Client` is a handle to a shared connection pool: clones are cheap and share it.
#[derive(Clone)]
pub(super) struct PolarClient {
    pub(super) http: reqwest::Client,
    /// Without a trailing slash; paths start with one.
    pub(super) base: String,
}

impl PolarClient {
    /// `GET {base}{path}` with `bearer` as the `Authorization` value.
    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        path: &str,
        bearer: &HeaderValue,
    ) -> Result<Reply<T>, StoreError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(url)
            .header(AUTHORIZATION, bearer.clone())
            .send()
            .await
            .map_err(|e| transport(endpoint, e))?;
        let status = response.status();
        tracing::trace!(
            endpoint = endpoint.name(),
            status = status.as_u16(),
            "Polar API"
        );
        match status {
            StatusCode::OK => {
                let body = read_body(response, endpoint).await?;
                serde_json::from_slice(&body)
                    .map(Reply::Found)
                    .map_err(|e| {
                        StoreError::backend(PolarApiError::Decode {
                            endpoint: endpoint.name(),
                            line: e.line(),
                            column: e.column(),
                        })
                    })
            }
            StatusCode::UNAUTHORIZED => Ok(Reply::Unauthorized),
            StatusCode::NOT_FOUND => Ok(Reply::NotFound),
            StatusCode::UNPROCESSABLE_ENTITY => Ok(Reply::Unprocessable),
            StatusCode::TOO_MANY_REQUESTS => Err(StoreError::RateLimited {
                retry_after: retry_after(response.headers().get(RETRY_AFTER)),
            }),
            other => Err(StoreError::backend(PolarApiError::Status {
                endpoint: endpoint.name(),
                status: other.as_u16(),
            })),
        }
    }
}

/// The whole body, refusing more than [`MAX_BODY`] bytes before reading them.
async fn read_body(
    mut response: reqwest::Response,
    endpoint: Endpoint,
) -> Result<Vec<u8>, StoreError> {
    let too_large = || {
        StoreError::backend(PolarApiError::TooLarge {
            endpoint: endpoint.name(),
            limit: MAX_BODY,
        })
    };
    let announced = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > MAX_BODY as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(endpoint, e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Map a client error: a timeout is a timeout; anything else keeps the error, minus its URL.
fn transport(endpoint: Endpoint, error: reqwest::Error) -> StoreError {
    if error.is_timeout() {
        return StoreError::Timeout;
    }
    let kind = if error.is_connect() {
        "connect"
    } else {
        "request"
    };
    StoreError::backend(PolarApiError::Transport {
        endpoint: endpoint.name(),
        kind,
        source: error.without_url(),
    })
}

/// `Retry-After` in delta-seconds (what Polar sends); an HTTP date or garbage is ignored.
fn retry_after(value: Option<&HeaderValue>) -> Option<u32> {
    let seconds: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(u32::try_from(seconds).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_delta_seconds_only() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(retry_after(Some(&v("7"))), Some(7));
        assert_eq!(retry_after(Some(&v(" 30 "))), Some(30));
        assert_eq!(retry_after(Some(&v("99999999999"))), Some(u32::MAX));
        assert_eq!(retry_after(Some(&v("Wed, 21 Oct 2015 07:28:00 GMT"))), None);
        assert_eq!(retry_after(Some(&v("-1"))), None);
        assert_eq!(retry_after(None), None);
    }
}
