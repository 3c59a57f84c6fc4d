//! [`SessionManager`]: the handle that creates, resolves and revokes sessions.

mod builder;
mod feed;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

pub use builder::{BuildError, SessionManagerBuilder};
use feed::Feed;

use crate::cache::{CachedSession, Fetched, Insert, LoadOutcome, Lookup, SessionCache};
use crate::clock::Clock;
use crate::extension::{CredentialSource, SessionInfo};
use crate::metrics::{CacheResult, StoreOp};
use crate::model::{Customer, CustomerSession, Member, PortalUrl};
use crate::reject::{InvalidToken, Rejection, StoreUnavailable};
use crate::store::{
    CustomerRef, CustomerStore, FeedState, NewSession, SessionAdmin, SessionKey, SessionRecord,
    SessionStore, StoreError,
};
use crate::token::{SessionToken, TokenFormat, TokenHash, TokenHasher, TokenKind};
use crate::verify::{kind_matches, verify};

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

/// Options for [`SessionManager::create`].
///
/// ```
/// use tower_customer_session::CreateSession;
/// use tower_customer_session::token::TokenKind;
///
/// let options = CreateSession::default()
///     .return_url("https://shop.example/account")
///     .kind(TokenKind::Member);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct CreateSession {
    kind: TokenKind,
    return_url: Option<String>,
    member: Option<Member>,
}

impl CreateSession {
    /// Where the portal sends the customer back to. Default: none.
    pub fn return_url(mut self, url: impl Into<String>) -> Self {
        self.return_url = Some(url.into());
        self
    }

    /// Customer or member session. Default: [`TokenKind::Customer`]. A customer session
    /// has no member, so this drops one set by [`member`](Self::member).
    pub fn kind(mut self, kind: TokenKind) -> Self {
        self.kind = kind;
        if kind == TokenKind::Customer {
            self.member = None;
        }
        self
    }

