//! [`PostgresStoreBuilder`]: the store's settings, each with its default.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::listen::FeedConfig;
use super::schema::{Schema, Statements};
use super::{Inner, PostgresError, PostgresStore};

/// A pooled connection idle for longer than this is tested (one round trip) before use;
/// one used more recently passed the test sqlx runs when it was released.
const TEST_IDLE_AFTER: Duration = Duration::from_secs(1);

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
}

impl Default for PostgresStoreBuilder {
    fn default() -> Self {
        Self {
            schema: "customer_session".to_owned(),
            max_connections: 10,
            acquire_timeout: Duration::from_millis(500),
            statement_timeout: Duration::from_secs(1),
            feed: FeedConfig {
                heartbeat_interval: Duration::from_secs(1),
                heartbeat_timeout: Duration::from_secs(1),
                max_reconnect_delay: Duration::from_secs(5),
            },
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
    /// `503` with `Retry-After`).
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

    /// The server-side `statement_timeout` of every connection, sent as a connection
    /// parameter. Default: 1 s (the session manager's default store timeout, so the server
    /// stops working on what nobody waits for). `Duration::ZERO` disables it.
    /// [`migrate`](PostgresStore::migrate) runs with a longer limit of its own.
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

    /// How often the feed proves its connection alive with a query on that connection.
    /// Default: 1 s. A lost feed is noticed within `heartbeat_interval + heartbeat_timeout`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::store::postgres::PostgresStore;
    /// let builder = PostgresStore::builder().heartbeat_interval(Duration::from_millis(500));
    /// # let _ = builder;
    /// ```
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.feed.heartbeat_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Deadline for each heartbeat, and for opening and subscribing the feed's connection.
    /// Default: 1 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::store::postgres::PostgresStore;
    /// let builder = PostgresStore::builder().heartbeat_timeout(Duration::from_millis(500));
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
        let session_options = options.clone().options([(
            "statement_timeout",
            format!("{}ms", self.statement_timeout.as_millis()),
        )]);
        let pool_options = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            // Testing every connection before use costs a round trip per load; test only
            // the ones idle long enough to have been cut off unnoticed, with a deadline.
            .test_before_acquire(false)
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
            .connect_with(session_options.clone())
            .await?;
        let channel = schema.channel();
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool: RwLock::new(pool),
                pool_options,
                sql: Statements::new(&schema),
                schema,
                channel,
                options,
                session_options,
                runtime,
                feed: self.feed,
                settings: self,
            }),
        })
    }
}
