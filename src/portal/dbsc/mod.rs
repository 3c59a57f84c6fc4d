//! Device Bound Session Credentials (DBSC) for the portal: a cookie that is useless when
//! stolen. Feature `dbsc`, off by default.
//!
//! # What it protects against, and what it does not
//!
//! A session cookie copied out of a browser (by malware reading the profile, from a HAR file
//! or a support ticket) works anywhere until it expires: for a portal session, up to an
//! hour. With DBSC the browser keeps a private key it cannot export (in a TPM where there is
//! one), and from registration on it holds only a **bound credential**: a cookie that lives
//! a few minutes ([`DeviceBound::credential_lifetime`]) and that only a signature by that key
//! renews. A copied credential works elsewhere until it expires, and never longer.
//!
//! It does **not** protect against:
//!
//! - a thief on the machine while the browser runs: malware can make the browser itself
//!   sign refreshes, or use the cookie from there;
//! - browsers without DBSC: they ignore the offer and keep today's session cookie, which
//!   works until the session ends, exactly as without this feature;
//! - the hand-off link: `…/portal?customer_session_token=…` is the session token itself
//!   (in the email, the browser's history, any log that kept the query string) and works
//!   until the session ends or is revoked. DBSC changes what the browser's cookie jar holds,
//!   not what the link is;
//! - the session token as a credential: the server remembers nothing about a registration,
//!   so the token still works as a `Bearer` header, in the link, and as a plain session
//!   cookie (the registration races the first page's subresources, which carry it). What a
//!   registered browser holds from then on is the bound credential, and no response sends it
//!   the token again.
//!
//! Support today: Chrome on Windows (from 146); Chrome on other platforms and other engines
//! later or not yet. Registration needs a secure context (`https://`): plain `http://`,
//! even on `localhost`, is ignored.
//!
//! # How it works
//!
//! 1. The portal page (`GET`, authenticated by the session cookie holding the token) answers
//!    with `Secure-Session-Registration: (ES256);path="…";challenge="…"`. It is offered on the
//!    page, not on the hand-off's `303`: Chromium registers while it follows a redirect.
//! 2. The browser makes a key pair and `POST`s a JWT signed with it (`typ` `dbsc+jwt`, the
//!    public key in `jwk`, our challenge in `jti`) to the [endpoint](DeviceBoundEndpoint),
//!    with the session cookie. The endpoint checks the proof and the session, and answers
//!    with the bound credential in the same cookie (replacing the token) and the session's
//!    description: its `session_identifier`, the refresh URL (the same endpoint), the scope
//!    (the configured public origin) and the cookie it manages.
//! 3. Every layer reading that cookie accepts the credential until it expires, resolving it
//!    to its session through the same cache and store as the token: a revocation, a logout,
//!    a [`revoke_all`](crate::SessionManager::revoke_all), a deleted customer or a feed
//!    message from another instance refuses it on the next request.
//! 4. When it has expired, the browser holds back its requests and asks the endpoint for a
//!    new one, first without a proof (answer: `403` with `Secure-Session-Challenge`), then
//!    with a JWT signed by the registered key over that challenge (answer: a new credential).
//!    A session that has ended answers `{"continue": false}`, which ends the browser's DBSC
//!    session.
//!
//! Nothing is stored: the credential and the `session_identifier` hold the session token
//! (and, for the identifier, the browser's public key) encrypted and authenticated with
//! XChaCha20-Poly1305 under a key derived from the [secret](crate::SessionManagerBuilder::secret),
//! and challenges are MACed with another. So every store works unchanged, and every instance
//! sharing the secret (and the [accepted secrets](crate::SessionManagerBuilder::accept_secrets)
//! of a rotation) serves registrations and refreshes of any other.
//!
//! # Guarantees, exactly
//!
//! - **Proofs**: `ES256` only (`RS256` is refused with `400`: not supported); `typ` must be
//!   `dbsc+jwt`; a refresh proof must verify with the key given at registration, never with
//!   a key in the proof itself.
//! - **Challenges** are bound to their purpose and to their session (the token's hash for a
//!   registration, the DBSC session for a refresh), accepted for 60 seconds after issue,
//!   and **single use per instance**: each instance remembers the challenges it accepted
//!   until they are too old anyway. Across a fleet nothing is shared, so a captured proof
//!   could be replayed **once on each other instance within those 60 seconds** (earning one
//!   bound credential there, as valid as the one the capture came with). If an instance
//!   remembers 100,000 live challenges it refuses proofs with `503` rather than forget one.
//! - **Credentials** expire after [`credential_lifetime`](DeviceBound::credential_lifetime)
//!   (and never after their session), checked on the manager's clock on every request.
//! - **Refusals** never set a credential: malformed or oversized headers, a wrong `alg` or
//!   `typ`, or a registration proof without a P-256 `jwk` get `400`; a proof not signed by the
//!   right key `403`; a stale, replayed, foreign or missing challenge on refresh `403` with
//!   a fresh `Secure-Session-Challenge` (the protocol's way to retry), on registration `403`;
//!   a registration without the session token in the cookie (a bound credential cannot
//!   register another key) `401`; a refresh of a session that has ended `200`
//!   `{"continue": false}` with the cookie cleared; a store failure `503`. Nothing about a
//!   key, a proof or a token is logged.
//! - **Sign-out** ([`Logout`](super::Logout)) revokes the session behind a bound credential
//!   too; the browser's next refresh gets `{"continue": false}`. With
//!   [`clear_site_data`](DeviceBound::clear_site_data) it also sends
//!   `Clear-Site-Data: "cookies"`, which ends the DBSC session at once.
//!
//! # Turning it on
//!
//! ```
//! use axum::{Router, routing::{get, post_service}};
//! use tower_customer_session::portal::dbsc::DeviceBound;
//! use tower_customer_session::{Customer, CustomerSessionLayer, SessionManager, MemoryStore};
//!
//! # fn main() -> Result<(), tower_customer_session::ConfigError> {
//! let sessions = SessionManager::builder(MemoryStore::new())
//!     .secret(b"at least 32 bytes from your secret manager")
//!     .build()
//!     .unwrap();
//! let auth = CustomerSessionLayer::new(sessions)
//!     .cookie("customer_session")
//!     // The origin browsers see (behind a TLS-terminating proxy: its https:// origin),
//!     // and the path the endpoint is mounted on.
//!     .device_bound(DeviceBound::new("https://shop.example", "/portal/dbsc")?)?;
//!
//! let page = get(|c: Option<Customer>| async move { c.is_some().to_string() });
//! let app: Router = Router::new()
//!     .route("/portal", page.layer(auth.clone().optional().portal()?))
//!     .route("/portal/dbsc", post_service(auth.device_bound_endpoint()?))
//!     .route("/portal/logout", post_service(auth.logout("/portal")?));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! Every layer that reads the cookie must be configured with `device_bound` (clone the one
//! layer, as above), or it refuses the bound credential as a malformed token.
//!
//! # The one setting to think about
//!
//! The credential's lifetime ([`DeviceBound::credential_lifetime`], 10 minutes by default)
//! is how long a stolen cookie works, and how often a browser signs a refresh (one signature
//! and one store lookup per browser per lifetime, plus a held-back request while it
//! happens). Shorter is safer and busier; Chromium also limits how often it signs, so do
//! not go below a minute in production.
//!
//! # Behind a TLS-terminating proxy
//!
//! The server may speak plain HTTP: the browser's origin is what counts. The scope's
//! `origin` is always the configured one, never taken from `Host` or `Forwarded` headers,
//! so a proxy needs no extra trust. The endpoint path is the public one (include a prefix a
//! proxy strips).