    /// A member session (`polar_mst_…`) acting for `member` of the customer; the store keeps
    /// the member with the session and handlers see it in [`SessionInfo::member`]. Sets the
    /// kind to [`TokenKind::Member`]. Default: none (a customer session).
    ///
    /// The caller vouches that `member` belongs to the customer: stores keep members with
    /// sessions, not in a directory of their own.
    ///
    /// ```
    /// use tower_customer_session::CreateSession;
    /// use tower_customer_session::model::{Member, MemberRole};
    ///
    /// let options = CreateSession::default()
    ///     .member(Member::new(uuid::Uuid::new_v4(), MemberRole::BillingManager));
    /// # let _ = options;
    /// ```
    pub fn member(mut self, member: Member) -> Self {
        self.kind = TokenKind::Member;
        self.member = Some(member);
        self
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
    /// [`accept_secrets`](SessionManagerBuilder::accept_secrets)).
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

    /// Resolve a raw token as the layer does (shape, cache, store, verification), e.g. for a
    /// hand-off endpoint that receives the token elsewhere than in a header.
    pub async fn authenticate(
        &self,
        raw_token: &str,
        source: CredentialSource,
    ) -> Result<(Customer, SessionInfo), Rejection> {
        self.inner
            .format
            .parse(raw_token)
            .map_err(|_| Rejection::InvalidToken(InvalidToken::Malformed))?;
        let hash = self.inner.hasher.hash(raw_token);
        let entry = match self.cached(&hash) {
            Some(result) => result?,
            None => {
                self.load(hash, SessionToken::from_secret(raw_token.to_owned()))
                    .await?
            }
        };
        Ok(entry.resolved(source))
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

    /// The cache's answer for `hash`, verified, or `None` on a miss.
    pub(crate) fn cached(&self, hash: &TokenHash) -> Option<LoadOutcome> {
        let cache = &self.inner.cache;
        match cache.lookup(hash) {
            Lookup::Hit(entry) => {
                cache.metrics.cache(CacheResult::Hit);
                Some(self.check(entry, hash))
            }
            Lookup::Negative(reason) => {
                cache.metrics.cache(CacheResult::NegativeHit);
                Some(Err(Rejection::InvalidToken(reason)))
            }
            Lookup::Miss => {
                cache.metrics.cache(CacheResult::Miss);
                None
            }
        }
    }

    /// Resolve a cache miss: one coalesced store load for all concurrent callers. `token`
    /// is the presented token, for stores that forward it upstream.
    pub(crate) async fn load(&self, hash: TokenHash, token: SessionToken) -> LoadOutcome {
        let entry = self
            .inner
            .cache
            .coalesce(hash, || self.fetch(hash, &token))
            .await?;
        self.check(entry, &hash)
    }

    pub(crate) fn format_and_hasher(&self) -> (&TokenFormat, &TokenHasher) {
        (&self.inner.format, &self.inner.hasher)
    }

    fn check(&self, entry: Arc<CachedSession>, hash: &TokenHash) -> LoadOutcome {
        match verify(&entry, hash, self.inner.clock.now_micros()) {
            Ok(()) => Ok(entry),
            Err(reason) => Err(Rejection::InvalidToken(reason)),
        }
    }

    /// Ask the store, verify, and cache the answer unless a revocation raced the load.
    async fn fetch(&self, hash: TokenHash, token: &SessionToken) -> Fetched {
        let cache = &self.inner.cache;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let epoch = cache.epoch(&hash);
            let (entry, stored) = match self.read(hash, token).await {
                Ok(found) => found,
                Err(rejection) => return (epoch, Err(rejection)),
            };
            match cache.insert_if_current(hash, entry.clone(), epoch, stored) {
                Insert::Cached => {
                    cache.report_entries();
                    return (epoch, Ok(entry));
                }
                Insert::Skipped => return (epoch, Ok(entry)),
                // A revocation landed while the store was answering; what we read may be
                // the session it just revoked. Ask again.
                Insert::Raced if attempt < MAX_LOAD_ATTEMPTS => {}
                // Uncached; and `coalesce` hands it only to callers that arrived before
                // the revocations it raced.
                Insert::Raced => return (epoch, Ok(entry)),
            }
        }
    }

    /// One verified store read, under the current key and then under each accepted one.
    /// Unknown and dead sessions go to the negative cache, under the presented `hash`.
    /// A session found under an accepted key comes with its stored hash and the epoch of
    /// that hash read before it was asked for, so a revocation of it can be told apart.
    async fn read(
        &self,
        hash: TokenHash,
        token: &SessionToken,
    ) -> Result<(Arc<CachedSession>, Option<(TokenHash, u64)>), Rejection> {
        let cache = &self.inner.cache;
        let mut found = self.read_one(hash, token).await?;
        let mut stored = None;
        for (position, hasher) in self.inner.accepted.iter().enumerate() {
            if found.is_some() {
                break;
            }
            let other = hasher.hash(token.expose_secret());
            let epoch = cache.session_epoch(&other);
            found = self.read_one(other, token).await?;
            if found.is_some() {
                cache.metrics.accepted_key_load(position + 1);
                stored = Some((other, epoch));
            }
        }
        let Some(mut entry) = found else {
            cache.insert_negative(hash, InvalidToken::Unknown);
            cache.report_entries();
            return Err(Rejection::InvalidToken(InvalidToken::Unknown));
        };
        // Verified against the hash the store was asked for; cached under the one the
        // token is presented by.
        let asked = stored.map_or(hash, |(other, _)| other);
        if let Err(reason) = verify(&entry, &asked, self.inner.clock.now_micros()) {
            cache.insert_negative(hash, reason);
            return Err(Rejection::InvalidToken(reason));
        }
        entry.presented = hash;
        Ok((Arc::new(entry), stored))
    }

    /// One store load by `hash`.
    async fn read_one(
        &self,
        hash: TokenHash,
        token: &SessionToken,
    ) -> Result<Option<CachedSession>, Rejection> {
        let key = SessionKey::new(&hash, token.expose_secret());
        match self.call(StoreOp::Load, self.inner.store.load(key)).await {
            Ok(Some(record))
                if self.inner.cache.saw_revoked(
                    &record.token_hash,
                    record.customer.id,
                    record.created_at,
                ) =>
            {
                // A store that lost the revocation (restarted from older data, failed over
                // to a replica that missed it) is not believed.
                tracing::warn!(token = %hash.short(), "the store served a session revoked here: refused");
                self.inner.cache.metrics.revoked_session_served();
                Ok(None)
            }
            Ok(Some(record))
                if !kind_matches(&self.inner.format, token.expose_secret(), record.kind) =>
            {
                tracing::warn!(token = %hash.short(), "the store returned a session of the other kind; refused");
                Ok(None)
            }
            Ok(record) => Ok(record.map(CachedSession::from)),
            Err(error) => {
                let reason = StoreUnavailable::from(&error);
                tracing::warn!(token = %hash.short(), %error, "customer session store failed");
                Err(Rejection::StoreUnavailable(reason))
            }
        }
    }

    /// The hashes a raw token may be stored under: the current key's, then each accepted
    /// key's.
    fn hashes<'a>(&'a self, raw_token: &'a str) -> impl Iterator<Item = TokenHash> + 'a {
        let current = self.inner.hasher.hash(raw_token);
        std::iter::once(current).chain(
            self.inner
                .accepted
                .iter()
                .map(move |hasher| hasher.hash(raw_token)),
        )
    }

    /// One store call, bounded by the store timeout and recorded in the metrics.
    async fn call<T>(
        &self,
        op: StoreOp,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = tokio::time::Instant::now();
        let result = tokio::time::timeout(self.inner.store_timeout, operation)
            .await
            .unwrap_or(Err(StoreError::Timeout));
        self.inner
            .cache
            .metrics
            .store(op, &result, started.elapsed());
        result
    }
}

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
    /// With [accepted keys](SessionManagerBuilder::accept_secrets), the store is asked under
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

    /// Revoke a session by its token hash (see [`SessionInfo::token_hash`]), in the store
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

impl CachedSession {
    /// The extension values for a request authenticated through `source`.
    pub(crate) fn resolved(&self, source: CredentialSource) -> (Customer, SessionInfo) {
        let mut info = self.info.clone();
        info.source = source;
        (self.customer.clone(), info)
    }
}

impl From<SessionRecord> for CachedSession {
    fn from(record: SessionRecord) -> Self {
        Self {
            presented: record.token_hash,
            expires_at_micros: record.expires_at.timestamp_micros(),
            customer_active: record.customer.can_authenticate(),
            info: SessionInfo {
                id: record.id,
                customer_id: record.customer.id,
                expires_at: record.expires_at,
                kind: record.kind,
                source: CredentialSource::Header,
                return_url: record.return_url.map(Arc::from),
                token_hash: record.token_hash,
                member: record.member.map(Arc::new),
            },
            customer: record.customer,
        }
    }
}
