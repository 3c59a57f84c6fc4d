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
//! the [conformance kit](crate::store) proves it never persists one. A *remote authority*
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
//! # Writing a backend
//!
//! Implement the traits with `async fn`. `load` must join the session with its customer and
//! return `None` for expired sessions and deleted customers (the core checks both again on
//! every request, but a store must not rely on that). `create` must be insert-if-absent.
//! Then run the conformance kit against it (feature `testing`):
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//!
//! use tower_customer_session::store::{
//!     CustomerRef, CustomerStore, NewSession, SessionAdmin, SessionKey, SessionRecord,
//!     SessionStore, StoreError,
//! };
//! use tower_customer_session::Customer;
//! use uuid::Uuid;
//!
//! /// Sessions and customers in two `HashMap`s.
//! #[derive(Default)]
//! struct MapStore {
//!     customers: Mutex<HashMap<Uuid, Customer>>,
//!     sessions: Mutex<HashMap<[u8; 32], SessionRecord>>,
//! }
//!
//! impl SessionStore for MapStore {
//!     async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
//!         let now = chrono::Utc::now();
//!         let sessions = self.sessions.lock().unwrap();
//!         let Some(session) = sessions.get(key.token_hash().as_bytes()) else {
//!             return Ok(None);
//!         };
//!         // Join with the current customer, so edits and deletions show at once.
//!         let customer = self.customers.lock().unwrap().get(&session.customer.id).cloned();
//!         Ok(customer
//!             .filter(|c| c.can_authenticate() && session.expires_at > now)
//!             .map(|customer| SessionRecord { customer, ..session.clone() }))
//!     }
//! }
//!
//! impl SessionAdmin for MapStore {
//!     async fn create(&self, new: NewSession) -> Result<SessionRecord, StoreError> {
//!         let customer = self
//!             .customer(&new.customer)
//!             .await?
//!             .filter(|c| c.can_authenticate())
//!             .ok_or(StoreError::UnknownCustomer)?;
//!         let record = new.into_record(customer);
//!         let mut sessions = self.sessions.lock().unwrap();
//!         if sessions.contains_key(record.token_hash.as_bytes()) {
//!             return Err(StoreError::Conflict);
//!         }
//!         sessions.insert(*record.token_hash.as_bytes(), record.clone());
//!         Ok(record)
//!     }
//!
//!     async fn revoke(&self, hash: &tower_customer_session::token::TokenHash) -> Result<bool, StoreError> {
//!         Ok(self.sessions.lock().unwrap().remove(hash.as_bytes()).is_some())
//!     }
//!
//!     async fn revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
//!         let mut sessions = self.sessions.lock().unwrap();
//!         let before = sessions.len();
//!         sessions.retain(|_, s| s.customer.id != customer_id);
//!         Ok((before - sessions.len()) as u64)
//!     }
//! }
//!
//! impl CustomerStore for MapStore {
//!     async fn upsert_customer(&self, customer: Customer) -> Result<Customer, StoreError> {
//!         self.customers.lock().unwrap().insert(customer.id, customer.clone());
//!         Ok(customer)
//!     }
//!
//!     async fn customer(&self, by: &CustomerRef) -> Result<Option<Customer>, StoreError> {
//!         let customers = self.customers.lock().unwrap();
//!         Ok(match by {
//!             CustomerRef::Id(id) => customers.get(id).cloned(),
//!             CustomerRef::ExternalId(ext) => customers
//!                 .values()
//!                 .find(|c| c.external_id.as_deref() == Some(ext.as_str()))
//!                 .cloned(),
//!         })
//!     }
//!
//!     async fn delete_customer(&self, id: Uuid, at: chrono::DateTime<chrono::Utc>) -> Result<bool, StoreError> {
//!         let mut customers = self.customers.lock().unwrap();
//!         let Some(customer) = customers.get_mut(&id) else { return Ok(false) };
//!         customer.make_mut().deleted_at = Some(at);
//!         Ok(true)
//!     }
//! }
//!
//! # let sessions = tower_customer_session::SessionManager::builder(MapStore::default())
//! #     .secret(b"0123456789abcdef0123456789abcdef").build().unwrap();
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
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

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
