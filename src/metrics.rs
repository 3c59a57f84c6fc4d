//! Metrics on the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
//!
//! Install a recorder (e.g. `metrics-exporter-prometheus`) *before* building the
//! [`SessionManager`](crate::SessionManager): the hot-path handles are registered once, at
//! build time. Labels have bounded cardinality: never a token, hash, customer id or path.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `customer_session_requests_total` | counter | `outcome`, `source` | requests through the layer; `outcome` is `authenticated`, `anonymous` or a [`Rejection::label`](crate::Rejection::label); `source` is `header`, `cookie` or `none` |
//! | `customer_session_cache_lookups_total` | counter | `result` | `hit`, `negative_hit`, `miss`, `coalesced` (a miss that waited for another request's load) |
//! | `customer_session_store_calls_total` | counter | `operation`, `result` | store calls; `operation` is `load`, `create`, `revoke`, `revoke_all`, `upsert_customer`, `customer`, `delete_customer`; `result` is `ok`, `error`, `timeout`, `rate_limited` |
//! | `customer_session_store_call_duration_seconds` | histogram | `operation` | store call latency, timeouts included |
//! | `customer_session_cache_entries` | gauge | `cache` | `sessions` and `negative` entries (approximate, updated on fills and invalidations) |
//! | `customer_session_feed_up` | gauge | | 1 while the invalidation feed is live, 0 otherwise (absent without a feed) |
//! | `customer_session_feed_transitions_total` | counter | `state` | feed state changes: `live`, `lost` |
//! | `customer_session_feed_invalidations_total` | counter | `kind` | invalidations applied from the feed: `session`, `customer`, `all` |
//! | `customer_session_accepted_key_loads_total` | counter | `key` | sessions loaded under an accepted older key (`key`: its position in [`accept_secrets`](crate::SessionManagerBuilder::accept_secrets), from 1): at 0 for a session lifetime, that key can be dropped |
//! | `customer_session_store_served_revoked_total` | counter | | sessions the store served although this instance had seen them revoked (a restart from older data, a failover): refused |
//! | `customer_session_revocation_record_full_total` | counter | | revocations recorded past the record's design capacity: it keeps every one, and refuses more valid sessions by mistake (fail safe) |
//! | `customer_session_tombstones_full_total` | counter | | failed revocations that found the tombstone record full: the cache then stops filling until tombstones expire (fail safe; see [`SessionManager::revoke_hash`](crate::SessionManager::revoke_hash)) |
//!
//! The request outcomes, cache lookups, store loads and entry gauges are registered when the
//! manager is built, so those series are scraped at 0 before their first event (a rate over
//! a series that did not exist yet would miss the first increase), and recording one costs
//! an atomic add instead of a look-up in the recorder.
//!
//! Measured with `metrics-exporter-prometheus` installed, a cache hit costs about 10 to 30 ns
//! more than without the feature (two counter increments; `BENCHMARKS.md`, "What the metrics
//! cost"). Without the feature every call below compiles to nothing.

use std::time::Duration;

use crate::extension::CredentialSource;
use crate::store::{FeedState, Invalidation, StoreError};

/// Which store operation a call was.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StoreOp {
    Load,
    Create,
    Revoke,
    RevokeAll,
    UpsertCustomer,
    Customer,
    DeleteCustomer,
}

impl StoreOp {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn label(self) -> &'static str {
        match self {
            Self::Load => "load",
            Self::Create => "create",
            Self::Revoke => "revoke",
            Self::RevokeAll => "revoke_all",
            Self::UpsertCustomer => "upsert_customer",
            Self::Customer => "customer",
            Self::DeleteCustomer => "delete_customer",
        }
    }
}

/// What a cache probe found.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CacheResult {
    Hit,
    NegativeHit,
    Miss,
    Coalesced,
}

#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn source_label(source: Option<CredentialSource>) -> &'static str {
    match source {
        Some(CredentialSource::Header) => "header",
        Some(CredentialSource::Cookie) => "cookie",
        None => "none",
    }
}

#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn store_result<T>(result: &Result<T, StoreError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(StoreError::Timeout) => "timeout",
        Err(StoreError::RateLimited { .. }) => "rate_limited",
        Err(_) => "error",
    }
}

/// Every `outcome` label but `authenticated`: `anonymous` and each [`Rejection::label`].
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
const OUTCOMES: [&str; 12] = [
    "anonymous",
    "missing_credentials",
    "unsupported_scheme",
    "invalid_request",
    "cross_site_request",
    "malformed_token",
    "unknown_token",
    "expired",
    "customer_deleted",
    "store_timeout",
    "store_error",
    "store_rate_limited",
];