mod challenge;
mod endpoint;
mod jwt;
mod seal;

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

pub use endpoint::DeviceBoundEndpoint;

use crate::cookie::SessionCookie;
use crate::error::{ConfigError, is_local_path};
use crate::layer::CustomerSessionLayer;
use crate::reject::InvalidToken;
use crate::token::{SessionToken, TokenHash};
use challenge::{Challenges, Purpose};
use seal::Sealer;

const SEAL_LABEL: &str = "tower-customer-session/dbsc/v1/seal";
const CHALLENGE_LABEL: &str = "tower-customer-session/dbsc/v1/challenge";

/// Settings for Device Bound Session Credentials; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct DeviceBound {
    origin: Box<str>,
    path: Box<str>,
    lifetime: Duration,
    clear_site_data: bool,
}

impl DeviceBound {
    /// DBSC for browsers on `public_origin` (`https://host[:port]`, what the address bar
    /// shows, also behind a TLS-terminating proxy), with the
    /// [endpoint](CustomerSessionLayer::device_bound_endpoint) at the public `path`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::DeviceBound`] unless `public_origin` is an `https://` origin without
    /// path, query or credentials; [`ConfigError::Path`] unless `path` is a path on this
    /// site without `"`, `\`, `?` or `#`.
    ///
    /// ```
    /// use tower_customer_session::portal::dbsc::DeviceBound;
    ///
    /// assert!(DeviceBound::new("https://shop.example", "/portal/dbsc").is_ok());
    /// assert!(DeviceBound::new("http://shop.example", "/portal/dbsc").is_err());
    /// assert!(DeviceBound::new("https://shop.example/portal", "/portal/dbsc").is_err());
    /// assert!(DeviceBound::new("https://shop.example", "//elsewhere").is_err());
    /// ```
    pub fn new(public_origin: &str, path: &str) -> Result<Self, ConfigError> {
        let host = public_origin
            .strip_prefix("https://")
            .ok_or(ConfigError::DeviceBound(
                "the public origin must be https://host[:port]",
            ))?;
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if !host_ok {
            return Err(ConfigError::DeviceBound(
                "the public origin must be https://host[:port], without a path",
            ));
        }
        if !is_local_path(path) || path.contains(['"', '\\', '?', '#']) {
            return Err(ConfigError::Path(path.to_owned()));
        }
        Ok(Self {
            origin: public_origin.to_ascii_lowercase().into(),
            path: path.into(),
            lifetime: Duration::from_secs(600),
            clear_site_data: false,
        })
    }

