//! The Tower middleware: [`CustomerSessionLayer`] and the service it builds.
//!
//! See the [crate guide](crate) for the request's way through it.

mod authorize;
mod body;
mod future;
mod service;

use std::sync::Arc;

use tower_layer::Layer;

pub(crate) use authorize::Rejector;
pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use service::CustomerSessionService;

use crate::cookie::SessionCookie;
use crate::csrf::CsrfGuard;
use crate::error::ConfigError;
use crate::extract::Sources;
use crate::manager::SessionManager;
use crate::reject::is_valid_realm;
use crate::reject::{DefaultRejection, OnRejection, Responses};

/// Whether requests without credentials get through; set with
/// [`required`](CustomerSessionLayer::required) and [`optional`](CustomerSessionLayer::optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Mode {
    /// Requests without credentials are rejected with 401.
    #[default]
    Required,
    /// Requests without credentials (or with a non-Bearer `Authorization`) pass without a
    /// customer; bad or unknown tokens are still rejected.
    Optional,
}

/// HTTP-side settings shared by every clone of the service.
#[derive(Debug, Clone)]
pub(crate) struct LayerConfig {
    pub(crate) sources: Sources,
    pub(crate) cookie: Option<SessionCookie>,
    pub(crate) csrf: CsrfGuard,
    pub(crate) mode: Mode,
    pub(crate) realm: Box<str>,
    pub(crate) retry_after_secs: u32,
    pub(crate) responses: Responses,
    /// Device Bound Session Credentials, when configured.
    #[cfg(feature = "dbsc")]
    pub(crate) bound: Option<Arc<crate::portal::dbsc::Bound>>,
}

/// Authenticates requests by customer session token; see the [crate guide](crate).
///
/// Defaults: token from `Authorization: Bearer` only, realm `polar`, required, Polar's
/// rejection responses, `Retry-After: 1` on 503. With a [cookie](Self::cookie): the CSRF
/// guard on, and responses to cookie-authenticated requests marked
/// `Cache-Control: private, no-store` and `Vary: Cookie, Authorization`.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_customer_session::{Customer, CustomerSessionLayer, SessionManager, MemoryStore};
///
/// let sessions = SessionManager::builder(MemoryStore::new())
///     .secret(b"0123456789abcdef0123456789abcdef")
///     .build()
///     .unwrap();
/// let app: Router = Router::new()
///     .route("/me", get(|customer: Customer| async move { customer.email.clone().unwrap_or_default() }))
///     .route_layer(CustomerSessionLayer::new(sessions));
/// ```
#[must_use]
pub struct CustomerSessionLayer<St, R = DefaultRejection> {
    sessions: SessionManager<St>,
    config: Arc<LayerConfig>,
    on_rejection: R,
}

