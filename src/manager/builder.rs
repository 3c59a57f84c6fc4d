//! Configuration of [`SessionManager`].

use std::sync::Arc;
use std::time::Duration;

use super::Feed;
use super::{Inner, SessionManager};
use crate::cache::{CacheConfig, SessionCache};
use crate::clock::{Clock, SystemClock};
use crate::store::{FeedPolicy, SessionStore, StoreScope};
use crate::token::{MIN_SECRET_LEN, TokenFormat, TokenHasher};

/// Why [`SessionManagerBuilder::build`] refused to build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The store is shared (other processes or restarts see its sessions) and no secret was
    /// configured: a random per-process secret would hash tokens differently on every
    /// instance, and every token would look unknown after a restart.
    #[error(
        "this session store is shared across processes, so it needs .secret(…): the same HMAC key on every instance, or no instance finds the others' sessions"
    )]
    SecretRequired,
    /// The store has an invalidation feed, which runs on Tokio, and `build` was called
    /// outside a Tokio runtime.
    #[error("this session store has an invalidation feed: call build() inside a Tokio runtime")]
    NoRuntime,
    /// The [`secret`](SessionManagerBuilder::secret) is shorter than
    /// [`MIN_SECRET_LEN`](crate::token::MIN_SECRET_LEN) bytes (an empty one too).
    #[error("the session secret is {len} bytes long; it must be at least {min} bytes")]
    SecretTooShort {
        /// The length given, in bytes.
        len: usize,
        /// The least accepted length, in bytes.
        min: usize,
    },
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Builds [`SessionManager`]; every setting has a default stated on its method.
///
/// ```
/// use std::time::Duration;
/// use tower_customer_session::{SessionManager, MemoryStore};
///
/// let sessions = SessionManager::builder(MemoryStore::new())
///     .secret(b"read this from your secret manager")
///     .cache_capacity(50_000)
///     .cache_max_ttl(Duration::from_secs(30))
///     .store_timeout(Duration::from_millis(250))
///     .build()
///     .unwrap();
/// # let _ = sessions;
/// ```
#[must_use]
pub struct SessionManagerBuilder<S> {
    store: S,
    secret: Option<Vec<u8>>,
    accepted: Vec<Vec<u8>>,
    format: TokenFormat,
    session_ttl: Duration,
    cache: CacheConfig,
    feed_policy: FeedPolicy,
    store_timeout: Duration,
    clock: Arc<dyn Clock>,
    portal_url: String,
}

impl<S: SessionStore> SessionManagerBuilder<S> {
    pub(super) fn new(store: S) -> Self {
        Self {
            store,
            secret: None,
            accepted: Vec::new(),
            format: TokenFormat::polar(),
            session_ttl: Duration::from_secs(3600),
            cache: CacheConfig {
                capacity: 100_000,
                max_ttl: Duration::from_secs(60),
                negative_capacity: 10_000,
                negative_ttl: Duration::from_secs(5),
                revocation_memory: Duration::from_secs(3600),
            },
            feed_policy: FeedPolicy::BypassCache,
            store_timeout: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
            portal_url: "/portal".to_owned(),
        }
    }

    /// The HMAC key for token hashes (Polar's `SECRET`), at least
    /// [`MIN_SECRET_LEN`](crate::token::MIN_SECRET_LEN) bytes: [`build`](Self::build) refuses a
    /// shorter one with [`BuildError::SecretTooShort`].
    ///
    /// Default: 32 random bytes per process, allowed only for a store whose
    /// [scope](crate::store::StoreScope) is the process (the [`MemoryStore`](crate::MemoryStore));
    /// for any other store [`build`](Self::build) fails with [`BuildError::SecretRequired`].
    /// Every instance sharing a store must use the same secret, or none of them finds the
    /// others' sessions.
    ///
    /// ```
    /// # use tower_customer_session::{BuildError, SessionManager, MemoryStore};
    /// let sessions = SessionManager::builder(MemoryStore::new())
    ///     .secret(b"32 bytes or more, from a vault..")
    ///     .build();
    /// assert!(sessions.is_ok());
    ///
    /// let short = SessionManager::builder(MemoryStore::new()).secret("hunter2").build();
    /// assert!(matches!(short, Err(BuildError::SecretTooShort { len: 7, min: 32 })));
    /// ```
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    /// Other HMAC keys whose sessions are still accepted, for rotating the
    /// [`secret`](Self::secret) without signing anyone out. Default: none.
    ///
    /// New sessions are always stored under `secret`. A token not found under it is looked
    /// up under each accepted key in turn (one store lookup per key, then negatively cached
    /// like any unknown token); a session found that way is cached under the hash it is
    /// presented by, so its later requests are ordinary hits, and revoking it works
    /// whatever key it was stored under. A rotation from key A to key B is three deploys,
    /// with a mixed fleet allowed during each:
    ///
    /// 1. `.secret(A).accept_secrets([B])`: every instance learns B;
    /// 2. `.secret(B).accept_secrets([A])`: new sessions go under B, A's still work;
    /// 3. `.secret(B)`, once the longest session made under A has expired (`session_ttl`
    ///    after phase 2 reached every instance): A's sessions are refused from then on.
    ///
    /// The metric `customer_session_accepted_key_loads_total` (label `key`: the accepted
    /// key's position, from 1) counts sessions loaded under an accepted key.
    ///
    /// ```
    /// # use tower_customer_session::{SessionManager, MemoryStore};
    /// let sessions = SessionManager::builder(MemoryStore::new())
    ///     .secret(b"the new key: 32 bytes or longer!")
    ///     .accept_secrets([b"the old key, kept for a session's lifetime"])
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(sessions.accepted_keys(), 1);
    ///
    /// // An accepted key must be as long as a current one.
    /// let short = SessionManager::builder(MemoryStore::new()).accept_secrets(["old"]).build();
    /// assert!(short.is_err());
    /// ```
    pub fn accept_secrets<I>(mut self, secrets: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.accepted = secrets
            .into_iter()
            .map(|secret| secret.as_ref().to_vec())
            .collect();
        self
    }

