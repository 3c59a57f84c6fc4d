//! Browser portals: turning Polar's `customer_portal_url` into a cookie session, and
//! signing out.
//!
//! Polar sends customers to `…/portal?customer_session_token=<token>`. A merchant hosting
//! its own portal turns that URL into a session cookie without leaking the token further.
//! The link is not used up by the hand-off: like Polar's, it works until the session expires
//! or is revoked, so a link left in a history or a log stays usable for that long.
//!
//! Two pieces, both built from the [`CustomerSessionLayer`] that reads the cookie, so they
//! share its sessions, cookie, CSRF guard and rejection responses:
//!
//! 1. **The portal page** ([`CustomerSessionLayer::portal`]): one layer that answers hand-off
//!    links itself and sends every other request through the session check. A `GET` whose
//!    query carries `customer_session_token` is checked through the same cache and store as
//!    every request; on success the answer is `303 See Other` to the path the browser asked
//!    for (behind axum's `Router::nest` too), without the token and without Polar's `email`
//!    parameter (other parameters kept), with the session cookie set and
//!    `Referrer-Policy: no-referrer`, so the token is in no later URL, `Location` or
//!    `Referer`. A bad or expired link gets a plain 401 page, a store outage a 503 page
//!    with the layer's `Retry-After`. Because the hand-off comes first, a returning customer
//!    whose old cookie has expired is signed in by a fresh link, not refused for the cookie.
//! 2. **Sign-out** ([`CustomerSessionLayer::logout`]): a service for a `POST` route that
//!    revokes the session, clears the cookie and redirects; if the store fails it says so
//!    and keeps the cookie. See [`Logout`].
//!
//! The cookie ([`SessionCookie`]) is `HttpOnly`, `Secure` (switch off only for plain-http
//! localhost development), `SameSite=Lax`, `Path=/`, with `Max-Age` up to the session's end
//! and the `__Host-` prefix. Cookie-authenticated responses are marked
//! `Cache-Control: private, no-store` and `Vary: Cookie, Authorization`; unsafe methods need
//! `Sec-Fetch-Site: same-origin`/`none` or an allowed `Origin` (the CSRF guard, on by
//! default), or they get 403. Bearer requests are unaffected. For pages instead of Polar's
//! JSON on the browser's requests, use [`BrowserRejection`].
//!
//! ```
//! use axum::{Router, routing::{get, post_service}};
//! use tower_customer_session::reject::BrowserRejection;
//! use tower_customer_session::{Customer, CustomerSessionLayer, SessionManager, MemoryStore};
//!
//! # fn main() -> Result<(), tower_customer_session::ConfigError> {
//! let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
//! let auth = CustomerSessionLayer::new(sessions)
//!     .cookie("customer_session")
//!     .on_rejection(BrowserRejection::pages());
//!
//! let page = get(|customer: Option<Customer>| async move {
//!     customer.map_or("open the link from your email".to_owned(), |c| format!("hello {}", c.id))
//! });
//! let app: Router = Router::new()
//!     .route("/portal", page.layer(auth.clone().optional().portal()?))
//!     .route("/portal/logout", post_service(auth.logout("/portal")?));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! # Deployment caveats
//!
//! - The hand-off URL carries the token once, in the first request line: keep
//!   request-logging layers (and proxies) from recording the query string of that path.
//! - Behind a proxy that strips a path prefix, set [`PortalLayer::base_path`] so the
//!   redirect goes back to the public path.
//!
//! [`CustomerSessionLayer`]: crate::CustomerSessionLayer
//! [`CustomerSessionLayer::portal`]: crate::CustomerSessionLayer::portal
//! [`CustomerSessionLayer::logout`]: crate::CustomerSessionLayer::logout
//! [`SessionCookie`]: crate::SessionCookie
//! [`BrowserRejection`]: crate::reject::BrowserRejection

#[cfg(feature = "dbsc")]
#[cfg_attr(docsrs, doc(cfg(feature = "dbsc")))]
pub mod dbsc;
mod handoff;
mod layer;
mod logout;

use http::HeaderValue;

pub use layer::{Portal, PortalFuture, PortalLayer};
pub use logout::Logout;

use crate::error::{ConfigError, is_local_path};
use crate::layer::{CustomerSessionLayer, Rejector};
use handoff::HandoffOptions;

impl<St, R: Clone> CustomerSessionLayer<St, R> {
    /// The layer for the portal page: the [hand-off](crate::portal) of
    /// `?customer_session_token=…` links in front of this layer's session check, in one
    /// layer so the two cannot be mounted in the wrong order. Usually on an
    /// [optional](Self::optional) layer, so the page can greet visitors without a session.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoCookie`] if no [cookie](Self::cookie) is configured.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use tower_customer_session::{Customer, CustomerSessionLayer, SessionManager, MemoryStore};
    ///
    /// let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let auth = CustomerSessionLayer::new(sessions).cookie("customer_session");
    /// let page = get(|c: Option<Customer>| async move { c.is_some().to_string() });
    /// let app: Router = Router::new().route("/portal", page.layer(auth.optional().portal()?));
    /// # Ok::<(), tower_customer_session::ConfigError>(())
    /// ```
    pub fn portal(&self) -> Result<PortalLayer<St, R>, ConfigError> {
        let cookie = self.session_cookie().ok_or(ConfigError::NoCookie)?.clone();
        Ok(PortalLayer::new(
            self.clone(),
            HandoffOptions {
                cookie,
                base_path: "".into(),
                keep_email: false,
            },
        ))
    }

    /// The sign-out service ([`Logout`]): revokes the session, clears the cookie and
    /// redirects to `location`; on a store failure, this layer's 503 and the cookie kept.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoCookie`] if no [cookie](Self::cookie) is configured;
    /// [`ConfigError::Path`] unless `location` is a path on this site (`/portal`, not
    /// `//host`).
    ///
    /// ```
    /// use axum::{Router, routing::post_service};
    /// use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
    ///
    /// let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let auth = CustomerSessionLayer::new(sessions).cookie("customer_session");
    /// let app: Router = Router::new().route("/portal/logout", post_service(auth.logout("/portal")?));
    /// # Ok::<(), tower_customer_session::ConfigError>(())
    /// ```
    pub fn logout(&self, location: &str) -> Result<Logout<St, R>, ConfigError> {
        self.session_cookie().ok_or(ConfigError::NoCookie)?;
        let location = HeaderValue::from_str(location)
            .ok()
            .filter(|_| is_local_path(location))
            .ok_or_else(|| ConfigError::Path(location.to_owned()))?;
        let rejector = Rejector::new(
            self.config().clone(),
            self.rejection_hook().clone(),
            self.sessions().metrics().clone(),
        );
        Ok(Logout::new(self.sessions().clone(), rejector, location))
    }
}
