//! Resolving a token: the cache, then one coalesced store load under each accepted key,
//! verified before anything is cached.

use std::sync::Arc;

use super::{MAX_LOAD_ATTEMPTS, SessionManager};
use crate::cache::{CachedSession, Fetched, Insert, LoadOutcome, Lookup};
use crate::extension::{CredentialSource, SessionInfo};
use crate::metrics::{CacheResult, StoreOp};
use crate::model::Customer;
use crate::reject::{InvalidToken, Rejection, StoreUnavailable};
use crate::store::{SessionKey, SessionRecord, SessionStore, StoreError};
use crate::token::{SessionToken, TokenFormat, TokenHash, TokenHasher};
use crate::verify::{Facts, kind_matches, verify};

impl<S: SessionStore> SessionManager<S> {
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
        match self.cached(&hash, source) {
            Some(result) => result,
            None => {
                let entry = self
                    .load(hash, SessionToken::from_secret(raw_token.to_owned()))
                    .await?;
                Ok(entry.resolved(source))
            }
        }
    }

    /// The cache's answer for `hash`, verified and ready for a request authenticated
    /// through `source`, or `None` on a miss.
    pub(crate) fn cached(
        &self,
        hash: &TokenHash,
        source: CredentialSource,
    ) -> Option<Result<(Customer, SessionInfo), Rejection>> {
        let cache = &self.inner.cache;
        // Copied out under the cache's lock; the clock is read after it is released.
        match cache.lookup(hash, |entry| {
            (Facts::of(entry, hash), entry.resolved(source))
        }) {
            Lookup::Hit((facts, resolved)) => {
                cache.metrics.cache(CacheResult::Hit);
                Some(match facts.verify(self.inner.clock.now_micros()) {
                    Ok(()) => Ok(resolved),
                    Err(reason) => Err(Rejection::InvalidToken(reason)),
                })
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
    pub(super) fn hashes<'a>(&'a self, raw_token: &'a str) -> impl Iterator<Item = TokenHash> + 'a {
        let current = self.inner.hasher.hash(raw_token);
        std::iter::once(current).chain(
            self.inner
                .accepted
                .iter()
                .map(move |hasher| hasher.hash(raw_token)),
        )
    }

    /// Keys derived from the secret for another purpose (`label` is never a token, so no
    /// store holds these values): the current key's first, then each accepted key's.
    #[cfg(feature = "dbsc")]
    pub(crate) fn derived_keys(&self, label: &str) -> Vec<[u8; 32]> {
        std::iter::once(&self.inner.hasher)
            .chain(self.inner.accepted.iter())
            .map(|hasher| *hasher.hash(label).as_bytes())
            .collect()
    }

    /// One store call, bounded by the store timeout and recorded in the metrics.
    pub(super) async fn call<T>(
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
