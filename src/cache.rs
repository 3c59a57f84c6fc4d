//! The in-process cache in front of the store: hits, negative hits and coalesced misses.
//!
//! * Positive entries live `min(expires_at − now, max_ttl)`; expiry is re-checked by the
//!   caller on every hit anyway, so a stale timer can never extend a session.
//! * Negative entries (unknown or dead tokens) live in a second, separately bounded cache
//!   with a short TTL, so a flood of random tokens cannot evict real sessions.
//! * Concurrent misses for one token share one store load ([`SessionCache::coalesce`]).
//!   Errors are handed to the waiting callers but never cached.
//! * Revocation bumps an epoch and invalidates under one lock; a load inserts only if the
//!   epoch it read before asking the store is still current, so a load that raced a
//!   revocation never puts the session back (see [`SessionCache::insert_if_current`]).
//! * A finished flight is not joined by later callers, and a caller never accepts a session
//!   read before a revocation that completed before the caller arrived.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::clock::Clock;
use crate::extension::SessionInfo;
use crate::model::Customer;
use crate::reject::{InvalidToken, Rejection, StoreUnavailable};
use crate::token::TokenHash;

/// A resolved session as cached: the customer and the session's facts.
#[derive(Debug)]
pub(crate) struct CachedSession {
    pub(crate) customer: Customer,
    pub(crate) info: SessionInfo,
    /// `info.expires_at` in microseconds, so the per-request check is one integer compare.
    pub(crate) expires_at_micros: i64,
    /// Whether `customer` may authenticate. The cached `Customer` is an immutable snapshot
    /// (edits copy on write), so this is the same answer as asking it, without touching the
    /// customer's memory on every hit.
    pub(crate) customer_active: bool,
}

/// The result every participant of a coalesced load receives.
pub(crate) type LoadOutcome = Result<Arc<CachedSession>, Rejection>;

/// A load's outcome and the revocation epoch read before the store was asked.
pub(crate) type Fetched = (u64, LoadOutcome);

/// What a synchronous cache probe found.
pub(crate) enum Lookup {
    Hit(Arc<CachedSession>),
    Negative(InvalidToken),
    Miss,
}

/// Sizes and lifetimes of the two caches.
#[derive(Debug, Clone)]
pub(crate) struct CacheConfig {
    pub(crate) capacity: u64,
    pub(crate) max_ttl: Duration,
    pub(crate) negative_capacity: u64,
    pub(crate) negative_ttl: Duration,
}

/// Epoch stripes: a revocation only disturbs in-flight loads whose hash shares its stripe.
const STRIPES: usize = 64;

pub(crate) struct SessionCache {
    positive: Cache<TokenHash, Arc<CachedSession>>,
    negative: Option<Cache<TokenHash, InvalidToken>>,
    flights: Mutex<HashMap<TokenHash, Weak<Flight>>>,
    /// Revocation epochs by stripe. The lock also orders inserts against revocations.
    epochs: [Mutex<u64>; STRIPES],
}

#[derive(Default)]
struct Flight {
    outcome: OnceCell<Fetched>,
}

/// Per-entry lifetime: never past the session's end, never longer than `max_ttl`.
struct SessionExpiry {
    clock: Arc<dyn Clock>,
    max_ttl: Duration,
}

impl moka::Expiry<TokenHash, Arc<CachedSession>> for SessionExpiry {
    fn expire_after_create(
        &self,
        _: &TokenHash,
        entry: &Arc<CachedSession>,
        _: Instant,
    ) -> Option<Duration> {
        let left = (entry.info.expires_at - self.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        Some(left.min(self.max_ttl))
    }
}

impl SessionCache {
    pub(crate) fn new(config: &CacheConfig, clock: Arc<dyn Clock>) -> Self {
        let positive = Cache::builder()
            .max_capacity(config.capacity)
            .expire_after(SessionExpiry {
                clock,
                max_ttl: config.max_ttl,
            })
            .support_invalidation_closures()
            .build();
        let negative =
            (config.negative_capacity > 0 && !config.negative_ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(config.negative_capacity)
                    .time_to_live(config.negative_ttl)
                    .build()
            });
        Self {
            positive,
            negative,
            flights: Mutex::default(),
            epochs: std::array::from_fn(|_| Mutex::new(0)),
        }
    }

    /// Probe both caches without waiting.
    pub(crate) fn lookup(&self, hash: &TokenHash) -> Lookup {
        if let Some(hit) = self.positive.get(hash) {
            return Lookup::Hit(hit);
        }
        match self.negative.as_ref().and_then(|n| n.get(hash)) {
            Some(reason) => Lookup::Negative(reason),
            None => Lookup::Miss,
        }
    }

    /// Cache `entry` unless `hash`'s epoch has moved past `epoch` (read before the store
    /// was asked). Checked and inserted under the stripe lock that revocations take, so a
    /// revoked session is never put back, not even for an instant.
    pub(crate) fn insert_if_current(
        &self,
        hash: TokenHash,
        entry: Arc<CachedSession>,
        epoch: u64,
    ) -> bool {
        let current = self.stripe(&hash);
        if *current != epoch {
            return false;
        }
        self.positive.insert(hash, entry);
        true
    }

