//! [`PostgresStore`]: sessions and customers in PostgreSQL, shared by every instance and
//! kept across restarts, with invalidation over `LISTEN/NOTIFY`. Feature `postgres`.
//!
//! ```no_run
//! use tower_customer_session::store::postgres::PostgresStore;
//! use tower_customer_session::{CustomerSessionLayer, SessionManager};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect("postgres://app@db.internal:5432/shop").await?;
//! store.migrate().await?; // idempotent, safe when several instances start at once
//! let _sweep = store.spawn_sweep(std::time::Duration::from_secs(15 * 60));
//!
//! let sessions = SessionManager::builder(store)
//!     .secret(std::env::var("SESSION_SECRET")?) // the same on every instance
//!     .build()?;
//! let layer = CustomerSessionLayer::new(sessions.clone());
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```
//!
//! # Schema
//!
//! [`migrate`](PostgresStore::migrate) creates, in the configured schema (default
//! `customer_session`), the two tables of Polar's own model:
//!
//! - `customers`: every field of Polar's `Customer`; `metadata`, `billing_address` and
//!   `tax_id` as `jsonb` in Polar's JSON shapes; `type` `individual` or `team`; soft delete
//!   by `deleted_at`. `external_id` is unique among customers not deleted.
//! - `customer_sessions`: `token` (`char(64)`, the lowercase hex `HMAC-SHA256(secret,
//!   token)`, unique, never the token itself), `kind` (`customer` or `member`),
//!   `customer_id` (indexed, references `customers` with `ON DELETE CASCADE`), `expires_at`
//!   (indexed), `return_url`, `member` (JSON, member sessions only), `created_at`,
//!   `modified_at`, `deleted_at`.
//!
//! Applied migrations are recorded, with a checksum, in `customer_session_migrations`.
//!
//! # Loading
//!
//! One statement per cache miss: the session loads only if its hash matches, it is not
//! deleted, `expires_at > now()`, and its customer is not deleted. Expiry is judged by the
//! **database clock** (`now()`), not by this crate's [`Clock`](crate::Clock): every instance
//! and every other program reading the table (Polar's own query is the same) then agrees
//! on whether a session exists, whatever the skew between application hosts, and the sweep
//! deletes exactly what loads refuse. The session manager still checks `expires_at` against
//! its own clock on every request, so the stricter of the two clocks wins.
//!
//! # Invalidation feed
//!
//! Triggers on both tables `NOTIFY` the channel `customer_session_feed:<schema>` in the
//! same transaction as the change, so the message is delivered on commit, and only then.
//! They fire for the store's own statements and for plain SQL from any other program alike:
//! a revocation (`DELETE`, or a soft delete `UPDATE … SET deleted_at = now()`), a customer's
//! soft or hard deletion, a customer edit, a `TRUNCATE`. Messages are small and versioned
//! by their prefix: `s:<64 hex>` (one session), `c:<uuid>` (one customer), `*` (everything);
//! any message a listener does not recognise flushes everything.
//!
//! Each [`SessionManager`](crate::SessionManager) on this store listens on a dedicated
//! connection, once a notification it sent itself from another connection has reached it
//! there, and proves it alive with a `SELECT pg_backend_pid()` on that connection,
//! [`heartbeat_interval`](PostgresStoreBuilder::heartbeat_interval) after each answer; an
//! answer from the server process that subscribed proves that every change committed
//! before the beat was sent has reached the cache.
//! On a failure or a missed deadline it reports the feed lost (the cache is flushed and
//! bypassed), reconnects with a capped backoff, subscribes again and reports it live. A
//! session revoked on another instance is refused here within the **silence bound**,
//! `heartbeat_interval + heartbeat_timeout` (300 ms by default; defined on
//! [`heartbeat_interval`](PostgresStoreBuilder::heartbeat_interval)), even when the feed's
//! connection dies without a word.
//!
//! # Revocation
//!
//! [`revoke`](SessionAdmin::revoke) and [`revoke_all`](SessionAdmin::revoke_all) are soft
//! deletes: `deleted_at` is set to the call's own time, and the sweep removes the row once
//! it expires. The stamp lets a statement run again after a commit whose answer was lost
//! (see Failures) recognise what its first attempt did, so the result says what the call
//! revoked, never "nothing" for a revocation that took effect unseen.
//!
//! # Failures
//!
//! Pool acquisition and statements have deadlines
//! ([`acquire_timeout`](PostgresStoreBuilder::acquire_timeout),
//! [`statement_timeout`](PostgresStoreBuilder::statement_timeout)), and the session manager
//! has its own store timeout. A database that is down, refuses connections or hangs makes
//! store calls fail or time out, and the layer answers `503` with `Retry-After`: never `401`,
//! never a pass-through. A connection abandoned mid-statement, or whose statement is still
//! unanswered 250 ms past `statement_timeout` (the store's own deadline), is closed, not
//! reused. A connection that a network turns into a black hole while sqlx tests it on its
//! return to the pool (a wait with no deadline) cannot be reached, so the store watches the
//! pool: when a caller waited a whole `acquire_timeout` for a connection and no statement
//! was answered meanwhile, the pool is replaced, with a backoff; the same happens when the
//! feed comes back after a loss. This holds whether or not the feed's own connection was
//! spared. Connections the server closed meanwhile are discarded on first use and the
//! statement runs again on another. When the database is back, the pool and the feed
//! recover by themselves, without a restart.
//!
//! # Deployment caveats
//!
//! - Proxies: through a session-pooling one (PgBouncer's `pool_mode = session`) the store
//!   works as it does directly. A transaction-pooling one (PgBouncer's `pool_mode =
//!   transaction`, most managed proxies) needs
//!   [`transaction_pooler(true)`](PostgresStoreBuilder::transaction_pooler), so that no
//!   prepared statement or setting outlives a transaction, and a
//!   [`listen_url`](PostgresStoreBuilder::listen_url) to the server itself, for the feed's
//!   `LISTEN` (which cannot work through such a proxy) and for `migrate`. Before it counts as
//!   live, the feed checks that a notification sent from another connection reaches it:
//!   through a transaction pooler none does, so a feed listening there never comes up, and
//!   says why in a warning. A heartbeat answered by another server process than the one that
//!   subscribed ends the feed too.
//! - The store sends only startup parameters a proxy accepts (no `extra_float_digits`, no
//!   `options`): `statement_timeout` is set with `SET` when a pooled connection opens, or
//!   with `SET LOCAL` in each statement's transaction behind a transaction pooler.
//! - Durability: a revocation that returned `Ok` survives a crash of the server as long as
//!   the commit was durable when it returned: `synchronous_commit` `on` (the default) and
//!   `fsync` on. With `synchronous_commit = off` a crash can undo the last commits; with
//!   replicas, a failover keeps them only with synchronous standbys
//!   (`synchronous_standby_names`, `synchronous_commit` `on` or `remote_apply`).
//! - TLS: this feature brings no TLS library. For TLS with rustls, enable one of sqlx's
//!   rustls features in your own `Cargo.toml` (for example
//!   `sqlx = { version = "0.8", features = ["tls-rustls-ring-webpki"] }`) and set `sslmode`
//!   in the URL; OpenSSL is never required.
//! - The role needs `CREATE` on the database (or an existing schema) to migrate, and only
//!   `SELECT, INSERT, UPDATE, DELETE` on the two tables afterwards.

mod builder;
#[cfg(feature = "testing")]
mod conformance;
mod error;
mod health;
mod lease;
mod listen;
mod migrate;
mod rows;
mod schema;
mod sweep;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Row};
use uuid::Uuid;

