//! The in-process cache in front of the store: hits, negative hits and coalesced misses.
//!
//! * Every probe reads one sharded map ([`front`]) that holds sessions and refused tokens
//!   alike; moka decides what it holds (admission, eviction, expiry) and hears of a sample
//!   of the hits ([`sampling`]). Positive entries are served for
//!   `min(expires_at − now, max_ttl)`; expiry is re-checked by the caller on every hit
//!   anyway, so a stale timer can never extend a session.
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
mod flight;
mod front;
mod index;
mod revoked;
mod sampling;
mod tombstones;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use aliases::Aliases;
pub(crate) use epochs::Epoch;
use epochs::{Epochs, STRIPES, stripe};
use flight::Flight;
use front::{Front, Probe};
use index::CustomerIndex;
use revoked::{Remembered, Revoked};
use tombstones::{Recorded, Tombstones};

use moka::notification::RemovalCause;
use moka::sync::Cache;
use uuid::Uuid;

use crate::clock::Clock;
use crate::extension::SessionInfo;
use crate::metrics::Metrics;
use crate::model::Customer;
use crate::reject::{InvalidToken, Rejection};
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

/// What a synchronous cache probe found; a hit carries what the caller read from the
/// entry.
pub(crate) enum Lookup<T> {
    Hit(T),
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

pub(crate) struct SessionCache {
    /// What every probe reads: the entries of both moka caches.
    front: Arc<Front>,
    positive: Cache<TokenHash, Arc<CachedSession>, DigestState>,
    negative: Option<Cache<TokenHash, InvalidToken, DigestState>>,
    clock: Arc<dyn Clock>,
    max_ttl: Duration,
    negative_ttl: Duration,
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

/// Whether [`SessionCache::insert_if_current`] kept the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    Cached,
    /// A revocation moved the epoch since the load began: the entry may be revoked.
    Raced,
    /// Not cached (feed down, or a revocation not confirmed), but valid to hand out.
    Skipped,
}

/// `after` from now; a lifetime too long for `Instant` (moka refuses those anyway) is
/// capped at a thousand years.
fn deadline(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(1_000 * 365 * 24 * 3600))
}

impl SessionCache {
    pub(crate) fn new(config: &CacheConfig, clock: Arc<dyn Clock>) -> Self {
        let front = Arc::new(Front::new());
        let by_customer = Arc::new(CustomerIndex::new());
        let index = by_customer.clone();
        let aliases = Arc::new(Aliases::default());
        let unlist = aliases.clone();
        let evicted = front.clone();
        // One lifetime for the whole cache: each entry's own, shorter one (its session's
        // end) is kept by its front slot and re-checked on every hit, which spares moka's
        // timer wheel on every insert.
        let positive = Cache::builder()
            .max_capacity(config.capacity)
            .time_to_live(config.max_ttl)
            .eviction_listener(move |hash: Arc<TokenHash>, entry: Arc<CachedSession>, _| {
                // Front slot first: while it may still be served, the index and the
                // aliases still list it, so an invalidation running meanwhile finds it.
                evicted.remove_value(&hash, &entry);
                index.remove(entry.info.customer_id, &hash, &entry);
                if entry.presented != entry.info.token_hash {
                    unlist.forget(&entry.info.token_hash, &hash);
                }
            })
            .build_with_hasher(DigestState);
        let refused = front.clone();
        let negative =
            (config.negative_capacity > 0 && !config.negative_ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(config.negative_capacity)
                    .time_to_live(config.negative_ttl)
                    .eviction_listener(move |hash: Arc<TokenHash>, _, cause| {
                        // A replaced refusal's key holds the new one, which the front holds.
                        if cause != RemovalCause::Replaced {
                            refused.remove_refused(&hash);
                        }
                    })
                    .build_with_hasher(DigestState)
            });
        Self {
            front,
            positive,
            negative,
            clock,
            max_ttl: config.max_ttl,
            negative_ttl: config.negative_ttl,
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

    /// Probe the cache without waiting. On a hit, `read` runs under the front shard's read
    /// lock and copies out what the caller needs; it must not call back into the cache.
    pub(crate) fn lookup<T>(
        &self,
        hash: &TokenHash,
        read: impl FnOnce(&Arc<CachedSession>) -> T,
    ) -> Lookup<T> {
        if self.bypass.load(Ordering::Relaxed) {
            return Lookup::Miss;
        }
        match self.front.probe(hash, Instant::now(), read) {
            Probe::Session(hit) => {
                if sampling::sampled() {
                    drop(self.positive.get(hash));
                }
                Lookup::Hit(hit)
            }
            Probe::Refused(reason) => {
                if let Some(negative) = self.negative.as_ref().filter(|_| sampling::sampled()) {
                    // Only the read moka records matters.
                    let _ = negative.get(hash);
                }
                Lookup::Negative(reason)
            }
            Probe::Absent => Lookup::Miss,
        }
    }

    /// How long a front slot of `entry` may be served: what moka's per-entry expiry used
    /// to be, never past the session's end by this cache's clock, never past `max_ttl`.
    fn serve_until(&self, entry: &CachedSession) -> Instant {
        let left = (entry.info.expires_at - self.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        deadline(left.min(self.max_ttl))
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
        // Listed and put in front before moka hears of it: moka's listener, which may run
        // inside this insert (admission refused), then finds everything it must remove.
        self.by_customer.add(customer_id, hash, &entry);
        self.front
            .put_session(hash, entry.clone(), self.serve_until(&entry));
        // The read that missed, for moka's admission (probes go to the front only).
        drop(self.positive.get(&hash));
        self.positive.insert(hash, entry);
        Insert::Cached
    }

    pub(crate) fn insert_negative(&self, hash: TokenHash, reason: InvalidToken) {
        if self.bypass.load(Ordering::Relaxed) {
            return;
        }
        if let Some(negative) = &self.negative {
            self.front
                .put_refused(hash, reason, deadline(self.negative_ttl));
            // The read that missed, for moka's admission.
            let _ = negative.get(&hash);
            negative.insert(hash, reason);
        }
    }

    /// Drop a negative entry, e.g. when a session with this hash has just been created.
    pub(crate) fn forget_negative(&self, hash: &TokenHash) {
        if let Some(negative) = &self.negative {
            self.front.remove_refused(hash);
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
        self.front.remove_session(hash);
        self.positive.invalidate(hash);
        if let Some(presented) = self.aliases.take(hash) {
            self.front.remove_session(&presented);
            self.positive.invalidate(&presented);
        }
    }

    /// Remove every cached session of a customer: one index lookup and a removal per
    /// session, so hits never pay for it, and only loads of this customer are disturbed.
    pub(crate) fn invalidate_customer(&self, customer_id: Uuid) {
        let _log = self.epochs.bump_customer(customer_id);
        // Taken out first: moka's eviction listener takes the same shard lock.
        for indexed in self.by_customer.take(customer_id) {
            self.front.remove_session(&indexed.hash);
            self.positive.invalidate(&indexed.hash);
        }
    }

    /// Remove everything (e.g. when a cross-instance invalidation channel was lost).
    pub(crate) fn invalidate_all(&self) {
        let _locked = self.epochs.bump_all();
        self.front.clear();
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
            Invalidation::Revoked(hash) => {
                // Remembered before the entry goes, so no load in between can put it back.
                self.remember_revoked(&hash);
                self.invalidate(&hash);
            }
            Invalidation::CustomerRevoked { customer, before } => {
                self.remember_customer_revoked(customer, before);
                self.invalidate_customer(customer);
            }
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
}

#[cfg(test)]
mod tests;
