//! Where sessions live: the [`SessionStore`] trait and its backends.
//!
//! A store is looked up by [`TokenHash`] only. It never receives, keeps or returns the raw
//! token: [`CustomerSessions::create`](crate::CustomerSessions::create) generates the token,
//! hashes it, and hands the store a [`NewSession`] that holds the hash.
//!
//! # Writing a backend
//!
//! Implement the four methods with `async fn`. `load` must join the session with its
//! customer and return `None` for expired sessions (judged by the store's clock) and deleted
//! customers; the middleware checks both again on every request, but a store must not rely
//! on that. `create` must be insert-if-absent.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//!
//! use tower_customer_session::store::{CustomerRef, NewSession, SessionRecord, SessionStore, StoreError};
//! use tower_customer_session::token::TokenHash;
//! use tower_customer_session::Customer;
//! use uuid::Uuid;
//!
//! /// Sessions in a `HashMap`, customers fixed at start-up.
//! #[derive(Default)]
//! struct MapStore {
//!     customers: Vec<Customer>,
//!     sessions: Mutex<HashMap<[u8; 32], SessionRecord>>,
//! }
//!
//! impl SessionStore for MapStore {
//!     async fn load(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
//!         let now = chrono::Utc::now();
//!         let sessions = self.sessions.lock().unwrap();
//!         Ok(sessions
//!             .get(hash.as_bytes())
//!             .filter(|s| s.expires_at > now && s.customer.can_authenticate())
//!             .cloned())
//!     }
//!
//!     async fn create(&self, new: NewSession) -> Result<SessionRecord, StoreError> {
//!         let customer = self
//!             .customers
//!             .iter()
//!             .find(|c| match &new.customer {
//!                 CustomerRef::Id(id) => c.id == *id,
//!                 CustomerRef::ExternalId(ext) => c.external_id.as_ref() == Some(ext),
//!             })
//!             .filter(|c| c.can_authenticate())
//!             .cloned()
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
//!     async fn revoke(&self, hash: &TokenHash) -> Result<bool, StoreError> {
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
//! # let sessions = tower_customer_session::CustomerSessions::builder(MapStore::default())
//! #     .secret(b"0123456789abcdef0123456789abcdef").build();
//! ```

mod memory;

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use memory::MemoryStore;

use crate::model::Customer;
use crate::token::{TokenHash, TokenKind};

/// A stored session joined with its customer: what [`SessionStore::load`] returns.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// The session's own id.
    pub id: Uuid,
    /// `HMAC-SHA256(secret, token)`; the only form of the token a store holds.
    pub token_hash: TokenHash,
    /// Customer or member session.
    pub kind: TokenKind,
    /// The customer the session authenticates.
    pub customer: Customer,
    /// When the session was created.
    pub created_at: DateTime<Utc>,
    /// When the session was last modified, if ever.
    pub modified_at: Option<DateTime<Utc>>,
    /// Absolute end of the session (Polar: creation + 1 hour, no sliding).
    pub expires_at: DateTime<Utc>,
    /// Where the portal sends the customer back to, if set.
    pub return_url: Option<String>,
}

/// Which customer a new session is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerRef {
    /// By Polar customer id.
    Id(Uuid),
    /// By the merchant's own id (`external_id`).
    ExternalId(String),
}

impl From<Uuid> for CustomerRef {
    fn from(id: Uuid) -> Self {
        Self::Id(id)
    }
}

/// A session to insert: everything but the customer, which the store resolves.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The new session's id.
    pub id: Uuid,
    /// Hash of the freshly generated token.
    pub token_hash: TokenHash,
    /// Customer or member session.
    pub kind: TokenKind,
    /// The customer, by id or external id.
    pub customer: CustomerRef,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Absolute expiry.
    pub expires_at: DateTime<Utc>,
    /// Optional return URL.
    pub return_url: Option<String>,
}

impl NewSession {
    /// The stored form once the store has resolved `customer`.
    pub fn into_record(self, customer: Customer) -> SessionRecord {
        SessionRecord {
            id: self.id,
            token_hash: self.token_hash,
            kind: self.kind,
            customer,
            created_at: self.created_at,
            modified_at: None,
            expires_at: self.expires_at,
            return_url: self.return_url,
        }
    }
}

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

/// Persistent storage for customer sessions, looked up by token hash.
///
/// See the [module docs](self) for the contract and a complete backend.
pub trait SessionStore: Send + Sync + 'static {
    /// The session whose token hashes to `token_hash`, joined with its customer; `None` if
    /// there is none (never created, revoked, or already purged), it has expired
    /// (`expires_at <= now`), or its customer is deleted.
    fn load(
        &self,
        token_hash: &TokenHash,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send;

    /// Insert a session if its hash is absent; resolve its customer.
    fn create(
        &self,
        session: NewSession,
    ) -> impl Future<Output = Result<SessionRecord, StoreError>> + Send;

    /// Delete one session. `Ok(true)` if it existed.
    fn revoke(
        &self,
        token_hash: &TokenHash,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Delete every session of a customer; returns how many there were.
    fn revoke_all(&self, customer_id: Uuid)
    -> impl Future<Output = Result<u64, StoreError>> + Send;
}

impl<S: SessionStore> SessionStore for Arc<S> {
    fn load(
        &self,
        token_hash: &TokenHash,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send {
        (**self).load(token_hash)
    }

    fn create(
        &self,
        session: NewSession,
    ) -> impl Future<Output = Result<SessionRecord, StoreError>> + Send {
        (**self).create(session)
    }

    fn revoke(
        &self,
        token_hash: &TokenHash,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).revoke(token_hash)
    }

    fn revoke_all(
        &self,
        customer_id: Uuid,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).revoke_all(customer_id)
    }
}
