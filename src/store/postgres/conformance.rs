//! The store test kit's view of a [`PostgresStore`]: a second instance, every row, the
//! database's clock, and the feed's connections.

use chrono::{DateTime, Utc};

use sqlx::Row;

use super::PostgresStore;
use crate::testing::Backend;

impl Backend for PostgresStore {
    type Store = PostgresStore;

    fn store(&self) -> PostgresStore {
        self.clone()
    }

    async fn peer(&self) -> Option<PostgresStore> {
        // Another process: its own pool and feed, same database, schema and settings.
        let peer = self
            .inner
            .settings
            .clone()
            .connect_with(self.inner.options.clone())
            .await
            .expect("a second store on the same database");
        Some(peer)
    }

    /// Loads compare `expires_at` with the database's `now()`, so the kit reads that.
    async fn now(&self) -> DateTime<Utc> {
        // A simple query: no prepared statement, so it runs through any proxy.
        sqlx::raw_sql("SELECT now()")
            .fetch_one(&self.inner.pool())
            .await
            .and_then(|row| row.try_get(0))
            .expect("the database's clock")
    }

    async fn dump(&self) -> Option<String> {
        let q = self.inner.schema.quoted();
        // A simple query: no prepared statement, so it runs through any proxy.
        let rows = sqlx::raw_sql(&format!(
            "SELECT row_to_json(c)::text FROM {q}.customers c \
             UNION ALL SELECT row_to_json(s)::text FROM {q}.customer_sessions s"
        ))
        .fetch_all(&self.inner.pool())
        .await
        .expect("dump the tables");
        let rows: Vec<String> = rows
            .iter()
            .map(|row| row.try_get(0).expect("text"))
            .collect();
        Some(rows.join("\n"))
    }

    /// The feed's connections of this store, told apart from its pools' by their last
    /// statement (`LISTEN`, or the heartbeat's `SELECT pg_backend_pid()`); only for a store opened with an
    /// `application_name` of its own, which the count goes by.
    async fn feed_subscriptions(&self) -> Option<usize> {
        let application = self.inner.options.get_application_name()?.to_owned();
        // A simple query (the name quoted as a literal), so it runs through any proxy.
        let count: i64 = sqlx::raw_sql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{}' \
             AND (query = 'SELECT pg_backend_pid()' OR query LIKE 'LISTEN %')",
            application.replace('\'', "''")
        ))
        .fetch_one(&self.inner.pool())
        .await
        .and_then(|row| row.try_get(0))
        .expect("count the feed's connections");
        usize::try_from(count).ok()
    }
}
