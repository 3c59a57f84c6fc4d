//! `SESSION_STORE=postgres`: the portal's sessions and customers in PostgreSQL, shared by
//! every instance started on the same `DATABASE_URL`.

use std::error::Error;
use std::time::Duration;

use tower_customer_session::store::postgres::PostgresStore;

/// The machine's local server, as the tests use it.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Connect, migrate (safe when instances start together) and sweep expired sessions.
pub async fn open() -> Result<PostgresStore, Box<dyn Error>> {
    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let store = PostgresStore::connect(&url)
        .await
        .map_err(|e| format!("cannot open DATABASE_URL: {e}"))?;
    store.migrate().await?;
    store.spawn_sweep(Duration::from_secs(15 * 60));
    tracing::info!(schema = store.schema(), "sessions in PostgreSQL");
    Ok(store)
}