pub use builder::PostgresStoreBuilder;
pub use error::PostgresError;
/// The sqlx this store is built on, for [`PgConnectOptions`] and [`PostgresStore::pool`].
pub use sqlx;

use error::{betrays_transaction_pooler, is_broken_connection, store_error};
use health::PoolHealth;
use lease::{Lease, PgQuery};
use listen::FeedConfig;
use schema::{Schema, Statements};

use super::{
    CustomerRef, CustomerStore, FeedSink, NewSession, SessionAdmin, SessionKey, SessionRecord,
    SessionStore, StoreError, Watch,
};
use crate::model::Customer;
use crate::token::TokenHash;

/// Sessions and customers in PostgreSQL; see the [module docs](self) for the schema, the
/// feed and the failure behaviour. Clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Replaced when it stops making progress ([`PoolHealth`]) and when the feed comes back
    /// after a loss; see [`Inner::renew_pool`].
    pool: RwLock<PgPool>,
    pool_options: PgPoolOptions,
    health: PoolHealth,
    /// How long a statement may go unanswered before its connection is presumed dead and
    /// closed: `statement_timeout`, after which the server itself would have answered with
    /// an error, plus a grace for the round trip. `None` without a `statement_timeout`.
    statement_deadline: Option<Duration>,
    schema: Schema,
    channel: String,
    sql: Statements,
    /// As given, to open peers with the same settings.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    options: PgConnectOptions,
    /// For the pool's connections: as given, less the startup parameters a proxy may refuse.
    pool_connect: PgConnectOptions,
    /// For the feed's connection and `migrate`: the direct connection if one was given, else
    /// as the pool's.
    listen_connect: PgConnectOptions,
    /// Whether `listen_connect` is a direct connection of its own (`listen_url`).
    direct_listen: bool,
    /// Behind a transaction pooler, what opens each statement's own transaction.
    begin: Option<String>,
    /// Whether a failure that betrays an undeclared transaction pooler was reported.
    pooler_reported: AtomicBool,
    feed: FeedConfig,
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    settings: PostgresStoreBuilder,
    /// Where the feed and the sweep run: captured when the store was opened, so starting
    /// them never depends on the caller's context.
    runtime: tokio::runtime::Handle,
}

