//! The conformance kit's hooks for [`PostgresStore`].

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
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT row_to_json(c)::text FROM {q}.customers c \
             UNION ALL SELECT row_to_json(s)::text FROM {q}.customer_sessions s"
        ))
        .fetch_all(&self.inner.pool())
        .await
        .expect("dump the tables");
        rows.join("\n")
    }
}
