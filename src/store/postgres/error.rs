//! Errors of the PostgreSQL store, and how database errors map onto [`StoreError`].

use crate::store::StoreError;

/// Why a [`PostgresStore`](super::PostgresStore) could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The schema name is not a plain lowercase identifier of at most 40 bytes (see
    /// [`PostgresStoreBuilder::schema`](super::PostgresStoreBuilder::schema)).
    #[error(
        "invalid schema name {0:?}: use 1 to 40 characters of [a-z0-9_], not starting with a digit or pg_"
    )]
    InvalidSchema(String),
    /// The store was opened outside a Tokio runtime; its feed and sweep run on Tokio.
    #[error("PostgresStore must be opened inside a Tokio runtime")]
    NoRuntime,
    /// The database refused or failed (unreachable, authentication, SQL error…).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration this crate ships was recorded as applied with different SQL: the schema
    /// was changed by hand, or by a build of the crate that shipped a different migration.
    #[error("migration {version} was applied with different SQL than this build ships")]
    MigrationChanged {
        /// The migration's version number.
        version: i64,
    },
}

/// A database error as a [`StoreError`]: pool and statement timeouts are timeouts, anything
/// else is a backend error (all answer `503`).
pub(super) fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::PoolTimedOut => StoreError::Timeout,
        // 57014 query_canceled: what `statement_timeout` raises.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => StoreError::Timeout,
        _ => StoreError::backend(error),
    }
}

/// Whether `error` says the connection (or the pool, just replaced) broke, so the statement
/// may be retried on another connection.
pub(super) fn is_broken_connection(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Io(_) | sqlx::Error::PoolClosed)
}

/// Whether `error` is what sqlx's named prepared statements meet behind a transaction
/// pooler: a statement this connection prepared is missing (26000), or one of the same name,
/// prepared by another client on the same server connection, is in the way (42P05).
pub(super) fn betrays_transaction_pooler(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("26000" | "42P05")))
}