/// How long a replaced pool may take to close the connections it still has.
const OLD_POOL_GRACE: Duration = Duration::from_secs(5);

impl Inner {
    fn pool(&self) -> PgPool {
        // Holds only a handle: a panic elsewhere cannot leave it half-written.
        self.pool
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Start over with a fresh pool. Called when the pool stopped making progress (see
    /// [`PoolHealth`]) and when the feed's connection comes back after a loss, i.e. after
    /// the database was unreachable: a connection the network stalled while sqlx was
    /// testing it on release waits on a reply that may never come, and keeps its pool slot
    /// until the kernel gives up on the socket, which takes many minutes. A fresh pool has
    /// every slot; the old one closes what it can.
    fn renew_pool(&self) {
        let fresh = self
            .pool_options
            .clone()
            .connect_lazy_with(self.pool_connect.clone());
        let old = std::mem::replace(
            &mut *self.pool.write().unwrap_or_else(PoisonError::into_inner),
            fresh,
        );
        self.runtime.spawn(async move {
            let _ = tokio::time::timeout(OLD_POOL_GRACE, old.close()).await;
        });
    }
}

impl PostgresStore {
    /// Settings with their defaults, to change before connecting.
    pub fn builder() -> PostgresStoreBuilder {
        PostgresStoreBuilder::default()
    }

    /// Open the store on `url` with the default settings; see
    /// [`PostgresStoreBuilder::connect`].
    ///
    /// ```no_run
    /// # use tower_customer_session::store::postgres::PostgresStore;
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, PostgresError> {
        Self::builder().connect(url).await
    }

    /// Create or update the schema: idempotent, and safe when several instances start at
    /// once (they queue on an advisory lock held for the migration's transaction).
    ///
    /// # Errors
    ///
    /// A database error, or [`PostgresError::MigrationChanged`] if a shipped migration was
    /// recorded with different SQL.
    ///
    /// With a [`listen_url`](PostgresStoreBuilder::listen_url), it runs on a connection of its
    /// own there, off the proxy; otherwise on one of the pool's.
    pub async fn migrate(&self) -> Result<(), PostgresError> {
        let schema = &self.inner.schema;
        if !self.inner.direct_listen {
            let mut connection = self.inner.pool().acquire().await?;
            return migrate::run(&mut connection, schema).await;
        }
        // As long as the feed has to open its connection there.
        let deadline = self.inner.feed.subscribe_timeout;
        let mut connection = tokio::time::timeout(
            deadline,
            PgConnection::connect_with(&self.inner.listen_connect),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
        let migrated = migrate::run(&mut connection, schema).await;
        let _ = tokio::time::timeout(deadline, connection.close()).await;
        migrated
    }

    /// The connection pool, for queries of your own. The store replaces its pool when the
    /// feed recovers from a loss: take it anew for each use rather than keeping it. Behind a
    /// [`transaction_pooler`](PostgresStoreBuilder::transaction_pooler), run each query of
    /// your own inside a transaction with `.persistent(false)`, as the store does, or use
    /// `sqlx::raw_sql`.
    pub fn pool(&self) -> PgPool {
        self.inner.pool()
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        self.inner.schema.name()
    }

    /// The `LISTEN/NOTIFY` channel of the feed: `customer_session_feed:<schema>`. Another
    /// program may `NOTIFY` it (`s:<hex>`, `c:<uuid>`, `*`) after changes the triggers do not
    /// see.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// Run one statement and return its row, if any. A pooled connection the server closed
    /// since its last use (a restart, a failover, a network cut) fails at once and is
    /// discarded; the statement is then run again on the next connection, at most once per
    /// pool slot, so after an outage the pool sheds its dead connections without failing a
    /// request. Every statement here is safe to repeat, and says the same when repeated
    /// after a first attempt whose commit went unseen: reads; writes keyed so that a repeat
    /// recognises its own earlier effect (`revoke`, `revoke_all`); idempotent writes; and
    /// `create`, whose repeat reports a conflict, so the manager issues another token and
    /// the first row, whose token nobody holds, expires unused.
    ///
    /// A statement left unanswered past its deadline fails with a timeout, and its
    /// connection is closed rather than reused (a black hole stays one). A pool that gives
    /// no connection and answers nothing for a whole `acquire_timeout` is replaced.
    async fn fetch<'q>(
        &self,
        query: impl Fn() -> PgQuery<'q>,
    ) -> Result<Option<PgRow>, StoreError> {
        let mut pool = self.inner.pool();
        let mut retries = pool.options().get_max_connections();
        loop {
            let result = match Lease::acquire(&pool).await {
                Ok(mut lease) => {
                    let result = lease
                        .fetch_optional(
                            query(),
                            self.inner.statement_deadline,
                            self.inner.begin.as_deref(),
                        )
                        .await;
                    if matches!(result, Ok(_) | Err(sqlx::Error::Database(_))) {
                        self.inner.health.answered();
                    }
                    result
                }
                Err(error) => {
                    if matches!(error, sqlx::Error::PoolTimedOut)
                        && self.inner.health.should_renew()
                    {
                        tracing::warn!(
                            "no pooled PostgreSQL connection and no answer for a whole \
                             acquire_timeout: starting a fresh pool"
                        );
                        self.inner.renew_pool();
                    }
                    Err(error)
                }
            };
            if let Err(error) = &result {
                self.report_pooler(error);
            }
            match result {
                Err(error) if retries > 0 && is_broken_connection(&error) => {
                    retries -= 1;
                    // The pool may have been renewed meanwhile.
                    pool = self.inner.pool();
                }
                other => return other.map_err(store_error),
            }
        }
    }

    /// Say once what a statement's failure betrays: a transaction pooler in the way of a
    /// store not told of it.
    fn report_pooler(&self, error: &sqlx::Error) {
        if self.inner.begin.is_none()
            && betrays_transaction_pooler(error)
            && !self.inner.pooler_reported.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                %error,
                "a prepared statement of this connection is missing, or another client's \
                 is in its place: the database URL leads to a transaction-pooling proxy \
                 (PgBouncer pool_mode=transaction, a managed proxy); open the store with \
                 PostgresStoreBuilder::transaction_pooler(true) and a listen_url"
            );
        }
    }

