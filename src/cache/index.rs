//! Which cached hashes belong to which customer, so a customer-wide invalidation is one
//! lookup and a removal per session instead of a scan.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use smallvec::SmallVec;
use uuid::Uuid;

use super::CachedSession;
use crate::token::TokenHash;

/// Shards of the customer index, so inserts of different customers rarely contend.
const INDEX_SHARDS: usize = 16;

/// Which cached hashes belong to which customer. Entries are added under the stripe lock
/// that orders inserts against revocations, and removed by moka's eviction listener. Each
/// entry remembers which cached value it stands for, so a late notice about an old value
/// never unlists the value that replaced it.
pub(super) struct CustomerIndex {
    shards: [Mutex<HashMap<Uuid, Listed>>; INDEX_SHARDS],
}

/// One customer's cached sessions. Most customers have one at a time: kept inline, it costs
/// no allocation to list and none to unlist, which on many threads means no contended
/// `free` on every eviction.
pub(super) type Listed = SmallVec<[Indexed; 1]>;

pub(super) struct Indexed {
    pub(super) hash: TokenHash,
    /// Identity of the cached `Arc<CachedSession>` (its address while it lives).
    value: usize,
}

impl CustomerIndex {
    pub(super) fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }

    fn shard(&self, customer_id: &Uuid) -> MutexGuard<'_, HashMap<Uuid, Listed>> {
        let shard = customer_id.as_bytes()[15] as usize % INDEX_SHARDS;
        // Plain maps edited one call at a time: a panic cannot leave one half-written.
        self.shards[shard].lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn add(&self, customer_id: Uuid, hash: TokenHash, value: &Arc<CachedSession>) {
        let mut shard = self.shard(&customer_id);
        let entries = shard.entry(customer_id).or_default();
        entries.retain(|e| e.hash != hash);
        entries.push(Indexed {
            hash,
            value: Arc::as_ptr(value) as usize,
        });
    }

    pub(super) fn remove(&self, customer_id: Uuid, hash: &TokenHash, value: &Arc<CachedSession>) {
        let value = Arc::as_ptr(value) as usize;
        let mut shard = self.shard(&customer_id);
        if let Some(entries) = shard.get_mut(&customer_id) {
            entries.retain(|e| !(e.hash == *hash && e.value == value));
            if entries.is_empty() {
                shard.remove(&customer_id);
            }
        }
    }

    pub(super) fn take(&self, customer_id: Uuid) -> Listed {
        self.shard(&customer_id)
            .remove(&customer_id)
            .unwrap_or_default()
    }

    pub(super) fn clear(&self) {
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
