//! Revocation epochs: what lets a load tell whether a revocation raced it.
//!
//! A loader takes an [`Epoch`] before asking the store and may cache what it read only if
//! nothing that could have revoked it happened since:
//!
//! * a session revocation bumps the epoch of its hash's stripe, so it disturbs only loads
//!   of hashes in that stripe (1 in [`STRIPES`]);
//! * a customer invalidation takes the next number of one sequence and writes it, with the
//!   customer's id, in the log of the customer's stripe. A load of customer X's session is
//!   disturbed only by an entry for X (or by a log that forgot entries it would have
//!   needed), so a stream of other customers' invalidations costs it nothing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use uuid::Uuid;

use crate::token::TokenHash;

/// Epoch stripes: a session revocation only disturbs in-flight loads whose hash shares its
/// stripe.
pub(super) const STRIPES: usize = 64;
/// Stripes of the customer log: a customer invalidation locks only its customer's stripe.
const CUSTOMER_STRIPES: usize = 64;
/// Customer invalidations remembered per stripe. At 1,000 unrelated invalidations a second
/// a stripe sees about 16; a load would have to take two seconds to outlive its log entries,
/// and then it is merely not cached.
const CUSTOMER_LOG: usize = 32;

/// What a loader read before asking the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Epoch {
    /// The epoch of the hash's stripe.
    pub(super) session: u64,
    /// The customer sequence: every customer invalidation numbered up to here is done.
    pub(super) customers: u64,
}

impl Epoch {
    /// What a cache hit stands for: current by construction.
    pub(super) const CURRENT: Self = Self {
        session: u64::MAX,
        customers: u64::MAX,
    };
}

pub(super) struct Epochs {
    /// Session revocation epochs by hash stripe. The lock also orders inserts against
    /// revocations.
    sessions: [Mutex<u64>; STRIPES],
    /// The number of the latest customer invalidation; taken under its stripe's lock.
    sequence: AtomicU64,
    customers: [Mutex<CustomerLog>; CUSTOMER_STRIPES],
}

/// The latest customer invalidations of one stripe, oldest first.
#[derive(Default)]
pub(super) struct CustomerLog {
    entries: VecDeque<(u64, Uuid)>,
    /// Invalidations numbered up to here may no longer be listed.
    forgotten: u64,
}

impl CustomerLog {
    /// Whether `customer` may have been invalidated after the one numbered `since`.
    pub(super) fn changed_since(&self, customer: Uuid, since: u64) -> bool {
        since < self.forgotten
            || self
                .entries
                .iter()
                .rev()
                .take_while(|(number, _)| *number > since)
                .any(|(_, id)| *id == customer)
    }

    fn record(&mut self, number: u64, customer: Uuid) {
        if self.entries.len() == CUSTOMER_LOG {
            if let Some((oldest, _)) = self.entries.pop_front() {
                self.forgotten = oldest;
            }
        }
        self.entries.push_back((number, customer));
    }
}

/// Locks that stay held while a revocation removes entries; inserts wait on them.
pub(super) struct AllLocked<'a> {
    _sessions: Vec<MutexGuard<'a, u64>>,
    _customers: Vec<MutexGuard<'a, CustomerLog>>,
}

// The guarded values are counters and a log edited one call at a time: a panic elsewhere
// cannot leave them half-written, so a poisoned lock is taken as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn stripe(hash: &TokenHash) -> usize {
    hash.as_bytes()[31] as usize % STRIPES
}

fn customer_stripe(customer: &Uuid) -> usize {
    customer.as_bytes()[15] as usize % CUSTOMER_STRIPES
}

impl Epochs {
    pub(super) fn new() -> Self {
        Self {
            sessions: std::array::from_fn(|_| Mutex::new(0)),
            sequence: AtomicU64::new(0),
            customers: std::array::from_fn(|_| Mutex::default()),
        }
    }

