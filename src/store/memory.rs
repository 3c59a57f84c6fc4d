//! The embedded store: sessions and customers in process memory.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use uuid::Uuid;

use super::{
    CustomerRef, CustomerStore, NewSession, SessionAdmin, SessionKey, SessionRecord, SessionStore,
    StoreError, StoreScope,
};
use crate::clock::{Clock, SystemClock};
use crate::model::{Customer, Member};
use crate::token::{TokenHash, TokenKind};

/// Sessions and customers in memory; the default store, and the one the example portal runs
/// on. Clones share the same data.
///
/// It is the source of truth for one process ([`StoreScope::Process`], so the random
/// default secret is allowed). It has no invalidation feed: nothing else can change it. For
/// several instances, use a shared backend.
///
/// Expired sessions are swept as sessions are created, with no thread or runtime: each
/// create examines the next four stored sessions in turn and drops those that have expired,
/// so its work is bounded whatever the store holds. A pass over `n` sessions takes at most
/// `n / 3` creates, and a session that has expired is dropped within one pass: the sessions
/// held beyond the live ones are those that expired during the last pass. Under steady
/// churn (sessions created at a constant rate, all with the same lifetime) that keeps the
/// store within 1.5 times the live sessions; when creates stop, nothing is dropped (and
/// nothing grows) until the next one. [`purge_expired`](Self::purge_expired) drops every
/// expired session at once.
///
/// ```
/// use tower_customer_session::model::CustomerData;
/// use tower_customer_session::MemoryStore;
///
/// let store = MemoryStore::new();
/// let customer = store.insert_customer(CustomerData::new(chrono::Utc::now()));
/// assert!(store.customer(customer.id).is_some());
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<RwLock<Inner>>,
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct Inner {
    /// Indexed, so that the sweep can walk it a few entries at a time.
    sessions: IndexMap<TokenHash, Stored>,
    /// The index the sweep examines next.
    sweep_at: usize,
    customers: HashMap<Uuid, Customer>,
    by_external_id: HashMap<String, Uuid>,
}

/// A session row: the customer is joined at load time, so customer edits show at once.
struct Stored {
    id: Uuid,
    kind: TokenKind,
    customer_id: Uuid,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    return_url: Option<String>,
    member: Option<Member>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// An empty store that filters expired sessions by `clock`.
    pub fn with_clock(clock: impl Clock) -> Self {
        Self {
            inner: Arc::default(),
            clock: Arc::new(clock),
        }
    }

    /// Add or replace a customer; returns the stored handle. Meant for seeding: to edit a
    /// customer whose sessions may be cached, use
    /// [`SessionManager::upsert_customer`](crate::SessionManager::upsert_customer), which
    /// also drops the cached copies.
    pub fn insert_customer(&self, customer: impl Into<Customer>) -> Customer {
        let customer = customer.into();
        let mut inner = self.write();
        if let Some(old) = inner.customers.get(&customer.id) {
            if let Some(ext) = old.external_id.clone() {
                inner.by_external_id.remove(&ext);
            }
        }
        if let Some(ext) = &customer.external_id {
            inner.by_external_id.insert(ext.clone(), customer.id);
        }
        inner.customers.insert(customer.id, customer.clone());
        customer
    }

    /// The customer with `id`, deleted or not.
    pub fn customer(&self, id: Uuid) -> Option<Customer> {
        self.read().customers.get(&id).cloned()
    }

    /// The customer with this external id, deleted or not.
    pub fn customer_by_external_id(&self, external_id: &str) -> Option<Customer> {
        let inner = self.read();
        let id = inner.by_external_id.get(external_id)?;
        inner.customers.get(id).cloned()
    }

    /// Number of stored sessions, expired ones included until they are swept (see above) or
    /// [`purge_expired`](Self::purge_expired) runs.
    pub fn session_count(&self) -> usize {
        self.read().sessions.len()
    }

    /// Drop sessions whose `expires_at` has passed; returns how many.
    pub fn purge_expired(&self) -> usize {
        let now = self.clock.now();
        self.write().retain(|s| s.expires_at > now)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic elsewhere cannot leave the maps half-written (each write is one insert or
        // remove), so a poisoned lock still holds consistent data.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn resolve(inner: &Inner, customer: &CustomerRef) -> Option<Customer> {
        let id = match customer {
            CustomerRef::Id(id) => *id,
            CustomerRef::ExternalId(ext) => *inner.by_external_id.get(ext)?,
        };
        inner
            .customers
            .get(&id)
            .filter(|c| c.can_authenticate())
            .cloned()
    }
}

/// Sessions each create examines for expiry: a pass over `n` stored sessions takes at most
/// `n / 3` creates (each adds one and examines four).
const SWEEP_PER_CREATE: usize = 4;

impl Inner {
    /// Examine the next [`SWEEP_PER_CREATE`] sessions and drop the expired ones. Sessions
    /// below `sweep_at` were examined in this pass, the others not yet.
    fn sweep(&mut self, now: DateTime<Utc>) {
        for _ in 0..SWEEP_PER_CREATE {
            if self.sweep_at >= self.sessions.len() {
                self.sweep_at = 0;
            }
            let Some((_, stored)) = self.sessions.get_index(self.sweep_at) else {
                return;
            };
            if stored.expires_at > now {
                self.sweep_at += 1;
            } else {
                // The last session takes this slot: the next step examines it.
                self.sessions.swap_remove_index(self.sweep_at);
            }
        }
    }