#[cfg(feature = "metrics")]
mod enabled {
    use std::sync::Arc;

    use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

    use super::*;

    /// Handles registered once, at build time: recording through a handle is an atomic add,
    /// where `counter!` with labels builds a key and looks it up in the recorder each time
    /// (on a negative hit that lookup cost a third of the request). Shared by every clone.
    #[derive(Clone)]
    pub(crate) struct Metrics(Arc<Handles>);

    struct Handles {
        hit: Counter,
        negative_hit: Counter,
        miss: Counter,
        coalesced: Counter,
        authenticated_header: Counter,
        authenticated_cookie: Counter,
        /// `OUTCOMES[i]` by source: header, cookie, none.
        outcomes: Vec<[Counter; 3]>,
        /// Store loads by result (`ok`, `error`, `timeout`, `rate_limited`), and their latency.
        loads: [Counter; 4],
        load_duration: Histogram,
        /// Cache entry counts: sessions, negative.
        entries: [Gauge; 2],
    }

    fn source_index(source: Option<CredentialSource>) -> usize {
        match source {
            Some(CredentialSource::Header) => 0,
            Some(CredentialSource::Cookie) => 1,
            None => 2,
        }
    }

    const SOURCES: [Option<CredentialSource>; 3] = [
        Some(CredentialSource::Header),
        Some(CredentialSource::Cookie),
        None,
    ];

    const STORE_RESULTS: [&str; 4] = ["ok", "error", "timeout", "rate_limited"];

    fn result_index<T>(result: &Result<T, StoreError>) -> usize {
        let label = store_result(result);
        STORE_RESULTS
            .iter()
            .position(|known| *known == label)
            .expect("a known result")
    }

    fn requests(outcome: &'static str, source: Option<CredentialSource>) -> Counter {
        counter!("customer_session_requests_total", "outcome" => outcome, "source" => source_label(source))
    }

    impl Metrics {
        pub(crate) fn new() -> Self {
            let lookups = |result: &'static str| counter!("customer_session_cache_lookups_total", "result" => result);
            let load = StoreOp::Load.label();
            Self(Arc::new(Handles {
                hit: lookups("hit"),
                negative_hit: lookups("negative_hit"),
                miss: lookups("miss"),
                coalesced: lookups("coalesced"),
                authenticated_header: requests("authenticated", SOURCES[0]),
                authenticated_cookie: requests("authenticated", SOURCES[1]),
                outcomes: OUTCOMES
                    .iter()
                    .map(|outcome| SOURCES.map(|source| requests(outcome, source)))
                    .collect(),
                loads: STORE_RESULTS.map(|result| {
                    counter!("customer_session_store_calls_total", "operation" => load, "result" => result)
                }),
                load_duration: histogram!("customer_session_store_call_duration_seconds", "operation" => load),
                entries: ["sessions", "negative"]
                    .map(|cache| gauge!("customer_session_cache_entries", "cache" => cache)),
            }))
        }

        #[inline]
        pub(crate) fn cache(&self, result: CacheResult) {
            let handles = &self.0;
            match result {
                CacheResult::Hit => handles.hit.increment(1),
                CacheResult::NegativeHit => handles.negative_hit.increment(1),
                CacheResult::Miss => handles.miss.increment(1),
                CacheResult::Coalesced => handles.coalesced.increment(1),
            }
        }

        #[inline]
        pub(crate) fn authenticated(&self, source: CredentialSource) {
            match source {
                CredentialSource::Header => self.0.authenticated_header.increment(1),
                CredentialSource::Cookie => self.0.authenticated_cookie.increment(1),
            }
        }

        pub(crate) fn request(&self, outcome: &'static str, source: Option<CredentialSource>) {
            match OUTCOMES.iter().position(|known| *known == outcome) {
                Some(i) => self.0.outcomes[i][source_index(source)].increment(1),
                // A label added to `Rejection` but not to `OUTCOMES` is still counted.
                None => requests(outcome, source).increment(1),
            }
        }

        pub(crate) fn store<T>(&self, op: StoreOp, result: &Result<T, StoreError>, took: Duration) {
            if let StoreOp::Load = op {
                self.0.loads[result_index(result)].increment(1);
                self.0.load_duration.record(took.as_secs_f64());
                return;
            }
            counter!("customer_session_store_calls_total", "operation" => op.label(), "result" => store_result(result))
                .increment(1);
            histogram!("customer_session_store_call_duration_seconds", "operation" => op.label())
                .record(took.as_secs_f64());
        }

