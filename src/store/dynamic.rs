//! [`DynStore`]: one store type for a backend chosen at run time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    CustomerRef, CustomerStore, FeedSink, NewSession, SessionAdmin, SessionKey, SessionRecord,
    SessionStore, StoreError, Watch,
};
use crate::model::Customer;
use crate::token::TokenHash;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The object-safe face of a full store (resolution, administration, customers).
trait ErasedStore: Send + Sync + 'static {
    fn load<'a>(&'a self, key: SessionKey<'a>) -> BoxFuture<'a, Option<SessionRecord>>;
    fn watch(&self, sink: FeedSink) -> Option<Watch>;
    fn create(&self, session: NewSession) -> BoxFuture<'_, SessionRecord>;
    fn revoke<'a>(&'a self, token_hash: &'a TokenHash) -> BoxFuture<'a, bool>;
    fn revoke_all(&self, customer_id: Uuid) -> BoxFuture<'_, u64>;
    fn upsert_customer(&self, customer: Customer) -> BoxFuture<'_, Customer>;
    fn customer<'a>(&'a self, by: &'a CustomerRef) -> BoxFuture<'a, Option<Customer>>;
    fn delete_customer(&self, id: Uuid, at: DateTime<Utc>) -> BoxFuture<'_, bool>;
}

impl<S: SessionAdmin + CustomerStore> ErasedStore for S {
    fn load<'a>(&'a self, key: SessionKey<'a>) -> BoxFuture<'a, Option<SessionRecord>> {
        Box::pin(SessionStore::load(self, key))
    }
    fn watch(&self, sink: FeedSink) -> Option<Watch> {
        SessionStore::watch(self, sink)
    }
    fn create(&self, session: NewSession) -> BoxFuture<'_, SessionRecord> {
        Box::pin(SessionAdmin::create(self, session))
    }
    fn revoke<'a>(&'a self, token_hash: &'a TokenHash) -> BoxFuture<'a, bool> {
        Box::pin(SessionAdmin::revoke(self, token_hash))
    }
    fn revoke_all(&self, customer_id: Uuid) -> BoxFuture<'_, u64> {
        Box::pin(SessionAdmin::revoke_all(self, customer_id))
    }
    fn upsert_customer(&self, customer: Customer) -> BoxFuture<'_, Customer> {
        Box::pin(CustomerStore::upsert_customer(self, customer))
    }
    fn customer<'a>(&'a self, by: &'a CustomerRef) -> BoxFuture<'a, Option<Customer>> {
        Box::pin(CustomerStore::customer(self, by))
    }
    fn delete_customer(&self, id: Uuid, at: DateTime<Utc>) -> BoxFuture<'_, bool> {
        Box::pin(CustomerStore::delete_customer(self, id, at))
    }
}

/// Any full store behind one type, so the backend can be chosen at run time (from
/// configuration, an environment variable…) with `SessionManager<DynStore>`.
///
/// Each store call costs one boxed future more than the concrete store; cache hits never
/// call the store, so they cost the same (see `BENCHMARKS.md`). A `DynStore` always counts
/// as [shared](super::StoreScope::Shared), whatever it wraps: the code that picks the
/// backend at run time must configure a secret.
///
/// ```
/// use tower_customer_session::store::DynStore;
/// use tower_customer_session::{MemoryStore, SessionManager};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = match std::env::var("SESSION_STORE").as_deref() {
///     // Ok("redis") => DynStore::new(RedisStore::connect(…).await?),
///     _ => DynStore::new(MemoryStore::new()),
/// };
/// let sessions: SessionManager<DynStore> = SessionManager::builder(store)
///     .secret(b"0123456789abcdef0123456789abcdef")
///     .build()
///     .unwrap();
/// # let _ = sessions;
/// # }
/// ```
#[derive(Clone)]
pub struct DynStore(Arc<dyn ErasedStore>);

impl DynStore {
    /// Erase the type of `store`.
    pub fn new(store: impl SessionAdmin + CustomerStore) -> Self {
        Self(Arc::new(store))
    }
}

impl fmt::Debug for DynStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DynStore")
    }
}

impl SessionStore for DynStore {
    async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
        self.0.load(key).await
    }

    fn watch(&self, sink: FeedSink) -> Option<Watch> {
        self.0.watch(sink)
    }
}

impl SessionAdmin for DynStore {
    fn create(
        &self,
        session: NewSession,
    ) -> impl Future<Output = Result<SessionRecord, StoreError>> + Send {
        self.0.create(session)
    }

    async fn revoke(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        self.0.revoke(token_hash).await
    }

    fn revoke_all(
        &self,
        customer_id: Uuid,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.0.revoke_all(customer_id)
    }
}

impl CustomerStore for DynStore {
    fn upsert_customer(
        &self,
        customer: Customer,
    ) -> impl Future<Output = Result<Customer, StoreError>> + Send {
        self.0.upsert_customer(customer)
    }

    async fn customer(&self, by: &CustomerRef) -> Result<Option<Customer>, StoreError> {
        self.0.customer(by).await
    }

    fn delete_customer(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.0.delete_customer(id, at)
    }
}
