//! The in-process cache in front of the store: hits, negative hits and coalesced misses.
//!
//! * Positive entries live `min(expires_at − now, max_ttl)`; expiry is re-checked by the
//!   caller on every hit anyway, so a stale timer can never extend a session.
//! * Negative entries (unknown or dead tokens) live in a second, separately bounded cache
//!   with a short TTL, so a flood of random tokens cannot evict real sessions.
//! * Concurrent misses for one token share one store load ([`SessionCache::coalesce`]).
//!   Errors are handed to the waiting callers but never cached.
//! * Revocation bumps an epoch and invalidates under one lock; a load inserts only if no
//!   revocation that could concern it happened since it read the [`Epoch`] (before asking
//!   the store), so a load that raced a revocation never puts the session back (see
//!   [`SessionCache::insert_if_current`] and [`epochs`]). A customer invalidation disturbs
//!   only loads of that customer's sessions.
//! * A finished flight is not joined by later callers, and a caller never accepts a session
//!   read before a revocation that completed before the caller arrived.
//! * Customer-wide invalidations go through a customer → hashes index kept next to the
//!   cache, not moka predicates, which moka would evaluate on every hit until its
//!   housekeeper had scanned the whole cache.
//! * A revocation whose store call failed leaves a tombstone for `max_ttl`: the session may
//!   still be revoked later by the backend, so it is not cached again until then. The
//!   record is bounded and never drops one early; when full, nothing is cached
//!   ([`tombstones`]).
//! * While an invalidation feed is down (default policy), the cache is bypassed: no lookups,
//!   no inserts (see [`crate::store::FeedPolicy`]).

mod aliases;
mod epochs;
mod revoked;
mod tombstones;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use aliases::Aliases;
pub(crate) use epochs::Epoch;
use epochs::{Epochs, STRIPES, stripe};
use revoked::{Remembered, Revoked};
use tombstones::{Recorded, Tombstones};

use moka::sync::Cache;
use smallvec::SmallVec;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::clock::Clock;
use crate::extension::SessionInfo;
use crate::metrics::{CacheResult, Metrics};
use crate::model::Customer;
use crate::reject::{InvalidToken, Rejection, StoreUnavailable};
use crate::store::Invalidation;
use crate::token::{DigestState, TokenHash};

/// A resolved session as cached: the customer and the session's facts.
#[derive(Debug)]
pub(crate) struct CachedSession {
    /// The hash the token is presented by (under the current key), which the cache is
    /// keyed by; `info.token_hash` is the one the store keeps, which differs for a session
    /// found under an accepted older key.
    pub(crate) presented: TokenHash,
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
pub(crate) type Fetched = (Epoch, LoadOutcome);

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
    /// How long a revocation seen here is remembered: the longest a session can live.
    pub(crate) revocation_memory: Duration,
}

type Flights = HashMap<TokenHash, Weak<Flight>, DigestState>;

/// Shards of the customer index, so inserts of different customers rarely contend.
const INDEX_SHARDS: usize = 16;

pub(crate) struct SessionCache {
    positive: Cache<TokenHash, Arc<CachedSession>, DigestState>,
    negative: Option<Cache<TokenHash, InvalidToken, DigestState>>,
    /// In-flight loads, sharded like the epochs so that misses of different tokens do not
    /// queue on one lock.
    flights: [Mutex<Flights>; STRIPES],
    /// What lets a load tell whether a revocation raced it; its locks also order inserts
    /// against revocations.
    epochs: Epochs,
    by_customer: Arc<CustomerIndex>,
    /// Stored → presented hashes of sessions found under an accepted older key.
    aliases: Arc<Aliases>,
    /// Sessions and customers whose revocation may not have reached the store.
    tombstones: Tombstones,
    /// Sessions and customers whose revocation this instance saw succeed.
    revoked: Revoked,
    /// Set while an invalidation feed is down under the default policy.
    bypass: AtomicBool,
    pub(crate) metrics: Metrics,
}

/// Which cached hashes belong to which customer. Entries are added under the stripe lock
/// that orders inserts against revocations, and removed by moka's eviction listener. Each
/// entry remembers which cached value it stands for, so a late notice about an old value
/// never unlists the value that replaced it.
struct CustomerIndex {
    shards: [Mutex<HashMap<Uuid, Listed>>; INDEX_SHARDS],
}

