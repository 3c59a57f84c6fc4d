//! The bounds the documentation states, which the checker holds the fleet to. Every
//! constant the checker uses is here, with where it comes from.

use std::time::Duration;

/// A revocation made through one instance is refused by every other instance within this
/// while their feeds are live (README, "What a revocation guarantees"; the fleet tests
/// require the same).
pub const FEED: Duration = Duration::from_millis(100);

/// A feed that goes silent without closing is declared lost within
/// `heartbeat_interval + heartbeat_timeout` (the default of both stores); until then the
/// instance may still serve a revoked session from its cache.
pub const SILENCE: Duration = Duration::from_millis(300);

/// Added to [`SILENCE`]: the watchdog's timer and the instance's scheduler on a loaded
/// machine (the harness, the instances and the store share two cores).
pub const SCHEDULING_SLACK: Duration = Duration::from_millis(100);

/// The manager's default `store_timeout`: no request waits longer on the store before its
/// `503` (Redis's `command_timeout` and PostgreSQL's `acquire_timeout` are shorter).
pub const STORE_DEADLINE: Duration = Duration::from_secs(1);

/// Added to [`STORE_DEADLINE`] before a request counts as hung.
pub const REQUEST_SLACK: Duration = Duration::from_secs(1);

/// After a fault is healed, the fleet serves live sessions and propagates a fresh
/// revocation again within this, and answers no more `503`s because of it.
pub const RECOVERY: Duration = Duration::from_secs(10);

/// A duration in the history's unit, milliseconds.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
