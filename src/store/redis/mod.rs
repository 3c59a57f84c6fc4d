//! [`RedisStore`]: sessions and customers in Redis, shared by every instance, with a
//! pub/sub invalidation feed.

mod builder;
mod cluster;
mod commands;
#[cfg(feature = "testing")]
mod conformance;
mod durability;
mod feed;
mod identity;
mod keys;
mod operations;
mod record;
mod reply;
mod scripts;
mod target;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::{RedisResult, Script, Value};
use uuid::Uuid;

pub use builder::RedisStoreBuilder;
pub use durability::RedisDurability;

use self::commands::{Call, Commands, Connection};
use self::feed::FeedSettings;
use self::keys::Keys;
use self::record::{RecordError, VERSION};
use self::reply::{
    bytes, created, decode_customer, expiry_millis, int, record_error, redis_error,
    unexpected_reply,
};
use self::scripts::Scripts;
use super::{
    CustomerRef, CustomerStore, FeedSink, Invalidation, NewSession, SessionAdmin, SessionKey,
    SessionRecord, SessionStore, StoreError, Watch,
};
use crate::model::Customer;
use crate::token::TokenHash;

/// Sessions and customers in Redis, shared by every instance of the application, with an
/// invalidation feed over pub/sub. Feature `redis`.
///
/// ```no_run
/// use tower_customer_session::{RedisStore, SessionManager};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let sessions = SessionManager::builder(store)
///     // Every instance must hash tokens with the same key.
///     .secret(std::env::var("SESSION_SECRET")?)
///     .build()?;
/// # let _ = sessions; Ok(()) }
/// ```
///
/// # What it stores
///
/// Sessions are keyed by token hash (never the token), under a configurable
/// [prefix](RedisStoreBuilder::key_prefix), and expire on the server at their `expires_at`
/// (`SET … NX PXAT`: a create never overwrites). Customers are kept next to them; a load
/// reads a session and its current customer in one round trip (a Lua script; two on a
/// [Cluster](Self#redis-cluster)), so customer edits and deletions show at once. A per-customer index (a set expiring with its
/// longest-lived session) serves `revoke_all`. Each record names its format version; a
/// record in a version this build cannot read is an error (`503`), never a guess.
///
/// | key | holds |
/// |---|---|
/// | `{prefix}s:{token hash}` | a session (string, expires at `expires_at`) |
/// | `{prefix}c:{customer id}` | a customer (hash) |
/// | `{prefix}cs:{customer id}` | the customer's session hashes (set) |
/// | `{prefix}x:{external id}` | the customer id of an external id |
/// | `{prefix}epoch` | a random id marking the data set (see below) |
///
/// # Consistency
///
/// Every change is one Lua script, and each that can make a cached session stale
/// (`revoke`, `revoke_all`, customer upserts and deletions) publishes its invalidation on
/// the [channel](RedisStoreBuilder::channel) inside that same script: once a revocation has
/// taken effect, it is on its way to every subscribed instance. Each
/// [`SessionManager`](crate::SessionManager) built on the store gets its own subscription
/// connection (see [`SessionStore::watch`]). It is confirmed (`SUBSCRIBE` answered) before
/// the cache is used, proven by a `PING` through it every
/// [heartbeat interval](RedisStoreBuilder::heartbeat_interval), each answered within the
/// [heartbeat timeout](RedisStoreBuilder::heartbeat_timeout), and resubscribed with
/// backoff (50 ms doubling to 2 s) when it fails; the manager flushes its cache on every
/// loss and every resubscription, and under the default
/// [`FeedPolicy`](crate::store::FeedPolicy) serves nothing from the cache in between.
/// A session revoked on one instance is refused on every other within the feed's delivery
/// time while the subscription works, and within the
/// [silence bound](RedisStoreBuilder::silence_bound) (300 ms by default) of `revoke`
/// returning when it has died silently.
///
/// # Durability
///
/// By default a change returns `Ok` once the primary applied it, in memory; a server that
/// later loses it (a restart from an older snapshot, a failover to a replica it had not
/// reached) undoes it. [`RedisStoreBuilder::durability`] makes every change (creations and
/// customers too) wait for replicas (`WAIT`) or an fsync (`WAITAOF`) and fail when it is
/// not confirmed.
///
/// # Server identity
///
/// At connect the store writes `{prefix}epoch` (a random id, `SET NX`: the first store
/// wins, later ones read it), and each feed reads it with the server's `run_id` every
/// time it subscribes. A different `run_id` (a restart, a failover) or marker (the data
/// set was lost, flushed or replaced) is logged (`warn`), counted
/// ([`identity_changes`](Self::identity_changes)) and handled as a lost feed: the cache
/// is flushed, as on any resubscription. What it cannot do is bring back what the server
/// lost: a revocation the old server acknowledged but the new one never received is
/// undone on every instance but the one that made it, unless the configured durability
/// kept it. A change of server between two subscriptions of the same connection cannot
/// happen (a restart or failover closes the connection); a `FLUSHALL` on a live server is
/// noticed at the next resubscription only.
///
/// # Revoking from outside the crate
///
/// An admin tool that knows a token's hash (lowercase hex of HMAC-SHA256 under the
/// instances' shared secret, as [`TokenHasher`](crate::token::TokenHasher) computes it)
/// revokes the session with the key and the message the store itself uses, in one
/// transaction so that no instance reloads the session between the two:
///
/// ```text
/// MULTI
/// DEL {prefix}s:{token hash}
/// PUBLISH {channel} s:{token hash}
/// EXEC
/// ```
///
/// With the defaults, `{prefix}` is `tcs:` and `{channel}` is `tcs:feed`. The hash may
/// stay in its customer's index (`{prefix}cs:{customer id}`): `revoke_all` skips hashes
/// whose session is gone. `PUBLISH {channel} c:{customer id}` drops a customer's cached
/// sessions after a change to their records, and `PUBLISH {channel} '*'` drops every
/// cached session.
///
/// # Failures
///
/// Each command is bounded by the [command timeout](RedisStoreBuilder::command_timeout):
/// a hung server yields [`StoreError::Timeout`] (`503`) rather than a hung request. A
/// connection that fails is re-established in the background; one that stops answering
/// (half-open: a NAT or firewall that dropped its state, a primary gone in a failover
/// without a reset) is replaced as soon as a command on it goes unanswered, and so is
/// one whose command the manager's own
/// [`store_timeout`](crate::SessionManagerBuilder::store_timeout) abandoned if a `PING`
/// on it then goes unanswered too. Consecutive replacements wait 50 ms, doubling to 2 s.
/// Nothing is cached from a failed call, and a failed revocation is reported to the
/// caller.
///
/// # Servers and topologies
///
/// - Redis 6.2 or newer: `SET … PXAT` appeared in 6.2, and
///   [`connect`](RedisStoreBuilder::connect) refuses an older server. Tested with Redis 7.0.
///   A server that restricts scripts to the keys they declare (Dragonfly's default) does
///   not work, for the reason Cluster does not (below).
/// - A standalone server, or the primary of a replicated setup (a managed service's
///   primary endpoint) reached through its URL. Reads go to the primary too: a replica
///   may lag behind a revocation. After a failover the connection and the feed reconnect
///   to whatever the URL points to.
/// - Redis Sentinel ([`RedisStore::sentinel`]): the store asks the Sentinels for the
///   primary (one that confirms its role with `ROLE` and is not marked down) at connect,
///   after a command that fails (refused, reset, `READONLY`) or goes unanswered (at most
///   every 50 ms), and on each resubscription of the feed; so commands and feed follow a
///   failover by themselves. The switch is a lost feed (messages published on the old
///   primary may not have reached anyone) and a [server change](Self#server-identity);
///   calls answer `503` until the new primary is up. The primary is reached without a
///   password (the Sentinels' URLs may carry theirs). Revocations survive the failover
///   only as the [durability](RedisStoreBuilder::durability) asked ensures.
/// - Redis Cluster ≥ 7.0 ([`RedisStore::cluster`]): see [Redis Cluster](Self#redis-cluster).
/// - TLS (`rediss://`): enable a TLS feature of the re-exported [`redis`](crate::redis)
///   crate in your own `Cargo.toml` (e.g. `redis = { version = "1", features =
///   ["tokio-rustls-comp"] }`); the store uses whatever the driver supports.
///
/// # Redis Cluster
///
/// [`RedisStore::cluster`] connects to a Redis Cluster (7.0 or newer: the feed uses
/// sharded pub/sub) given some of its nodes; the others are found from them. Everything
/// above holds, with these differences.
///
/// **What to configure.** The nodes' URLs (`redis://[user:password@]host:port`; at least
/// one must answer at connect), and every setting of [`RedisStoreBuilder`] as on one
/// server. On the cluster: `cluster-require-full-coverage no` keeps the slots of the live
/// primaries served while one is down (with the default `yes`, every call answers `503`
/// once the cluster marks it failed, until it is back); persistence (`appendonly yes`) or
/// replicas keep a crashed primary's sessions and revocations, as on one server.
///
/// ```no_run
/// use tower_customer_session::{RedisStore, SessionManager};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
///     .connect()
///     .await?;
/// let sessions = SessionManager::builder(store)
///     .secret(std::env::var("SESSION_SECRET")?)
///     .build()?;
/// # let _ = sessions; Ok(()) }
/// ```
///
/// **Key layout.** A script on a Cluster may touch the keys of one hash slot only, all
/// declared. So a customer's keys carry its id as a hash tag (the braces are literal:
/// `{prefix}c:{<id>}`), and the customer, its session index and its *generation* share
/// one slot; a session is keyed by its token hash as on one server, in a slot of its own:
///
/// | key | holds |
/// |---|---|
/// | `{prefix}s:{token hash}` | a session, with its customer's generation when it was created |
/// | `{prefix}c:{{customer id}}` | a customer (hash) |
/// | `{prefix}cs:{{customer id}}` | the customer's session hashes (set) |
/// | `{prefix}cg:{{customer id}}` | the customer's generation, a counter `revoke_all` increments |
/// | `{prefix}x:{external id}` | the customer id of an external id |
/// | `{prefix}epoch:{{k}}` | the data set's marker, one per shard channel `k` |
///
/// The layout is chosen at connect: a store made with [`RedisStore::builder`] or
/// [`RedisStore::sentinel`] keeps the single-server layout, unchanged, and the two do not
/// read each other's data. Moving from one server to a cluster means starting with
/// empty sessions (customers written again with `upsert_customer`); sessions live an
/// hour.
///
/// **What is atomic, and what takes a second round trip.** Each step below is one
/// command or script on one slot; the steps of one call run in this order:
///
/// | call | steps |
/// |---|---|
/// | `load` (a miss) | the session; then its customer and generation |
/// | `create` | (through an external id: the id resolved;) the customer checked, its generation read, the session indexed; then the session written (`SET NX PXAT`) with that generation |
/// | `revoke` | the session deleted (`GETDEL`); the invalidation published; the hash dropped from the index (cleanup) |
/// | `revoke_all` | the customer's generation incremented and its index taken; the invalidation published; each indexed session deleted (cleanup, concurrently) |
/// | `upsert_customer` | the customer written; its external id moved; the invalidation published |
/// | `delete_customer` | the customer marked deleted; the invalidation published |
///
/// `revoke_all` cannot delete sessions of other slots in its step, so a session whose
/// generation is below its customer's is revoked: `load` reads the customer anyway and
/// refuses it. Once the generation step is done, every session created before is
/// refused, whether or not the cleanup reaches it; a session being created at the same
/// time either read the old generation (refused) or the new one (created after the
/// revocation). A cleanup that fails is logged (`warn`) and its sessions expire unused;
/// the count returned is of sessions the cleanup deleted. Concurrent upserts that give
/// one external id to two customers leave it to either (on one server, to the last).
///
/// **The feed.** Invalidations go over sharded pub/sub (`SPUBLISH`, never `PUBLISH`,
/// which every node relays to every other) on 16 shard channels, `{channel}:{0}` to
/// `{channel}:{15}`, whose hash tags spread them over the slots. Each
/// [`SessionManager`](crate::SessionManager) subscribes to all of them (`SSUBSCRIBE`),
/// each on the primary that owns its slot (read from `CLUSTER SLOTS`), over one RESP3
/// connection per such primary, and pings every one of those connections every
/// heartbeat interval: the feed is proven alive only when every `PING` came back, so the
/// [silence bound](RedisStoreBuilder::silence_bound) holds for every shard. A connection
/// that closes, a `PING` unanswered, or a channel the node drops (`sunsubscribe`: its slot
/// moved in a resharding or a failover) is a lost feed: the cache is flushed and bypassed,
/// and the feed subscribes again from a fresh slot map (backoff 50 ms doubling to 2 s).
/// A script may only publish on a shard channel of its own slot, so a change is published
/// right after its script, by the same call, on the channel its message hashes to
/// (any works: every instance listens to all). The call returns only after both; a
/// publication that fails makes the call an error, though the change is made: retrying
/// it is harmless. So the propagation bounds above hold as on one server, counted from
/// the call's return.
///
/// **Failures.** A command goes to the primary of its key's slot; `MOVED` and `ASK` are
/// followed by the driver. A dead or hung primary fails the calls that touch its slots
/// (an error or a timeout: `503`, never `401`), and loses every feed subscribed to it:
/// each instance then loads every session from Redis, so sessions on the other
/// primaries are still served (with `cluster-require-full-coverage no`) and a revoked one
/// is never served from a cache. When the primary is back (restarted, or a replica
/// promoted), calls and feeds reach it by themselves. The command connection (one
/// multiplexed connection per node) is replaced when a command goes unanswered, connected
/// in the background while calls keep the old one. Tested on three primaries: a primary
/// killed with SIGKILL under traffic answers `503` for its sessions on both instances
/// within 250 ms; restarted on its port and directory, both serve them again about 3 s
/// later.
///
/// **Server identity.** Each feed reads, on every subscription, for each shard channel,
/// the `run_id` of the primary serving it and the marker in that channel's slot; a
/// change since the feed's first subscription is counted
/// ([`identity_changes`](Self::identity_changes)), logged and handled as a lost feed.
/// It watches the primaries that serve at least one of the 16 channels (with 16 channels
/// over a few primaries, almost always all of them); a primary serving none is not
/// watched, and data lost there is not noticed.
///
/// **Durability.** [`durability`](RedisStoreBuilder::durability) works as on one server:
/// the change and its `WAIT` (or `WAITAOF`) go in one pipeline to the primary that owns
/// the changed key's slot, and count that primary's replicas. For `revoke_all` that is
/// the generation step; the cleanup is not waited for. For `create` it is the session
/// key (the customer's index before it is not waited for).
///
/// **Costs.** A miss takes two round trips, each to the primary of its slot
/// (`BENCHMARKS.md`, "Redis Cluster", measures it against the same two with the plain
/// cluster client); a hit costs what it does on one server. `create` takes two round
/// trips (three through an external id), `revoke` three, `revoke_all` two plus one per
/// indexed session (concurrent), `upsert_customer` three or four, `delete_customer` two.
/// Connections: one per node for commands, and one per primary serving a shard channel
/// for each `SessionManager`'s feed, each pinged every heartbeat interval.
///
/// **Revoking from outside the crate** on a Cluster: `GETDEL {prefix}s:{token hash}`,
/// then `SPUBLISH {channel}:{0} s:{token hash}` (any of the 16 channels), in that order.
/// [`connection`](Self::connection) returns a connection to the first node that
/// answered at connect; commands on keys it does not serve answer `MOVED` there.
///
/// Clones share one command connection (see [`connection`](Self::connection)). `Debug`
/// never shows the URL (it may carry a password).
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// First pause before reconnecting (the feed) or replacing a connection again (commands);
/// doubled after each consecutive failure.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

