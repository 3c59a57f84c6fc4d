// A store of your own: sessions and customers on a server that several instances of the
// application share, with an invalidation feed. The "Writing a store" guide walks
// through it, and `tests/custom_store_example.rs` runs the store test kit on it.
//
// The server lives in memory here, so the example runs anywhere; each method marks where a
// store on a real server (a database, a key-value store, a file) would make its call.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tower_customer_session::chrono::{DateTime, Utc};
use tower_customer_session::model::Member;
use tower_customer_session::store::{
    CustomerRef, FeedSink, Invalidation, NewSession, SessionRecord, Watch,
};
use tower_customer_session::token::{TokenHash, TokenKind};
use tower_customer_session::uuid::Uuid;
use tower_customer_session::{
    Clock, Customer, CustomerStore, SessionAdmin, SessionKey, SessionStore, StoreError, SystemClock,
};

/// What the server holds: sessions, customers, and a channel announcing their changes.
pub struct Server {
    data: Mutex<Data>,
    changes: broadcast::Sender<Invalidation>,
    up: AtomicBool,
    clock: Box<dyn Clock>,
}

#[derive(Debug, Default)]
struct Data {
    // By token hash: a local store never sees, keeps or returns a raw token.
    sessions: HashMap<TokenHash, Stored>,
    customers: HashMap<Uuid, Customer>,
    by_external_id: HashMap<String, Uuid>,
}

/// A session as kept: its customer by id, joined at load time so edits show at once.
#[derive(Debug)]
struct Stored {
    id: Uuid,
    kind: TokenKind,
    customer_id: Uuid,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    return_url: Option<String>,
    member: Option<Member>,
}

impl Server {
    /// An empty server on the system clock.
    pub fn new() -> Arc<Self> {
        Self::with_clock(SystemClock)
    }

    /// An empty server judging expiry by `clock` (a test's `ManualClock`).
    pub fn with_clock(clock: impl Clock) -> Arc<Self> {
        Arc::new(Self {
            data: Mutex::default(),
            // Room for bursts; a feed that falls further behind says so (see `feed`).
            changes: broadcast::channel(1024).0,
            up: AtomicBool::new(true),
            clock: Box::new(clock),
        })
    }

    /// Stop answering, as a server that went down, or answer again.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    /// The feeds listening now.
    pub fn subscribers(&self) -> usize {
        self.changes.receiver_count()
    }

    /// Everything the server keeps, as text.
    pub fn dump(&self) -> String {
        format!("{:?}", *self.lock())
    }

    /// The data, if the server answers. A real store sends its query here instead; what
    /// matters is that a failure is an error, never an empty answer.
    fn data(&self) -> Result<MutexGuard<'_, Data>, StoreError> {
        if self.up.load(Ordering::SeqCst) {
            Ok(self.lock())
        } else {
            Err(StoreError::backend("the server does not answer"))
        }
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        // Every change is one insert or remove: a panic elsewhere leaves nothing half-done.
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Announce a change, once it is made. A real store publishes on its channel here (in
    /// the same transaction or script as the change, where it can).
    async fn publish(&self, change: Invalidation) {
        // No receiver is no error: no instance is watching.
        let _ = self.changes.send(change);
    }

    /// A round trip to the server, proving it answers.
    async fn ping(&self) -> Result<(), StoreError> {
        self.data().map(drop)
    }
}

/// One instance's connection to a [`Server`]. Cheap to clone.
#[derive(Clone)]
pub struct MapStore {
    server: Arc<Server>,
    heartbeat: Duration,
    // `watch` is synchronous and may be called anywhere: the feed runs on this runtime.
    runtime: tokio::runtime::Handle,
}

impl MapStore {
    /// Connect to `server`; call inside a Tokio runtime. The feed beats every second.
    pub fn connect(server: &Arc<Server>) -> Self {
        Self {
            server: server.clone(),
            heartbeat: Duration::from_secs(1),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// How often the feed proves itself alive; a test wants it short.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }
}

impl fmt::Debug for MapStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapStore").finish_non_exhaustive()
    }
}

impl SessionStore for MapStore {
    async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
        let data = self.server.data()?;
        let Some(stored) = data.sessions.get(key.token_hash()) else {
            return Ok(None);
        };
        let Some(customer) = data.customers.get(&stored.customer_id) else {
            return Ok(None);
        };
        // Over at `expires_at` itself; a deleted customer's sessions load nothing.
        if stored.expires_at <= self.server.clock.now() || !customer.can_authenticate() {
            return Ok(None);
        }
        Ok(Some(SessionRecord {
            id: stored.id,
            token_hash: *key.token_hash(),
            kind: stored.kind,
            customer: customer.clone(),
            created_at: stored.created_at,
            modified_at: None,
            expires_at: stored.expires_at,
            return_url: stored.return_url.clone(),
            member: stored.member.clone(),
        }))
    }

    // Other instances see the same data: the default `scope()`, `Shared`, is right, and
    // every instance must be configured with the same secret.

    fn watch(&self, sink: FeedSink) -> Option<Watch> {
        self.runtime
            .spawn(feed(self.server.clone(), sink, self.heartbeat));
        // A beat every `heartbeat`; one late beat is tolerated before the feed counts as lost.
        Some(Watch::new(self.heartbeat * 2))
    }
}

