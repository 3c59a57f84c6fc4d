//! [`PostgresStoreBuilder`]: the store's settings, each with its default.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::Executor;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::health::PoolHealth;
use super::listen::FeedConfig;
use super::schema::{Schema, Statements};
use super::{Inner, PostgresError, PostgresStore};

/// A pooled connection idle for longer than this is tested (one round trip) before use;
/// one used more recently passed the test sqlx runs when it was released.
const TEST_IDLE_AFTER: Duration = Duration::from_secs(1);

/// How much longer than `statement_timeout` a statement may go unanswered before its
/// connection is presumed dead: the server's own timeout error needs a round trip too.
const STATEMENT_GRACE: Duration = Duration::from_millis(250);

/// Settings of a [`PostgresStore`]; every one has a default, stated on its method.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_customer_session::store::postgres::PostgresStore;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::builder()
///     .schema("billing_portal")
///     .max_connections(20)
///     .statement_timeout(Duration::from_millis(500))
///     .connect("postgres://app@db.internal/shop")
///     .await?;
/// store.migrate().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct PostgresStoreBuilder {
    schema: String,
    max_connections: u32,
    acquire_timeout: Duration,
    statement_timeout: Duration,
    feed: FeedConfig,
    transaction_pooler: bool,
    listen: Option<Direct>,
}

/// Where the feed's connection and `migrate` go instead of the pool's server.
#[derive(Clone)]
enum Direct {
    Url(String),
    Options(Box<PgConnectOptions>),
}

impl fmt::Debug for Direct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL or the options: they may hold a password.
        f.write_str("Direct(..)")
    }
}

impl Default for PostgresStoreBuilder {
    fn default() -> Self {
        Self {
            schema: "customer_session".to_owned(),
            max_connections: 10,
            acquire_timeout: Duration::from_millis(500),
            statement_timeout: Duration::from_secs(1),
            feed: FeedConfig {
                heartbeat_interval: Duration::from_millis(100),
                heartbeat_timeout: Duration::from_millis(200),
                max_reconnect_delay: Duration::from_secs(5),
                // Set from `acquire_timeout` when connecting.
                subscribe_timeout: Duration::from_millis(500),
            },
            transaction_pooler: false,
            listen: None,
        }
    }
}

impl PostgresStoreBuilder {
    /// The schema holding the tables. Default: `customer_session`, a schema of its own, so
    /// the tables cannot collide with an application's `customers` table; `public` works too.
    ///
    /// 1 to 40 characters of `[a-z0-9_]`, not starting with a digit or `pg_`; anything else
    /// makes `connect` fail with [`PostgresError::InvalidSchema`]. Instances that share
    /// sessions must use the same schema.
    ///
    /// ```
    /// # use tower_customer_session::store::postgres::PostgresStore;
    /// let builder = PostgresStore::builder().schema("public");
    /// # let _ = builder;
    /// ```
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// Most connections in the pool (the feed has one more of its own). Default: 10.
    ///
    /// ```
    /// # use tower_customer_session::store::postgres::PostgresStore;
    /// let builder = PostgresStore::builder().max_connections(32);
    /// # let _ = builder;
    /// ```
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// Longest wait for a pooled connection, including opening one. Default: 500 ms. While
    /// the database is unreachable, each store call fails after this long (the layer answers
    /// `503` with `Retry-After`). The feed has as long to open its own connection and
    /// subscribe (or `heartbeat_timeout`, if longer).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::store::postgres::PostgresStore;
    /// let builder = PostgresStore::builder().acquire_timeout(Duration::from_millis(200));
    /// # let _ = builder;
    /// ```
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The server-side `statement_timeout` of the pool's connections, set when each opens
    /// (or, behind a [`transaction_pooler`](Self::transaction_pooler), in each statement's
    /// transaction). Default: 1 s (the session manager's default store timeout, so the server
    /// stops working on what nobody waits for). `Duration::ZERO` disables it.
    /// [`migrate`](PostgresStore::migrate) runs with a longer limit of its own.
    ///
    /// The store also waits no longer than this plus 250 ms for any answer: a statement
    /// still unanswered then fails with a timeout, and its connection, presumed dead (a
    /// network that stalled), is closed rather than reused.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::store::postgres::PostgresStore;
    /// let builder = PostgresStore::builder().statement_timeout(Duration::from_millis(300));
    /// # let _ = builder;
    /// ```
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// How long the feed rests between a heartbeat's answer and the next heartbeat (a
    /// `SELECT pg_backend_pid()` on the feed's own connection, which must name the server
    /// process that subscribed). Default: 100 ms.
    ///
    /// **The silence bound** is `heartbeat_interval + heartbeat_timeout`, 300 ms by default:
    /// with the default [`FeedPolicy`](crate::store::FeedPolicy), a session revoked on
    /// another instance is refused by this one at most that long after the revocation
    /// returned, whether the feed is healthy (then within milliseconds) or its connection
    /// died without a word (a network that drops packets, a frozen proxy): the core counts
    /// the feed lost once no heartbeat sent within the bound has been answered, and then
    /// flushes and bypasses the cache. Each heartbeat costs the database one trivial
    /// statement: at the default interval, about 0.1–0.15 % of one server core and 0.9 kB/s
    /// per instance (`BENCHMARKS.md`, "Heartbeat cost — PostgreSQL"). A longer interval
    /// costs less and widens the bound by as much.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::store::postgres::PostgresStore;
    /// // A silence bound of 150 ms + 200 ms = 350 ms.
    /// let builder = PostgresStore::builder().heartbeat_interval(Duration::from_millis(150));
    /// # let _ = builder;
    /// ```
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.feed.heartbeat_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Deadline for each heartbeat's answer, counted from when it was sent. Default: 200 ms.
    /// Part of the silence bound (see [`heartbeat_interval`](Self::heartbeat_interval)).
    /// Where round trips to the database take longer, the feed counts as lost over and over
    /// (the cache is then bypassed, never wrong): raise it there.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::store::postgres::PostgresStore;
    /// let builder = PostgresStore::builder().heartbeat_timeout(Duration::from_millis(400));
    /// # let _ = builder;
    /// ```
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.feed.heartbeat_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Cap of the feed's reconnection backoff, which starts at 50 ms and doubles after each
    /// failed attempt (each wait is randomised between half and all of it). Default: 5 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::store::postgres::PostgresStore;
    /// let builder = PostgresStore::builder().max_reconnect_delay(Duration::from_secs(2));
    /// # let _ = builder;
    /// ```
    pub fn max_reconnect_delay(mut self, delay: Duration) -> Self {
        self.feed.max_reconnect_delay = delay;
        self
    }

