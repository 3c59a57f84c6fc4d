//! `SESSION_STORE=redis`: the portal's sessions and customers in Redis, shared by every
//! instance on the same server, found by URL, through Sentinel, or on a Redis Cluster.

use std::error::Error;
use std::time::Duration;

use tower_customer_session::RedisStore;
use tower_customer_session::store::RedisDurability;

/// How long a change waits for its replicas (or fsync) before it reports an error.
const WAIT: Duration = Duration::from_millis(500);

/// Connect to the Cluster nodes of `REDIS_CLUSTER_NODES`, or to `REDIS_URL`, or through
/// the Sentinels of `REDIS_SENTINELS` to the primary named `REDIS_SENTINEL_MASTER`, with
/// the durability `REDIS_DURABILITY` asks (on a Cluster, `WAIT` runs on the primary that
/// took each write, and counts its replicas).
pub async fn open() -> Result<RedisStore, Box<dyn Error>> {
    let durability = durability(env("REDIS_DURABILITY").as_deref())?;
    let cluster = env("REDIS_CLUSTER_NODES");
    if cluster.is_some() && env("REDIS_SENTINELS").is_some() {
        return Err("set REDIS_CLUSTER_NODES or REDIS_SENTINELS, not both".into());
    }
    let builder = match (cluster, env("REDIS_SENTINELS")) {
        (Some(nodes), _) => RedisStore::cluster(list(&nodes)),
        (None, Some(sentinels)) => {
            let master = env("REDIS_SENTINEL_MASTER")
                .ok_or("REDIS_SENTINELS needs REDIS_SENTINEL_MASTER, the primary's name")?;
            RedisStore::sentinel(list(&sentinels), master)
        }
        (None, None) => {
            RedisStore::builder(env("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into()))
        }
    };
    // Not the URL in the message: it may carry a password.
    let store = builder
        .durability(durability)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to Redis: {e}"))?;
    tracing::info!(?durability, "sessions in Redis");
    Ok(store)
}

/// A comma-separated list, without blanks.
fn list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

/// `none` (or unset), `replicas:N` (`WAIT N`) or `fsync:N` (`WAITAOF 1 N`, Redis ≥ 7.2).
fn durability(value: Option<&str>) -> Result<RedisDurability, String> {
    let invalid = || format!("REDIS_DURABILITY must be none, replicas:N or fsync:N, not {value:?}");
    match value.map(|value| value.split_once(':')) {
        None => Ok(RedisDurability::Primary),
        Some(None) if value == Some("none") => Ok(RedisDurability::Primary),
        Some(Some(("replicas", n))) => {
            let n = n.parse().map_err(|_| invalid())?;
            Ok(RedisDurability::replicas(n, WAIT))
        }
        Some(Some(("fsync", n))) => {
            let n = n.parse().map_err(|_| invalid())?;
            Ok(RedisDurability::fsync(n, WAIT))
        }
        Some(_) => Err(invalid()),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_settings() {
        assert_eq!(durability(None), Ok(RedisDurability::Primary));
        assert_eq!(durability(Some("none")), Ok(RedisDurability::Primary));
        assert_eq!(
            durability(Some("replicas:2")),
            Ok(RedisDurability::replicas(2, WAIT))
        );
        assert_eq!(
            durability(Some("fsync:0")),
            Ok(RedisDurability::fsync(0, WAIT))
        );
        for bad in [
            "replicas",
            "replicas:",
            "replicas:-1",
            "replicas:x",
            "all",
            "wait:1",
        ] {
            assert!(durability(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_lists() {
        assert_eq!(
            list("redis://10.0.0.1:7000, redis://10.0.0.2:7000,,"),
            ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]
        );
    }
}
