//! Issuing and revoking sessions, and editing customers, through the store and then the
//! cache.

use uuid::Uuid;

use super::{MAX_CREATE_ATTEMPTS, SessionManager};
use crate::metrics::StoreOp;
use crate::model::{Customer, CustomerSession, PortalUrl};
use crate::store::{CustomerRef, CustomerStore, NewSession, SessionAdmin, StoreError};
use crate::token::TokenHash;

use super::CreateSession;

impl<S: SessionAdmin> SessionManager<S> {
    /// Issue a session for `customer` (an id, or an external id as `&str`): a fresh token
    /// from the OS CSPRNG, stored only as its hash. The returned [`CustomerSession`] is the
    /// only place the raw token ever exists, and it wipes it when dropped.
    pub async fn create(
        &self,
        customer: impl Into<CustomerRef>,
        options: CreateSession,
    ) -> Result<CustomerSession, CreateError> {
        let customer = customer.into();
        let created_at = crate::model::truncate_to_micros(self.now());
        for _ in 0..MAX_CREATE_ATTEMPTS {
            let token = self
                .inner
                .format
                .generate(options.kind)
                .map_err(CreateError::Random)?;
            let token_hash = self.inner.hasher.hash(token.expose_secret());
            let new = NewSession {
                id: Uuid::new_v4(),
                token_hash,
                kind: options.kind,
                customer: customer.clone(),
                created_at,
                expires_at: created_at + self.inner.session_ttl,
                return_url: options.return_url.clone(),
                member: options.member.clone(),
            };
            let record = match self
                .call(StoreOp::Create, self.inner.store.create(new))
                .await
            {
                Err(StoreError::Conflict) => continue,
                other => other?,
            };
            self.inner.cache.forget_negative(&token_hash);
            let customer_portal_url = PortalUrl::build(
                &self.inner.portal_url,
                token.expose_secret(),
                record.customer.email.as_deref(),
            );
            tracing::debug!(token = %token_hash.short(), customer_id = %record.customer.id, "customer session created");
            return Ok(CustomerSession {
                created_at: record.created_at,
                modified_at: record.modified_at,
                id: record.id,
                token,
                expires_at: record.expires_at,
                return_url: record.return_url,
                customer_portal_url,
                customer_id: record.customer.id,
                customer: record.customer,
            });
        }
        Err(CreateError::Store(StoreError::Conflict))
    }

    /// Revoke the session of a raw token, whichever accepted key it was stored under.
    /// `Ok(false)` if there was none (or the token is malformed).
    ///
    /// With [accepted keys](super::SessionManagerBuilder::accept_secrets), the store is asked under
    /// each key until one holds the session; if any call fails, the error is returned (as
    /// [`revoke_hash`](Self::revoke_hash) says).
    pub async fn revoke(&self, raw_token: &str) -> Result<bool, StoreError> {
        if self.inner.format.parse(raw_token).is_err() {
            return Ok(false);
        }
        let mut failed = None;
        for hash in self.hashes(raw_token) {
            match self.revoke_hash(&hash).await {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(error) => failed = Some(error),
            }
        }
        failed.map_or(Ok(false), Err)
    }

    /// Revoke a session by its token hash (see [`SessionInfo::token_hash`](crate::SessionInfo::token_hash)), in the store
    /// and then in the cache.
    ///
    /// If the store call fails or times out, the error is returned (the session may still
    /// be valid: tell the user the logout did not go through) and the session is dropped
    /// from the cache and not cached again for `cache_max_ttl`, so a revocation that the
    /// backend commits late is not hidden by the cache.
    pub async fn revoke_hash(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        let revoked = self
            .call(StoreOp::Revoke, self.inner.store.revoke(token_hash))
            .await;
        match &revoked {
            Ok(existed) => {
                if *existed {
                    self.inner.cache.remember_revoked(token_hash);
                }
                self.inner.cache.invalidate(token_hash);
            }
            Err(_) => self.inner.cache.tombstone(*token_hash),
        }
        tracing::debug!(token = %token_hash.short(), ok = revoked.is_ok(), "customer session revoked");
        revoked
    }

    /// Revoke every session of a customer, in the store and the cache. On failure, as
    /// [`revoke_hash`](Self::revoke_hash): the error is returned and none of the customer's
    /// sessions is cached again for `cache_max_ttl`.
    pub async fn revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
        let revoked = self
            .call(StoreOp::RevokeAll, self.inner.store.revoke_all(customer_id))
            .await;
        match &revoked {
            Ok(_) => {
                let at = self.now();
                self.inner.cache.remember_customer_revoked(customer_id, at);
                self.inner.cache.invalidate_customer(customer_id);
            }
            Err(_) => self.inner.cache.tombstone_customer(customer_id),
        }
        revoked
    }
}

impl<S: CustomerStore> SessionManager<S> {
    /// Insert or replace a customer in the store, then drop their cached sessions here (a
    /// store with a feed tells the other instances), so edits show on the next request.
    pub async fn upsert_customer(
        &self,
        customer: impl Into<Customer>,
    ) -> Result<Customer, StoreError> {
        let customer = customer.into();
        let id = customer.id;
        let stored = self
            .call(
                StoreOp::UpsertCustomer,
                self.inner.store.upsert_customer(customer),
            )
            .await;
        self.after_customer_change(id, stored.is_ok());
        stored
    }

    /// The customer `by` refers to (an id, or an external id as `&str`), deleted or not.
    pub async fn customer(
        &self,
        by: impl Into<CustomerRef>,
    ) -> Result<Option<Customer>, StoreError> {
        self.call(StoreOp::Customer, self.inner.store.customer(&by.into()))
            .await
    }

    /// Soft-delete a customer (`deleted_at` = now on the configured clock). Their sessions
    /// are refused from the next request on, here at once and on every instance sharing a
    /// store with a feed as soon as it hears of it. `Ok(false)` if there is no such customer.
    /// A customer deleted already keeps its first `deleted_at` (and the answer is `Ok(true)`).
    pub async fn delete_customer(&self, id: Uuid) -> Result<bool, StoreError> {
        let deleted = self
            .call(
                StoreOp::DeleteCustomer,
                self.inner.store.delete_customer(id, self.now()),
            )
            .await;
        if let Ok(true) = deleted {
            let at = self.now();
            self.inner.cache.remember_customer_revoked(id, at);
        }
        self.after_customer_change(id, deleted.is_ok());
        deleted
    }

    fn after_customer_change(&self, id: Uuid, confirmed: bool) {
        if confirmed {
            self.inner.cache.invalidate_customer(id);
        } else {
            // The change may still land: do not serve the old customer from the cache.
            self.inner.cache.tombstone_customer(id);
        }
    }
}

/// Why [`SessionManager::create`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(getrandom::Error),
}
