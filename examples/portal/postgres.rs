//! `SESSION_STORE=postgres`: the portal's sessions and customers in PostgreSQL, shared by
//! every instance started on the same `DATABASE_URL`.
//!
//! When `DATABASE_URL` leads to a transaction-pooling proxy (PgBouncer with
//! `pool_mode = transaction`), `DATABASE_LISTEN_URL` gives the database itself: the feed
//! listens there and the migration runs there, while every other statement goes through
//! the proxy.

use std::error::Error;
use std::time::Duration;

use tower_customer_session::store::postgres::PostgresStore;

/// The machine's local server, as the tests use it.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Connect, migrate (safe when instances start together) and sweep expired sessions.
pub async fn open() -> Result<PostgresStore, Box<dyn Error>> {
    let url = non_empty("DATABASE_URL").unwrap_or_else(|| DEFAULT_URL.to_owned());
    let mut builder = PostgresStore::builder();
    let direct = non_empty("DATABASE_LISTEN_URL");
    if let Some(direct) = direct.clone() {
        builder = builder.transaction_pooler(true).listen_url(direct);
    }
    // Not the URLs in the messages: they may carry a password.
    let store = builder
        .connect(&url)
        .await
        .map_err(|e| format!("cannot open DATABASE_URL (or parse DATABASE_LISTEN_URL): {e}"))?;
    store.migrate().await.map_err(|e| match direct {
        Some(_) => format!("cannot migrate through DATABASE_LISTEN_URL: {e}"),
        None => format!("cannot migrate through DATABASE_URL: {e}"),
    })?;
    store.spawn_sweep(Duration::from_secs(15 * 60));
    tracing::info!(
        schema = store.schema(),
        transaction_pooler = direct.is_some(),
        "sessions in PostgreSQL"
    );
    Ok(store)
}

fn non_empty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}
