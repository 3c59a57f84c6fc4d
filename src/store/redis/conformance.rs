//! The store test kit's view of a [`RedisStore`]: a second instance, every key, and the
//! feed's subscriptions. Expiry is judged by this host's clock (`Utc::now()` in `load`),
//! the kit's default.

use redis::Value;

use super::RedisStore;
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
        let mut connection = self.connection();
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
