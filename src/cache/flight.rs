//! Coalesced misses: concurrent loads of one token share a single store call.

use std::future::Future;
use std::sync::{Arc, Weak};

use tokio::sync::OnceCell;

use super::{Epoch, Fetched, LoadOutcome, Lookup, SessionCache};
use crate::metrics::CacheResult;
use crate::reject::{Rejection, StoreUnavailable};
use crate::token::TokenHash;

#[derive(Default)]
pub(super) struct Flight {
    outcome: OnceCell<Fetched>,
}

impl SessionCache {
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
                    match self.lookup(&hash, Arc::clone) {
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