    /// Whether the URL given to [`connect`](Self::connect) leads to a transaction-pooling
    /// proxy: PgBouncer with `pool_mode = transaction`, or a managed proxy that pools by
    /// transaction. Such a proxy may hand each transaction of one client connection to
    /// another server connection, shared with other clients. Default: `false`, for a direct
    /// connection or a session-pooling proxy (PgBouncer's `pool_mode = session`), which need
    /// nothing special.
    ///
    /// With `true`, each statement of the store runs in a transaction of its own, as an
    /// unnamed prepared statement, with `statement_timeout` set by `SET LOCAL` inside it:
    /// nothing outlives the transaction, so nothing can collide with what another client
    /// left on a shared server connection, or be missing from the next one. That costs
    /// three more round trips per statement (`BEGIN`, the parse, `COMMIT`), where a direct
    /// connection runs a cached statement in one.
    ///
    /// `LISTEN` cannot work through such a proxy: give the feed a direct connection with
    /// [`listen_url`](Self::listen_url), which [`migrate`](PostgresStore::migrate) uses too.
    /// Without one, the feed never comes up and a warning says why; under the default
    /// [`FeedPolicy`](crate::store::FeedPolicy) every request then asks the database.
    ///
    /// ```
    /// # use tower_customer_session::store::postgres::PostgresStore;
    /// let builder = PostgresStore::builder()
    ///     .transaction_pooler(true) // connect() gets PgBouncer's URL
    ///     .listen_url("postgres://app@db.internal:5432/shop"); // the server itself
    /// # let _ = builder;
    /// ```
    pub fn transaction_pooler(mut self, pooled: bool) -> Self {
        self.transaction_pooler = pooled;
        self
    }

    /// A direct connection to the same database, for the feed's `LISTEN` and for
    /// [`migrate`](PostgresStore::migrate) (whose advisory lock and DDL are best kept off
    /// a proxy), when the URL given to [`connect`](Self::connect) leads to a
    /// transaction-pooling proxy (see [`transaction_pooler`](Self::transaction_pooler)).
    /// Default: none; the feed and `migrate` then connect where the pool does. `connect`
    /// parses it and fails on an invalid URL. Each instance keeps one connection open here
    /// (the feed's), and a second one while it migrates.
    ///
    /// ```
    /// # use tower_customer_session::store::postgres::PostgresStore;
    /// let builder = PostgresStore::builder().listen_url("postgres://app@db.internal:5432/shop");
    /// # let _ = builder;
    /// ```
    pub fn listen_url(mut self, url: impl Into<String>) -> Self {
        self.listen = Some(Direct::Url(url.into()));
        self
    }

