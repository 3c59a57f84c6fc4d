//! [`CustomerSessions`]: the handle that creates, resolves and revokes sessions.

mod builder;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

pub use builder::CustomerSessionsBuilder;

use crate::cache::{CachedSession, Fetched, LoadOutcome, Lookup, SessionCache};
use crate::clock::Clock;
use crate::extension::{CredentialSource, SessionInfo};
use crate::model::{Customer, CustomerSession};
use crate::reject::{InvalidToken, Rejection, StoreUnavailable};
use crate::store::{CustomerRef, NewSession, SessionRecord, SessionStore, StoreError};
use crate::token::{TokenFormat, TokenHash, TokenHasher, TokenKind};
use crate::verify::verify;

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
/// use tower_customer_session::{CreateSession, CredentialSource, CustomerSessions, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let customer = store.insert_customer(CustomerData::new(uuid::Uuid::new_v4(), chrono::Utc::now()));
/// let sessions = CustomerSessions::builder(store).secret(b"0123456789abcdef0123456789abcdef").build();
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
pub struct CustomerSessions<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    store: S,
    hasher: TokenHasher,
    format: TokenFormat,
    cache: SessionCache,
    clock: Arc<dyn Clock>,
    session_ttl: TimeDelta,
    store_timeout: Duration,
    portal_url: String,
}

impl<S> Clone for CustomerSessions<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S> fmt::Debug for CustomerSessions<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerSessions")
            .field("format", &self.inner.format)
            .field("session_ttl", &self.inner.session_ttl)
            .field("store_timeout", &self.inner.store_timeout)
            .finish_non_exhaustive()
    }
}

/// Options for [`CustomerSessions::create`].
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
}

impl CreateSession {
    /// Where the portal sends the customer back to. Default: none.
    pub fn return_url(mut self, url: impl Into<String>) -> Self {
        self.return_url = Some(url.into());
        self
    }

    /// Customer or member session. Default: [`TokenKind::Customer`].
    pub fn kind(mut self, kind: TokenKind) -> Self {
        self.kind = kind;
        self
    }
}

