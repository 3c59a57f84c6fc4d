//! Tower middleware that authenticates customers by Polar-style customer session tokens.
//!
//! A merchant selling through [Polar](https://polar.sh) gives each customer a short-lived
//! opaque token (`polar_cst_…`, one hour) for their customer portal. This crate is the
//! server side of that idea: a [`CustomerSessionLayer`] that takes the token from
//! `Authorization: Bearer …` or a cookie, resolves it through a pluggable [`SessionStore`]
//! behind an in-process cache, and hands your handler the [`Customer`].
//!
//! # Quick start
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_customer_session::model::CustomerData;
//! use tower_customer_session::{CreateSession, Customer, CustomerSessionLayer, SessionManager, MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryStore::new();
//! let mut data = CustomerData::new(chrono::Utc::now());
//! data.email = Some("jane@example.com".into());
//! let jane = store.insert_customer(data);
//!
//! let sessions = SessionManager::builder(store)
//!     .secret(b"at least 32 bytes from your secret manager")
//!     .build()
//!     .unwrap();
//!
//! let app: Router = Router::new()
//!     .route("/me", get(|c: Customer| async move { c.email.clone().unwrap_or_default() }))
//!     .route_layer(CustomerSessionLayer::new(sessions.clone()));
//!
//! // Issue a session; its token is what the customer sends as `Authorization: Bearer …`.
//! let session = sessions.create(jane.id, CreateSession::default()).await.unwrap();
//! assert!(session.token.expose_secret().starts_with("polar_cst_"));
//! # let _ = app;
//! # }
//! ```
//!
//! # The request's way through the layer
//!
//! 1. **Extract** ([`layer`]): `Authorization: Bearer <b64token>` (scheme
//!    case-insensitive), or the configured cookie. A present `Authorization` header is the
//!    only credential considered. Two `Authorization` lines, two different session cookies or
//!    a value outside RFC 6750's `b64token` grammar → `400 invalid_request`.
//! 2. **Token** ([`token`]): prefix, length, alphabet and CRC-32 checksum are checked without
//!    allocating; a bad shape → `401 invalid_token` before any cache or store work. Then the
//!    token is hashed once: `HMAC-SHA256(secret, token)`, the value Polar stores.
//! 3. **Cache**: a moka cache keyed by that hash. Hits are answered synchronously, with no
//!    boxing. Unknown tokens are remembered briefly in a separate, bounded cache. Concurrent
//!    misses for one token share a single store load.
//! 4. **Store** ([`store`]): [`SessionStore::load`] by hash, with a timeout. A failure or
//!    timeout → `503` with `Retry-After`; errors are never cached and never let a request
//!    through.
//! 5. **Verify**: the stored hash is compared in constant time (`subtle`), `expires_at` is
//!    checked against the [`Clock`] on every request (cached or not), and deleted customers
//!    never authenticate.
//! 6. **Extensions**: the request gets the [`Customer`] (an `Arc`, cheap to clone) and the
//!    [`SessionInfo`] (session id, customer id, expiry, kind, source — never the token).
//!
//! Rejections follow Polar's responses (see [`reject`]), can be customised with
//! [`OnRejection`], and put the typed [`Rejection`] in the response extensions.
//!
//! # Revocation
//!
//! Revoke through [`SessionManager`] ([`revoke`](SessionManager::revoke),
//! [`revoke_all`](SessionManager::revoke_all)): the store first, then the cache, so the
//! next request is refused. A revocation that lands while a load for the same token is in
//! flight does not let that load re-insert the session. Revocations made by another process
//! sharing the store are seen within the cache's max TTL (60 s by default).
//!
//! # Configuration
//!
//! Two builders, each method stating its default: [`SessionManager::builder`] for
//! resolution (secret, token prefixes, session lifetime, cache sizes and lifetimes, store
//! timeout, clock), shared by every layer and by your code; and [`CustomerSessionLayer`] for
//! the HTTP side (Bearer and cookie sources, realm, required or optional mode, CSRF guard,
//! rejection customisation).
//!
//! # Browser portals
//!
//! Polar's `customer_portal_url` carries the token in the query string. [`portal`] turns that
//! link into a session cookie, on the same cache and store, without leaking the token.
//!
//! # Writing a store
//!
//! See [`store`] for the contract and a complete backend.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | [`Customer`] / `Option<Customer>` / [`SessionInfo`] extractors |
//! | `postgres` | no | `store::postgres::PostgresStore`: sessions and customers in PostgreSQL (sqlx, no TLS library of its own), invalidated over `LISTEN/NOTIFY` |
//! | `testing` | no | `store::testing`: the conformance kit for store backends |

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "axum")]
pub mod axum;
mod cache;
mod clock;
mod cookie;
mod csrf;
mod extension;
mod extract;
pub mod layer;
mod manager;
pub mod model;
pub mod portal;
pub mod reject;
pub mod store;
pub mod token;
mod verify;

pub use clock::{Clock, ManualClock, SystemClock};
pub use cookie::{SameSite, SessionCookie};
pub use extension::{CredentialSource, SessionInfo};
pub use layer::{CustomerSessionLayer, CustomerSessionService, Mode};
pub use manager::{BuildError, CreateError, CreateSession, SessionManager, SessionManagerBuilder};
pub use model::{Customer, CustomerSession};
pub use reject::{
    DefaultRejection, InvalidRequest, InvalidToken, OnRejection, Rejection, StoreUnavailable,
};
pub use store::{
    CustomerStore, DynStore, MemoryStore, SessionAdmin, SessionKey, SessionStore, StoreError,
};
