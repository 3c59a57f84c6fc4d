//! Configuration of [`CustomerSessions`].

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;

use super::{CustomerSessions, Inner};
use crate::cache::{CacheConfig, SessionCache};
use crate::clock::{Clock, SystemClock};
use crate::store::SessionStore;
use crate::token::{TokenFormat, TokenHasher};

/// Builds [`CustomerSessions`]; every setting has a default stated on its method.
///
/// ```
/// use std::time::Duration;
/// use tower_customer_session::{CustomerSessions, MemoryStore};
///
/// let sessions = CustomerSessions::builder(MemoryStore::new())
///     .secret(b"read this from your secret manager")
///     .cache_capacity(50_000)
///     .cache_max_ttl(Duration::from_secs(30))
///     .store_timeout(Duration::from_millis(250))
///     .build();
/// # let _ = sessions;
/// ```
#[must_use]
pub struct CustomerSessionsBuilder<S> {
    store: S,
    secret: Option<Vec<u8>>,
    format: TokenFormat,
    session_ttl: TimeDelta,
    cache: CacheConfig,
    store_timeout: Duration,
    clock: Arc<dyn Clock>,
    portal_url: String,
}

impl<S: SessionStore> CustomerSessionsBuilder<S> {
    pub(super) fn new(store: S) -> Self {
        Self {
            store,
            secret: None,
            format: TokenFormat::polar(),
            session_ttl: TimeDelta::hours(1),
            cache: CacheConfig {
                capacity: 100_000,
                max_ttl: Duration::from_secs(60),
                negative_capacity: 10_000,
                negative_ttl: Duration::from_secs(5),
            },
            store_timeout: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
            portal_url: "/portal".to_owned(),
        }
    }

    /// The HMAC key for token hashes (Polar's `SECRET`).
    ///
    /// Default: 32 random bytes per process, which is only right for a single process on
    /// the [`MemoryStore`](crate::MemoryStore). Every instance sharing a store must use the
    /// same secret, or none of them finds the others' sessions.
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessions, MemoryStore};
    /// let sessions = CustomerSessions::builder(MemoryStore::new())
    ///     .secret(b"super secret jwt secret")
    ///     .build();
    /// let hash = sessions.hasher().hash("polar_cst_mDzyMJMtMi1pdvsJXMR2wHGk5Q6bbyD5UowKl0L1tZ2");
    /// assert!(hash.to_hex().starts_with("4766cc05"));
    /// ```
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    /// Accepted token prefixes. Default: [`TokenFormat::polar`] (`polar_cst_`, `polar_mst_`).
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessions, MemoryStore, token::TokenFormat};
    /// let sessions = CustomerSessions::builder(MemoryStore::new())
    ///     .token_format(TokenFormat::new("shop_cst_", "shop_mst_").unwrap())
    ///     .build();
    /// assert_eq!(sessions.format().prefix(Default::default()), "shop_cst_");
    /// ```
    pub fn token_format(mut self, format: TokenFormat) -> Self {
        self.format = format;
        self
    }

    /// Lifetime of sessions made by [`create`](CustomerSessions::create). Default: 1 hour
    /// (Polar's `CUSTOMER_SESSION_TTL`); absolute, never extended by use.
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessions, MemoryStore};
    /// let sessions = CustomerSessions::builder(MemoryStore::new())
    ///     .session_ttl(chrono::TimeDelta::minutes(15))
    ///     .build();
    /// # let _ = sessions;
    /// ```
    pub fn session_ttl(mut self, ttl: TimeDelta) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Most sessions kept in the cache. Default: 100,000. Admission is frequency-based, so
    /// a full cache keeps the sessions in use.
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessions, MemoryStore};
    /// let sessions = CustomerSessions::builder(MemoryStore::new()).cache_capacity(1_000).build();
    /// # let _ = sessions;
    /// ```
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.cache.capacity = entries;
        self
    }

    /// Longest a session stays cached before the store is asked again. Default: 60 s.
    ///
    /// An entry never outlives its session's `expires_at`. Revocations through these
    /// `CustomerSessions` apply at once; this bounds how long a revocation made elsewhere
    /// (another process sharing the store) can go unseen.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::{CustomerSessions, MemoryStore};
    /// let sessions = CustomerSessions::builder(MemoryStore::new())
    ///     .cache_max_ttl(Duration::from_secs(10))
    ///     .build();
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
    /// # use tower_customer_session::{CustomerSessions, MemoryStore};
    /// let sessions = CustomerSessions::builder(MemoryStore::new())
    ///     .negative_cache_capacity(0)
    ///     .build();
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
    /// # use tower_customer_session::{CustomerSessions, MemoryStore};
    /// let sessions = CustomerSessions::builder(MemoryStore::new())
    ///     .negative_cache_ttl(Duration::from_secs(1))
    ///     .build();
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
    /// # use tower_customer_session::{CustomerSessions, MemoryStore};
    /// let sessions = CustomerSessions::builder(MemoryStore::new())
    ///     .store_timeout(Duration::from_millis(250))
    ///     .build();
    /// # let _ = sessions;
    /// ```
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// The clock expiry is judged by. Default: [`SystemClock`].
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessions, ManualClock, MemoryStore};
    /// let clock = ManualClock::new(chrono::Utc::now());
    /// let sessions = CustomerSessions::builder(MemoryStore::with_clock(clock.clone()))
    ///     .clock(clock)
    ///     .build();
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
    /// # use tower_customer_session::{CustomerSessions, MemoryStore};
    /// let sessions = CustomerSessions::builder(MemoryStore::new())
    ///     .portal_url("https://shop.example/portal")
    ///     .build();
    /// # let _ = sessions;
    /// ```
    pub fn portal_url(mut self, url: impl Into<String>) -> Self {
        self.portal_url = url.into();
        self
    }

    /// Build the handle.
    pub fn build(self) -> CustomerSessions<S> {
        let secret = self.secret.unwrap_or_else(|| {
            let mut key = vec![0u8; 32];
            getrandom::fill(&mut key).expect("the OS random number generator is available");
            key
        });
        CustomerSessions {
            inner: Arc::new(Inner {
                hasher: TokenHasher::new(&secret),
                cache: SessionCache::new(&self.cache, self.clock.clone()),
                store: self.store,
                format: self.format,
                session_ttl: self.session_ttl,
                store_timeout: self.store_timeout,
                clock: self.clock,
                portal_url: self.portal_url,
            }),
        }
    }
}
