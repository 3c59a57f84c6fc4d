//! The conformance kit's hooks for [`PostgresStore`].

use sqlx::Row;

use super::PostgresStore;
use crate::store::testing::Conformance;

impl Conformance for PostgresStore {
    async fn peer(&self) -> Self {
        // Another process: its own pool and feed, same database, schema and settings.
        self.inner
            .settings
            .clone()
            .connect_with(self.inner.options.clone())
            .await
            .expect("a second store on the same database")
    }

    async fn dump(&self) -> String {
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
        rows.join("\n")
    }
}