    pub(crate) fn insert_negative(&self, hash: TokenHash, reason: InvalidToken) {
        if let Some(negative) = &self.negative {
            negative.insert(hash, reason);
        }
    }

    /// Drop a negative entry, e.g. when a session with this hash has just been created.
    pub(crate) fn forget_negative(&self, hash: &TokenHash) {
        if let Some(negative) = &self.negative {
            negative.invalidate(hash);
        }
    }

    /// The revocation epoch of `hash`'s stripe. A loader reads it before asking the store
    /// and passes it to [`insert_if_current`](Self::insert_if_current).
    pub(crate) fn epoch(&self, hash: &TokenHash) -> u64 {
        *self.stripe(hash)
    }

    fn stripe(&self, hash: &TokenHash) -> MutexGuard<'_, u64> {
        // The guarded value is a counter; a panic elsewhere cannot leave it inconsistent.
        self.epochs[stripe(hash)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Lock every stripe in index order (the only place more than one is held) and bump
    /// its epoch; inserts wait until the guards are dropped.
    fn bump_all(&self) -> Vec<MutexGuard<'_, u64>> {
        let mut stripes: Vec<_> = self
            .epochs
            .iter()
            .map(|e| e.lock().unwrap_or_else(|e| e.into_inner()))
            .collect();
        for epoch in &mut stripes {
            **epoch += 1;
        }
        stripes
    }

    /// Remove one session (after the store has revoked it).
    pub(crate) fn invalidate(&self, hash: &TokenHash) {
        let mut epoch = self.stripe(hash);
        *epoch += 1;
        self.positive.invalidate(hash);
    }

    /// Remove every cached session of a customer.
    pub(crate) fn invalidate_customer(&self, customer_id: Uuid) {
        let _stripes = self.bump_all();
        // Only fails if invalidation closures were not enabled, which `new` always does.
        let _ = self
            .positive
            .invalidate_entries_if(move |_, entry| entry.info.customer_id == customer_id);
    }

    /// Remove everything (e.g. when a cross-instance invalidation channel was lost).
    pub(crate) fn invalidate_all(&self) {
        let _stripes = self.bump_all();
        self.positive.invalidate_all();
        if let Some(negative) = &self.negative {
            negative.invalidate_all();
        }
    }

    /// Number of positive entries (approximate; moka counts lazily).
    pub(crate) fn entry_count(&self) -> u64 {
        self.positive.run_pending_tasks();
        self.positive.entry_count()
    }

    /// Run `load` once for all concurrent callers with the same `hash`.
    ///
    /// Whoever finds no unfinished flight for the hash starts one; the others wait on it. If
    /// the loading caller is cancelled, a waiter takes over with its own `load`. A finished
    /// flight serves only the callers that were already waiting: its outcome may be an error
    /// (never cached) or predate a revocation, so later callers go by the cache instead.
    pub(crate) async fn coalesce<F, Fut>(&self, hash: TokenHash, load: F) -> LoadOutcome
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Fetched>,
    {
        // Every revocation that completed before this call must hold for what it returns.
        let since = self.epoch(&hash);
        // A flight joined here was started after `since` was read, unless it was already
        // running; so the second round always gets a fresh outcome.
        for _ in 0..2 {
            let (epoch, outcome) = self.join_flight(hash, &load).await;
            if outcome.is_err() || epoch >= since {
                return outcome;
            }
            // The flight read the store before a revocation this caller must see.
        }
        // Unreachable by the argument above; fail closed if it ever is not.
        Err(Rejection::StoreUnavailable(StoreUnavailable::Error))
    }

    async fn join_flight<F, Fut>(&self, hash: TokenHash, load: &F) -> Fetched
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Fetched>,
    {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            let running = flights
                .get(&hash)
                .and_then(Weak::upgrade)
                .filter(|flight| !flight.outcome.initialized());
            match running {
                Some(flight) => flight,
                None => {
                    // A flight that just finished inserted its result before leaving; look
                    // again under the lock so a late caller does not load a second time.
                    match self.lookup(&hash) {
                        // Cached entries are current: revocations remove them under the
                        // same lock that guards their insertion.
                        Lookup::Hit(hit) => return (u64::MAX, Ok(hit)),
                        Lookup::Negative(reason) => {
                            return (u64::MAX, Err(Rejection::InvalidToken(reason)));
                        }
                        Lookup::Miss => {}
                    }
                    let flight = Arc::new(Flight::default());
                    flights.insert(hash, Arc::downgrade(&flight));
                    flight
                }
            }
        };
        let guard = FlightGuard {
            cache: self,
            hash,
            flight: Some(flight),
        };
        let flight = guard.flight.as_ref().expect("set above");
        flight.outcome.get_or_init(load).await.clone()
    }
}

fn stripe(hash: &TokenHash) -> usize {
    hash.as_bytes()[31] as usize % STRIPES
}

/// Leaves a flight; the last participant out removes it from the map.
struct FlightGuard<'a> {
    cache: &'a SessionCache,
    hash: TokenHash,
    flight: Option<Arc<Flight>>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        drop(self.flight.take());
        let mut flights = self.cache.flights.lock().unwrap_or_else(|e| e.into_inner());
        if flights
            .get(&self.hash)
            .is_some_and(|weak| weak.strong_count() == 0)
        {
            flights.remove(&self.hash);
        }
    }
}
