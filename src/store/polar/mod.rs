//! Sessions that stay at Polar (feature `polar-api`): [`PolarApiStore`] resolves the tokens
//! Polar issues through Polar's own API, and [`PolarWebhooks`](crate::webhooks::PolarWebhooks) keeps the cache fresh with
//! Polar's customer and member events.
//!
//! A merchant that already hands its customers Polar's session tokens (the `token` of
//! `POST /v1/customer-sessions/`) can accept the same tokens on its own API. Polar keys
//! their hashes with its private secret, so only Polar can say whether a token is valid:
//! on a cache miss the store asks it, with the token as the bearer credential, and the
//! layer's cache answers every other request.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{Router, routing::{get, post}};
//! use tower_customer_session::store::polar::PolarApiStore;
//! use tower_customer_session::webhooks::PolarWebhooks;
//! use tower_customer_session::{Customer, CustomerSessionLayer, SessionManager};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PolarApiStore::builder()
//!     .organization_token(std::env::var("POLAR_ORG_TOKEN")?)
//!     .build()?;
//! let sessions = SessionManager::builder(store)
//!     .secret(std::env::var("SESSION_SECRET")?)
//!     .store_timeout(Duration::from_secs(3))
//!     .build()?;
//!
//! let webhooks = PolarWebhooks::new(std::env::var("POLAR_WEBHOOK_SECRET")?, sessions.clone())?;
//! let app: Router = Router::new()
//!     .route("/me", get(|c: Customer| async move { c.external_id.clone().unwrap_or_default() }))
//!     .route_layer(CustomerSessionLayer::new(sessions))
//!     .route_service("/webhooks/polar", webhooks);
//! # let _ = app; Ok(())
//! # }
//! ```
//!
//! # What one cache miss costs
//!
//! Two requests in parallel with the customer's token, then, with an organization access
//! token, one more with it:
//!
//! | call | credential | gives |
//! |---|---|---|
//! | `GET /v1/customer-portal/customer-session/introspect` | the token | `expires_at`, `return_url` |
//! | `GET /v1/customer-portal/customer-session/user` | the token | customer id; member id, role, name and email of a member session |
//! | `GET /v1/customers/{id}` | organization token | the full [`Customer`](crate::Customer) |
//!
//! Without an organization token the third call is replaced by
//! `GET /v1/customer-portal/customers/me` (with the token, in parallel with the other two),
//! whose `CustomerPortalCustomer` has no `metadata`, `external_id`, `organization_id`,
//! `deleted_at`, `first_user_event_at` or `avatar_url`: those are then empty (`{}`, `None`,
//! the id set by [`organization_id`](PolarApiStoreBuilder::organization_id) or nil), and
//! [`Member::external_id`](crate::model::Member::external_id) is always `None` (Polar's
//! portal does not expose it). A team customer without an email, authenticated by a
//! customer session, gets a `422` from `/user`; the store then takes the customer id from
//! `/customers/me` (one more call with an organization token).
//!
//! Polar does not expose the session's id or creation time to its holder:
//! [`SessionRecord::id`](crate::store::SessionRecord::id) is the UUID v5 of the token hash
//! in a fixed namespace (stable across instances that share the HMAC secret, and telling
//! nothing about the token), and `created_at` is `expires_at` minus Polar's fixed one-hour
//! session lifetime.
//!
//! # Outcomes
//!
//! | Polar answers | store | the layer answers |
//! |---|---|---|
//! | `401` on a customer-portal call | `Ok(None)` | `401 invalid_token`, remembered by the negative cache |
//! | `404` on `/v1/customers/{id}` (deleted customer) | `Ok(None)` | `401 invalid_token` |
//! | `429` | [`StoreError::RateLimited`](crate::StoreError::RateLimited) with Polar's `Retry-After` | `503`, `Retry-After` passed on |
//! | timeout (the client's or the manager's `store_timeout`) | [`StoreError::Timeout`](crate::StoreError::Timeout) | `503` |
//! | 5xx, connection error, a body that is not the documented JSON | [`StoreError::Backend`](crate::StoreError::Backend) ([`PolarApiError`]) | `503` |
//!
//! Never a `401` for Polar's failure, never a pass-through. No retries happen here: the
//! caller retries after `Retry-After`, and concurrent misses for one token already share
//! one load.
//!
//! # Freshness
//!
//! The store has no invalidation feed ([`watch`](crate::SessionStore::watch) is `None`): a
//! cached session lives up to `cache_max_ttl` (and never past its `expires_at`). Without
//! webhooks, a customer edited or deleted at Polar, or a member whose role changed or who
//! was removed, is seen within `cache_max_ttl`; a session Polar revokes (it has no event
//! for that) is refused within `cache_max_ttl` in every case. With [`PolarWebhooks`](crate::webhooks::PolarWebhooks)
//! mounted and subscribed to `customer.updated`, `customer.deleted`,
//! `customer.state_changed`, `member.updated` and `member.deleted`, the cached sessions of
//! the customer concerned are dropped as the event arrives, so every later request asks
//! Polar again: a demoted member is judged by its new role, a removed member or deleted
//! customer is refused. A delivery reaches one process: with several instances, register
//! one webhook endpoint per instance at Polar, or the others follow within `cache_max_ttl`.
//!
//! # Rate limits
//!
//! Polar limits requests per authenticated subject: each customer's token has its own
//! budget (500 requests a minute in production, 100 in the sandbox), and calls with the
//! organization token share the organization's. A miss spends two of the customer's
//! requests (three for a team customer without email) and, with an organization token, one
//! of the organization's. The cache turns a customer's traffic into at most one miss per
//! `cache_max_ttl` per instance, so a customer's own budget is never the limit; the
//! organization's is, at roughly `500 × cache_max_ttl / 60 s` distinct active sessions per
//! instance. Raise `cache_max_ttl` (with webhooks) if you have more. Polar's `429` reaches
//! the client as a `503` with Polar's `Retry-After`.
//!
//! Unknown tokens are not free either: each distinct well-formed token costs two requests
//! (the negative cache absorbs repeats), and
//! [`max_concurrent_loads`](PolarApiStoreBuilder::max_concurrent_loads) caps how many
//! loads run at once. Put a per-client rate limit in front of authenticated routes.

