//! Where sessions live: the store traits, the invalidation feed, and the backends.
//!
//! The layer only ever *resolves* tokens; issuing and revoking sessions, and keeping
//! customers, are the application's business. The contract is split along that line, so a
//! read-only authority implements resolution alone:
//!
//! | trait | what it does | who implements it |
//! |---|---|---|
//! | [`SessionStore`] | `load` a session by token; optionally an invalidation [feed](SessionStore::watch) | every backend |
//! | [`SessionAdmin`] | `create`, `revoke`, `revoke_all` | stores that own their sessions |
//! | [`CustomerStore`] | upsert, read and soft-delete customers | stores that own their customers |
//!
//! # Local stores and remote authorities
//!
//! A *local* store ([`MemoryStore`], Redis, PostgreSQL) keeps sessions itself and works from
//! [`SessionKey::token_hash`] alone: it never receives, keeps or returns the raw token, and
//! the [store test kit](crate::testing) checks that it never persists one. A *remote authority*
//! (a store that asks Polar's API) must forward the token it was shown, so
//! [`SessionKey::expose_token`] hands it the presented token for the duration of the load.
//! It must never log or keep it.
//!
//! # Shared stores need a configured secret
//!
//! A store tells the core its [`StoreScope`]. Only a [`StoreScope::Process`] store (the
//! [`MemoryStore`]) may run on the random per-process HMAC secret; for any other store
//! [`SessionManagerBuilder::build`](crate::SessionManagerBuilder::build) refuses to build
//! without [`secret`](crate::SessionManagerBuilder::secret), because every instance (and
//! every restart) must hash tokens the same way to find the sessions.
//!
//! # Invalidation feeds
//!
//! A backend shared by several instances may offer a feed of invalidations (Redis pub/sub,
//! PostgreSQL `LISTEN/NOTIFY`, webhooks). The core starts it once, through
//! [`SessionStore::watch`], and applies what arrives to its cache with the same rules as a
//! local revocation; see [`FeedSink`] for the contract and [`FeedPolicy`] for what happens
//! while the feed is down.
//!
//! # Writing a store
//!
//! Implement the traits with `async fn`. What every store must do, and what the
//! [store test kit](crate::testing) (feature `testing`) checks:
//!
//! - `load` finds the session by the whole [`SessionKey::token_hash`] and joins it with its
//!   customer as the customer is now. It returns `None` for a session never created or
//!   revoked, at or after `expires_at` (`expires_at <= now` on the store's clock), or of a
//!   deleted customer; the core checks expiry and deletion again on every request, but a
//!   store must not rely on that. A backend failure is an `Err` (the layer answers `503`),
//!   never `Ok(None)` (`401`).
//! - `create` inserts only if the hash is absent, in one step ([`StoreError::Conflict`]
//!   otherwise, even for two creates at once), for a live customer found by id or external
//!   id ([`StoreError::UnknownCustomer`] otherwise, leaving nothing behind), and returns the
//!   session and the customer as they are stored. `revoke` removes one session and says
//!   whether it existed; `revoke_all` removes every session of the customer, member
//!   sessions included, and counts them.
//! - Customers are kept exactly as given: every field, metadata in its key order,
//!   timestamps to the microsecond. An external id follows edits of the customer.
//!   `delete_customer(id, at)` is a soft delete with `deleted_at = at`, and the first
//!   deletion time stands.
//! - [`scope`](SessionStore::scope) stays [`StoreScope::Shared`] unless no other process
//!   can see the data.
//! - A [feed](SessionStore::watch) announces a change once it is visible, never before;
//!   proves itself alive within the silence its [`Watch`] states; reports
//!   [`lost`](FeedSink::lost) whenever changes may have been missed (a lagging receiver, a
//!   reconnection); and ends once its sink [is closed](FeedSink::is_closed).
//!
//! A future that holds a `std::sync::Mutex` guard across an `.await` is `!Send`, and a
//! store's futures must be `Send`: end the guard's scope before awaiting, as `revoke`
//! below does. A complete store shared by several instances, with a feed, is in the
//! repository (`examples/custom_store/`), with its test; this one keeps everything in one
//! process:
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
//!
//! use tower_customer_session::chrono::{DateTime, Utc};
//! use tower_customer_session::store::{
//!     CustomerRef, CustomerStore, NewSession, SessionAdmin, SessionKey, SessionRecord,
//!     SessionStore, StoreError, StoreScope,
//! };
//! use tower_customer_session::token::TokenHash;
//! use tower_customer_session::uuid::Uuid;
//! use tower_customer_session::Customer;
//!
//! /// Sessions and customers in this process. Clones share them.
//! #[derive(Clone, Default)]
//! struct MapStore(Arc<Mutex<Maps>>);
//!
//! #[derive(Default)]
//! struct Maps {
//!     customers: HashMap<Uuid, Customer>,
//!     sessions: HashMap<TokenHash, NewSession>,
//! }
//!
//! impl MapStore {
//!     fn maps(&self) -> MutexGuard<'_, Maps> {
//!         self.0.lock().unwrap_or_else(PoisonError::into_inner)
//!     }
//! }
//!
//! impl Maps {
//!     /// The live customer `by` names.
//!     fn live(&self, by: &CustomerRef) -> Option<Customer> {
//!         let customer = match by {
//!             CustomerRef::Id(id) => self.customers.get(id),
//!             // A deleted customer's external id may have passed to a live one.
//!             CustomerRef::ExternalId(ext) => self.customers.values().find(|c| {
//!                 c.can_authenticate() && c.external_id.as_deref() == Some(ext.as_str())
//!             }),
//!         };
//!         customer.filter(|c| c.can_authenticate()).cloned()
//!     }
//! }
//!
//! impl SessionStore for MapStore {
//!     async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
//!         let maps = self.maps();
//!         let Some(session) = maps.sessions.get(key.token_hash()) else {
//!             return Ok(None);
//!         };
//!         // Joined with the customer as it is now, so edits and deletions show at once.
//!         let customer = maps.live(&session.customer);
//!         Ok(customer
//!             .filter(|_| session.expires_at > Utc::now())
//!             .map(|customer| session.clone().into_record(customer)))
//!     }
//!
//!     // No other process sees these maps.
//!     fn scope(&self) -> StoreScope {
//!         StoreScope::Process
//!     }
//! }
//!
//! impl SessionAdmin for MapStore {
//!     async fn create(&self, mut new: NewSession) -> Result<SessionRecord, StoreError> {
//!         // One lock for the lookup and the insert: nothing can slip in between.
//!         let mut maps = self.maps();
//!         let customer = maps.live(&new.customer).ok_or(StoreError::UnknownCustomer)?;
//!         if maps.sessions.contains_key(&new.token_hash) {
//!             return Err(StoreError::Conflict);
//!         }
//!         new.customer = CustomerRef::Id(customer.id);
//!         maps.sessions.insert(new.token_hash, new.clone());
//!         Ok(new.into_record(customer))
//!     }
//!
//!     async fn revoke(&self, hash: &TokenHash) -> Result<bool, StoreError> {
//!         let existed = {
//!             let mut maps = self.maps();
//!             maps.sessions.remove(hash).is_some()
//!         }; // The guard ends here: a store on a server would now `.await` its announcement.
//!         Ok(existed)
//!     }
//!
//!     async fn revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
//!         let mut maps = self.maps();
//!         let before = maps.sessions.len();
//!         maps.sessions.retain(|_, s| s.customer != CustomerRef::Id(customer_id));
//!         Ok((before - maps.sessions.len()) as u64)
//!     }
//! }
//!
//! impl CustomerStore for MapStore {
//!     async fn upsert_customer(&self, customer: Customer) -> Result<Customer, StoreError> {
//!         self.maps().customers.insert(customer.id, customer.clone());
//!         Ok(customer)
//!     }
//!
//!     async fn customer(&self, by: &CustomerRef) -> Result<Option<Customer>, StoreError> {
//!         let maps = self.maps();
//!         Ok(match by {
//!             CustomerRef::Id(id) => maps.customers.get(id).cloned(),
//!             CustomerRef::ExternalId(ext) => maps
//!                 .customers
//!                 .values()
//!                 .find(|c| c.external_id.as_deref() == Some(ext.as_str()))
//!                 .cloned(),
//!         })
//!     }
//!
//!     async fn delete_customer(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
//!         let mut maps = self.maps();
//!         let Some(customer) = maps.customers.get_mut(&id) else {
//!             return Ok(false);
//!         };
//!         customer.make_mut().deleted_at.get_or_insert(at);
//!         Ok(true)
//!     }
//! }
//!
//! // In a test, with feature `testing`: the store test kit on a fresh store per check.
//! # #[cfg(feature = "testing")]
//! impl tower_customer_session::testing::Backend for MapStore {
//!     type Store = MapStore;
//!
//!     fn store(&self) -> MapStore {
//!         self.clone()
//!     }
//! }
//! # #[cfg(feature = "testing")]
//! # {
//! # let runtime = tokio::runtime::Runtime::new().unwrap();
//! # runtime.block_on(
//! tower_customer_session::testing::run(|| async { MapStore::default() })
//! # );
//! # }
//! # let sessions = tower_customer_session::SessionManager::builder(MapStore::default()).build().unwrap();
//! ```
//!
//! A persistent store starts from the schema of Polar's own tables (see the PostgreSQL
//! store and the README): a customers table with a soft-delete timestamp, and a sessions
//! table keyed by the 64-hex-digit token hash, with the customer id and `expires_at`
//! indexed. Expired rows are dead weight only: `load` ignores them, and a periodic sweep
//! (`DELETE … WHERE expires_at < now()`) keeps the table small.