impl<S: SessionStore> CustomerSessions<S> {
    /// Start configuring sessions over `store`.
    pub fn builder(store: S) -> CustomerSessionsBuilder<S> {
        CustomerSessionsBuilder::new(store)
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

    /// The current time on the configured clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Issue a session for `customer`: a fresh token from the OS CSPRNG, stored only as its
    /// hash. The returned [`CustomerSession`] is the only place the raw token ever exists.
    pub async fn create(
        &self,
        customer: impl Into<CustomerRef>,
        options: CreateSession,
    ) -> Result<CustomerSession, StoreError> {
        let customer = customer.into();
        let created_at = crate::model::truncate_to_micros(self.now());
        for _ in 0..MAX_CREATE_ATTEMPTS {
            let token = self
                .inner
                .format
                .generate(options.kind)
                .map_err(StoreError::backend)?;
            let token_hash = self.inner.hasher.hash(token.expose_secret());
            let new = NewSession {
                id: Uuid::new_v4(),
                token_hash,
                kind: options.kind,
                customer: customer.clone(),
                created_at,
                expires_at: created_at + self.inner.session_ttl,
                return_url: options.return_url.clone(),
            };
            let record = match self.with_timeout(self.inner.store.create(new)).await {
                Err(StoreError::Conflict) => continue,
                other => other?,
            };
            self.inner.cache.forget_negative(&token_hash);
            let customer_portal_url = portal_url(
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
        Err(StoreError::Conflict)
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
            None => self.load(hash).await?,
        };
        Ok(entry.resolved(source))
    }

    /// Revoke the session of a raw token. `Ok(false)` if there was none (or the token is
    /// malformed).
    pub async fn revoke(&self, raw_token: &str) -> Result<bool, StoreError> {
        if self.inner.format.parse(raw_token).is_err() {
            return Ok(false);
        }
        self.revoke_hash(&self.inner.hasher.hash(raw_token)).await
    }

    /// Revoke a session by its token hash (see [`SessionInfo::token_hash`]), in the store
    /// and then in the cache.
    pub async fn revoke_hash(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        let revoked = self.with_timeout(self.inner.store.revoke(token_hash)).await;
        // Invalidate even if the store failed: the entry may be gone there already.
        self.inner.cache.invalidate(token_hash);
        tracing::debug!(token = %token_hash.short(), "customer session revoked");
        revoked
    }

    /// Revoke every session of a customer, in the store and the cache.
    pub async fn revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
        let revoked = self
            .with_timeout(self.inner.store.revoke_all(customer_id))
            .await;
        self.inner.cache.invalidate_customer(customer_id);
        revoked
    }

    /// Drop a customer's cached sessions without touching the store, e.g. after the customer
    /// was deleted or edited, so the next request reloads them.
    pub fn invalidate_customer(&self, customer_id: Uuid) {
        self.inner.cache.invalidate_customer(customer_id);
    }

    /// Drop every cached session (e.g. after losing a cross-instance invalidation channel).
    pub fn invalidate_all(&self) {
        self.inner.cache.invalidate_all();
    }

    /// Number of sessions in the cache.
    pub fn cached_sessions(&self) -> u64 {
        self.inner.cache.entry_count()
    }

    /// The cache's answer for `hash`, verified, or `None` on a miss.
    pub(crate) fn cached(&self, hash: &TokenHash) -> Option<LoadOutcome> {
        match self.inner.cache.lookup(hash) {
            Lookup::Hit(entry) => Some(self.check(entry, hash)),
            Lookup::Negative(reason) => Some(Err(Rejection::InvalidToken(reason))),
            Lookup::Miss => None,
        }
    }

    /// Resolve a cache miss: one coalesced store load for all concurrent callers.
    pub(crate) async fn load(&self, hash: TokenHash) -> LoadOutcome {
        let entry = self.inner.cache.coalesce(hash, || self.fetch(hash)).await?;
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
    async fn fetch(&self, hash: TokenHash) -> Fetched {
        let cache = &self.inner.cache;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let epoch = cache.epoch(&hash);
            let entry = match self.read(hash).await {
                Ok(entry) => entry,
                Err(rejection) => return (epoch, Err(rejection)),
            };
            if cache.insert_if_current(hash, entry.clone(), epoch) {
                return (epoch, Ok(entry));
            }
            // A revocation landed while the store was answering; what we read may be the
            // session it just revoked. Ask again.
            if attempt == MAX_LOAD_ATTEMPTS {
                // Uncached; and `coalesce` hands it only to callers that arrived before
                // the revocations it raced.
                return (epoch, Ok(entry));
            }
        }
    }

    /// One verified store read. Unknown and dead sessions go to the negative cache.
    async fn read(&self, hash: TokenHash) -> LoadOutcome {
        let cache = &self.inner.cache;
        let record = match self.with_timeout(self.inner.store.load(&hash)).await {
            Ok(record) => record,
            Err(error) => {
                let reason = match error {
                    StoreError::Timeout => StoreUnavailable::Timeout,
                    _ => StoreUnavailable::Error,
                };
                tracing::warn!(token = %hash.short(), %error, "customer session store failed");
                return Err(Rejection::StoreUnavailable(reason));
            }
        };
        let Some(record) = record else {
            cache.insert_negative(hash, InvalidToken::Unknown);
            return Err(Rejection::InvalidToken(InvalidToken::Unknown));
        };
        let entry = Arc::new(CachedSession::from(record));
        if let Err(reason) = verify(&entry, &hash, self.inner.clock.now_micros()) {
            cache.insert_negative(hash, reason);
            return Err(Rejection::InvalidToken(reason));
        }
        Ok(entry)
    }

    async fn with_timeout<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.inner.store_timeout, operation)
            .await
            .unwrap_or(Err(StoreError::Timeout))
    }
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
            },
            customer: record.customer,
        }
    }
}

/// `base?customer_session_token=…&email=…`, as Polar builds `customer_portal_url`.
fn portal_url(base: &str, token: &str, email: Option<&str>) -> String {
    let mut url = String::with_capacity(base.len() + token.len() + 64);
    url.push_str(base);
    url.push(if base.contains('?') { '&' } else { '?' });
    url.push_str("customer_session_token=");
    url.push_str(token);
    if let Some(email) = email {
        url.push_str("&email=");
        for byte in email.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                url.push(byte as char);
            } else {
                url.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::portal_url;

    #[test]
    fn portal_url_encodes_the_email_like_polar() {
        assert_eq!(
            portal_url(
                "https://polar.sh/my-org/portal",
                "polar_cst_x",
                Some("customer@example.com")
            ),
            "https://polar.sh/my-org/portal?customer_session_token=polar_cst_x&email=customer%40example.com"
        );
        assert_eq!(
            portal_url("/portal?a=1", "t", None),
            "/portal?a=1&customer_session_token=t"
        );
    }
}
