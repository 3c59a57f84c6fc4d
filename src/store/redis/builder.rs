//! [`RedisStoreBuilder`]: where the Redis server is and how the store talks to it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;

use super::cluster::feed::ClusterFeed;
use super::cluster::{Cluster, shard_channels};
use super::commands::{Commands, Connection};
use super::durability::RedisDurability;
use super::feed::FeedSettings;
use super::identity::{Changes, Identity};
use super::keys::Keys;
use super::scripts::Scripts;
use super::target::Target;
use super::{Inner, RedisStore, redis_error};
use crate::store::StoreError;

/// The server releases that have everything the store uses (`SET … PXAT`).
const MIN_VERSION: (u32, u32) = (6, 2);
/// On a Cluster: sharded pub/sub (`SSUBSCRIBE`, `SPUBLISH`).
const MIN_CLUSTER_VERSION: (u32, u32) = (7, 0);

/// Configures and connects a [`RedisStore`]; every setting has a default stated on its
/// method.
///
/// ```
/// use std::time::Duration;
/// use tower_customer_session::RedisStore;
///
/// let builder = RedisStore::builder("redis://127.0.0.1:6379")
///     .key_prefix("shop:sessions:")
///     .command_timeout(Duration::from_millis(200));
/// assert_eq!(builder.channel_name(), "shop:sessions:feed");
/// // let store = builder.connect().await?;
/// ```
#[derive(Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    endpoint: Endpoint,
    key_prefix: String,
    channel: Option<String>,
    connect_timeout: Duration,
    command_timeout: Duration,
    heartbeat_interval: Duration,
    heartbeat_timeout: Duration,
    durability: RedisDurability,
}

/// Where the primary is.
#[derive(Clone)]
enum Endpoint {
    Url(String),
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
    /// Some nodes of a Redis Cluster (URLs).
    Cluster(Vec<String>),
}

impl RedisStoreBuilder {
    pub(super) fn new(url: impl Into<String>) -> Self {
        Self::with_endpoint(Endpoint::Url(url.into()))
    }

    pub(super) fn sentinel(sentinels: Vec<String>, master: String) -> Self {
        Self::with_endpoint(Endpoint::Sentinel { sentinels, master })
    }

    pub(super) fn cluster(nodes: Vec<String>) -> Self {
        Self::with_endpoint(Endpoint::Cluster(nodes))
    }