struct Inner {
    commands: Arc<Commands>,
    keys: Keys,
    scripts: Scripts,
    feed: FeedSettings,
    command_timeout: Duration,
    durability: RedisDurability,
    /// Where feed tasks run: `watch` is synchronous and may be called outside a runtime.
    runtime: tokio::runtime::Handle,
    /// The Cluster side, if the store was made with [`RedisStore::cluster`]: the
    /// operations then use the Cluster layout and a sharded feed.
    cluster: Option<cluster::Cluster>,
    /// How this store was made, for a second instance in tests.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    settings: RedisStoreBuilder,
}

impl RedisStore {
    /// Start configuring a store on the server at `url` (`redis://[user:password@]host[:port][/db]`).
    ///
    /// ```
    /// use tower_customer_session::RedisStore;
    ///
    /// let builder = RedisStore::builder("redis://127.0.0.1:6379");
    /// assert_eq!(builder.prefix(), "tcs:");
    /// ```
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(url)
    }

    /// Start configuring a store that finds its primary through Redis Sentinel: the
    /// Sentinels' addresses (`host:port`, or `redis://[user:password@]host:port` URLs) and
    /// the name they monitor the primary under. The store asks them for the primary at
    /// connect, again whenever a command fails or goes unanswered (at most every 50 ms),
    /// and on each resubscription of the feed, so it follows a failover by itself; see
    /// [Servers and topologies](Self#servers-and-topologies).
    ///
    /// A failover costs `503`s, never a `401` or a revoked session: from the primary's
    /// death until the Sentinels promote a replica (`down-after-milliseconds`, then their
    /// election), and, for the calls that wait for a replica
    /// ([`durability`](RedisStoreBuilder::durability)), until one follows the new primary.
    /// In the fleet chaos harness (SECURITY.md, "Fleet chaos": `down-after-milliseconds
    /// 500`, `failover-timeout 2000`, the old primary back as a replica as soon as the new
    /// one is promoted), over 18 failovers under load, promotion took 1.7 to 2.0 s and
    /// every instance served sessions and propagated a new revocation again within 3.6 s
    /// of the kill, but once: the old primary took 11 s to come back as a replica, and
    /// revocations waited for it (14.8 s). The harness holds a failover to 10 s.
    ///
    /// Give the nodes `min-replicas-to-write 1` and `min-replicas-max-lag 1`. A primary
    /// that stalls past `down-after-milliseconds` is replaced, and once it runs again it
    /// stays a primary until Sentinel makes it a replica, 8 s later; the store asks the
    /// Sentinels again only after a call fails, so instances that reached it in between
    /// keep using it. Without those settings it takes sessions that its demotion then
    /// discards, and those instances refuse sessions created on the new primary (`401`);
    /// with them, both primaries refuse writes (`503`) until the old one is a replica.
    /// Ask for [`durability`](RedisStoreBuilder::durability) too: Redis recounts its good
    /// replicas once a second, so the old primary, just continued, may still take a write
    /// or two; their `WAIT` then finds no replica, and the call is an error, not `Ok`.
    ///
    /// ```
    /// use tower_customer_session::RedisStore;
    ///
    /// let builder = RedisStore::sentinel(["10.0.0.1:26379", "10.0.0.2:26379"], "sessions");
    /// assert_eq!(builder.prefix(), "tcs:");
    /// ```
    pub fn sentinel(
        sentinels: impl IntoIterator<Item = impl Into<String>>,
        master: impl Into<String>,
    ) -> RedisStoreBuilder {
        RedisStoreBuilder::sentinel(
            sentinels.into_iter().map(Into::into).collect(),
            master.into(),
        )
    }

    /// Start configuring a store on a Redis Cluster (Redis ≥ 7.0), given some of its nodes
    /// (`redis://[user:password@]host:port` URLs; the others are found from them). The
    /// store then uses the Cluster layout and a sharded feed; see
    /// [Redis Cluster](Self#redis-cluster).
    ///
    /// ```
    /// use tower_customer_session::RedisStore;
    ///
    /// let builder = RedisStore::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
    /// assert_eq!(builder.prefix(), "tcs:");
    /// ```
    pub fn cluster(nodes: impl IntoIterator<Item = impl Into<String>>) -> RedisStoreBuilder {
        RedisStoreBuilder::cluster(nodes.into_iter().map(Into::into).collect())
    }

    /// Connect to `url` with every default; see [`RedisStoreBuilder`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_customer_session::StoreError> {
    /// let store = tower_customer_session::RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn connect(url: impl Into<String>) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// The prefix of every key of this store.
    pub fn key_prefix(&self) -> &str {
        self.inner.keys.prefix()
    }

    /// The channel invalidations are published on; on a [Cluster](Self#redis-cluster),
    /// the base name of the 16 shard channels (`{channel}:{0}` to `{channel}:{15}`).
    pub fn channel(&self) -> &str {
        &self.inner.feed.channel
    }

    /// How many times a feed of this store (one per [`SessionManager`](crate::SessionManager)
    /// watching it) found, on subscribing again, a different server or data set than the
    /// one it knew: a restart, a failover, or data lost or replaced (see
    /// [Server identity](Self#server-identity)). Each is logged (`warn`) and handled as a
    /// lost feed. Shared by clones.
    ///
    /// ```no_run
    /// # async fn run(store: tower_customer_session::RedisStore) {
    /// assert_eq!(store.identity_changes(), 0);
    /// # }
    /// ```
    pub fn identity_changes(&self) -> u64 {
        self.inner.feed.changes.count()
    }

    /// The store's current command connection, for your own commands (on a
    /// [Cluster](Self#redis-cluster): a connection to the first node that answered at
    /// connect, which answers `MOVED` for keys it does not serve). It reconnects by
    /// itself after an I/O error, and its commands time out after the
    /// [command timeout](RedisStoreBuilder::command_timeout). When one of the store's own
    /// commands goes unanswered, the store retires this connection (it may be silently
    /// dead) and uses a new one: ask again for each use rather than keeping the one you got.
    ///
    /// ```no_run
    /// use tower_customer_session::redis;
    ///
    /// # async fn run(store: tower_customer_session::RedisStore) -> redis::RedisResult<()> {
    /// let mut connection = store.connection();
    /// let keys: u64 = redis::cmd("DBSIZE").query_async(&mut connection).await?;
    /// # let _ = keys; Ok(()) }
    /// ```
    pub fn connection(&self) -> ConnectionManager {
        match (self.inner.commands.current(), &self.inner.cluster) {
            (Connection::Server(connection), _) => connection,
            (Connection::Cluster(_), Some(cluster)) => cluster.seed.clone(),
            (Connection::Cluster(_), None) => {
                unreachable!("a cluster connection is made in cluster mode only")
            }
        }
    }

    /// Run one command's future within the command timeout, and report to `call` how it
    /// ended: an unanswered command retires its connection.
    async fn bounded<T>(
        &self,
        call: Call<'_>,
        operation: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        self.bounded_within(self.inner.command_timeout, call, operation)
            .await
    }

    /// [`bounded`](Self::bounded), with a deadline of its own.
    async fn bounded_within<T>(
        &self,
        deadline: Duration,
        call: Call<'_>,
        operation: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(deadline, operation).await {
            Ok(Ok(value)) => {
                call.answered();
                Ok(value)
            }
            // The driver's own response timeout is the same deadline.
            Ok(Err(error)) if error.is_timeout() => {
                call.unanswered();
                Err(StoreError::Timeout)
            }
            Ok(Err(error)) => {
                if error.is_io_error() || error.code() == Some("READONLY") {
                    call.failed();
                } else {
                    // An error reply is still an answer.
                    call.answered();
                }
                Err(StoreError::backend(error))
            }
            Err(_) => {
                call.unanswered();
                Err(StoreError::Timeout)
            }
        }
    }

    /// Run a script that writes (`create`, `revoke`, `revoke_all`, `upsert_customer`,
    /// `delete_customer`; `code` is its source), then wait for the configured
    /// [`RedisDurability`]: the script and the wait go in one pipeline, so the wait counts
    /// this very write. With a wait the script goes whole (`EVAL`): after `NOSCRIPT` (a
    /// new primary) the wait would have to run twice.
    async fn change(
        &self,
        script: &Script,
        code: &str,
        key: String,
        args: &[&str],
    ) -> Result<Value, StoreError> {
        if self.inner.durability == RedisDurability::Primary {
            let (mut connection, call) = self.inner.commands.begin();
            let mut invocation = script.key(key);
            for arg in args {
                invocation.arg(*arg);
            }
            return self
                .bounded(call, invocation.invoke_async(&mut connection))
                .await;
        }
        let mut pipeline = redis::pipe();
        pipeline.cmd("EVAL").arg(code).arg(1).arg(&key).arg(args);
        self.waited(pipeline).await
    }

    /// Send `pipeline` (one change) with the configured durability's wait after it, on one
    /// connection, and check both replies. The change's error reply is the call's outcome,
    /// as if it had gone alone: a `READONLY` from a demoted primary must make the store
    /// look for the primary again, not pass for an answer.
    async fn waited(&self, mut pipeline: redis::Pipeline) -> Result<Value, StoreError> {
        let durability = self.inner.durability;
        durability.add_wait(&mut pipeline);
        pipeline.ignore_errors();
        let deadline = self.inner.command_timeout + durability.timeout();
        let (mut connection, call) = self.inner.commands.begin();
        let mut replies = self
            .bounded_within(deadline, call, async {
                let mut replies: Vec<Value> = pipeline.query_async(&mut connection).await?;
                if let Some(first) = replies.first_mut() {
                    *first = std::mem::replace(first, Value::Nil).extract_error()?;
                }
                Ok(replies)
            })
            .await?
            .into_iter();
        let reply = replies.next().ok_or_else(|| unexpected_reply("change"))?;
        durability.check(replies.next())?;
        Ok(reply)
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.key_prefix())
            .field("channel", &self.channel())
            .field("command_timeout", &self.inner.command_timeout)
            .field("heartbeat_interval", &self.inner.feed.heartbeat_interval)
            .field("heartbeat_timeout", &self.inner.feed.heartbeat_timeout)
            .finish_non_exhaustive()
    }
}