/// One customer's cached sessions. Most customers have one at a time: kept inline, it costs
/// no allocation to list and none to unlist, which on many threads means no contended
/// `free` on every eviction.
type Listed = SmallVec<[Indexed; 1]>;

struct Indexed {
    hash: TokenHash,
    /// Identity of the cached `Arc<CachedSession>` (its address while it lives).
    value: usize,
}

impl CustomerIndex {
    fn shard(&self, customer_id: &Uuid) -> MutexGuard<'_, HashMap<Uuid, Listed>> {
        let shard = customer_id.as_bytes()[15] as usize % INDEX_SHARDS;
        // Plain maps edited one call at a time: a panic cannot leave one half-written.
        self.shards[shard].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, customer_id: Uuid, hash: TokenHash, value: &Arc<CachedSession>) {
        let mut shard = self.shard(&customer_id);
        let entries = shard.entry(customer_id).or_default();
        entries.retain(|e| e.hash != hash);
        entries.push(Indexed {
            hash,
            value: Arc::as_ptr(value) as usize,
        });
    }

    fn remove(&self, customer_id: Uuid, hash: &TokenHash, value: &Arc<CachedSession>) {
        let value = Arc::as_ptr(value) as usize;
        let mut shard = self.shard(&customer_id);
        if let Some(entries) = shard.get_mut(&customer_id) {
            entries.retain(|e| !(e.hash == *hash && e.value == value));
            if entries.is_empty() {
                shard.remove(&customer_id);
            }
        }
    }

    fn take(&self, customer_id: Uuid) -> Listed {
        self.shard(&customer_id)
            .remove(&customer_id)
            .unwrap_or_default()
    }

    fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap().values().map(|l| l.len()).sum::<usize>())
            .sum()
    }
}