    /// As [`listen_url`](Self::listen_url), with sqlx's connection options. Default: none.
    ///
    /// ```
    /// use tower_customer_session::store::postgres::{PostgresStore, sqlx::postgres::PgConnectOptions};
    ///
    /// let direct = PgConnectOptions::new().host("db.internal").username("app").database("shop");
    /// let builder = PostgresStore::builder().listen_with(direct);
    /// # let _ = builder;
    /// ```
    pub fn listen_with(mut self, options: PgConnectOptions) -> Self {
        self.listen = Some(Direct::Options(Box::new(options)));
        self
    }

    /// Open the store on the database at `url` (`postgres://user:password@host:port/db`,
    /// with any of libpq's query parameters sqlx understands, e.g. `sslmode`).
    ///
    /// # Errors
    ///
    /// An invalid URL or schema name, no Tokio runtime, or no database answering within
    /// the acquire timeout.
    ///
    /// ```no_run
    /// # use tower_customer_session::store::postgres::PostgresStore;
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = PostgresStore::builder()
    ///     .connect("postgres://postgres@127.0.0.1:5432/test")
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(self, url: &str) -> Result<PostgresStore, PostgresError> {
        let options: PgConnectOptions = url.parse()?;
        self.connect_with(options).await
    }

    /// Open the store with sqlx's connection options (host, credentials, TLS…). One
    /// connection is opened to check that the database answers.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    ///
    /// ```no_run
    /// use tower_customer_session::store::postgres::{PostgresStore, sqlx::postgres::PgConnectOptions};
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let options = PgConnectOptions::new().host("127.0.0.1").username("postgres").database("test");
    /// let store = PostgresStore::builder().connect_with(options).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with(
        self,
        options: PgConnectOptions,
    ) -> Result<PostgresStore, PostgresError> {
        let schema = Schema::new(&self.schema)?;
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| PostgresError::NoRuntime)?;
        // No startup parameter a proxy may refuse (PgBouncer accepts only those it tracks):
        // sqlx's `extra_float_digits` goes (no float is read here), and `statement_timeout`
        // is set by a statement instead.
        let pool_connect = options.clone().extra_float_digits(None);
        let listen_connect = match &self.listen {
            None => pool_connect.clone(),
            Some(Direct::Url(url)) => url.parse::<PgConnectOptions>()?,
            Some(Direct::Options(direct)) => (**direct).clone(),
        }
        .extra_float_digits(None);
        let limit = (!self.statement_timeout.is_zero())
            .then(|| format!("statement_timeout = {}", self.statement_timeout.as_millis()));
        // Through a transaction pooler a session setting would land on a server connection
        // other clients share: the limit is set in each statement's own transaction.
        let begin = self.transaction_pooler.then(|| match &limit {
            Some(limit) => format!("BEGIN; SET LOCAL {limit}"),
            None => "BEGIN".to_owned(),
        });
        let on_connect: Option<Arc<str>> = match (&limit, self.transaction_pooler) {
            (Some(limit), false) => Some(format!("SET {limit}").into()),
            _ => None,
        };
        let pool_options = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            // Testing every connection before use costs a round trip per load; test only
            // the ones idle long enough to have been cut off unnoticed, with a deadline.
            .test_before_acquire(false)
            .after_connect(move |connection, _| {
                let setting = on_connect.clone();
                Box::pin(async move {
                    if let Some(setting) = setting {
                        connection.execute(&*setting).await?;
                    }
                    Ok(())
                })
            })
            .before_acquire(move |connection, meta| {
                Box::pin(async move {
                    if meta.idle_for < TEST_IDLE_AFTER {
                        return Ok(true);
                    }
                    use sqlx::Connection;
                    match tokio::time::timeout(TEST_IDLE_AFTER, connection.ping()).await {
                        Ok(Ok(())) => Ok(true),
                        Ok(Err(error)) => Err(error),
                        Err(_) => Err(sqlx::Error::PoolTimedOut),
                    }
                })
            });
        let pool = pool_options
            .clone()
            .connect_with(pool_connect.clone())
            .await?;
        let channel = schema.channel();
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool: RwLock::new(pool),
                pool_options,
                health: PoolHealth::new(self.acquire_timeout, self.feed.max_reconnect_delay),
                statement_deadline: (!self.statement_timeout.is_zero())
                    .then(|| self.statement_timeout + STATEMENT_GRACE),
                sql: Statements::new(&schema),
                schema,
                channel,
                options,
                pool_connect,
                listen_connect,
                direct_listen: self.listen.is_some(),
                begin,
                pooler_reported: AtomicBool::new(false),
                runtime,
                feed: FeedConfig {
                    subscribe_timeout: self.acquire_timeout.max(self.feed.heartbeat_timeout),
                    ..self.feed
                },
                settings: self,
            }),
        })
    }
}