    fn with_endpoint(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            key_prefix: "tcs:".to_owned(),
            channel: None,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(500),
            heartbeat_interval: Duration::from_millis(100),
            heartbeat_timeout: Duration::from_millis(200),
            durability: RedisDurability::Primary,
        }
    }

    /// What every change (`create`, `upsert_customer`, `revoke`, `revoke_all`,
    /// `delete_customer`) waits for before returning `Ok`. Default:
    /// [`RedisDurability::Primary`], the primary's memory.
    ///
    /// A change the server loses afterwards (a restart from an older snapshot, a failover
    /// to a replica it had not reached) comes undone: a revoked session is valid again on
    /// every instance but the one that revoked it; a lost creation is a session that stops
    /// working. With
    /// [`RedisDurability::Replicas`], the call returns `Ok` only once that many replicas
    /// hold the change (`WAIT`), and an error, never `Ok`, when fewer did within the
    /// timeout; with [`RedisDurability::Fsync`] (Redis ≥ 7.2), once it is fsynced to the
    /// append-only file (`WAITAOF`). An error then means the change was made on the
    /// primary but may not survive it. Each change takes one replica round trip (or one
    /// fsync) longer; loads are not affected.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use tower_customer_session::RedisStore;
    /// use tower_customer_session::store::RedisDurability;
    ///
    /// let builder = RedisStore::builder("redis://127.0.0.1:6379");
    /// assert_eq!(builder.durability_setting(), RedisDurability::Primary);
    /// let builder = builder.durability(RedisDurability::replicas(1, Duration::from_millis(500)));
    /// assert_eq!(
    ///     builder.durability_setting(),
    ///     RedisDurability::Replicas { count: 1, timeout: Duration::from_millis(500) }
    /// );
    /// ```
    pub fn durability(mut self, durability: RedisDurability) -> Self {
        self.durability = durability;
        self
    }

    /// The durability this builder is set to.
    pub fn durability_setting(&self) -> RedisDurability {
        self.durability
    }

    /// What every key of this store starts with; several applications (or test runs) can
    /// share one Redis under different prefixes. Default: `tcs:`.
    ///
    /// ```
    /// # use tower_customer_session::RedisStore;
    /// let builder = RedisStore::builder("redis://127.0.0.1:6379").key_prefix("shop:");
    /// assert_eq!(builder.prefix(), "shop:");
    /// assert_eq!(RedisStore::builder("redis://127.0.0.1:6379").prefix(), "tcs:");
    /// ```
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The pub/sub channel invalidations are published on; every instance sharing the
    /// sessions must use the same one. Default: the key prefix followed by `feed`
    /// (`tcs:feed`).
    ///
    /// ```
    /// # use tower_customer_session::RedisStore;
    /// let builder = RedisStore::builder("redis://127.0.0.1:6379");
    /// assert_eq!(builder.channel_name(), "tcs:feed");
    /// let builder = builder.channel("shop-invalidations");
    /// assert_eq!(builder.channel_name(), "shop-invalidations");
    /// ```
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// How long [`connect`](Self::connect), each reconnection attempt and each
    /// resubscription of the feed may take. Default: 1 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::RedisStore;
    /// let builder = RedisStore::builder("redis://127.0.0.1:6379")
    ///     .connect_timeout(Duration::from_secs(3));
    /// # let _ = builder;
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long one command (one round trip) may take before it fails with
    /// [`StoreError::Timeout`], so a hung server answers `503` quickly. Keep it below the
    /// manager's [`store_timeout`](crate::SessionManagerBuilder::store_timeout), which
    /// stays as a second guard. Default: 500 ms.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::RedisStore;
    /// let builder = RedisStore::builder("redis://127.0.0.1:6379")
    ///     .command_timeout(Duration::from_millis(150));
    /// # let _ = builder;
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long the feed waits after one `PING` through its subscription before sending
    /// the next (measured from the sending; never two at once). Part of the
    /// [silence bound](Self::silence_bound). Default: 100 ms.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::RedisStore;
    /// let builder = RedisStore::builder("redis://127.0.0.1:6379")
    ///     .heartbeat_interval(Duration::from_millis(250));
    /// assert_eq!(builder.silence_bound(), Duration::from_millis(450));
    /// ```
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long a feed `PING` may go unanswered before the subscription counts as lost
    /// (and is replaced, with backoff). Part of the [silence bound](Self::silence_bound).
    /// Default: 200 ms.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::RedisStore;
    /// let builder = RedisStore::builder("redis://127.0.0.1:6379")
    ///     .heartbeat_timeout(Duration::from_millis(400));
    /// assert_eq!(builder.silence_bound(), Duration::from_millis(500));
    /// ```
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The silence bound: `heartbeat_interval + heartbeat_timeout`, 300 ms by default.
    ///
    /// It is the longest a subscription that died silently (a frozen connection, a dropped
    /// NAT entry) can let an instance serve, from its cache, a session revoked on another
    /// instance. A revocation published before a feed `PING` was sent arrives before that
    /// `PING`'s answer, and the [`SessionManager`](crate::SessionManager) stops using its
    /// cache (default [`FeedPolicy`](crate::store::FeedPolicy)) once the silence bound has
    /// passed since the last answered `PING` was sent. So a session revoked anywhere is
    /// refused on every instance within the silence bound of `revoke` returning (plus
    /// scheduling delays), whether the feed is healthy (then within its delivery time,
    /// about a millisecond on a LAN) or silently dead.
    ///
    /// A shorter bound costs more pings (at the defaults, ten a second per
    /// `SessionManager`; measured in `BENCHMARKS.md`, "Heartbeat cost") and risks false
    /// alarms: a server that stalls longer than the timeout (a slow command, a fork on a
    /// large data set) counts as a lost feed on every instance, which then flush their
    /// caches and ask Redis for every request until the feed is back.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::RedisStore;
    /// let builder = RedisStore::builder("redis://127.0.0.1:6379");
    /// assert_eq!(builder.silence_bound(), Duration::from_millis(300));
    /// ```
    pub fn silence_bound(&self) -> Duration {
        self.heartbeat_interval + self.heartbeat_timeout
    }

    /// The key prefix this builder is set to.
    pub fn prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The channel this builder is set to.
    pub fn channel_name(&self) -> String {
        match &self.channel {
            Some(channel) => channel.clone(),
            None => format!("{}feed", self.key_prefix),
        }
    }

    /// Connect, within the connect timeout, and check the server's version.
    ///
    /// The connection reconnects by itself after a failure, and is replaced when a command
    /// goes unanswered (the commands in between fail with an error, answered `503`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Timeout`] if the server did not answer in time;
    /// [`StoreError::Backend`] for a bad URL, a refused connection, a server older than
    /// Redis 6.2, a [durability](Self::durability) the server cannot give (`WAITAOF` on a
    /// server older than 7.2 or without `appendonly`), or a call outside a Tokio runtime.
    ///
    /// ```no_run
    /// # use tower_customer_session::RedisStore;
    /// # async fn run() -> Result<(), tower_customer_session::StoreError> {
    /// let store = RedisStore::builder("redis://127.0.0.1:6379").connect().await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        // The feed task is spawned on this runtime later, from a synchronous `watch`.
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| StoreError::backend("RedisStore::connect must run in a Tokio runtime"))?;
        if let Endpoint::Cluster(nodes) = &self.endpoint {
            let nodes = nodes.clone();
            return self.connect_cluster(nodes, runtime).await;
        }
        let target = match &self.endpoint {
            Endpoint::Url(url) => {
                Target::Url(redis::Client::open(url.as_str()).map_err(redis_error)?)
            }
            Endpoint::Sentinel { sentinels, master } => {
                Target::sentinels(sentinels, master, self.connect_timeout).map_err(redis_error)?
            }
            Endpoint::Cluster(_) => unreachable!("connected above"),
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            // A change waits for replicas (or an fsync) on top of its round trip; every
            // call is bounded by its own deadline besides.
            .set_response_timeout(Some(self.command_timeout + self.durability.timeout()))
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(6);
        let marker = Keys::new(&self.key_prefix).epoch();
        let connect = async {
            let client = target.client().await?;
            let mut connection =
                ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
            // Best effort: a server may refuse INFO to this user; PXAT then fails loudly later.
            let info = redis::cmd("INFO")
                .query_async::<String>(&mut connection)
                .await
                .ok();
            let identity = Identity::read(&mut connection, &marker).await?;
            Ok::<_, redis::RedisError>((client, connection, info, identity))
        };
        let (client, connection, info, identity) =
            tokio::time::timeout(self.connect_timeout, connect)
                .await
                .map_err(|_| StoreError::Timeout)?
                .map_err(redis_error)?;
        if let Some(version) = info.as_deref().and_then(server_version) {
            if version < MIN_VERSION {
                return Err(StoreError::backend(format!(
                    "RedisStore needs Redis {}.{} or newer; the server is {}.{}",
                    MIN_VERSION.0, MIN_VERSION.1, version.0, version.1
                )));
            }
        }
        match info.as_deref() {
            Some(info) => self.durability.supported_by(info)?,
            None if self.durability != RedisDurability::Primary => {
                return Err(StoreError::backend(
                    "the server refused INFO: cannot check that it supports the durability asked",
                ));
            }
            None => {}
        }
        let commands = Commands::new(
            target.clone(),
            None,
            client,
            config,
            Connection::Server(connection),
            (self.command_timeout, self.connect_timeout),
            runtime.clone(),
        );
        let feed = FeedSettings {
            target,
            channel: self.channel_name(),
            heartbeat_interval: self.heartbeat_interval,
            heartbeat_timeout: self.heartbeat_timeout,
            connect_timeout: self.connect_timeout,
            marker,
            initial: identity,
            changes: Changes::default(),
        };
        Ok(RedisStore {
            inner: Arc::new(Inner {
                commands: Arc::new(commands),
                keys: Keys::new(&self.key_prefix),
                scripts: Scripts::new(),
                feed,
                command_timeout: self.command_timeout,
                durability: self.durability,
                runtime,
                cluster: None,
                settings: self,
            }),
        })
    }

    /// [`connect`](Self::connect) on a Cluster: the driver's cluster connection for
    /// commands, a connection to the first node that answers for the version check (and
    /// [`RedisStore::connection`]), and the sharded feed's settings.
    async fn connect_cluster(
        self,
        nodes: Vec<String>,
        runtime: tokio::runtime::Handle,
    ) -> Result<RedisStore, StoreError> {
        let seeds = nodes
            .iter()
            .map(|node| node.as_str().into_connection_info())
            .collect::<Result<Vec<_>, _>>()
            .map_err(redis_error)?;
        if seeds.is_empty() {
            return Err(StoreError::backend(
                "RedisStore::cluster needs at least one node",
            ));
        }
        let client = ClusterClient::builder(seeds.clone())
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.command_timeout + self.durability.timeout())
            // A `MOVED` or `ASK` is followed at once; a node that fails is asked again a
            // few times, within the command timeout that bounds every call.
            .retries(3)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .build()
            .map_err(redis_error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(6);
        let connect = async {
            let connection = client.get_async_connection().await?;
            // The first node that answers, for the version check.
            let mut last = None;
            for seed in &seeds {
                let seed_client = redis::Client::open(seed.clone())?;
                let attempt = async {
                    let mut node =
                        ConnectionManager::new_with_config(seed_client.clone(), config.clone())
                            .await?;
                    let info = redis::cmd("INFO")
                        .query_async::<String>(&mut node)
                        .await
                        .ok();
                    Ok::<_, redis::RedisError>((seed_client.clone(), node, info))
                };
                match attempt.await {
                    Ok(found) => return Ok((connection, found)),
                    Err(error) => last = Some(error),
                }
            }
            Err(last.expect("at least one node"))
        };
        let (connection, (seed_client, seed, info)) =
            tokio::time::timeout(self.connect_timeout, connect)
                .await
                .map_err(|_| StoreError::Timeout)?
                .map_err(redis_error)?;
        if let Some(version) = info.as_deref().and_then(server_version) {
            if version < MIN_CLUSTER_VERSION {
                return Err(StoreError::backend(format!(
                    "RedisStore on a Cluster needs Redis {}.{} or newer (sharded pub/sub); the server is {}.{}",
                    MIN_CLUSTER_VERSION.0, MIN_CLUSTER_VERSION.1, version.0, version.1
                )));
            }
        }
        match info.as_deref() {
            Some(info) => self.durability.supported_by(info)?,
            None if self.durability != RedisDurability::Primary => {
                return Err(StoreError::backend(
                    "the server refused INFO: cannot check that it supports the durability asked",
                ));
            }
            None => {}
        }
        let keys = Keys::cluster(&self.key_prefix);
        let channels = shard_channels(&self.channel_name());
        let feed = ClusterFeed {
            seeds,
            markers: (0..channels.len()).map(|k| keys.shard_epoch(k)).collect(),
            channels,
            heartbeat_interval: self.heartbeat_interval,
            heartbeat_timeout: self.heartbeat_timeout,
            connect_timeout: self.connect_timeout,
            changes: Changes::default(),
        };
        let target = Target::Url(seed_client.clone());
        let commands = Commands::new(
            target.clone(),
            Some(client),
            seed_client,
            config,
            Connection::Cluster(connection),
            (self.command_timeout, self.connect_timeout),
            runtime.clone(),
        );
        // The single-server feed's settings: its channel name and silence bound are the
        // store's; its identity fields are not used.
        let single_feed = FeedSettings {
            target,
            channel: self.channel_name(),
            heartbeat_interval: self.heartbeat_interval,
            heartbeat_timeout: self.heartbeat_timeout,
            connect_timeout: self.connect_timeout,
            marker: keys.epoch(),
            initial: Identity::default(),
            changes: feed.changes.clone(),
        };
        Ok(RedisStore {
            inner: Arc::new(Inner {
                commands: Arc::new(commands),
                keys,
                scripts: Scripts::new(),
                feed: single_feed,
                command_timeout: self.command_timeout,
                durability: self.durability,
                runtime,
                cluster: Some(Cluster::new(seed, feed)),
                settings: self,
            }),
        })
    }
}

