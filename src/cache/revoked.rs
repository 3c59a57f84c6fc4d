//! What this instance saw revoked, so that a store that later serves it again (a restart
//! from older data, a failover to a replica that missed the change) is not believed.
//!
//! * Sessions: every hash whose revocation returned `Ok(true)` here or arrived on the feed
//!   goes into a Bloom filter. A filter never forgets and never grows: a flood of
//!   revocations cannot push one out, it can only make the filter refuse more (a valid
//!   session whose bits all happen to be set is refused and must sign in again), which is
//!   the safe way to fail. Two generations, each `session_ttl` long, so an entry is kept
//!   between one and two session lifetimes: as long as a session it stands for can live.
//! * Customers: `revoke_all` and deletions made here refuse the customer's sessions created
//!   before the change (strictly: a session made in the same microsecond stays valid).
//!   The map is bounded; when full, its oldest entry leaves and its time
//!   becomes a floor below which every session is refused, until that floor is a session
//!   lifetime old. Both overflows are counted in the metrics.
//!
//! Only the miss path consults this; hits never hold a revoked session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::token::TokenHash;

/// Bits per generation (256 KiB).
const BITS: usize = 1 << 21;
/// Bits set per hash.
const PROBES: u64 = 10;
/// Revocations per generation at which refusals of valid sessions reach about 1 in 16,000;
/// past it they grow, and the metrics say so.
pub(super) const DESIGN_CAPACITY: usize = 100_000;
/// Customers remembered at once.
const CUSTOMERS: usize = 100_000;

struct Bloom {
    words: Box<[u64]>,
    inserted: usize,
}

impl Bloom {
    fn new() -> Self {
        Self {
            words: vec![0; BITS / 64].into_boxed_slice(),
            inserted: 0,
        }
    }