mod builder;
mod client;
mod error;
mod load;

use std::fmt;
use std::sync::Arc;

use tokio::sync::Semaphore;
use uuid::Uuid;

pub use builder::PolarApiStoreBuilder;
pub use error::{PolarApiError, PolarBuildError};

use client::PolarClient;

/// Polar's production API.
pub const PRODUCTION_API: &str = "https://api.polar.sh";
/// Polar's sandbox API.
pub const SANDBOX_API: &str = "https://sandbox-api.polar.sh";

/// A read-only [`SessionStore`](crate::SessionStore) that asks Polar's API about each token
/// it has not cached; see the [module docs](self) for what it calls, what it costs and how
/// fresh it stays.
///
/// Clones share the connection pool. It implements resolution only: sessions are issued
/// and revoked at Polar (`POST /v1/customer-sessions/`), not here.
#[derive(Clone)]
pub struct PolarApiStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: PolarClient,
    /// `Bearer <organization token>`, marked sensitive.
    organization: Option<http::HeaderValue>,
    /// What `organization_id` is without an organization token.
    organization_id: Uuid,
    /// Bounds concurrent loads, so a flood of unknown tokens cannot queue without end.
    loads: Semaphore,
    polar_version: String,
}

impl PolarApiStore {
    /// Start configuring a store; every setting has a default stated on its method.
    pub fn builder() -> PolarApiStoreBuilder {
        PolarApiStoreBuilder::new()
    }

    /// The API base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.inner.client.base
    }

    /// Whether an organization access token is configured (full customers) or not
    /// (customers built from the customer portal's view).
    pub fn has_organization_token(&self) -> bool {
        self.inner.organization.is_some()
    }
}

impl fmt::Debug for PolarApiStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolarApiStore")
            .field("base_url", &self.inner.client.base)
            .field("polar_version", &self.inner.polar_version)
            .field("organization_token", &self.inner.organization.is_some())
            .finish_non_exhaustive()
    }
}
