//! The bounds the documentation states, which the checker holds the fleet to. Every
//! constant the checker uses is here, with where it comes from.

use std::time::Duration;

use crate::history::{Fault, FaultKind};

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
/// revocation again within this, and answers no more `503`s because of it. On Redis
/// Cluster, counted from the restart (or SIGCONT) of the node that was down, as
/// `RedisStore`'s Cluster guide states: its sessions answer `503`, never `401`, until then.
pub const RECOVERY: Duration = Duration::from_secs(10);

/// A failover (`failover`: SIGKILL of the primary, Sentinel promotes the replica, the old
/// primary comes back as its replica) is recovered from within this of the kill: every
/// instance serves live sessions and propagates a fresh revocation again. With the
/// harness's Sentinel settings (`down-after-milliseconds 500`, `failover-timeout 2000`),
/// as `RedisStore::sentinel`'s documentation states.
pub const FAILOVER: Duration = Duration::from_secs(10);

/// Sentinel turns a primary it replaced, which answers again (stopped, then continued),
/// into a replica only after four of its 2 s publish periods (a constant of Redis); until
/// then the new primary has no replica to confirm a revocation. Added to [`RECOVERY`]
/// for `store-pause` on Sentinel, where a stop longer than `down-after-milliseconds` is a
/// failover.
pub const SENTINEL_DEMOTION: Duration = Duration::from_secs(8);

/// Where a fault's recovery time is counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The injection: the fault heals by itself (a failover).
    Injected,
    /// The heal (the restart or resume began, the proxy forwarded again).
    Healed,
}

/// The recovery time of `kind` on the topology `store`, and where it is counted from.
pub fn recovery(store: &str, kind: FaultKind) -> (Origin, Duration) {
    match (store, kind) {
        (_, FaultKind::Failover) => (Origin::Injected, FAILOVER),
        ("sentinel", FaultKind::StorePause) => (Origin::Healed, RECOVERY + SENTINEL_DEMOTION),
        _ => (Origin::Healed, RECOVERY),
    }
}

/// When the recovery time of `fault` ends (ms); 503s are explained until then.
pub fn recovery_end(store: &str, fault: &Fault) -> f64 {
    let (origin, bound) = recovery(store, fault.kind);
    let from = match origin {
        Origin::Injected => fault.start,
        Origin::Healed => fault.end,
    };
    (from + ms(bound)).max(fault.end)
}

/// A duration in the history's unit, milliseconds.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
