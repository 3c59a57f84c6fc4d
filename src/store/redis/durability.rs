//! [`RedisDurability`]: what every change (`create`, `upsert_customer`, `revoke`,
//! `revoke_all`, `delete_customer`) waits for before it returns `Ok`.
//!
//! The change and the wait travel in one pipeline on one connection: `WAIT` (and
//! `WAITAOF`) count the writes of the connection they arrive on, so a wait sent after a
//! reconnection would confirm nothing and could still answer "done".

use std::fmt;
use std::time::Duration;

use redis::{Pipeline, Value};

use crate::store::StoreError;

/// What every change (a creation, a customer, a revocation) waits for before returning
/// `Ok`; see [`RedisStoreBuilder::durability`](super::RedisStoreBuilder::durability).
///
/// ```
/// use std::time::Duration;
/// use tower_customer_session::store::RedisDurability;
///
/// let durability = RedisDurability::replicas(1, Duration::from_millis(500));
/// assert_eq!(
///     durability,
///     RedisDurability::Replicas { count: 1, timeout: Duration::from_millis(500) }
/// );
/// assert_eq!(RedisDurability::default(), RedisDurability::Primary);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisDurability {
    /// Return once the primary applied the change (in its memory). A crash before the
    /// next snapshot or AOF fsync, or a failover to a replica that had not received it,
    /// undoes it.
    #[default]
    Primary,
    /// `WAIT count timeout`: return `Ok` once `count` replicas acknowledged the change,
    /// an error if fewer did within `timeout`.
    Replicas {
        /// How many replicas must hold the change.
        count: u32,
        /// How long to wait for them (at least 1 ms: `WAIT … 0` would wait forever).
        timeout: Duration,
    },
    /// `WAITAOF 1 replicas timeout` (Redis ≥ 7.2, `appendonly yes`): return `Ok` once the
    /// primary fsynced the change to its append-only file, and `replicas` replicas to
    /// theirs; an error otherwise. [`connect`](super::RedisStoreBuilder::connect) refuses
    /// an older server, or one without `appendonly`.
    Fsync {
        /// How many replicas must also have fsynced it (0: the primary only).
        replicas: u32,
        /// How long to wait (at least 1 ms).
        timeout: Duration,
    },
}

impl RedisDurability {
    /// [`RedisDurability::Replicas`].
    pub fn replicas(count: u32, timeout: Duration) -> Self {
        Self::Replicas {
            count,
            timeout: timeout.max(Duration::from_millis(1)),
        }
    }

    /// [`RedisDurability::Fsync`].
    pub fn fsync(replicas: u32, timeout: Duration) -> Self {
        Self::Fsync {
            replicas,
            timeout: timeout.max(Duration::from_millis(1)),
        }
    }

    /// How much longer than one command a change may take.
    pub(super) fn timeout(self) -> Duration {
        match self {
            Self::Primary => Duration::ZERO,
            Self::Replicas { timeout, .. } | Self::Fsync { timeout, .. } => timeout,
        }
    }

    /// Add the wait, if any, after the change in `pipeline`.
    pub(super) fn add_wait(self, pipeline: &mut Pipeline) {
        match self {
            Self::Primary => {}
            Self::Replicas { count, timeout } => {
                pipeline.cmd("WAIT").arg(count).arg(millis(timeout));
            }
            Self::Fsync { replicas, timeout } => {
                pipeline
                    .cmd("WAITAOF")
                    .arg(1)
                    .arg(replicas)
                    .arg(millis(timeout));
            }
        }
    }

