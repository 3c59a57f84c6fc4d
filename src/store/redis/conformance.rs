//! The store test kit's view of a [`RedisStore`]: a second instance, every key, and the
//! feed's subscriptions. Expiry is judged by this host's clock (`Utc::now()` in `load`),
//! the kit's default.

use redis::Value;

use super::RedisStore;
use super::commands::Connection;
use crate::testing::Backend;

impl Backend for RedisStore {
    type Store = RedisStore;

    fn store(&self) -> RedisStore {
        self.clone()
    }

    async fn peer(&self) -> Option<RedisStore> {
        let peer = self
            .inner
            .settings
            .clone()
            .connect()
            .await
            .expect("a second RedisStore connects to the same server");
        Some(peer)
    }

    async fn dump(&self) -> Option<String> {
        // On a Cluster: `KEYS` asks every primary, each key is read from its own.
        let mut connection = self.inner.commands.current();
        let pattern = format!("{}*", glob_escape(self.key_prefix()));
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut connection)
            .await
            .expect("KEYS");
        keys.sort();
        let mut out = String::new();
        for key in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut connection)
                .await
                .expect("TYPE");
            let command = match kind.as_str() {
                "string" => "GET",
                "hash" => "HGETALL",
                "set" => "SMEMBERS",
                // Gone in between (expired): nothing to show.
                "none" => continue,
                other => panic!("the store never writes a {other} ({key})"),
            };
            let value: Value = redis::cmd(command)
                .arg(&key)
                .query_async(&mut connection)
                .await
                .expect("read a key");
            out.push_str(&format!("{key} = {value:?}\n"));
        }
        Some(out)
    }

    async fn feed_subscriptions(&self) -> Option<usize> {
        if let Some(cluster) = &self.inner.cluster {
            return Some(self.shard_subscriptions(&cluster.channels).await);
        }
        let mut connection = self.connection();
        let counts: Vec<(String, usize)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(self.channel())
            .query_async(&mut connection)
            .await
            .expect("PUBSUB NUMSUB");
        counts.first().map(|(_, count)| *count)
    }
}

impl RedisStore {
    /// How many instances listen to every shard channel: the fewest subscribers of any,
    /// each counted on the primary that owns its slot.
    async fn shard_subscriptions(&self, channels: &[String]) -> usize {
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};

        let Connection::Cluster(mut connection) = self.inner.commands.current() else {
            unreachable!("a cluster store has a cluster connection");
        };
        let mut fewest = usize::MAX;
        for channel in channels {
            let slot = super::cluster::slot::of(channel.as_bytes());
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                slot,
                SlotAddr::Master,
            )));
            let mut cmd = redis::cmd("PUBSUB");
            cmd.arg("SHARDNUMSUB").arg(channel);
            let reply = connection
                .route_command(cmd, route)
                .await
                .expect("PUBSUB SHARDNUMSUB");
            let counts: Vec<(String, usize)> =
                redis::from_redis_value(reply).expect("a SHARDNUMSUB reply");
            fewest = fewest.min(counts.first().map_or(0, |(_, count)| *count));
        }
        fewest
    }
}

/// `prefix` as a literal in a `KEYS`/`SCAN` pattern.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