    /// How long a bound credential works (and a stolen one does). Default: 10 minutes.
    /// Never past the session's end; at least one second.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::portal::dbsc::DeviceBound;
    /// let dbsc = DeviceBound::new("https://shop.example", "/portal/dbsc")?
    ///     .credential_lifetime(Duration::from_secs(300));
    /// # let _ = dbsc;
    /// # Ok::<(), tower_customer_session::ConfigError>(())
    /// ```
    pub fn credential_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.max(Duration::from_secs(1));
        self
    }

    /// Send `Clear-Site-Data: "cookies"` on sign-out, which ends the browser's DBSC session
    /// at once. Default: `false`: it deletes every cookie of the whole site (the
    /// registrable domain, so sibling subdomains too); without it the DBSC session ends at
    /// the browser's next refresh, answered `{"continue": false}`.
    ///
    /// ```
    /// # use tower_customer_session::portal::dbsc::DeviceBound;
    /// let dbsc = DeviceBound::new("https://shop.example", "/portal/dbsc")?.clear_site_data(true);
    /// # let _ = dbsc;
    /// # Ok::<(), tower_customer_session::ConfigError>(())
    /// ```
    pub fn clear_site_data(mut self, enabled: bool) -> Self {
        self.clear_site_data = enabled;
        self
    }
}

/// What the layer, the portal, the endpoint and the sign-out share.
pub(crate) struct Bound {
    settings: DeviceBound,
    cookie: SessionCookie,
    sealer: Sealer,
    challenges: Challenges,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A bound credential in a cookie, opened.
pub(crate) enum Opened {
    /// Good until it expires: the session's token.
    Live(SessionToken),
    Refused(InvalidToken),
}

impl Bound {
    /// The credential in a cookie value, if it looks like one: `None` for anything else
    /// (the caller refuses it as it would any malformed token).
    pub(crate) fn open(&self, raw: &[u8], now: i64) -> Option<Opened> {
        if !raw.starts_with(seal::CREDENTIAL_PREFIX.as_bytes()) {
            return None;
        }
        Some(match self.sealer.open_credential(raw) {
            Some(credential) if credential.expires_at > now => Opened::Live(credential.token),
            Some(_) => Opened::Refused(InvalidToken::Expired),
            None => Opened::Refused(InvalidToken::Malformed),
        })
    }

