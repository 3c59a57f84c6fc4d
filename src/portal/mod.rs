//! Browser portals: turning Polar's `customer_portal_url` into a cookie session.
//!
//! Polar sends customers to `…/portal?customer_session_token=<token>`. A merchant hosting
//! its own portal turns that URL into a session cookie without leaking the token further.
//! The link is not used up by the hand-off: like Polar's, it works until the session expires
//! or is revoked, so a link left in a history or a log stays usable for that long.
//!
//! 1. **Hand-off** ([`HandoffLayer`], from [`CustomerSessionLayer::handoff`]): a `GET` whose
//!    query carries `customer_session_token` is answered by the layer itself. The token is
//!    checked through the same cache and store as every request; on success the response is
//!    `303 See Other` to the same path without the token (other query parameters kept), with
//!    the session cookie set and `Referrer-Policy: no-referrer`, so the token is in no later
//!    URL, `Location` or `Referer`. On failure it is a plain 401 page ("link expired or
//!    invalid"); a store outage gives 503. Requests without the parameter pass through.
//! 2. **Cookie**: [`SessionCookie`] — `HttpOnly`, `Secure` (switch off only for plain-http
//!    localhost development), `SameSite=Lax`, `Path=/`, `Max-Age` up to the session's end,
//!    and the `__Host-` prefix.
//! 3. **Cookie-authenticated requests** through [`CustomerSessionLayer`]: responses get
//!    `Cache-Control: private, no-store` and `Vary: Cookie, Authorization`; unsafe methods
//!    need `Sec-Fetch-Site: same-origin`/`none` or an allowed `Origin` (CSRF guard, on by
//!    default), or they get 403. Bearer requests are unaffected.
//! 4. **Logout**: revoke with [`SessionManager::revoke_hash`] using
//!    [`SessionInfo::token_hash`](crate::SessionInfo::token_hash) and send
//!    [`SessionCookie::clear_cookie`].
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use http::{header, StatusCode};
//! use tower_customer_session::{Customer, CustomerSessionLayer, SessionManager, MemoryStore, SessionInfo};
//!
//! let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
//! let auth = CustomerSessionLayer::new(sessions.clone()).cookie("customer_session");
//! let cookie = auth.handoff().cookie().clone();
//!
//! let logout = post(move |info: SessionInfo| {
//!     let (sessions, cookie) = (sessions.clone(), cookie.clone());
//!     async move {
//!         let _ = sessions.revoke_hash(&info.token_hash).await;
//!         let location = header::HeaderValue::from_static("/portal");
//!         (StatusCode::SEE_OTHER, [(header::SET_COOKIE, cookie.clear_cookie()), (header::LOCATION, location)])
//!     }
//! });
//! let page = get(|customer: Option<Customer>| async move {
//!     customer.map_or("sign-in link required".to_owned(), |c| format!("hello {}", c.id))
//! });
//! let app: Router = Router::new()
//!     // Outermost first on the way in: hand-off, then the (optional) session check.
//!     .route("/portal", page.route_layer(auth.clone().optional()).layer(auth.handoff()))
//!     .route("/portal/logout", logout.route_layer(auth));
//! ```
//!
//! The hand-off URL carries the token once, in the first request line: keep request-logging
//! layers from recording the query string of that path.
//!
//! [`CustomerSessionLayer`]: crate::CustomerSessionLayer
//! [`CustomerSessionLayer::handoff`]: crate::CustomerSessionLayer::handoff
//! [`SessionManager::revoke_hash`]: crate::SessionManager::revoke_hash
//! [`SessionCookie`]: crate::SessionCookie
//! [`SessionCookie::clear_cookie`]: crate::SessionCookie::clear_cookie

mod handoff;

pub use handoff::{Handoff, HandoffFuture, HandoffLayer};