    /// Check the wait's reply: enough copies, or an error saying what was missing.
    pub(super) fn check(self, reply: Option<Value>) -> Result<(), StoreError> {
        let short = |got: String| StoreError::backend(Unconfirmed { wanted: self, got });
        match (self, reply) {
            (Self::Primary, _) => Ok(()),
            (Self::Replicas { count, .. }, Some(Value::Int(acked))) => {
                if acked >= i64::from(count) {
                    Ok(())
                } else {
                    Err(short(format!("{acked} replica(s)")))
                }
            }
            (Self::Fsync { replicas, .. }, Some(Value::Array(counts))) => match counts.as_slice() {
                [Value::Int(local), Value::Int(acked)] => {
                    if *local >= 1 && *acked >= i64::from(replicas) {
                        Ok(())
                    } else {
                        Err(short(format!(
                            "local fsync {local}, {acked} replica fsync(s)"
                        )))
                    }
                }
                _ => Err(short("an unexpected reply".to_owned())),
            },
            (_, _) => Err(short("an unexpected reply".to_owned())),
        }
    }

    /// Whether the server described by `INFO` (version, persistence) can give this
    /// guarantee.
    pub(super) fn supported_by(self, info: &str) -> Result<(), StoreError> {
        let Self::Fsync { .. } = self else {
            return Ok(());
        };
        let version = super::builder::server_version(info);
        if version.is_none_or(|version| version < (7, 2)) {
            let found = version.map_or("unknown".to_owned(), |(major, minor)| {
                format!("{major}.{minor}")
            });
            return Err(StoreError::backend(format!(
                "RedisDurability::Fsync needs WAITAOF, Redis 7.2 or newer; the server is {found}"
            )));
        }
        if info_field(info, "aof_enabled") != Some("1") {
            return Err(StoreError::backend(
                "RedisDurability::Fsync needs `appendonly yes` on the server",
            ));
        }
        Ok(())
    }
}

fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// `field:value` in an `INFO` reply.
pub(super) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The change was applied on the primary, but not confirmed as durable as configured.
#[derive(Debug)]
struct Unconfirmed {
    wanted: RedisDurability,
    got: String,
}

impl fmt::Display for Unconfirmed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the change reached the primary but is not confirmed durable: wanted {:?}, got {}",
            self.wanted, self.got
        )
    }
}

impl std::error::Error for Unconfirmed {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_below_the_asked_count_are_errors() {
        let two = RedisDurability::replicas(2, Duration::from_millis(10));
        assert!(two.check(Some(Value::Int(2))).is_ok());
        assert!(two.check(Some(Value::Int(3))).is_ok());
        assert!(two.check(Some(Value::Int(1))).is_err());
        assert!(two.check(None).is_err());
        assert!(two.check(Some(Value::Nil)).is_err());
        let fsync = RedisDurability::fsync(1, Duration::from_millis(10));
        let counts =
            |local, replicas| Some(Value::Array(vec![Value::Int(local), Value::Int(replicas)]));
        assert!(fsync.check(counts(1, 1)).is_ok());
        assert!(fsync.check(counts(0, 1)).is_err());
        assert!(fsync.check(counts(1, 0)).is_err());
        assert!(fsync.check(Some(Value::Int(1))).is_err());
        assert!(RedisDurability::Primary.check(None).is_ok());
    }

    #[test]
    fn fsync_needs_7_2_and_appendonly() {
        let fsync = RedisDurability::fsync(0, Duration::from_millis(10));
        let old = "redis_version:7.0.15\r\naof_enabled:1\r\n";
        let error = fsync.supported_by(old).unwrap_err().to_string();
        assert!(error.contains("7.2") && error.contains("7.0"), "{error}");
        assert!(
            fsync
                .supported_by("redis_version:7.2.4\r\naof_enabled:0\r\n")
                .is_err()
        );
        assert!(
            fsync
                .supported_by("redis_version:7.2.4\r\naof_enabled:1\r\n")
                .is_ok()
        );
        assert!(RedisDurability::Primary.supported_by(old).is_ok());
        assert!(
            RedisDurability::replicas(1, Duration::ZERO)
                .supported_by(old)
                .is_ok()
        );
        assert_eq!(
            RedisDurability::replicas(1, Duration::ZERO).timeout(),
            Duration::from_millis(1)
        );
    }
}