    /// The session token behind a bound credential, expired or not (for signing out).
    pub(crate) fn open_any(&self, raw: &[u8]) -> Option<SessionToken> {
        self.sealer.open_credential(raw).map(|c| c.token)
    }

    /// `Secure-Session-Registration` for the session of `hash`.
    pub(crate) fn registration_offer(&self, hash: &TokenHash, now: i64) -> Option<HeaderValue> {
        let challenge = self
            .challenges
            .issue(Purpose::Registration, hash.as_bytes(), now)?;
        HeaderValue::from_str(&format!(
            "(ES256);path=\"{}\";challenge=\"{challenge}\"",
            self.settings.path
        ))
        .ok()
    }

    pub(crate) fn clears_site_data(&self) -> bool {
        self.settings.clear_site_data
    }
}

impl<St, R> CustomerSessionLayer<St, R> {
    /// Accept [bound credentials](self) in the session cookie, offer DBSC registration on
    /// the [portal](Self::portal) page, and have [logout](Self::logout) end DBSC sessions.
    /// Default: off. Configure it before cloning the layer for other routes, so they all
    /// accept the credential.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoCookie`] if no [cookie](Self::cookie) is configured;
    /// [`ConfigError::DeviceBound`] if the cookie is not `Secure` (DBSC is for https only).
    ///
    /// ```
    /// use tower_customer_session::portal::dbsc::DeviceBound;
    /// # use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let auth = CustomerSessionLayer::new(sessions)
    ///     .cookie("customer_session")
    ///     .device_bound(DeviceBound::new("https://shop.example", "/portal/dbsc")?)?;
    /// # let _ = auth;
    /// # Ok::<(), tower_customer_session::ConfigError>(())
    /// ```
    pub fn device_bound(mut self, settings: DeviceBound) -> Result<Self, ConfigError>
    where
        St: crate::store::SessionStore,
    {
        let cookie = self.session_cookie().ok_or(ConfigError::NoCookie)?.clone();
        if !cookie.is_secure() {
            return Err(ConfigError::DeviceBound(
                "the session cookie must be Secure: browsers bind sessions on https only",
            ));
        }
        let bound = Bound {
            sealer: Sealer::new(&self.sessions().derived_keys(SEAL_LABEL)),
            challenges: Challenges::new(self.sessions().derived_keys(CHALLENGE_LABEL)),
            settings,
            cookie,
        };
        self.config_mut().bound = Some(Arc::new(bound));
        Ok(self)
    }

    /// The registration and refresh endpoint ([`DeviceBoundEndpoint`]), to mount on a `POST`
    /// route at the path given to [`DeviceBound::new`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::DeviceBound`] unless [`device_bound`](Self::device_bound) was called.
    ///
    /// ```
    /// use axum::{Router, routing::post_service};
    /// use tower_customer_session::portal::dbsc::DeviceBound;
    /// # use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let auth = CustomerSessionLayer::new(sessions)
    ///     .cookie("customer_session")
    ///     .device_bound(DeviceBound::new("https://shop.example", "/portal/dbsc")?)?;
    /// let app: Router = Router::new().route("/portal/dbsc", post_service(auth.device_bound_endpoint()?));
    /// # Ok::<(), tower_customer_session::ConfigError>(())
    /// ```
    pub fn device_bound_endpoint(&self) -> Result<DeviceBoundEndpoint<St>, ConfigError> {
        let bound = self.config().bound.clone().ok_or(ConfigError::DeviceBound(
            "call .device_bound(…) on the layer first",
        ))?;
        Ok(DeviceBoundEndpoint::new(
            self.sessions().clone(),
            bound,
            self.config().clone(),
        ))
    }
}