    /// Bit positions by double hashing; the digest is already uniform.
    fn positions(hash: &TokenHash) -> impl Iterator<Item = usize> {
        let bytes = hash.as_bytes();
        let h1 = u64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes"));
        let h2 = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) | 1;
        (0..PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % BITS as u64) as usize)
    }

    fn insert(&mut self, hash: &TokenHash) {
        for bit in Self::positions(hash) {
            self.words[bit / 64] |= 1 << (bit % 64);
        }
        self.inserted += 1;
    }

    fn contains(&self, hash: &TokenHash) -> bool {
        Self::positions(hash).all(|bit| self.words[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

#[derive(Default)]
struct Sessions {
    current: Option<Bloom>,
    previous: Option<Bloom>,
    started: Option<Instant>,
}

#[derive(Default)]
struct Customers {
    /// Customer → (changed at, recorded at).
    revoked: HashMap<Uuid, (DateTime<Utc>, Instant)>,
    /// Sessions created before this are refused, until the instant (a full map's fail-safe).
    floor: Option<(DateTime<Utc>, Instant)>,
}

/// What [`Revoked::remember`] and [`Revoked::remember_customer`] report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Remembered {
    Kept,
    /// Past the bound: kept, failing safe (more refusals), to be counted.
    OverCapacity,
}

pub(super) struct Revoked {
    lifetime: Duration,
    /// Whether anything may still be remembered: loads skip the locks when not. Set when
    /// something is remembered, cleared once everything has been forgotten.
    any: AtomicBool,
    sessions: Mutex<Sessions>,
    customers: Mutex<Customers>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Bits and maps edited one call at a time: a panic cannot leave them half-written.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Revoked {
    /// Entries are kept at least `lifetime` (the longest a session can live).
    pub(super) fn new(lifetime: Duration) -> Self {
        Self {
            lifetime: lifetime.max(Duration::from_millis(1)),
            any: AtomicBool::new(false),
            sessions: Mutex::default(),
            customers: Mutex::default(),
        }
    }

    fn rotate(&self, sessions: &mut Sessions, now: Instant) {
        match sessions.started {
            Some(started) if now.duration_since(started) < self.lifetime => {}
            Some(started) => {
                // One generation over: it becomes the previous one. Two: both are gone.
                let two = now.duration_since(started) >= self.lifetime * 2;
                sessions.previous = if two { None } else { sessions.current.take() };
                sessions.current = None;
                sessions.started = Some(now);
            }
            None => sessions.started = Some(now),
        }
    }

    pub(super) fn remember(&self, hash: &TokenHash) -> Remembered {
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        self.rotate(&mut sessions, now);
        let current = sessions.current.get_or_insert_with(Bloom::new);
        current.insert(hash);
        self.any.store(true, Ordering::SeqCst);
        if current.inserted > DESIGN_CAPACITY {
            Remembered::OverCapacity
        } else {
            Remembered::Kept
        }
    }

    pub(super) fn remember_customer(&self, customer: Uuid, at: DateTime<Utc>) -> Remembered {
        let now = Instant::now();
        let mut customers = lock(&self.customers);
        self.any.store(true, Ordering::SeqCst);
        let lifetime = self.lifetime;
        customers
            .revoked
            .retain(|_, (_, recorded)| now.duration_since(*recorded) < lifetime);
        let mut remembered = Remembered::Kept;
        if customers.revoked.len() >= CUSTOMERS && !customers.revoked.contains_key(&customer) {
            let oldest = customers
                .revoked
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(id, (at, _))| (*id, *at));
            if let Some((id, oldest)) = oldest {
                customers.revoked.remove(&id);
                let floor = customers
                    .floor
                    .map_or(oldest, |(floor, _)| floor.max(oldest));
                customers.floor = Some((floor, now));
                remembered = Remembered::OverCapacity;
            }
        }
        let entry = customers.revoked.entry(customer).or_insert((at, now));
        *entry = (entry.0.max(at), now);
        remembered
    }

    /// Whether a session the store just served was revoked as far as this instance knows:
    /// its stored hash was, or its customer's sessions created before `created_at` were.
    pub(super) fn refuses(
        &self,
        stored: &TokenHash,
        customer: Uuid,
        created_at: DateTime<Utc>,
    ) -> bool {
        if !self.any.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        self.rotate(&mut sessions, now);
        let seen = |bloom: &Option<Bloom>| bloom.as_ref().is_some_and(|b| b.contains(stored));
        if seen(&sessions.current) || seen(&sessions.previous) {
            return true;
        }
        let mut customers = lock(&self.customers);
        let live = |recorded: Instant| now.duration_since(recorded) < self.lifetime;
        if let Some((at, recorded)) = customers.revoked.get(&customer) {
            if live(*recorded) && created_at < *at {
                return true;
            }
        }
        if customers
            .floor
            .is_some_and(|(floor, since)| live(since) && created_at < floor)
        {
            return true;
        }
        // Both generations gone and no customer entry left in force: forget the rest, and
        // let loads skip these locks again. Both locks are held, so no remembering runs
        // meanwhile.
        let floor_over = customers.floor.is_none_or(|(_, since)| !live(since));
        if sessions.current.is_none()
            && sessions.previous.is_none()
            && floor_over
            && customers
                .revoked
                .values()
                .all(|(_, recorded)| !live(*recorded))
        {
            *customers = Customers::default();
            self.any.store(false, Ordering::SeqCst);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u32) -> TokenHash {
        // Spread like digests: the filter relies on uniform bytes.
        use sha2::{Digest, Sha256};
        TokenHash::from_bytes(Sha256::digest(n.to_le_bytes()).into())
    }

    #[test]
    fn a_flood_cannot_make_it_forget() {
        let revoked = Revoked::new(Duration::from_secs(3600));
        let (customer, now) = (Uuid::new_v4(), Utc::now());
        revoked.remember(&hash(0));
        for n in 1..=(DESIGN_CAPACITY as u32 + 10) {
            revoked.remember(&hash(n));
        }
        assert!(revoked.refuses(&hash(0), customer, now));
        assert_eq!(revoked.remember(&hash(u32::MAX)), Remembered::OverCapacity);
        // At its design load it still refuses few others.
        let refused = (0..20_000u32)
            .filter(|n| revoked.refuses(&hash(u32::MAX - 1 - n), customer, now))
            .count();
        assert!(refused < 20, "{refused} of 20,000 valid sessions refused");
    }

    #[test]
    fn a_customers_sessions_before_the_change_are_refused_and_later_ones_are_not() {
        let revoked = Revoked::new(Duration::from_secs(3600));
        let (jane, at) = (Uuid::new_v4(), Utc::now());
        revoked.remember_customer(jane, at);
        assert!(
            !revoked.refuses(&hash(1), jane, at),
            "made at the same instant"
        );
        let older = at - chrono::TimeDelta::seconds(1);
        let newer = at + chrono::TimeDelta::seconds(1);
        assert!(revoked.refuses(&hash(1), jane, older));
        assert!(!revoked.refuses(&hash(1), jane, newer));
        assert!(!revoked.refuses(&hash(1), Uuid::new_v4(), older));
    }

    #[test]
    fn entries_last_between_one_and_two_lifetimes() {
        let revoked = Revoked::new(Duration::from_millis(40));
        let customer = Uuid::new_v4();
        revoked.remember(&hash(7));
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            revoked.refuses(&hash(7), customer, Utc::now()),
            "one generation on"
        );
        std::thread::sleep(Duration::from_millis(90));
        assert!(
            !revoked.refuses(&hash(7), customer, Utc::now()),
            "two on: gone"
        );
        assert!(
            !revoked.any.load(Ordering::SeqCst),
            "with nothing left, loads skip the locks again"
        );
        revoked.remember(&hash(8));
        assert!(revoked.refuses(&hash(8), customer, Utc::now()));
    }

    #[test]
    fn a_customer_entry_keeps_the_record_in_force_for_its_lifetime() {
        let revoked = Revoked::new(Duration::from_millis(40));
        let (jane, at) = (Uuid::new_v4(), Utc::now());
        revoked.remember_customer(jane, at);
        let older = at - chrono::TimeDelta::seconds(1);
        assert!(!revoked.refuses(&hash(1), Uuid::new_v4(), older));
        assert!(revoked.any.load(Ordering::SeqCst));
        assert!(revoked.refuses(&hash(1), jane, older));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!revoked.refuses(&hash(1), jane, older));
        assert!(!revoked.any.load(Ordering::SeqCst));
    }
}
