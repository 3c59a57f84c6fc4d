//! `SESSION_STORE=redis`: the portal's sessions and customers in Redis, shared by every
//! instance on the same server, found by URL or through Sentinel.

use std::error::Error;
use std::time::Duration;

use tower_customer_session::RedisStore;
use tower_customer_session::store::RedisDurability;

/// How long a revocation waits for its replicas (or fsync) before it reports an error.
const WAIT: Duration = Duration::from_millis(500);

/// Connect to `REDIS_URL`, or through the Sentinels of `REDIS_SENTINELS` to the primary
/// named `REDIS_SENTINEL_MASTER`, with the durability `REDIS_DURABILITY` asks.
pub async fn open() -> Result<RedisStore, Box<dyn Error>> {
    let durability = durability(env("REDIS_DURABILITY").as_deref())?;
    let builder = match env("REDIS_SENTINELS") {
        Some(sentinels) => {
            let master = env("REDIS_SENTINEL_MASTER")
                .ok_or("REDIS_SENTINELS needs REDIS_SENTINEL_MASTER, the primary's name")?;
            let sentinels = sentinels
                .split(',')
                .map(str::trim)
                .filter(|address| !address.is_empty());
            RedisStore::sentinel(sentinels, master)
        }
        None => {
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
}