    /// A loader's snapshot, taken before it asks the store.
    pub(super) fn read(&self, hash: &TokenHash) -> Epoch {
        let session = *self.session(hash);
        // Numbers are taken before the entries they stand for are removed, and the store
        // change came before that: a load that starts after this read sees the change.
        let customers = self.sequence.load(Ordering::SeqCst);
        Epoch { session, customers }
    }

    /// The session stripe of `hash`, locked.
    pub(super) fn session(&self, hash: &TokenHash) -> MutexGuard<'_, u64> {
        lock(&self.sessions[stripe(hash)])
    }

    /// The session stripes of `hash` and of `other`, locked in index order (once, if they
    /// are the same stripe).
    pub(super) fn sessions(
        &self,
        hash: &TokenHash,
        other: &TokenHash,
    ) -> (MutexGuard<'_, u64>, Option<MutexGuard<'_, u64>>) {
        let (a, b) = (stripe(hash), stripe(other));
        match a.cmp(&b) {
            std::cmp::Ordering::Equal => (lock(&self.sessions[a]), None),
            std::cmp::Ordering::Less => {
                let first = lock(&self.sessions[a]);
                (first, Some(lock(&self.sessions[b])))
            }
            std::cmp::Ordering::Greater => {
                let second = lock(&self.sessions[b]);
                (lock(&self.sessions[a]), Some(second))
            }
        }
    }

    /// The customer stripe of `customer`, locked (after any session stripe: the order every
    /// caller keeps).
    pub(super) fn customer(&self, customer: &Uuid) -> MutexGuard<'_, CustomerLog> {
        lock(&self.customers[customer_stripe(customer)])
    }

    /// Number one invalidation of `customer`, under its stripe's lock, which the caller
    /// keeps while it removes the customer's entries.
    pub(super) fn bump_customer<'a>(&'a self, customer: Uuid) -> MutexGuard<'a, CustomerLog> {
        let mut log = self.customer(&customer);
        let number = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        log.record(number, customer);
        log
    }

    /// Disturb every load: lock everything (session stripes, then customer stripes, in
    /// index order, the only place more than one of a kind is held) and move every epoch.
    pub(super) fn bump_all(&self) -> AllLocked<'_> {
        let mut sessions: Vec<_> = self.sessions.iter().map(lock).collect();
        for epoch in &mut sessions {
            **epoch += 1;
        }
        let mut customers: Vec<_> = self.customers.iter().map(lock).collect();
        let number = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        for log in &mut customers {
            log.entries.clear();
            log.forgotten = number;
        }
        AllLocked {
            _sessions: sessions,
            _customers: customers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_tells_its_customer_from_the_others() {
        let (x, y) = (Uuid::new_v4(), Uuid::new_v4());
        let mut log = CustomerLog::default();
        log.record(5, y);
        log.record(7, x);
        assert!(log.changed_since(x, 6));
        assert!(!log.changed_since(x, 7));
        assert!(!log.changed_since(y, 5), "only later invalidations count");
        assert!(log.changed_since(y, 4));
    }

    #[test]
    fn a_log_that_forgot_what_a_load_needs_says_changed() {
        let x = Uuid::new_v4();
        let mut log = CustomerLog::default();
        for number in 1..=(CUSTOMER_LOG as u64 + 3) {
            log.record(number, Uuid::new_v4());
        }
        assert!(log.changed_since(x, 2), "entries after 2 were forgotten");
        assert!(!log.changed_since(x, CUSTOMER_LOG as u64));
    }

    #[test]
    fn bump_all_disturbs_every_snapshot_taken_before_it() {
        let epochs = Epochs::new();
        let hash = TokenHash::from_bytes([3; 32]);
        let before = epochs.read(&hash);
        drop(epochs.bump_all());
        let after = epochs.read(&hash);
        assert!(after.session > before.session);
        let x = Uuid::new_v4();
        assert!(epochs.customer(&x).changed_since(x, before.customers));
        assert!(!epochs.customer(&x).changed_since(x, after.customers));
    }
}
