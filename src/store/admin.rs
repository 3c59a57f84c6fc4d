//! Administration: issuing and revoking sessions, keeping customers.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{CustomerRef, NewSession, SessionRecord, SessionStore, StoreError};
use crate::model::Customer;
use crate::token::TokenHash;

/// Issues and revokes sessions. Implemented by stores that own their sessions; a read-only
/// authority does not implement it.
///
/// A store with an invalidation feed announces `revoke` and `revoke_all` on it, atomically
/// with the change where the backend allows (a Lua script, the same transaction), so no
/// instance can miss a revocation that took effect.
pub trait SessionAdmin: SessionStore {
    /// Insert a session if its hash is absent ([`StoreError::Conflict`] otherwise, and the
    /// existing session is kept); resolve its customer ([`StoreError::UnknownCustomer`] if
    /// it does not exist or is deleted).
    fn create(
        &self,
        session: NewSession,
    ) -> impl Future<Output = Result<SessionRecord, StoreError>> + Send;

    /// Delete one session. `Ok(true)` if it existed. An expired session may be gone
    /// already (stores drop them: Redis by key expiry, PostgreSQL's sweep, the memory store
    /// as sessions are created), so it may answer either way.
    fn revoke(
        &self,
        token_hash: &TokenHash,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Delete every session of a customer; returns how many there were (expired sessions
    /// counted if the store still held them, as for [`revoke`](Self::revoke)).
    fn revoke_all(&self, customer_id: Uuid)
    -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Keeps customers. Implemented by stores that hold customers next to the sessions, so
/// `create` can resolve them and `load` can join them.
///
/// A store with an invalidation feed announces every upsert and deletion as a customer
/// invalidation, so edits and deletions reach every instance's cache.
pub trait CustomerStore: SessionStore {
    /// Insert or replace a customer (matched by id); returns it as stored.
    fn upsert_customer(
        &self,
        customer: Customer,
    ) -> impl Future<Output = Result<Customer, StoreError>> + Send;

    /// The customer `by` refers to, deleted or not.
    fn customer(
        &self,
        by: &CustomerRef,
    ) -> impl Future<Output = Result<Option<Customer>, StoreError>> + Send;

    /// Soft-delete a customer (`deleted_at = at`); their sessions stop loading. `Ok(false)`
    /// if there is no such customer, `Ok(true)` if there is, deleted before or not.
    ///
    /// Deleting a deleted customer again keeps the first `deleted_at`, which is when the
    /// customer was deleted (Polar's meaning): a second call, or a replayed webhook, must not
    /// move it. The conformance kit checks this.
    fn delete_customer(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl<S: SessionAdmin> SessionAdmin for Arc<S> {
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

impl<S: CustomerStore> CustomerStore for Arc<S> {
    fn upsert_customer(
        &self,
        customer: Customer,
    ) -> impl Future<Output = Result<Customer, StoreError>> + Send {
        (**self).upsert_customer(customer)
    }

    fn customer(
        &self,
        by: &CustomerRef,
    ) -> impl Future<Output = Result<Option<Customer>, StoreError>> + Send {
        (**self).customer(by)
    }

    fn delete_customer(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).delete_customer(id, at)
    }
}
