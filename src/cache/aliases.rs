//! Sessions found under an accepted older key are cached under the hash their token is
//! presented by, but a revocation (local, or from another instance's feed) names the hash
//! the store keeps. This maps the one to the other, only for such sessions: without a key
//! rotation in progress it stays empty and costs an atomic load per invalidation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::token::{DigestState, TokenHash};

#[derive(Default)]
pub(super) struct Aliases {
    any: AtomicBool,
    /// Stored hash → presented hash.
    map: Mutex<HashMap<TokenHash, TokenHash, DigestState>>,
}

impl Aliases {
    fn lock(&self) -> MutexGuard<'_, HashMap<TokenHash, TokenHash, DigestState>> {
        // A map edited one call at a time: a panic cannot leave it half-written.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `presented` is cached for the session the store keeps as `stored`. Called under the
    /// session stripe locks of both.
    pub(super) fn add(&self, stored: TokenHash, presented: TokenHash) {
        let mut map = self.lock();
        map.insert(stored, presented);
        self.any.store(true, Ordering::SeqCst);
    }

    /// The presented hash cached for `stored`, if any, now unlisted. Called under the
    /// session stripe lock of `stored`.
    pub(super) fn take(&self, stored: &TokenHash) -> Option<TokenHash> {
        if !self.any.load(Ordering::SeqCst) {
            return None;
        }
        let mut map = self.lock();
        let presented = map.remove(stored);
        if map.is_empty() {
            self.any.store(false, Ordering::SeqCst);
        }
        presented
    }

    /// The entry cached as `presented` for `stored` is gone (evicted or expired); a newer
    /// mapping is left alone.
    pub(super) fn forget(&self, stored: &TokenHash, presented: &TokenHash) {
        let mut map = self.lock();
        if map.get(stored) == Some(presented) {
            map.remove(stored);
        }
        if map.is_empty() {
            self.any.store(false, Ordering::SeqCst);
        }
    }

    pub(super) fn clear(&self) {
        self.lock().clear();
        self.any.store(false, Ordering::SeqCst);
    }
}