    /// As [`fetch`](Self::fetch), for statements that always return one row.
    async fn fetch_one<'q>(&self, query: impl Fn() -> PgQuery<'q>) -> Result<PgRow, StoreError> {
        self.fetch(query)
            .await?
            .ok_or_else(|| StoreError::backend(sqlx::Error::RowNotFound))
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the connect options: they hold the password.
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.schema.name())
            .field("pool_size", &self.inner.pool().size())
            .finish_non_exhaustive()
    }
}

impl SessionStore for PostgresStore {
    async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
        let hex = key.token_hash().to_hex();
        let row = self
            .fetch(|| sqlx::query(&self.inner.sql.load).bind(hex.as_str()))
            .await?;
        row.as_ref()
            .map(rows::session)
            .transpose()
            .map_err(store_error)
    }

    fn watch(&self, sink: FeedSink) -> Option<Watch> {
        let inner = self.inner.clone();
        let bound = inner.feed.silence_bound();
        self.inner.runtime.spawn(listen::run(inner, sink));
        Some(Watch::new(bound))
    }
}

impl SessionAdmin for PostgresStore {
    async fn create(&self, new: NewSession) -> Result<SessionRecord, StoreError> {
        let (by_id, by_external_id) = match &new.customer {
            CustomerRef::Id(id) => (Some(*id), None),
            CustomerRef::ExternalId(ext) => (None, Some(ext.as_str())),
        };
        let hex = new.token_hash.to_hex();
        let row = self
            .fetch(|| {
                sqlx::query(&self.inner.sql.create)
                    .bind(by_id)
                    .bind(by_external_id)
                    .bind(new.id)
                    .bind(hex.as_str())
                    .bind(new.kind.as_str())
                    .bind(new.created_at)
                    .bind(new.expires_at)
                    .bind(new.return_url.as_deref())
                    .bind(new.member.as_ref().map(sqlx::types::Json))
            })
            .await?
            .ok_or(StoreError::UnknownCustomer)?;
        let inserted: bool = row.try_get(0).map_err(store_error)?;
        if !inserted {
            return Err(StoreError::Conflict);
        }
        let customer = rows::customer(&row, 1).map_err(store_error)?;
        Ok(new.into_record(customer))
    }