    /// Remove one session in O(1), keeping every session not yet examined ahead of the sweep.
    fn remove(&mut self, token_hash: &TokenHash) -> bool {
        let before = self.sessions.len();
        let Some((index, _, _)) = self.sessions.swap_remove_full(token_hash) else {
            return false;
        };
        // The last session, not yet examined, moved into `index`; behind the sweep it would
        // wait a whole pass, so it trades places with the last one examined.
        if index < self.sweep_at && self.sweep_at < before {
            self.sweep_at -= 1;
            self.sessions.swap_indices(index, self.sweep_at);
        }
        true
    }

    /// Keep the sessions `keep` accepts, in order, and the sweep where it was; how many went.
    fn retain(&mut self, mut keep: impl FnMut(&Stored) -> bool) -> usize {
        let (before, cursor) = (self.sessions.len(), self.sweep_at);
        let (mut index, mut examined) = (0, 0);
        self.sessions.retain(|_, stored| {
            let kept = keep(stored);
            examined += usize::from(kept && index < cursor);
            index += 1;
            kept
        });
        self.sweep_at = examined;
        before - self.sessions.len()
    }
}

impl SessionStore for MemoryStore {
    async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
        let token_hash = key.token_hash();
        let now = self.clock.now();
        let inner = self.read();
        let Some(stored) = inner.sessions.get(token_hash) else {
            return Ok(None);
        };
        let customer = match inner.customers.get(&stored.customer_id) {
            Some(c) if c.can_authenticate() && stored.expires_at > now => c.clone(),
            _ => return Ok(None),
        };
        Ok(Some(SessionRecord {
            id: stored.id,
            token_hash: *token_hash,
            kind: stored.kind,
            customer,
            created_at: stored.created_at,
            modified_at: None,
            expires_at: stored.expires_at,
            return_url: stored.return_url.clone(),
            member: stored.member.clone(),
        }))
    }

    fn scope(&self) -> StoreScope {
        StoreScope::Process
    }
}

impl MemoryStore {
    fn create_session(&self, session: NewSession) -> Result<SessionRecord, StoreError> {
        let mut inner = self.write();
        inner.sweep(self.clock.now());
        let customer =
            Self::resolve(&inner, &session.customer).ok_or(StoreError::UnknownCustomer)?;
        if inner.sessions.contains_key(&session.token_hash) {
            return Err(StoreError::Conflict);
        }
        inner.sessions.insert(
            session.token_hash,
            Stored {
                id: session.id,
                kind: session.kind,
                customer_id: customer.id,
                created_at: session.created_at,
                expires_at: session.expires_at,
                return_url: session.return_url.clone(),
                member: session.member.clone(),
            },
        );
        Ok(session.into_record(customer))
    }
}

impl SessionAdmin for MemoryStore {
    async fn create(&self, session: NewSession) -> Result<SessionRecord, StoreError> {
        self.create_session(session)
    }

    async fn revoke(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        Ok(self.write().remove(token_hash))
    }

    async fn revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
        Ok(self.write().retain(|s| s.customer_id != customer_id) as u64)
    }
}

impl CustomerStore for MemoryStore {
    async fn upsert_customer(&self, customer: Customer) -> Result<Customer, StoreError> {
        Ok(self.insert_customer(customer))
    }

    async fn customer(&self, by: &CustomerRef) -> Result<Option<Customer>, StoreError> {
        Ok(match by {
            CustomerRef::Id(id) => MemoryStore::customer(self, *id),
            CustomerRef::ExternalId(ext) => self.customer_by_external_id(ext),
        })
    }

    async fn delete_customer(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut inner = self.write();
        Ok(match inner.customers.get_mut(&id) {
            Some(customer) => {
                // The first deletion time stands, as Polar's `deleted_at` does.
                if customer.deleted_at.is_none() {
                    customer.make_mut().deleted_at = Some(at);
                }
                true
            }
            None => false,
        })
    }
}

impl MemoryStore {
    /// Every stored session and customer, for the conformance kit's "no raw token" check.
    #[cfg(feature = "testing")]
    pub(crate) fn dump_all(&self) -> String {
        let inner = self.read();
        let mut out = String::new();
        for (hash, s) in &inner.sessions {
            out.push_str(&format!(
                "{} {} {:?} {} {} {} {:?} {:?}\n",
                hash.to_hex(),
                s.id,
                s.kind,
                s.customer_id,
                s.created_at,
                s.expires_at,
                s.return_url,
                s.member
            ));
        }
        for customer in inner.customers.values() {
            out.push_str(&format!("{customer:?}\n"));
        }
        out
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.read();
        f.debug_struct("MemoryStore")
            .field("sessions", &inner.sessions.len())
            .field("customers", &inner.customers.len())
            .finish()
    }
}
