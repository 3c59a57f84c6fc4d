//! [`SessionManager`]: the handle that creates, resolves and revokes sessions.

mod admin;
mod builder;
mod feed;
mod options;
mod resolve;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

pub use admin::CreateError;
pub use builder::{BuildError, SessionManagerBuilder};
use feed::Feed;
pub use options::CreateSession;

use crate::cache::SessionCache;
use crate::clock::Clock;
use crate::store::{FeedState, SessionStore};
use crate::token::{TokenFormat, TokenHasher};

/// How many times a load is repeated when revocations keep racing it.
const MAX_LOAD_ATTEMPTS: usize = 3;
/// How many fresh tokens `create` tries if the store reports a hash collision.
const MAX_CREATE_ATTEMPTS: usize = 3;

/// Creates, resolves and revokes customer sessions: the store, the token scheme and the
/// cache in one cheap-to-clone handle.
///
/// The [`CustomerSessionLayer`](crate::CustomerSessionLayer) uses it for every request;
/// application code uses it to issue sessions and to revoke them, so revocations reach the
/// cache at once.
///
/// ```
/// use tower_customer_session::model::CustomerData;
/// use tower_customer_session::{CreateSession, CredentialSource, SessionManager, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let customer = store.insert_customer(CustomerData::new(chrono::Utc::now()));
/// let sessions = SessionManager::builder(store).secret(b"0123456789abcdef0123456789abcdef").build().unwrap();
///
/// let session = sessions.create(customer.id, CreateSession::default()).await.unwrap();
/// let token = session.token.expose_secret();
/// let (who, _info) = sessions.authenticate(token, CredentialSource::Header).await.unwrap();
/// assert_eq!(who.id, customer.id);
///
/// sessions.revoke(token).await.unwrap();
/// assert!(sessions.authenticate(token, CredentialSource::Header).await.is_err());
/// # }
/// ```
pub struct SessionManager<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    store: S,
    hasher: TokenHasher,
    /// Other keys whose sessions are still accepted (a rotation in progress).
    accepted: Box<[TokenHasher]>,
    format: TokenFormat,
    cache: Arc<SessionCache>,
    /// The store's invalidation feed, if it has one; its watchdog holds only a weak handle.
    feed: Option<Arc<Feed>>,
    clock: Arc<dyn Clock>,
    session_ttl: TimeDelta,
    store_timeout: Duration,
    portal_url: String,
}

impl<S> SessionManager<S> {
    /// The metric handles of this manager's cache, for the layer's request outcomes.
    pub(crate) fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.cache.metrics
    }
}

impl<S> Clone for SessionManager<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S> fmt::Debug for SessionManager<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("format", &self.inner.format)
            .field("session_ttl", &self.inner.session_ttl)
            .field("store_timeout", &self.inner.store_timeout)
            .finish_non_exhaustive()
    }
}

impl<S: SessionStore> SessionManager<S> {
    /// Start configuring sessions over `store`.
    pub fn builder(store: S) -> SessionManagerBuilder<S> {
        SessionManagerBuilder::new(store)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The token prefixes in use.
    pub fn format(&self) -> &TokenFormat {
        &self.inner.format
    }

    /// The keyed hasher (to compute what a store holds for a token).
    pub fn hasher(&self) -> &TokenHasher {
        &self.inner.hasher
    }

    /// How many other keys are accepted besides the current one (see
    /// [`accept_secrets`](super::SessionManagerBuilder::accept_secrets)).
    pub fn accepted_keys(&self) -> usize {
        self.inner.accepted.len()
    }

    /// The current time on the configured clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The state of the store's invalidation feed: [`FeedState::Unwatched`] for a store
    /// without one. Every change is also logged (`info` when live, `warn` when lost).
    pub fn feed_state(&self) -> FeedState {
        self.inner
            .feed
            .as_ref()
            .map_or(FeedState::Unwatched, |feed| feed.state())
    }

    /// Drop a customer's cached sessions without touching the store, so the next request
    /// reloads them. Edits and deletions made through [`upsert_customer`](Self::upsert_customer)
    /// and [`delete_customer`](Self::delete_customer) do this already (and a store with a
    /// feed tells every other instance).
    pub fn invalidate_customer(&self, customer_id: Uuid) {
        self.inner.cache.invalidate_customer(customer_id);
    }

    /// Drop every cached session.
    pub fn invalidate_all(&self) {
        self.inner.cache.invalidate_all();
    }

    /// Number of sessions in the cache.
    pub fn cached_sessions(&self) -> u64 {
        let count = self.inner.cache.entry_count();
        self.inner.cache.report_entries();
        count
    }
}
