//! Configuration of [`PolarApiStore`].

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use http::header::{ACCEPT, HeaderMap, HeaderName};
use tokio::sync::Semaphore;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::client::PolarClient;
use super::{Inner, PRODUCTION_API, PolarApiStore, PolarBuildError};

/// `<crate>/<version>`, so Polar can tell this client apart in its logs.
const USER_AGENT: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));

/// Builds a [`PolarApiStore`].
///
/// ```
/// use std::time::Duration;
/// use tower_customer_session::store::polar::{PolarApiStore, SANDBOX_API};
///
/// let store = PolarApiStore::builder()
///     .base_url(SANDBOX_API)
///     .organization_token("polar_oat_…from your secret manager")
///     .timeout(Duration::from_secs(2))
///     .build()
///     .unwrap();
/// assert!(store.has_organization_token());
/// ```
#[must_use]
pub struct PolarApiStoreBuilder {
    base_url: String,
    organization_token: Option<Zeroizing<String>>,
    organization_id: Uuid,
    polar_version: String,
    connect_timeout: Duration,
    timeout: Duration,
    max_concurrent_loads: usize,
}

impl PolarApiStoreBuilder {
    pub(super) fn new() -> Self {
        Self {
            base_url: PRODUCTION_API.to_owned(),
            organization_token: None,
            organization_id: Uuid::nil(),
            polar_version: "2026-04".to_owned(),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            max_concurrent_loads: 64,
        }
    }

    /// Where Polar's API is: [`PRODUCTION_API`], [`SANDBOX_API`](super::SANDBOX_API), or any
    /// Polar-compatible server (a path prefix is kept). Default: [`PRODUCTION_API`]
    /// (`https://api.polar.sh`).
    ///
    /// ```
    /// # use tower_customer_session::store::polar::PolarApiStore;
    /// let store = PolarApiStore::builder().base_url("http://127.0.0.1:3000/").build().unwrap();
    /// assert_eq!(store.base_url(), "http://127.0.0.1:3000");
    /// ```
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// An organization access token (`polar_oat_…`, scope `customers:read`), so each miss
    /// fetches the full customer (`metadata`, `external_id`, `organization_id`) from
    /// `GET /v1/customers/{id}`. Default: none, and customers are built from the customer
    /// portal's view (see the [module docs](super)).
    ///
    /// ```
    /// # use tower_customer_session::store::polar::PolarApiStore;
    /// let store = PolarApiStore::builder().organization_token("polar_oat_example").build().unwrap();
    /// assert!(store.has_organization_token());
    /// assert!(!format!("{store:?}").contains("polar_oat_example"));
    /// ```
    pub fn organization_token(mut self, token: impl Into<String>) -> Self {
        self.organization_token = Some(Zeroizing::new(token.into()));
        self
    }

    /// The `organization_id` of customers built without an organization token (with one,
    /// Polar's value is used). Default: the nil UUID.
    ///
    /// ```
    /// # use tower_customer_session::store::polar::PolarApiStore;
    /// let org = uuid::uuid!("1dbfc517-0bbf-4301-9ba8-555ca42b9737");
    /// let store = PolarApiStore::builder().organization_id(org).build().unwrap();
    /// # let _ = store;
    /// ```
    pub fn organization_id(mut self, id: Uuid) -> Self {
        self.organization_id = id;
        self
    }

    /// The `Polar-Version` request header: which dated version of the API answers. The
    /// shapes this store reads are the same in `2026-04` and `2026-10`. Default: `2026-04`,
    /// Polar's default version.
    ///
    /// ```
    /// # use tower_customer_session::store::polar::PolarApiStore;
    /// let store = PolarApiStore::builder().polar_version("2026-10").build().unwrap();
    /// # let _ = store;
    /// ```
    pub fn polar_version(mut self, version: impl Into<String>) -> Self {
        self.polar_version = version.into();
        self
    }