impl<St, R: Clone> Clone for CustomerSessionLayer<St, R> {
    fn clone(&self) -> Self {
        Self {
            sessions: self.sessions.clone(),
            config: self.config.clone(),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

impl<St> CustomerSessionLayer<St> {
    /// A layer resolving tokens through `sessions`, with the defaults above.
    pub fn new(sessions: SessionManager<St>) -> Self {
        let realm = "polar";
        Self {
            sessions,
            config: Arc::new(LayerConfig {
                sources: Sources {
                    bearer: true,
                    cookie: None,
                },
                cookie: None,
                csrf: CsrfGuard::default(),
                mode: Mode::Required,
                realm: realm.into(),
                retry_after_secs: 1,
                responses: Responses::new(realm, 1),
                #[cfg(feature = "dbsc")]
                bound: None,
            }),
            on_rejection: DefaultRejection,
        }
    }
}

impl<St, R> CustomerSessionLayer<St, R> {
    pub(crate) fn config_mut(&mut self) -> &mut LayerConfig {
        Arc::make_mut(&mut self.config)
    }

    /// Read `Authorization: Bearer …`. Default: `true`.
    ///
    /// When enabled and the header is present, it is the only credential considered: a
    /// cookie on the same request is ignored, even if the header is invalid.
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// // Cookie-only, e.g. for a browser portal behind a proxy that sets its own Authorization.
    /// let layer = CustomerSessionLayer::new(sessions).bearer(false).cookie("portal_session");
    /// # let _ = layer;
    /// ```
    pub fn bearer(mut self, enabled: bool) -> Self {
        self.config_mut().sources.bearer = enabled;
        self
    }

    /// Also read the token from the session cookie. Default: no cookie.
    ///
    /// Takes a name or a [`SessionCookie`]; the name read is [`SessionCookie::name`]
    /// (`__Host-` prefixed under the secure defaults), compared exactly and
    /// case-sensitively. The [portal](Self::portal) hand-off and the [logout](Self::logout) write
    /// and clear this cookie.
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// // Reads the cookie `__Host-customer_session`.
    /// let layer = CustomerSessionLayer::new(sessions).cookie("customer_session");
    /// # let _ = layer;
    /// ```
    pub fn cookie(mut self, cookie: impl Into<SessionCookie>) -> Self {
        let cookie = cookie.into();
        let config = self.config_mut();
        config.sources.cookie = Some(cookie.name().into());
        config.cookie = Some(cookie);
        self
    }

    /// Refuse unsafe methods (POST, PUT, PATCH, DELETE, …) authenticated by the cookie unless
    /// `Sec-Fetch-Site` is `same-origin`/`none` or `Origin` is [allowed](Self::allow_origin);
    /// they get `403`. Default: `true`. Bearer-authenticated requests are never affected.
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let layer = CustomerSessionLayer::new(sessions).cookie("sid").csrf_guard(false);
    /// # let _ = layer;
    /// ```
    pub fn csrf_guard(mut self, enabled: bool) -> Self {
        self.config_mut().csrf.enabled = enabled;
        self
    }

    /// Accept cookie-authenticated unsafe requests whose `Origin` is exactly `origin`
    /// (scheme, host and port, e.g. `https://shop.example`). Default: no origins; only
    /// Fetch Metadata proves same-origin.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Origin`] if `origin` is not a valid header value.
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let layer = CustomerSessionLayer::new(sessions)
    ///     .cookie("sid")
    ///     .allow_origin("https://shop.example")?;
    /// # let _ = layer;
    /// # Ok::<(), tower_customer_session::ConfigError>(())
    /// ```
    pub fn allow_origin(mut self, origin: &str) -> Result<Self, ConfigError> {
        let origin = http::HeaderValue::from_str(origin)
            .map_err(|_| ConfigError::Origin(origin.to_owned()))?;
        self.config_mut().csrf.allowed_origins.push(origin);
        Ok(self)
    }

    /// The `realm` of `WWW-Authenticate` challenges. Default: `polar`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Realm`] if `realm` contains `"`, `\` or a character outside printable
    /// ASCII (RFC 6750 §3).
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let layer = CustomerSessionLayer::new(sessions).realm("acme portal")?;
    /// # let _ = layer;
    /// # Ok::<(), tower_customer_session::ConfigError>(())
    /// ```
    pub fn realm(mut self, realm: &str) -> Result<Self, ConfigError> {
        if !is_valid_realm(realm) {
            return Err(ConfigError::Realm(realm.to_owned()));
        }
        let config = self.config_mut();
        config.realm = realm.into();
        config.responses = Responses::new(realm, config.retry_after_secs);
        Ok(self)
    }

    /// The `Retry-After` seconds sent with 503 when the store fails. Default: 1.
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let layer = CustomerSessionLayer::new(sessions).retry_after(5);
    /// # let _ = layer;
    /// ```
    pub fn retry_after(mut self, seconds: u32) -> Self {
        let config = self.config_mut();
        config.retry_after_secs = seconds;
        config.responses = Responses::new(&config.realm, seconds);
        self
    }

    /// Let requests without credentials (or with a non-Bearer `Authorization`) through
    /// without a customer, for pages that greet anonymous visitors too; handlers take
    /// `Option<Customer>`. Bad, unknown and expired tokens are still refused.
    /// Default: required (see [`required`](Self::required)).
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let layer = CustomerSessionLayer::new(sessions).optional();
    /// # let _ = layer;
    /// ```
    pub fn optional(mut self) -> Self {
        self.config_mut().mode = Mode::Optional;
        self
    }

    /// Refuse requests without credentials with `401`. This is the default; use it to turn
    /// a clone of an [optional](Self::optional) layer back.
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let page = CustomerSessionLayer::new(sessions).optional();
    /// let api = page.clone().required();
    /// # let _ = api;
    /// ```
    pub fn required(mut self) -> Self {
        self.config_mut().mode = Mode::Required;
        self
    }

    /// Customise rejection responses. Default: [`DefaultRejection`] (Polar's responses).
    /// See [`OnRejection`] for an example.
    pub fn on_rejection<R2: OnRejection>(self, on_rejection: R2) -> CustomerSessionLayer<St, R2> {
        CustomerSessionLayer {
            sessions: self.sessions,
            config: self.config,
            on_rejection,
        }
    }

    /// The session cookie this layer reads (and its [portal](Self::portal) and
    /// [logout](Self::logout) write), if one is configured.
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let layer = CustomerSessionLayer::new(sessions).cookie("sid");
    /// assert_eq!(layer.session_cookie().unwrap().name(), "__Host-sid");
    /// ```
    pub fn session_cookie(&self) -> Option<&SessionCookie> {
        self.config.cookie.as_ref()
    }

    pub(crate) fn config(&self) -> &Arc<LayerConfig> {
        &self.config
    }

    pub(crate) fn rejection_hook(&self) -> &R {
        &self.on_rejection
    }

    /// The sessions handle this layer resolves tokens with.
    pub fn sessions(&self) -> &SessionManager<St> {
        &self.sessions
    }
}

impl<S, St, R: Clone> Layer<S> for CustomerSessionLayer<St, R> {
    type Service = CustomerSessionService<S, St, R>;

    fn layer(&self, inner: S) -> Self::Service {
        CustomerSessionService::new(
            inner,
            self.sessions.clone(),
            self.config.clone(),
            self.on_rejection.clone(),
        )
    }
}

impl<St, R> std::fmt::Debug for CustomerSessionLayer<St, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerSessionLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
