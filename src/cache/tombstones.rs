//! Tombstones: revocations that may not have reached the store.
//!
//! A revocation whose store call failed may still be committed later by the backend, so
//! the session (or every session of the customer) is kept out of the cache until `ttl`
//! (the cache's `max_ttl`) has passed: after that no cached entry could outlive it anyway.
//!
//! A tombstone is never dropped before its time. Anyone can cause failed revocations (a
//! sign-out revokes the hash of any well-formed token, and in a store brownout each one
//! fails), so the record is bounded; when it is full, the cache stops filling altogether
//! until every tombstone that could not be written has run out. That costs hit rate, never
//! a revoked session served, and is counted in the metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::token::{DigestState, TokenHash};

/// Most tombstones kept at once (sessions and customers together).
pub(super) const CAPACITY: usize = 10_000;

pub(super) struct Tombstones {
    ttl: Duration,
    capacity: usize,
    /// Whether anything may still be in force: inserts skip the lock when nothing is. Set
    /// when a tombstone is recorded, cleared once the last one has run out.
    any: AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<TokenHash, Instant, DigestState>,
    customers: HashMap<Uuid, Instant>,
    /// Set when a tombstone did not fit: nothing is cached until then.
    full_until: Option<Instant>,
    /// When the last tombstone (or the stop) runs out: after it the record is empty.
    last_until: Option<Instant>,
}

/// Whether a tombstone was recorded, or the record was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recorded {
    Kept,
    /// No room: the cache stops filling for `ttl` instead.
    Full,
}

impl Inner {
    fn len(&self) -> usize {
        self.sessions.len() + self.customers.len()
    }

    fn purge(&mut self, now: Instant) {
        self.sessions.retain(|_, until| *until > now);
        self.customers.retain(|_, until| *until > now);
        if self.full_until.is_some_and(|until| until <= now) {
            self.full_until = None;
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0 && self.full_until.is_none()
    }
}

impl Tombstones {
    pub(super) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl: ttl.max(Duration::from_millis(1)),
            capacity,
            any: AtomicBool::new(false),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Maps edited one call at a time: a panic cannot leave one half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn session(&self, hash: TokenHash) -> Recorded {
        self.record(|inner, until| {
            inner.sessions.insert(hash, until);
        })
    }

    pub(super) fn customer(&self, customer: Uuid) -> Recorded {
        self.record(|inner, until| {
            inner.customers.insert(customer, until);
        })
    }

    fn record(&self, insert: impl FnOnce(&mut Inner, Instant)) -> Recorded {
        let now = Instant::now();
        let until = now + self.ttl;
        let mut inner = self.lock();
        self.any.store(true, Ordering::SeqCst);
        inner.last_until = inner.last_until.max(Some(until));
        // Already full: no scan, the stop is extended to cover this one too.
        if inner.full_until.is_none_or(|full| full <= now) && inner.len() >= self.capacity {
            inner.purge(now);
        }
        if inner.full_until.is_some_and(|full| full > now) || inner.len() >= self.capacity {
            inner.full_until = Some(until);
            return Recorded::Full;
        }
        insert(&mut inner, until);
        Recorded::Kept
    }

    /// Whether an entry of `hash` for `customer` must not be cached now.
    pub(super) fn block(&self, hash: &TokenHash, customer: &Uuid) -> bool {
        if !self.any.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.last_until.is_none_or(|last| last <= now) {
            // Everything has run out: forget it all, and let inserts skip this lock again.
            *inner = Inner::default();
            self.any.store(false, Ordering::SeqCst);
            return false;
        }
        let live = |until: Option<&Instant>| until.is_some_and(|until| *until > now);
        if live(inner.full_until.as_ref())
            || live(inner.sessions.get(hash))
            || live(inner.customers.get(customer))
        {
            return true;
        }
        if inner.full_until.is_some() {
            inner.purge(now);
            if inner.is_empty() {
                self.any.store(false, Ordering::SeqCst);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u32) -> TokenHash {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        TokenHash::from_bytes(bytes)
    }

    #[test]
    fn a_flood_cannot_push_a_tombstone_out() {
        let tombstones = Tombstones::new(Duration::from_secs(60), 100);
        let (real, customer) = (hash(u32::MAX), Uuid::new_v4());
        assert_eq!(tombstones.session(real), Recorded::Kept);
        for n in 0..1_000 {
            tombstones.session(hash(n));
        }
        assert!(
            tombstones.block(&real, &customer),
            "the first tombstone still holds"
        );
        assert_eq!(tombstones.session(hash(5_000)), Recorded::Full);
        assert!(
            tombstones.block(&hash(5_000), &customer),
            "one that did not fit still keeps its session out: nothing is cached"
        );
        assert!(
            tombstones.block(&hash(7_777), &Uuid::new_v4()),
            "while full, nothing at all is cached"
        );
    }

    #[test]
    fn inserts_stop_taking_the_lock_once_every_tombstone_has_run_out() {
        let tombstones = Tombstones::new(Duration::from_millis(30), 100);
        let customer = Uuid::new_v4();
        tombstones.session(hash(1));
        assert!(tombstones.block(&hash(1), &customer));
        assert!(!tombstones.block(&hash(2), &customer));
        assert!(
            tombstones.any.load(Ordering::SeqCst),
            "one is still in force"
        );
        std::thread::sleep(Duration::from_millis(40));
        assert!(!tombstones.block(&hash(1), &customer));
        assert!(
            !tombstones.any.load(Ordering::SeqCst),
            "a record that never filled up is cleared too"
        );
        tombstones.session(hash(3));
        assert!(
            tombstones.block(&hash(3), &customer),
            "and it records again"
        );
    }

    #[test]
    fn tombstones_and_the_stop_end_after_their_time() {
        let tombstones = Tombstones::new(Duration::from_millis(30), 2);
        let customer = Uuid::new_v4();
        tombstones.session(hash(1));
        tombstones.customer(customer);
        assert_eq!(tombstones.session(hash(2)), Recorded::Full);
        assert!(tombstones.block(&hash(9), &Uuid::new_v4()));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!tombstones.block(&hash(1), &customer));
        assert!(!tombstones.block(&hash(2), &Uuid::new_v4()));
        assert!(
            !tombstones.any.load(Ordering::SeqCst),
            "nothing left to check"
        );
        assert_eq!(tombstones.session(hash(3)), Recorded::Kept, "room again");
    }
}
