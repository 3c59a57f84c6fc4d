//! The map every probe reads: what moka holds (sessions and refused tokens alike), in a
//! sharded hash map that a hit can read without moka's per-read bookkeeping.
//!
//! moka stays the policy: it decides what is admitted, evicted and expired, and its
//! eviction listener removes the matching slot here. Reads go here only; moka hears of a
//! sample of them ([`sampling`](super::sampling)). Every slot carries its own deadline, so
//! a slot moka has expired but not yet swept is never served.
//!
//! Who writes, and under which lock (the safety argument, in [`SessionCache`]'s terms):
//!
//! * sessions are put here by `insert_if_current`, under the epoch locks that revocations
//!   take, *before* moka hears of them, so that moka's listener, which may run inside that
//!   very insert (an admission refused), always finds the slot it must remove;
//! * every invalidation removes the slot itself, under the same locks, whatever moka does:
//!   moka's listener is never what keeps a revoked session from being served;
//! * the listener removes a session slot only if it still holds the value moka dropped, so
//!   a late notice never removes the entry that replaced it.
//!
//! [`SessionCache`]: super::SessionCache

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use super::CachedSession;
use crate::reject::InvalidToken;
use crate::token::{DigestState, TokenHash};

/// Shards: writers (inserts, invalidations, moka's listener) lock one of them, and readers
/// on different threads rarely share one's lock word.
const SHARDS: usize = 64;

/// What a slot holds.
pub(super) enum Held {
    Session(Arc<CachedSession>),
    /// A token refused by the store, cached as moka's negative cache holds it.
    Refused(InvalidToken),
}

struct Slot {
    /// Past this the slot is not served: moka's expiry of the same entry, which moka
    /// applies lazily.
    until: Instant,
    held: Held,
}

type Map = HashMap<TokenHash, Slot, DigestState>;

/// One shard, alone on its cache lines so that two shards' lock words never share one.
#[repr(align(128))]
#[derive(Default)]
struct Shard(RwLock<Map>);

pub(super) struct Front {
    shards: Box<[Shard]>,
}

/// What a probe found.
pub(crate) enum Probe<T> {
    /// A live session slot; `T` is what the caller read from it under the shard's lock.
    Session(T),
    Refused(InvalidToken),
    Absent,
}

impl Front {
    pub(super) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }

    fn shard(&self, hash: &TokenHash) -> &RwLock<Map> {
        // A byte neither the map's hasher (bytes 0..8) nor the epoch stripes (31) use.
        &self.shards[hash.as_bytes()[16] as usize % SHARDS].0
    }

    // Maps edited one call at a time: a panic cannot leave one half-written.
    fn read(&self, hash: &TokenHash) -> RwLockReadGuard<'_, Map> {
        self.shard(hash).read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, hash: &TokenHash) -> RwLockWriteGuard<'_, Map> {
        self.shard(hash).write().unwrap_or_else(|e| e.into_inner())
    }

    /// The slot of `hash` if it is live at `now`. `read` runs under the shard's read lock:
    /// it copies out what the caller needs, so a hit never touches the entry's reference
    /// count (a cache line every thread serving that session would otherwise write).
    pub(super) fn probe<T>(
        &self,
        hash: &TokenHash,
        now: Instant,
        read: impl FnOnce(&Arc<CachedSession>) -> T,
    ) -> Probe<T> {
        let shard = self.read(hash);
        match shard.get(hash) {
            Some(slot) if slot.until > now => match &slot.held {
                Held::Session(entry) => Probe::Session(read(entry)),
                Held::Refused(reason) => Probe::Refused(*reason),
            },
            _ => Probe::Absent,
        }
    }

    /// Hold `entry` until `until`, replacing whatever `hash` held.
    pub(super) fn put_session(&self, hash: TokenHash, entry: Arc<CachedSession>, until: Instant) {
        let slot = Slot {
            until,
            held: Held::Session(entry),
        };
        // The replaced value is dropped after the lock is released.
        let _replaced = self.write(&hash).insert(hash, slot);
    }

    /// Hold a refusal until `until`, unless `hash` holds a live session: as when the two
    /// were separate caches probed session first, a late refusal (a load that started
    /// before the session was created) does not hide the session.
    pub(super) fn put_refused(&self, hash: TokenHash, reason: InvalidToken, until: Instant) {
        let now = Instant::now();
        let mut shard = self.write(&hash);
        let held_session = |slot: &Slot| matches!(slot.held, Held::Session(_)) && slot.until > now;
        if shard.get(&hash).is_some_and(held_session) {
            return;
        }
        let slot = Slot {
            until,
            held: Held::Refused(reason),
        };
        let replaced = shard.insert(hash, slot);
        drop(shard);
        drop(replaced);
    }

    /// Drop the session slot of `hash`, whichever value it holds.
    pub(super) fn remove_session(&self, hash: &TokenHash) {
        self.remove_if(hash, |held| matches!(held, Held::Session(_)));
    }

    /// Drop the session slot of `hash` only if it holds `value` (moka dropped that one).
    pub(super) fn remove_value(&self, hash: &TokenHash, value: &Arc<CachedSession>) {
        self.remove_if(
            hash,
            |held| matches!(held, Held::Session(held) if Arc::ptr_eq(held, value)),
        );
    }

    /// Drop the refusal slot of `hash`, if that is what it holds.
    pub(super) fn remove_refused(&self, hash: &TokenHash) {
        self.remove_if(hash, |held| matches!(held, Held::Refused(_)));
    }

    fn remove_if(&self, hash: &TokenHash, matches: impl FnOnce(&Held) -> bool) {
        let mut shard = self.write(hash);
        if shard.get(hash).is_some_and(|slot| matches(&slot.held)) {
            let removed = shard.remove(hash);
            // Dropped after the lock is released: the last reference to a session may go
            // with it, and its customer's with that.
            drop(shard);
            drop(removed);
        }
    }

    /// Drop every slot.
    pub(super) fn clear(&self) {
        for shard in self.shards.iter() {
            let removed = std::mem::take(&mut *shard.0.write().unwrap_or_else(|e| e.into_inner()));
            drop(removed);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.read().unwrap().len()).sum()
    }
}
