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
//!
//! Without the feature every call below compiles to nothing.

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

#[cfg(feature = "metrics")]
mod enabled {
    use metrics::{Counter, counter, gauge, histogram};

    use super::*;

    /// Handles for the hot path, registered once; clones share them.
    #[derive(Clone)]
    pub(crate) struct Metrics {
        hit: Counter,
        negative_hit: Counter,
        authenticated_header: Counter,
        authenticated_cookie: Counter,
    }

    impl Metrics {
        pub(crate) fn new() -> Self {
            let lookups = |result: &'static str| counter!("customer_session_cache_lookups_total", "result" => result);
            let authenticated = |source: &'static str| counter!("customer_session_requests_total", "outcome" => "authenticated", "source" => source);
            Self {
                hit: lookups("hit"),
                negative_hit: lookups("negative_hit"),
                authenticated_header: authenticated("header"),
                authenticated_cookie: authenticated("cookie"),
            }
        }

        #[inline]
        pub(crate) fn cache(&self, result: CacheResult) {
            match result {
                CacheResult::Hit => self.hit.increment(1),
                CacheResult::NegativeHit => self.negative_hit.increment(1),
                CacheResult::Miss => {
                    counter!("customer_session_cache_lookups_total", "result" => "miss")
                        .increment(1)
                }
                CacheResult::Coalesced => {
                    counter!("customer_session_cache_lookups_total", "result" => "coalesced")
                        .increment(1)
                }
            }
        }

        #[inline]
        pub(crate) fn authenticated(&self, source: CredentialSource) {
            match source {
                CredentialSource::Header => self.authenticated_header.increment(1),
                CredentialSource::Cookie => self.authenticated_cookie.increment(1),
            }
        }

        pub(crate) fn request(&self, outcome: &'static str, source: Option<CredentialSource>) {
            counter!("customer_session_requests_total", "outcome" => outcome, "source" => source_label(source))
                .increment(1);
        }

        pub(crate) fn store<T>(&self, op: StoreOp, result: &Result<T, StoreError>, took: Duration) {
            counter!("customer_session_store_calls_total", "operation" => op.label(), "result" => store_result(result))
                .increment(1);
            histogram!("customer_session_store_call_duration_seconds", "operation" => op.label())
                .record(took.as_secs_f64());
        }

        pub(crate) fn entries(&self, sessions: u64, negative: u64) {
            gauge!("customer_session_cache_entries", "cache" => "sessions").set(sessions as f64);
            gauge!("customer_session_cache_entries", "cache" => "negative").set(negative as f64);
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
            };
            counter!("customer_session_feed_invalidations_total", "kind" => kind).increment(1);
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
    }
}

#[cfg(not(feature = "metrics"))]
pub(crate) use disabled::Metrics;
#[cfg(feature = "metrics")]
pub(crate) use enabled::Metrics;