    /// Longest wait for a new connection (TCP and TLS). Default: 2 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::store::polar::PolarApiStore;
    /// let store = PolarApiStore::builder().connect_timeout(Duration::from_millis(500)).build().unwrap();
    /// # let _ = store;
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest time for one request, from sending to the last byte of the body. Default: 5 s.
    ///
    /// The whole load (two rounds of requests) is also bounded by the manager's
    /// [`store_timeout`](crate::SessionManagerBuilder::store_timeout), 1 s by default: set
    /// that to what a miss may take (about 3 s for Polar), as both end in `503`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::store::polar::PolarApiStore;
    /// let store = PolarApiStore::builder().timeout(Duration::from_secs(2)).build().unwrap();
    /// # let _ = store;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Most loads in flight at once; a miss beyond it answers `503` with `Retry-After: 1`
    /// at once instead of queueing. Concurrent misses for one token count once (they share
    /// one load). Default: 64.
    ///
    /// ```
    /// # use tower_customer_session::store::polar::PolarApiStore;
    /// let store = PolarApiStore::builder().max_concurrent_loads(16).build().unwrap();
    /// # let _ = store;
    /// ```
    pub fn max_concurrent_loads(mut self, loads: usize) -> Self {
        self.max_concurrent_loads = loads;
        self
    }

    /// Build the store and its HTTP client (rustls, a connection pool per host).
    ///
    /// # Errors
    ///
    /// [`PolarBuildError`]: a base URL that is not absolute http(s), a token or version that
    /// cannot be a header value, or a client that cannot be set up.
    ///
    /// ```
    /// # use tower_customer_session::store::polar::{PolarApiStore, PolarBuildError};
    /// let refused = PolarApiStore::builder().base_url("api.polar.sh").build();
    /// assert!(matches!(refused, Err(PolarBuildError::BaseUrl)));
    /// ```
    pub fn build(self) -> Result<PolarApiStore, PolarBuildError> {
        let base = checked_base(&self.base_url)?;
        let organization = match &self.organization_token {
            Some(token) => Some(bearer(token).ok_or(PolarBuildError::OrganizationToken)?),
            None => None,
        };
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            HeaderName::from_static("polar-version"),
            HeaderValue::from_str(&self.polar_version)
                .map_err(|_| PolarBuildError::PolarVersion)?,
        );
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            // Polar answers directly; a redirect would carry the bearer token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(PolarBuildError::Client)?;
        Ok(PolarApiStore {
            inner: Arc::new(Inner {
                client: PolarClient { http, base },
                organization,
                organization_id: self.organization_id,
                loads: Semaphore::new(self.max_concurrent_loads),
                polar_version: self.polar_version,
            }),
        })
    }
}

/// `url` without a trailing slash, if it is an absolute http(s) URL with neither query nor
/// fragment.
fn checked_base(url: &str) -> Result<String, PolarBuildError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| PolarBuildError::BaseUrl)?;
    let usable = matches!(parsed.scheme(), "http" | "https")
        && parsed.has_host()
        && parsed.query().is_none()
        && parsed.fragment().is_none()
        && parsed.username().is_empty()
        && parsed.password().is_none();
    if !usable {
        return Err(PolarBuildError::BaseUrl);
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// `Bearer <credential>`, marked sensitive so HTTP/2 never indexes it and `Debug` hides it.
pub(super) fn bearer(credential: &str) -> Option<HeaderValue> {
    let text = Zeroizing::new(format!("Bearer {credential}"));
    let mut value = HeaderValue::from_str(&text).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            checked_base("https://api.polar.sh").unwrap(),
            "https://api.polar.sh"
        );
        assert_eq!(
            checked_base("http://127.0.0.1:8080/polar/").unwrap(),
            "http://127.0.0.1:8080/polar"
        );
        for bad in [
            "api.polar.sh",
            "ftp://api.polar.sh",
            "https://api.polar.sh/?x=1",
            "https://api.polar.sh/#f",
            "https://user:pw@api.polar.sh",
            "",
        ] {
            assert!(checked_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bearer_values_are_sensitive_and_refuse_header_breaking_input() {
        let value = bearer("polar_oat_x").unwrap();
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("polar_oat_x"));
        assert!(bearer("a\r\nX-Injected: 1").is_none());
    }
}