        pub(crate) fn entries(&self, sessions: u64, negative: u64) {
            self.0.entries[0].set(sessions as f64);
            self.0.entries[1].set(negative as f64);
        }
        pub(crate) fn feed_state(&self, state: FeedState) {
            gauge!("customer_session_feed_up").set(if state == FeedState::Live {
                1.0
            } else {
                0.0
            });
            if matches!(state, FeedState::Live | FeedState::Lost) {
                counter!("customer_session_feed_transitions_total", "state" => state.as_str())
                    .increment(1);
            }
        }

        pub(crate) fn feed_message(&self, invalidation: &Invalidation) {
            let kind = match invalidation {
                Invalidation::Session(_) => "session",
                Invalidation::Customer(_) => "customer",
                Invalidation::All => "all",
                Invalidation::Revoked(_) => "revoked",
                Invalidation::CustomerRevoked { .. } => "customer_revoked",
            };
            counter!("customer_session_feed_invalidations_total", "kind" => kind).increment(1);
        }

        pub(crate) fn tombstones_full(&self) {
            counter!("customer_session_tombstones_full_total").increment(1);
        }

        pub(crate) fn revocation_record_full(&self) {
            counter!("customer_session_revocation_record_full_total").increment(1);
        }

        pub(crate) fn revoked_session_served(&self) {
            counter!("customer_session_store_served_revoked_total").increment(1);
        }

        /// A session loaded under the accepted key at `position` (from 1), never the key.
        pub(crate) fn accepted_key_load(&self, position: usize) {
            counter!("customer_session_accepted_key_loads_total", "key" => position.to_string())
                .increment(1);
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod disabled {
    use super::*;

    /// Nothing to record: every method is empty and inlined away.
    #[derive(Clone)]
    pub(crate) struct Metrics;

    impl Metrics {
        pub(crate) fn new() -> Self {
            Self
        }
        #[inline(always)]
        pub(crate) fn cache(&self, _: CacheResult) {}
        #[inline(always)]
        pub(crate) fn authenticated(&self, _: CredentialSource) {}
        #[inline(always)]
        pub(crate) fn request(&self, _: &'static str, _: Option<CredentialSource>) {}
        #[inline(always)]
        pub(crate) fn store<T>(&self, _: StoreOp, _: &Result<T, StoreError>, _: Duration) {}
        #[inline(always)]
        pub(crate) fn entries(&self, _: u64, _: u64) {}
        #[inline(always)]
        pub(crate) fn feed_state(&self, _: FeedState) {}
        #[inline(always)]
        pub(crate) fn feed_message(&self, _: &Invalidation) {}
        #[inline(always)]
        pub(crate) fn tombstones_full(&self) {}
        #[inline(always)]
        pub(crate) fn accepted_key_load(&self, _: usize) {}
        #[inline(always)]
        pub(crate) fn revocation_record_full(&self) {}
        #[inline(always)]
        pub(crate) fn revoked_session_served(&self) {}
    }
}

#[cfg(not(feature = "metrics"))]
pub(crate) use disabled::Metrics;
#[cfg(feature = "metrics")]
pub(crate) use enabled::Metrics;

#[cfg(test)]
mod tests {
    use super::OUTCOMES;
    use crate::Rejection;
    use crate::reject::{InvalidRequest, InvalidToken, StoreUnavailable};

    #[test]
    fn every_rejection_label_has_a_preregistered_outcome() {
        let all = [
            Rejection::MissingCredentials,
            Rejection::UnsupportedScheme,
            Rejection::InvalidRequest(InvalidRequest::DuplicateAuthorization),
            Rejection::CrossSiteRequest,
            Rejection::InvalidToken(InvalidToken::Malformed),
            Rejection::InvalidToken(InvalidToken::Unknown),
            Rejection::InvalidToken(InvalidToken::Expired),
            Rejection::InvalidToken(InvalidToken::CustomerDeleted),
            Rejection::StoreUnavailable(StoreUnavailable::Timeout),
            Rejection::StoreUnavailable(StoreUnavailable::Error),
            Rejection::StoreUnavailable(StoreUnavailable::RateLimited { retry_after: None }),
        ];
        for rejection in all {
            assert!(
                OUTCOMES.contains(&rejection.label()),
                "{}",
                rejection.label()
            );
        }
        assert_eq!(OUTCOMES.len(), all.len() + 1, "and `anonymous`");
    }
}