mod admin;
mod dynamic;
mod feed;
mod memory;
#[cfg(feature = "polar-api")]
pub mod polar;
#[cfg(feature = "postgres")]
pub mod postgres;
mod record;
#[cfg(feature = "redis")]
mod redis;
mod resolve;

#[cfg(feature = "redis")]
pub use self::redis::{RedisDurability, RedisStore, RedisStoreBuilder};
pub use admin::{CustomerStore, SessionAdmin};
pub use dynamic::DynStore;
pub use feed::{FeedPolicy, FeedSink, FeedState, Invalidation, Watch};
pub use memory::MemoryStore;
pub use record::{CustomerRef, NewSession, SessionRecord};
pub use resolve::{SessionKey, SessionStore, StoreScope};

pub(crate) use feed::Consumer;

use std::error::Error as StdError;

/// Why a store operation failed. Displayed text never contains a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `create`: the customer does not exist or is deleted.
    #[error("customer does not exist")]
    UnknownCustomer,
    /// `create`: a session with the same token hash already exists (it was not replaced).
    #[error("a session with this token hash already exists")]
    Conflict,
    /// The operation did not finish within the configured store timeout.
    #[error("session store timed out")]
    Timeout,
    /// The upstream authority asks the caller to slow down; retry after this many seconds.
    #[error("session store is rate limited")]
    RateLimited {
        /// Seconds to wait, as the upstream said, if it did.
        retry_after: Option<u32>,
    },
    /// The backend failed (connection, query, decoding…).
    #[error("session store backend error: {0}")]
    Backend(#[source] Box<dyn StdError + Send + Sync>),
}

impl StoreError {
    /// Wrap any backend error.
    pub fn backend(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Backend(error.into())
    }
}
