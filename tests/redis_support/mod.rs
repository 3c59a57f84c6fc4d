//! What the Redis tests share: the shared server (or a loud skip), a namespace of unique
//! key prefixes that is deleted afterwards, servers of their own for fault tests, and
//! managers that wait for their feed.

// Each test binary uses a different subset.
#![allow(dead_code)]

pub mod cluster;
pub mod proxy;
pub mod sentinel;
pub mod server;
pub mod traffic;

use std::sync::Mutex;
use std::time::Duration;

use tower_customer_session::redis;
use tower_customer_session::store::FeedState;
use tower_customer_session::{CredentialSource, RedisStore, RedisStoreBuilder, SessionManager};

/// The HMAC key every instance in a test shares.
pub const SECRET: &[u8] = b"redis integration secret 32 byte";
/// How soon a change on one instance must be refused on another.
pub const PROPAGATION: Duration = Duration::from_millis(100);

/// Whether the environment demands that every service be there.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The shared Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`), if it answers `PING`.
/// Under `CI=true` an unreachable server fails the test; elsewhere the test is skipped,
/// loudly.
pub fn shared_url() -> Option<String> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let ping = redis::Client::open(url.as_str())
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection));
    match ping {
        Ok(_) => Some(url),
        Err(error) if ci() => {
            panic!("CI=true and the shared Redis at {url} does not answer: {error}")
        }
        Err(error) => {
            eprintln!(
                "SKIPPED: no Redis at {url} ({error}). Start one (`redis-server`) or set REDIS_URL to run this test."
            );
            None
        }
    }
}

/// Unique key prefixes (and so channels) on one server; their keys are deleted on drop,
/// also when a test fails.
pub struct Namespace {
    url: String,
    prefixes: Mutex<Vec<String>>,
}

impl Namespace {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefixes: Mutex::default(),
        }
    }

    /// The shared server's namespace, or `None` (test skipped) as [`shared_url`] says.
    pub fn shared() -> Option<Self> {
        shared_url().map(Self::new)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A prefix no other test run uses; the default channel follows it.
    pub fn new_prefix(&self) -> String {
        let prefix = format!("tcs-test:{}:", uuid::Uuid::new_v4().simple());
        self.prefixes.lock().unwrap().push(prefix.clone());
        prefix
    }

    /// A builder on `prefix`, with every other setting at its default (the heartbeat's is
    /// short enough for tests to notice losses quickly).
    pub fn builder(&self, prefix: &str) -> RedisStoreBuilder {
        RedisStore::builder(self.url.as_str()).key_prefix(prefix)
    }

    /// A store on a fresh, empty prefix.
    pub async fn fresh_store(&self) -> RedisStore {
        let prefix = self.new_prefix();
        self.builder(&prefix).connect().await.expect("connect")
    }

    /// Two instances (two connections, two feeds) on one fresh prefix, as two processes.
    pub async fn two_instances(&self) -> (RedisStore, RedisStore) {
        let prefix = self.new_prefix();
        let a = self.builder(&prefix).connect().await.expect("connect");
        let b = self.builder(&prefix).connect().await.expect("connect");
        (a, b)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let prefixes =
            std::mem::take(&mut *self.prefixes.lock().unwrap_or_else(|e| e.into_inner()));
        if prefixes.is_empty() {
            return;
        }
        let Ok(mut connection) = redis::Client::open(self.url.as_str())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        else {
            return;
        };
        for prefix in prefixes {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut connection)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query(&mut connection);
            }
        }
    }
}

/// A manager as each instance would build it: the shared secret, default cache settings
/// (so only the feed can make a cached session go away within a test's time).
pub fn manager(store: RedisStore) -> SessionManager<RedisStore> {
    SessionManager::builder(store)
        .secret(SECRET)
        .build()
        .expect("a secret is configured")
}

/// Wait until `manager`'s feed reports `state`, or fail after `within`.
pub async fn wait_for_feed<S: tower_customer_session::SessionStore>(
    manager: &SessionManager<S>,
    state: FeedState,
    within: Duration,
) -> Duration {
    let started = tokio::time::Instant::now();
    while manager.feed_state() != state {
        assert!(
            started.elapsed() < within,
            "feed not {state:?} within {within:?} (it is {:?})",
            manager.feed_state()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// Authenticate twice, so the second answer comes from the cache.
pub async fn authenticates<S: tower_customer_session::SessionStore>(
    manager: &SessionManager<S>,
    token: &str,
) {
    for _ in 0..2 {
        manager
            .authenticate(token, CredentialSource::Header)
            .await
            .expect("the session authenticates");
    }
}

/// Poll until `manager` refuses `token`; fail if that takes longer than `within`.
pub async fn refused_within<S: tower_customer_session::SessionStore>(
    manager: &SessionManager<S>,
    token: &str,
    within: Duration,
    what: &str,
) -> Duration {
    let started = tokio::time::Instant::now();
    loop {
        if manager
            .authenticate(token, CredentialSource::Header)
            .await
            .is_err()
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{what} not refused within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A customer for tests.
pub fn customer(name: &str) -> tower_customer_session::Customer {
    let mut data = tower_customer_session::model::CustomerData::new(chrono::Utc::now());
    data.name = Some(name.to_owned());
    data.email = Some(format!("{}@example.com", name.to_lowercase()));
    data.into()
}