/// One manager's feed: deliver every change, prove the subscription alive, report what
/// may have been missed, and end with the manager.
async fn feed(server: Arc<Server>, sink: FeedSink, heartbeat: Duration) {
    while !sink.is_closed() {
        if server.ping().await.is_err() {
            sink.lost();
            tokio::time::sleep(heartbeat).await;
            continue;
        }
        // Subscribed before reporting it: any change from now on is delivered.
        let mut changes = server.changes.subscribe();
        sink.connected();
        // A deadline rather than a sleep per turn, so a stream of changes cannot hold off
        // the beat.
        let mut next_beat = tokio::time::Instant::now() + heartbeat;
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) => sink.invalidate(change),
                    // The buffer overflowed: changes were dropped. Say so (the cache stops
                    // serving and is flushed), then subscribe again.
                    Err(RecvError::Lagged(_)) => {
                        sink.lost();
                        break;
                    }
                    Err(RecvError::Closed) => {
                        sink.lost();
                        return;
                    }
                },
                () = tokio::time::sleep_until(next_beat) => {
                    // The manager is gone: stop, and drop the subscription.
                    if sink.is_closed() {
                        return;
                    }
                    // Proof of life through the subscription, timed from when it was sent.
                    let sent = tokio::time::Instant::now().into_std();
                    if server.ping().await.is_err() {
                        sink.lost();
                        break;
                    }
                    sink.alive_since(sent);
                    next_beat += heartbeat;
                }
            }
        }
    }
}

impl SessionAdmin for MapStore {
    async fn create(&self, new: NewSession) -> Result<SessionRecord, StoreError> {
        // One critical section: resolving the customer and inserting if absent cannot be
        // split by another instance's create or deletion.
        let mut data = self.server.data()?;
        let id = match &new.customer {
            CustomerRef::Id(id) => Some(*id),
            CustomerRef::ExternalId(external_id) => data.by_external_id.get(external_id).copied(),
        };
        let Some(customer) = id
            .and_then(|id| data.customers.get(&id))
            .filter(|customer| customer.can_authenticate())
            .cloned()
        else {
            return Err(StoreError::UnknownCustomer);
        };
        if data.sessions.contains_key(&new.token_hash) {
            return Err(StoreError::Conflict);
        }
        data.sessions.insert(
            new.token_hash,
            Stored {
                id: new.id,
                kind: new.kind,
                customer_id: customer.id,
                created_at: new.created_at,
                expires_at: new.expires_at,
                return_url: new.return_url.clone(),
                member: new.member.clone(),
            },
        );
        Ok(new.into_record(customer))
    }

    async fn revoke(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        // The guard ends with this block, before the `.await` below. A `std::sync::Mutex`
        // guard held across an `.await` makes the future `!Send`, which a store's futures
        // must not be.
        let existed = {
            let mut data = self.server.data()?;
            data.sessions.remove(token_hash).is_some()
        };
        // Announced after the change is made, never before: an instance that reloads on
        // the announcement must find the session gone. A revocation that happened is
        // announced as such, so every instance keeps refusing the session even if this
        // server later served it again (say, restored from an older backup).
        let change = if existed {
            Invalidation::Revoked(*token_hash)
        } else {
            Invalidation::Session(*token_hash)
        };
        self.server.publish(change).await;
        Ok(existed)
    }

    async fn revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
        let revoked = {
            let mut data = self.server.data()?;
            let before = data.sessions.len();
            // Member sessions too: they belong to the customer.
            data.sessions
                .retain(|_, stored| stored.customer_id != customer_id);
            before - data.sessions.len()
        };
        // Every session the customer had until now is revoked, for good.
        self.server
            .publish(Invalidation::CustomerRevoked {
                customer: customer_id,
                before: Utc::now(),
            })
            .await;
        Ok(revoked as u64)
    }
}

impl CustomerStore for MapStore {
    async fn upsert_customer(&self, customer: Customer) -> Result<Customer, StoreError> {
        {
            let mut data = self.server.data()?;
            // The external id follows the customer: the old one no longer resolves.
            data.by_external_id.retain(|_, id| *id != customer.id);
            if let Some(external_id) = &customer.external_id {
                data.by_external_id.insert(external_id.clone(), customer.id);
            }
            // Kept whole, as it came: every field, metadata in its order.
            data.customers.insert(customer.id, customer.clone());
        }
        self.server
            .publish(Invalidation::Customer(customer.id))
            .await;
        Ok(customer)
    }

    async fn customer(&self, by: &CustomerRef) -> Result<Option<Customer>, StoreError> {
        let data = self.server.data()?;
        let id = match by {
            CustomerRef::Id(id) => Some(*id),
            CustomerRef::ExternalId(external_id) => data.by_external_id.get(external_id).copied(),
        };
        Ok(id.and_then(|id| data.customers.get(&id).cloned()))
    }

    async fn delete_customer(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let existed = {
            let mut data = self.server.data()?;
            match data.customers.get_mut(&id) {
                Some(customer) => {
                    // A soft delete; the first deletion time stands.
                    customer.make_mut().deleted_at.get_or_insert(at);
                    true
                }
                None => false,
            }
        };
        if existed {
            self.server
                .publish(Invalidation::CustomerRevoked {
                    customer: id,
                    before: at,
                })
                .await;
        }
        Ok(existed)
    }
}