    /// Accepted token prefixes. Default: [`TokenFormat::polar`] (`polar_cst_`, `polar_mst_`).
    ///
    /// ```
    /// # use tower_customer_session::{SessionManager, MemoryStore, token::TokenFormat};
    /// let sessions = SessionManager::builder(MemoryStore::new())
    ///     .token_format(TokenFormat::new("shop_cst_", "shop_mst_").unwrap())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(sessions.format().prefix(Default::default()), "shop_cst_");
    /// ```
    pub fn token_format(mut self, format: TokenFormat) -> Self {
        self.format = format;
        self
    }

    /// Lifetime of sessions made by [`create`](SessionManager::create). Default: 1 hour
    /// (Polar's `CUSTOMER_SESSION_TTL`); absolute, never extended by use.
    ///
    /// ```
    /// # use tower_customer_session::{SessionManager, MemoryStore};
    /// let sessions = SessionManager::builder(MemoryStore::new())
    ///     .session_ttl(std::time::Duration::from_secs(15 * 60))
    ///     .build()
    ///     .unwrap();
    /// # let _ = sessions;
    /// ```
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Most sessions kept in the cache. Default: 100,000. Admission is frequency-based, so
    /// a full cache keeps the sessions in use (every miss counts; hits count one in 32, at
    /// random, which keeps their relative frequencies).
    ///
    /// ```
    /// # use tower_customer_session::{SessionManager, MemoryStore};
    /// let sessions = SessionManager::builder(MemoryStore::new()).cache_capacity(1_000).build().unwrap();
    /// # let _ = sessions;
    /// ```
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.cache.capacity = entries;
        self
    }

    /// Longest a session stays cached before the store is asked again. Default: 60 s.
    ///
    /// An entry never outlives its session's `expires_at`. Revocations through these
    /// `SessionManager` apply at once; this bounds how long a revocation made elsewhere
    /// (another process sharing the store) can go unseen by a store without a feed, or
    /// with one under [`FeedPolicy::ServeCached`] while it is down.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::{SessionManager, MemoryStore};
    /// let sessions = SessionManager::builder(MemoryStore::new())
    ///     .cache_max_ttl(Duration::from_secs(10))
    ///     .build()
    ///     .unwrap();
    /// # let _ = sessions;
    /// ```
    pub fn cache_max_ttl(mut self, ttl: Duration) -> Self {
        self.cache.max_ttl = ttl;
        self
    }

    /// Most unknown tokens remembered. Default: 10,000. Kept apart from sessions so a flood
    /// of random tokens cannot evict real ones. `0` disables negative caching.
    ///
    /// ```
    /// # use tower_customer_session::{SessionManager, MemoryStore};
    /// let sessions = SessionManager::builder(MemoryStore::new())
    ///     .negative_cache_capacity(0)
    ///     .build()
    ///     .unwrap();
    /// # let _ = sessions;
    /// ```
    pub fn negative_cache_capacity(mut self, entries: u64) -> Self {
        self.cache.negative_capacity = entries;
        self
    }

    /// How long an unknown token is remembered. Default: 5 s. `Duration::ZERO` disables
    /// negative caching.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::{SessionManager, MemoryStore};
    /// let sessions = SessionManager::builder(MemoryStore::new())
    ///     .negative_cache_ttl(Duration::from_secs(1))
    ///     .build()
    ///     .unwrap();
    /// # let _ = sessions;
    /// ```
    pub fn negative_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache.negative_ttl = ttl;
        self
    }

    /// Deadline for each store call. Default: 1 s. Past it the request gets `503` with
    /// `Retry-After`, never a pass-through.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::{SessionManager, MemoryStore};
    /// let sessions = SessionManager::builder(MemoryStore::new())
    ///     .store_timeout(Duration::from_millis(250))
    ///     .build()
    ///     .unwrap();
    /// # let _ = sessions;
    /// ```
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// The clock expiry is judged by. Default: [`SystemClock`].
    ///
    /// ```
    /// # use tower_customer_session::{SessionManager, ManualClock, MemoryStore};
    /// let clock = ManualClock::new(chrono::Utc::now());
    /// let sessions = SessionManager::builder(MemoryStore::with_clock(clock.clone()))
    ///     .clock(clock)
    ///     .build()
    ///     .unwrap();
    /// # let _ = sessions;
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Base of `customer_portal_url` in created sessions; the token and email are appended
    /// as query parameters. Default: `/portal`.
    ///
    /// ```
    /// # use tower_customer_session::{SessionManager, MemoryStore};
    /// let sessions = SessionManager::builder(MemoryStore::new())
    ///     .portal_url("https://shop.example/portal")
    ///     .build()
    ///     .unwrap();
    /// # let _ = sessions;
    /// ```
    pub fn portal_url(mut self, url: impl Into<String>) -> Self {
        self.portal_url = url.into();
        self
    }

    /// What the cache does while the store's invalidation feed is down. Default:
    /// [`FeedPolicy::BypassCache`]: flush, and ask the store for every request until the
    /// feed is back. Stores without a feed are not affected.
    ///
    /// ```
    /// # use tower_customer_session::{SessionManager, MemoryStore};
    /// use tower_customer_session::store::FeedPolicy;
    ///
    /// // Availability over freshness: a revocation made elsewhere during a feed outage holds
    /// // within `cache_max_ttl` instead of within the store's silence bound.
    /// let sessions = SessionManager::builder(MemoryStore::new())
    ///     .feed_policy(FeedPolicy::ServeCached)
    ///     .build()
    ///     .unwrap();
    /// # let _ = sessions;
    /// ```
    pub fn feed_policy(mut self, policy: FeedPolicy) -> Self {
        self.feed_policy = policy;
        self
    }

    /// Build the handle, and start the store's invalidation feed if it has one.
    ///
    /// # Errors
    ///
    /// [`BuildError::SecretRequired`] for a shared store without [`secret`](Self::secret);
    /// [`BuildError::SecretTooShort`] for a secret under [`MIN_SECRET_LEN`](crate::token::MIN_SECRET_LEN);
    /// [`BuildError::NoRuntime`] for a store with a feed outside a Tokio runtime.
    ///
    /// ```
    /// # use tower_customer_session::{SessionManager, MemoryStore};
    /// use tower_customer_session::store::DynStore;
    ///
    /// // The memory store lives and dies with the process: a random secret is fine.
    /// assert!(SessionManager::builder(MemoryStore::new()).build().is_ok());
    /// // Type-erased, it no longer says so, and counts as shared.
    /// assert!(SessionManager::builder(DynStore::new(MemoryStore::new())).build().is_err());
    /// ```
    pub fn build(self) -> Result<SessionManager<S>, BuildError> {
        let secret = match self.secret {
            Some(secret) if secret.len() < MIN_SECRET_LEN => {
                return Err(BuildError::SecretTooShort {
                    len: secret.len(),
                    min: MIN_SECRET_LEN,
                });
            }
            Some(secret) => secret,
            None if self.store.scope() == StoreScope::Process => {
                let mut key = vec![0u8; 32];
                getrandom::fill(&mut key).map_err(BuildError::Random)?;
                key
            }
            None => return Err(BuildError::SecretRequired),
        };
        // An accepted key is a key like the current one.
        if let Some(short) = self.accepted.iter().find(|k| k.len() < MIN_SECRET_LEN) {
            return Err(BuildError::SecretTooShort {
                len: short.len(),
                min: MIN_SECRET_LEN,
            });
        }
        let config = CacheConfig {
            // A revocation seen here is remembered as long as a session can live.
            revocation_memory: self.session_ttl,
            ..self.cache
        };
        let cache = Arc::new(SessionCache::new(&config, self.clock.clone()));
        let store = self.store;
        let feed = Feed::start(
            cache.clone(),
            self.feed_policy,
            self.clock.clone(),
            |sink| store.watch(sink),
        )?;
        Ok(SessionManager {
            inner: Arc::new(Inner {
                hasher: TokenHasher::new(&secret),
                accepted: self
                    .accepted
                    .iter()
                    .filter(|other| **other != secret)
                    .map(|other| TokenHasher::new(other))
                    .collect(),
                cache,
                feed,
                store,
                format: self.format,
                session_ttl: chrono::TimeDelta::from_std(self.session_ttl)
                    .unwrap_or(chrono::TimeDelta::MAX),
                store_timeout: self.store_timeout,
                clock: self.clock,
                portal_url: self.portal_url,
            }),
        })
    }
}