/// Whether [`SessionCache::insert_if_current`] kept the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    Cached,
    /// A revocation moved the epoch since the load began: the entry may be revoked.
    Raced,
    /// Not cached (feed down, or a revocation not confirmed), but valid to hand out.
    Skipped,
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
        let by_customer = Arc::new(CustomerIndex {
            shards: std::array::from_fn(|_| Mutex::default()),
        });
        let index = by_customer.clone();
        let aliases = Arc::new(Aliases::default());
        let unlist = aliases.clone();
        let positive = Cache::builder()
            .max_capacity(config.capacity)
            .expire_after(SessionExpiry {
                clock,
                max_ttl: config.max_ttl,
            })
            .eviction_listener(move |hash: Arc<TokenHash>, entry: Arc<CachedSession>, _| {
                index.remove(entry.info.customer_id, &hash, &entry);
                if entry.presented != entry.info.token_hash {
                    unlist.forget(&entry.info.token_hash, &hash);
                }
            })
            .build_with_hasher(DigestState);
        let negative =
            (config.negative_capacity > 0 && !config.negative_ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(config.negative_capacity)
                    .time_to_live(config.negative_ttl)
                    .build_with_hasher(DigestState)
            });
        Self {
            positive,
            negative,
            flights: std::array::from_fn(|_| Mutex::default()),
            epochs: Epochs::new(),
            by_customer,
            aliases,
            tombstones: Tombstones::new(config.max_ttl, tombstones::CAPACITY),
            revoked: Revoked::new(config.revocation_memory),
            bypass: AtomicBool::new(false),
            metrics: Metrics::new(),
        }
    }

    /// Report the entry counts (approximate: moka counts lazily).
    pub(crate) fn report_entries(&self) {
        let negative = self.negative.as_ref().map_or(0, Cache::entry_count);
        self.metrics.entries(self.positive.entry_count(), negative);
    }

    /// Stop (or resume) serving from and filling the cache.
    pub(crate) fn set_bypass(&self, bypass: bool) {
        self.bypass.store(bypass, Ordering::SeqCst);
    }

    /// Probe both caches without waiting.
    pub(crate) fn lookup(&self, hash: &TokenHash) -> Lookup {
        if self.bypass.load(Ordering::Relaxed) {
            return Lookup::Miss;
        }
        if let Some(hit) = self.positive.get(hash) {
            return Lookup::Hit(hit);
        }
        match self.negative.as_ref().and_then(|n| n.get(hash)) {
            Some(reason) => Lookup::Negative(reason),
            None => Lookup::Miss,
        }
    }

    /// Cache `entry` under `hash` unless a revocation of its session or its customer
    /// happened since `epoch` was read (before the store was asked). `stored` is the hash
    /// the store keeps and its epoch, for a session found under an accepted older key.
    /// Checked and inserted under the locks that those revocations take, so a revoked
    /// session is never put back, not even for an instant.
    pub(crate) fn insert_if_current(
        &self,
        hash: TokenHash,
        entry: Arc<CachedSession>,
        epoch: Epoch,
        stored: Option<(TokenHash, u64)>,
    ) -> Insert {
        let customer_id = entry.info.customer_id;
        let other = stored.map_or(hash, |(stored, _)| stored);
        let (session, other_session) = self.epochs.sessions(&hash, &other);
        if *session != epoch.session {
            return Insert::Raced;
        }
        if let Some((_, other_epoch)) = stored {
            let current = other_session.as_deref().copied().unwrap_or(*session);
            if current != other_epoch {
                return Insert::Raced;
            }
        }
        let customer = self.epochs.customer(&customer_id);
        if customer.changed_since(customer_id, epoch.customers) {
            return Insert::Raced;
        }
        if self.bypass.load(Ordering::SeqCst)
            || self.tombstones.block(&hash, &customer_id)
            || (other != hash && self.tombstones.block(&other, &customer_id))
        {
            return Insert::Skipped;
        }
        if other != hash {
            self.aliases.add(other, hash);
        }
        self.by_customer.add(customer_id, hash, &entry);
        self.positive.insert(hash, entry);
        Insert::Cached
    }

    pub(crate) fn insert_negative(&self, hash: TokenHash, reason: InvalidToken) {
        if self.bypass.load(Ordering::Relaxed) {
            return;
        }
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

    /// The session epoch of `hash` alone, read before asking the store for a hash other
    /// than the presented one.
    pub(crate) fn session_epoch(&self, hash: &TokenHash) -> u64 {
        *self.epochs.session(hash)
    }

    /// The revocation epoch that concerns `hash`. A loader reads it before asking the
    /// store and passes it to [`insert_if_current`](Self::insert_if_current).
    pub(crate) fn epoch(&self, hash: &TokenHash) -> Epoch {
        self.epochs.read(hash)
    }

    /// Whether a load that read `flight` may answer a caller that read `since` on arrival:
    /// no revocation of its session or its customer happened in between.
    fn current_for(&self, flight: Epoch, since: Epoch, entry: &CachedSession) -> bool {
        if flight.session < since.session {
            return false;
        }
        flight.customers >= since.customers || {
            let id = entry.info.customer_id;
            !self
                .epochs
                .customer(&id)
                .changed_since(id, flight.customers)
        }
    }

    fn flights(&self, hash: &TokenHash) -> MutexGuard<'_, Flights> {
        // A map edited one call at a time: a panic cannot leave it half-written.
        self.flights[stripe(hash)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Remove one session (after the store has revoked it), by the hash the store keeps or
    /// the one it is presented by.
    pub(crate) fn invalidate(&self, hash: &TokenHash) {
        let mut epoch = self.epochs.session(hash);
        *epoch += 1;
        self.positive.invalidate(hash);
        if let Some(presented) = self.aliases.take(hash) {
            self.positive.invalidate(&presented);
        }
    }

    /// Remove every cached session of a customer: one index lookup and a removal per
    /// session, so hits never pay for it, and only loads of this customer are disturbed.
    pub(crate) fn invalidate_customer(&self, customer_id: Uuid) {
        let _log = self.epochs.bump_customer(customer_id);
        // Taken out first: moka's eviction listener takes the same shard lock.
        for indexed in self.by_customer.take(customer_id) {
            self.positive.invalidate(&indexed.hash);
        }
    }

    /// Remove everything (e.g. when a cross-instance invalidation channel was lost).
    pub(crate) fn invalidate_all(&self) {
        let _locked = self.epochs.bump_all();
        self.positive.invalidate_all();
        self.by_customer.clear();
        self.aliases.clear();
        if let Some(negative) = &self.negative {
            negative.invalidate_all();
        }
    }

    /// A revocation of `hash` may not have reached the store: never cache it again
    /// until `max_ttl` has passed.
    pub(crate) fn tombstone(&self, hash: TokenHash) {
        self.note(self.tombstones.session(hash));
        self.invalidate(&hash);
    }

    /// As [`tombstone`](Self::tombstone), for every session of a customer.
    pub(crate) fn tombstone_customer(&self, customer_id: Uuid) {
        self.note(self.tombstones.customer(customer_id));
        self.invalidate_customer(customer_id);
    }

    fn note(&self, recorded: Recorded) {
        if recorded == Recorded::Full {
            tracing::warn!(
                "too many unconfirmed revocations: the session cache stops filling until they expire"
            );
            self.metrics.tombstones_full();
        }
    }

    /// The store confirmed the revocation of `hash`: never believe it serves it again.
    pub(crate) fn remember_revoked(&self, hash: &TokenHash) {
        self.note_revoked(self.revoked.remember(hash));
    }

    /// The store confirmed a revocation of every session `customer` had at `at`.
    pub(crate) fn remember_customer_revoked(
        &self,
        customer: Uuid,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        self.note_revoked(self.revoked.remember_customer(customer, at));
    }

    fn note_revoked(&self, remembered: Remembered) {
        if remembered == Remembered::OverCapacity {
            self.metrics.revocation_record_full();
        }
    }

    /// Whether the store just served a session this instance saw revoked (its stored hash,
    /// or its customer's sessions from before a `revoke_all` or a deletion).
    pub(crate) fn saw_revoked(
        &self,
        stored: &TokenHash,
        customer: Uuid,
        created_at: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        self.revoked.refuses(stored, customer, created_at)
    }

    /// Apply a change announced by another instance, exactly as a local revocation.
    pub(crate) fn apply(&self, invalidation: Invalidation) {
        match invalidation {
            Invalidation::Session(hash) => {
                self.invalidate(&hash);
                // The change may make a refused token valid (a revocation undone in SQL).
                self.forget_negative(&hash);
            }
            Invalidation::Customer(id) => self.invalidate_customer(id),
            Invalidation::All => self.invalidate_all(),
        }
    }

    /// Number of positive entries (approximate; moka counts lazily).
    pub(crate) fn entry_count(&self) -> u64 {
        self.positive.run_pending_tasks();
        if let Some(negative) = &self.negative {
            negative.run_pending_tasks();
        }
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
            match &outcome {
                Ok(entry) if !self.current_for(epoch, since, entry) => {}
                _ => return outcome,
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
            let mut flights = self.flights(&hash);
            let running = flights
                .get(&hash)
                .and_then(Weak::upgrade)
                .filter(|flight| !flight.outcome.initialized());
            match running {
                Some(flight) => {
                    self.metrics.cache(CacheResult::Coalesced);
                    flight
                }
                None => {
                    // A flight that just finished inserted its result before leaving; look
                    // again under the lock so a late caller does not load a second time.
                    match self.lookup(&hash) {
                        // Cached entries are current: revocations remove them under the
                        // same lock that guards their insertion.
                        Lookup::Hit(hit) => return (Epoch::CURRENT, Ok(hit)),
                        Lookup::Negative(reason) => {
                            return (Epoch::CURRENT, Err(Rejection::InvalidToken(reason)));
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

/// Leaves a flight; the last participant out removes it from the map.
struct FlightGuard<'a> {
    cache: &'a SessionCache,
    hash: TokenHash,
    flight: Option<Arc<Flight>>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        drop(self.flight.take());
        let mut flights = self.cache.flights(&self.hash);
        if flights
            .get(&self.hash)
            .is_some_and(|weak| weak.strong_count() == 0)
        {
            flights.remove(&self.hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::extension::CredentialSource;
    use crate::model::CustomerData;
    use crate::token::TokenKind;

    fn cache() -> (SessionCache, ManualClock) {
        let clock = ManualClock::new(chrono::Utc::now());
        let config = CacheConfig {
            capacity: 1_000,
            max_ttl: Duration::from_secs(60),
            negative_capacity: 100,
            negative_ttl: Duration::from_secs(5),
            revocation_memory: Duration::from_secs(3600),
        };
        (SessionCache::new(&config, Arc::new(clock.clone())), clock)
    }

    fn entry(clock: &ManualClock, customer: &Customer, n: u8) -> (TokenHash, Arc<CachedSession>) {
        let hash = TokenHash::from_bytes([n; 32]);
        let expires_at = clock.now() + chrono::TimeDelta::hours(1);
        let entry = CachedSession {
            presented: hash,
            customer: customer.clone(),
            info: SessionInfo {
                id: Uuid::new_v4(),
                customer_id: customer.id,
                expires_at,
                kind: TokenKind::Customer,
                source: CredentialSource::Header,
                return_url: None,
                token_hash: hash,
                member: None,
            },
            expires_at_micros: expires_at.timestamp_micros(),
            customer_active: true,
        };
        (hash, Arc::new(entry))
    }

    fn insert(cache: &SessionCache, (hash, entry): (TokenHash, Arc<CachedSession>)) -> Insert {
        let epoch = cache.epoch(&hash);
        cache.insert_if_current(hash, entry, epoch, None)
    }

    fn customer() -> Customer {
        Customer::new(CustomerData::new(chrono::Utc::now()))
    }

    impl CachedSession {
        fn clone_for_test(&self) -> Self {
            Self {
                presented: self.presented,
                customer: self.customer.clone(),
                info: self.info.clone(),
                expires_at_micros: self.expires_at_micros,
                customer_active: self.customer_active,
            }
        }
    }

    fn is_hit(cache: &SessionCache, hash: &TokenHash) -> bool {
        matches!(cache.lookup(hash), Lookup::Hit(_))
    }

    #[test]
    fn invalidate_customer_drops_exactly_that_customers_entries() {
        let (cache, clock) = cache();
        let (jane, john) = (customer(), customer());
        for n in 0..3 {
            assert_eq!(insert(&cache, entry(&clock, &jane, n)), Insert::Cached);
        }
        assert_eq!(insert(&cache, entry(&clock, &john, 9)), Insert::Cached);
        assert_eq!(cache.by_customer.len(), 4);

        cache.invalidate_customer(jane.id);
        for n in 0..3 {
            assert!(!is_hit(&cache, &TokenHash::from_bytes([n; 32])));
        }
        assert!(is_hit(&cache, &TokenHash::from_bytes([9; 32])));
        cache.positive.run_pending_tasks();
        assert_eq!(
            cache.by_customer.len(),
            1,
            "only John's entry stays indexed"
        );
    }

    #[test]
    fn a_late_eviction_notice_does_not_unlist_the_entry_that_replaced_it() {
        let (cache, clock) = cache();
        let jane = customer();
        insert(&cache, entry(&clock, &jane, 1));
        // `invalidate_all` notifies lazily; the same key is cached again before it does.
        cache.invalidate_all();
        insert(&cache, entry(&clock, &jane, 1));
        cache.positive.run_pending_tasks();
        cache.invalidate_customer(jane.id);
        assert!(
            !is_hit(&cache, &TokenHash::from_bytes([1; 32])),
            "the re-inserted entry was still indexed, so the customer invalidation found it"
        );
    }

    #[test]
    fn an_insert_that_raced_a_revocation_is_refused() {
        let (cache, clock) = cache();
        let (hash, value) = entry(&clock, &customer(), 1);
        let epoch = cache.epoch(&hash);
        cache.invalidate(&hash);
        assert_eq!(
            cache.insert_if_current(hash, value, epoch, None),
            Insert::Raced
        );
        assert!(!is_hit(&cache, &hash));
    }

    #[test]
    fn tombstones_keep_unconfirmed_revocations_out_of_the_cache() {
        let (cache, clock) = cache();
        let (jane, john) = (customer(), customer());
        let janes = entry(&clock, &jane, 1);
        cache.tombstone(janes.0);
        assert_eq!(insert(&cache, janes.clone()), Insert::Skipped);
        assert!(!is_hit(&cache, &janes.0));

        cache.tombstone_customer(john.id);
        assert_eq!(insert(&cache, entry(&clock, &john, 2)), Insert::Skipped);
        assert_eq!(insert(&cache, entry(&clock, &jane, 3)), Insert::Cached);
    }

    #[test]
    fn a_bypassed_cache_neither_answers_nor_fills() {
        let (cache, clock) = cache();
        let jane = customer();
        let cached = entry(&clock, &jane, 1);
        insert(&cache, cached.clone());
        cache.insert_negative(TokenHash::from_bytes([7; 32]), InvalidToken::Unknown);
        cache.set_bypass(true);
        assert!(matches!(cache.lookup(&cached.0), Lookup::Miss));
        assert!(matches!(
            cache.lookup(&TokenHash::from_bytes([7; 32])),
            Lookup::Miss
        ));
        assert_eq!(insert(&cache, entry(&clock, &jane, 2)), Insert::Skipped);
        cache.set_bypass(false);
        assert!(
            !is_hit(&cache, &TokenHash::from_bytes([2; 32])),
            "nothing was cached meanwhile"
        );
    }

    #[test]
    fn feed_invalidations_apply_like_local_ones() {
        let (cache, clock) = cache();
        let jane = customer();
        let first = entry(&clock, &jane, 1);
        let second = entry(&clock, &jane, 2);
        insert(&cache, first.clone());
        insert(&cache, second.clone());
        let epoch = cache.epoch(&first.0);
        cache.apply(Invalidation::Session(first.0));
        assert!(!is_hit(&cache, &first.0));
        assert!(is_hit(&cache, &second.0));
        assert_eq!(
            cache.insert_if_current(first.0, first.1, epoch, None),
            Insert::Raced
        );
        cache.apply(Invalidation::Customer(jane.id));
        assert!(!is_hit(&cache, &second.0));
    }

    #[test]
    fn a_customer_invalidation_disturbs_only_that_customers_loads() {
        let (cache, clock) = cache();
        let (jane, john) = (customer(), customer());
        let (janes, johns) = (entry(&clock, &jane, 1), entry(&clock, &john, 2));
        let (jane_epoch, john_epoch) = (cache.epoch(&janes.0), cache.epoch(&johns.0));
        // A stream of other customers' invalidations while both loads are in flight.
        for _ in 0..1_000 {
            cache.invalidate_customer(Uuid::new_v4());
        }
        cache.invalidate_customer(jane.id);
        assert_eq!(
            cache.insert_if_current(janes.0, janes.1, jane_epoch, None),
            Insert::Raced,
            "Jane's load raced her own invalidation"
        );
        assert_eq!(
            cache.insert_if_current(johns.0, johns.1, john_epoch, None),
            Insert::Cached,
            "John's load is not disturbed by anybody else's"
        );
    }

    #[test]
    fn a_feed_message_for_a_session_also_clears_its_negative_entry() {
        let (cache, _) = cache();
        let hash = TokenHash::from_bytes([4; 32]);
        cache.insert_negative(hash, InvalidToken::Unknown);
        assert!(matches!(cache.lookup(&hash), Lookup::Negative(_)));
        cache.apply(Invalidation::Session(hash));
        assert!(
            matches!(cache.lookup(&hash), Lookup::Miss),
            "a revocation undone elsewhere is asked again, not refused for the negative TTL"
        );
    }

    #[test]
    fn a_flood_of_failed_revocations_never_lets_a_real_one_be_cached() {
        let (cache, clock) = cache();
        let jane = customer();
        let real = entry(&clock, &jane, 1);
        cache.tombstone(real.0);
        for n in 0..(tombstones::CAPACITY as u32 + 100) {
            let mut bytes = [0xee; 32];
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            cache.tombstone(TokenHash::from_bytes(bytes));
        }
        assert_eq!(insert(&cache, real.clone()), Insert::Skipped);
        assert!(!is_hit(&cache, &real.0));
        assert_eq!(
            insert(&cache, entry(&clock, &customer(), 9)),
            Insert::Skipped,
            "with the record full, nothing is cached"
        );
    }

    #[test]
    fn a_session_found_under_an_older_key_goes_with_its_stored_hash() {
        let (cache, clock) = cache();
        let jane = customer();
        let (presented, entry) = entry(&clock, &jane, 1);
        let stored = TokenHash::from_bytes([2; 32]);
        let aliased = || {
            let mut copy = CachedSession::clone_for_test(&entry);
            copy.info.token_hash = stored;
            Arc::new(copy)
        };

        // A revocation of the stored hash while the load was in flight: not cached.
        let epoch = cache.epoch(&presented);
        let stored_epoch = cache.session_epoch(&stored);
        cache.invalidate(&stored);
        assert_eq!(
            cache.insert_if_current(presented, aliased(), epoch, Some((stored, stored_epoch))),
            Insert::Raced
        );

        // Cached under the presented hash; a revocation naming the stored one drops it.
        let epoch = cache.epoch(&presented);
        let stored_epoch = cache.session_epoch(&stored);
        assert_eq!(
            cache.insert_if_current(presented, aliased(), epoch, Some((stored, stored_epoch))),
            Insert::Cached
        );
        assert!(is_hit(&cache, &presented));
        cache.apply(Invalidation::Session(stored));
        assert!(!is_hit(&cache, &presented));
    }
}