    /// Revoke one session: a soft delete (`deleted_at` set; the sweep removes the row once
    /// it expires). `Ok(true)` if this call revoked a session that was not revoked yet,
    /// including when its first attempt committed but the answer was lost with the
    /// connection and the store ran it again: the rows carry the call's own timestamp, so
    /// the repeat recognises them. `Ok(false)` if there was no such session, or it was
    /// revoked before (two calls revoking the same session within the same microsecond
    /// would both report `true`).
    async fn revoke(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        let hex = token_hash.to_hex();
        let at = revocation_time();
        let row = self
            .fetch_one(|| {
                sqlx::query(&self.inner.sql.revoke)
                    .bind(hex.as_str())
                    .bind(at)
            })
            .await?;
        row.try_get(0).map_err(store_error)
    }

    /// Revoke every session of a customer, as [`revoke`](Self::revoke) does one: the count
    /// is of the sessions this call revoked, a first attempt whose answer was lost
    /// included.
    async fn revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
        let at = revocation_time();
        let row = self
            .fetch_one(|| {
                sqlx::query(&self.inner.sql.revoke_all)
                    .bind(customer_id)
                    .bind(at)
            })
            .await?;
        let count: i64 = row.try_get(0).map_err(store_error)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

/// A revocation's stamp: now, to the microsecond PostgreSQL keeps, so the stamp read back
/// equals the one bound.
fn revocation_time() -> DateTime<Utc> {
    let now = Utc::now();
    now.with_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

impl CustomerStore for PostgresStore {
    async fn upsert_customer(&self, customer: Customer) -> Result<Customer, StoreError> {
        let row = self
            .fetch_one(|| {
                rows::bind_customer(sqlx::query(&self.inner.sql.upsert_customer), &customer)
            })
            .await?;
        rows::customer(&row, 0).map_err(store_error)
    }

    async fn customer(&self, by: &CustomerRef) -> Result<Option<Customer>, StoreError> {
        let row = self
            .fetch(|| match by {
                CustomerRef::Id(id) => sqlx::query(&self.inner.sql.customer_by_id).bind(*id),
                CustomerRef::ExternalId(ext) => {
                    sqlx::query(&self.inner.sql.customer_by_external_id).bind(ext.as_str())
                }
            })
            .await?;
        row.map(|row| rows::customer(&row, 0))
            .transpose()
            .map_err(store_error)
    }

    async fn delete_customer(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let row = self
            .fetch(|| {
                sqlx::query(&self.inner.sql.delete_customer)
                    .bind(id)
                    .bind(at)
            })
            .await?;
        Ok(row.is_some())
    }
}
