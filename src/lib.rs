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
//! # Revocation, and fleets
//!
//! Revoke through [`SessionManager`] ([`revoke`](SessionManager::revoke),
//! [`revoke_all`](SessionManager::revoke_all), [`delete_customer`](SessionManager::delete_customer)):
//! the store first, then the cache, so the next request is refused. A revocation that lands
//! while a load for the same token is in flight does not let that load re-insert the session,
//! and a revocation whose store call fails is reported to the caller and keeps the session
//! out of the cache until it can no longer matter.
//!
//! Several instances sharing a store learn of each other's changes through the store's
//! invalidation feed (Redis pub/sub, PostgreSQL `LISTEN/NOTIFY`), applied to the cache by one
//! mechanism in the core, with a heartbeat that detects a silently lost feed:
//!
//! | store | a revocation elsewhere is refused here | while the feed is down |
//! |---|---|---|
//! | one process, [`MemoryStore`] | at once (there is no elsewhere) | — |
//! | shared, with a feed (default [`FeedPolicy::BypassCache`](store::FeedPolicy)) | as soon as the message arrives (about a millisecond on a LAN) | within the store's silence bound ([`Watch::max_silence`](store::Watch::max_silence): `heartbeat_interval + heartbeat_timeout`, 300 ms by default for Redis and PostgreSQL) after the revocation returned, even if the feed died without a word: then the cache is flushed and bypassed, every request asks the store |
//! | shared, with a feed, [`FeedPolicy::ServeCached`](store::FeedPolicy) | as soon as the message arrives | within `cache_max_ttl` (60 s by default) |
//! | shared, without a feed (e.g. your own store, Polar's API without webhooks) | within `cache_max_ttl` | — |
//!
//! See [`store`] for the contract, and [`SessionManager::feed_state`] to watch the feed.
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
//! link into a session cookie, on the same cache and store, without leaking the token, and
//! signs customers out; [`reject::BrowserRejection`] shows browsers pages instead of JSON.
//!
//! # Team members
//!
//! A member session (`polar_mst_…`) acts for one member of a team customer:
//! [`SessionInfo::member`] names it and its role, and [`RequireRole`] keeps routes to the
//! roles Polar's portal allows (owners and billing managers for billing; a customer session
//! counts as the owner). [`CreateSession::member`] issues one.
//!
//! # Sessions issued by Polar
//!
//! With feature `polar-api`, [`store::polar::PolarApiStore`] accepts the tokens Polar itself
//! issues, resolving them through Polar's API behind the same cache, and
//! [`webhooks::PolarWebhooks`] keeps that cache fresh with Polar's customer events.
//!
//! # Writing a store
//!
//! See [`store`] for the contract (resolution, administration and customers as separate
//! traits; invalidation feeds) and a complete backend, and [`testing`] (feature
//! `testing`) for the store test kit every backend runs.
//!
//! # Guides
//!
//! The long-form documentation is in [`guide`]: the request's way and every response,
//! the browser portal, scaling out (secrets, key rotation, feeds, what a revocation
//! guarantees), each backend and its topologies, Polar-issued sessions, metrics, and writing
//! a store.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | [`Customer`] / `Option<Customer>` / [`SessionInfo`] extractors; the portal's redirect follows axum's `Router::nest` |
//! | `polar-api` | no | `store::polar`: `PolarApiStore` (Polar-issued tokens, via Polar's API, over rustls) and the `PolarWebhooks` receiver |
//! | `metrics` | no | counters, gauges and histograms on the `metrics` facade; see [`metrics`] |
//! | `testing` | no | `testing`: the store test kit for store backends |
//! | `redis` | no | `RedisStore`: sessions in Redis ≥ 6.2 shared by every instance, with a pub/sub invalidation feed; re-exports the `redis` driver |
//! | `postgres` | no | `store::postgres::PostgresStore`: sessions and customers in PostgreSQL (sqlx, no TLS library of its own), invalidated over `LISTEN/NOTIFY` |
//! | `dbsc` | no | `portal::dbsc`: Device Bound Session Credentials: a portal cookie bound to the browser's key, useless when stolen |

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod cache;
mod clock;
mod cookie;
mod csrf;
mod error;
mod extension;
mod extract;
pub mod guide;
pub mod layer;
mod manager;
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub mod metrics;
pub mod model;
pub mod portal;
pub mod reject;
pub mod role;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod token;
mod verify;
#[cfg(feature = "polar-api")]
#[cfg_attr(docsrs, doc(cfg(feature = "polar-api")))]
pub mod webhooks;

pub use clock::{Clock, ManualClock, SystemClock};
pub use cookie::{SameSite, SessionCookie};
pub use error::ConfigError;
pub use extension::{CredentialSource, SessionInfo};
pub use layer::{CustomerSessionLayer, CustomerSessionService};
pub use manager::{BuildError, CreateError, CreateSession, SessionManager, SessionManagerBuilder};
pub use model::{Customer, CustomerSession};
pub use reject::{
    DefaultRejection, InvalidRequest, InvalidToken, OnRejection, Rejection, StoreUnavailable,
};
pub use role::RequireRole;
#[cfg(feature = "polar-api")]
pub use store::polar::PolarApiStore;
#[cfg(feature = "postgres")]
pub use store::postgres::PostgresStore;
pub use store::{
    CustomerStore, DynStore, MemoryStore, SessionAdmin, SessionKey, SessionStore, StoreError,
};
#[cfg(feature = "redis")]
pub use store::{RedisStore, RedisStoreBuilder};
#[cfg(feature = "polar-api")]
pub use webhooks::PolarWebhooks;

/// The Redis driver the [`RedisStore`] is built on, re-exported so your code uses the same
/// version (e.g. for [`RedisStore::connection`] or to enable its TLS features).
#[cfg(feature = "redis")]
pub use ::redis;

/// The date-time crate of the public API (`created_at`, `expires_at`, clocks), re-exported so
/// an application needs no dependency of its own that could drift to another version.
pub use chrono;
/// The UUID crate of the public API (customer, session and member ids), re-exported for the
/// same reason.
pub use uuid;

// The README's examples, compiled and run as doctests (they use every backend, so they
// need every feature, as the README's test command builds them).
#[cfg(all(
    doctest,
    feature = "redis",
    feature = "postgres",
    feature = "polar-api",
    feature = "metrics",
    feature = "testing"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