/// `redis_version:7.0.15` in `INFO server` → `(7, 0)`.
pub(super) fn server_version(info: &str) -> Option<(u32, u32)> {
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))?;
    let mut parts = version.trim().split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the URL: it may carry a password.
        let mut f = f.debug_struct("RedisStoreBuilder");
        match &self.endpoint {
            Endpoint::Sentinel { master, sentinels } => {
                // Only how many sentinels: their URLs may carry a password.
                f.field("sentinel_master", master)
                    .field("sentinels", &sentinels.len());
            }
            // Only how many nodes, for the same reason.
            Endpoint::Cluster(nodes) => {
                f.field("cluster_nodes", &nodes.len());
            }
            Endpoint::Url(_) => {}
        }
        f.field("key_prefix", &self.key_prefix)
            .field("channel", &self.channel_name())
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_server_version() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n";
        assert_eq!(server_version(info), Some((7, 0)));
        assert_eq!(server_version("redis_version:6.2.14\n"), Some((6, 2)));
        assert!(server_version("redis_version:6.0.9\n") < Some(MIN_VERSION));
        assert_eq!(server_version("# Server\n"), None);
        assert_eq!(server_version("redis_version:x\n"), None);
    }

    #[test]
    fn debug_hides_the_url() {
        let builder = RedisStore::builder("redis://:hunter2@cache.internal:6379/0");
        assert!(!format!("{builder:?}").contains("hunter2"));
    }
}
