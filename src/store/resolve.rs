//! Resolution: the one thing the layer needs from a store.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::{FeedSink, SessionRecord, StoreError, Watch};
use crate::token::TokenHash;

/// What a store is asked to load: the token's keyed hash and, for remote authorities, the
/// presented token itself. `Debug` shows only the hash prefix.
#[derive(Clone, Copy)]
pub struct SessionKey<'a> {
    token_hash: &'a TokenHash,
    token: &'a str,
}

impl<'a> SessionKey<'a> {
    /// A key for `token`, whose hash is `token_hash`. The conformance kit and tests build
    /// keys this way; the core builds them from the request.
    pub fn new(token_hash: &'a TokenHash, token: &'a str) -> Self {
        Self { token_hash, token }
    }

    /// `HMAC-SHA256(secret, token)`: what a local store looks sessions up by.
    pub fn token_hash(&self) -> &'a TokenHash {
        self.token_hash
    }

    /// The token as presented, shape already checked. Only a remote authority (one that
    /// forwards the token upstream) may read it; it must not log or keep it.
    pub fn expose_token(&self) -> &'a str {
        self.token
    }
}

impl fmt::Debug for SessionKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKey")
            .field("token_hash", self.token_hash)
            .finish_non_exhaustive()
    }
}

/// Who else sees a store's sessions; decides whether a random HMAC secret is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreScope {
    /// Only this process, and only until it exits (the [`MemoryStore`](super::MemoryStore)).
    /// A random per-process secret is fine.
    Process,
    /// Other processes or restarts see the same sessions (a database, Redis, an upstream
    /// API, a file). The secret must be configured. The default for every store.
    Shared,
}

/// Resolves tokens to sessions: the whole contract the layer depends on.
///
/// See the [module docs](super) for the family of store traits and a complete backend.
pub trait SessionStore: Send + Sync + 'static {
    /// The session `key` identifies, joined with its customer; `None` if there is none
    /// (never created, revoked, or purged), it has expired (`expires_at <= now`), or its
    /// customer is deleted. An error (or a load past the store timeout) answers `503`,
    /// never `401`. A record whose `kind` is not the one the token's prefix announces is
    /// refused as unknown (and logged): the kind decides the session's rights.
    fn load(
        &self,
        key: SessionKey<'_>,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send;

    /// Who else sees this store's sessions. Default: [`StoreScope::Shared`], which requires
    /// a configured secret.
    fn scope(&self) -> StoreScope {
        StoreScope::Shared
    }

    /// Start delivering invalidations to `sink`, if this store has a feed, and say how often
    /// it beats; see [`FeedSink`] for the contract. Called once by
    /// [`SessionManagerBuilder::build`](crate::SessionManagerBuilder::build), which fails
    /// with `NoRuntime` if a feed is returned outside a Tokio runtime; spawn the feed's task
    /// on a runtime handle captured when the store was created, so this call cannot panic.
    /// Default: no feed (`None`), and cached entries live up to `cache_max_ttl`.
    fn watch(&self, sink: FeedSink) -> Option<Watch> {
        let _ = sink;
        None
    }
}

impl<S: SessionStore> SessionStore for Arc<S> {
    fn load(
        &self,
        key: SessionKey<'_>,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send {
        (**self).load(key)
    }

    fn scope(&self) -> StoreScope {
        (**self).scope()
    }

    fn watch(&self, sink: FeedSink) -> Option<Watch> {
        (**self).watch(sink)
    }
}
