//! The schema's migrations: embedded SQL, applied in order under an advisory lock.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor, PgConnection};

use super::PostgresError;
use super::schema::Schema;

struct Migration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

/// Append only: an applied migration is never edited (its checksum is recorded).
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "customers and customer sessions",
        sql: include_str!("migrations/0001_customers_and_sessions.sql"),
    },
    Migration {
        version: 2,
        description: "invalidation triggers",
        sql: include_str!("migrations/0002_invalidation_triggers.sql"),
    },
    Migration {
        version: 3,
        description: "the member of a member session",
        sql: include_str!("migrations/0003_session_member.sql"),
    },
    Migration {
        version: 4,
        description: "the key order of customer metadata",
        sql: include_str!("migrations/0004_metadata_key_order.sql"),
    },
];

/// Long enough to build the indexes of a large table, and to wait for another instance's
/// migration; the store's own `statement_timeout` is far shorter.
const MIGRATION_TIMEOUT: &str = "60s";

/// The advisory lock key for `schema`'s migrations: instances migrating other schemas of
/// the same database do not wait for each other.
fn lock_key(schema: &Schema) -> i64 {
    let digest = Sha256::digest(format!("tower-customer-session migrate {}", schema.name()));
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Apply what is missing, in one transaction. Instances starting together queue on the
/// advisory lock; each then finds the work done.
///
/// Everything here is scoped to the transaction (the lock, the settings) and no statement
/// is named (`persistent(false)`), so it also runs through a transaction pooler.
pub(super) async fn run(
    connection: &mut PgConnection,
    schema: &Schema,
) -> Result<(), PostgresError> {
    let q = schema.quoted();
    let mut tx = connection.begin().await?;
    let connection: &mut sqlx::PgConnection = &mut tx;
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(MIGRATION_TIMEOUT)
        .persistent(false)
        .execute(&mut *connection)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(schema))
        .persistent(false)
        .execute(&mut *connection)
        .await?;
    let bootstrap = format!(
        "CREATE SCHEMA IF NOT EXISTS {q}; \
         CREATE TABLE IF NOT EXISTS {q}.customer_session_migrations ( \
             version bigint PRIMARY KEY, \
             description text NOT NULL, \
             checksum bytea NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now() \
         )"
    );
    // Several statements: the simple query protocol (no parameters).
    connection.execute(bootstrap.as_str()).await?;
    let applied: HashMap<i64, Vec<u8>> = sqlx::query_as(&format!(
        "SELECT version, checksum FROM {q}.customer_session_migrations"
    ))
    .persistent(false)
    .fetch_all(&mut *connection)
    .await?
    .into_iter()
    .collect();

    // The migrations' names are unqualified: they land in the store's schema.
    sqlx::query("SELECT set_config('search_path', $1, true)")
        .bind(&q)
        .persistent(false)
        .execute(&mut *connection)
        .await?;
    for migration in MIGRATIONS {
        let checksum = Sha256::digest(migration.sql).to_vec();
        match applied.get(&migration.version) {
            Some(recorded) if *recorded == checksum => continue,
            Some(_) => {
                return Err(PostgresError::MigrationChanged {
                    version: migration.version,
                });
            }
            None => {}
        }
        connection.execute(migration.sql).await?;
        sqlx::query(&format!(
            "INSERT INTO {q}.customer_session_migrations (version, description, checksum) \
             VALUES ($1, $2, $3)"
        ))
        .bind(migration.version)
        .bind(migration.description)
        .bind(&checksum)
        .persistent(false)
        .execute(&mut *connection)
        .await?;
        tracing::info!(
            schema = schema.name(),
            version = migration.version,
            "customer session schema migrated"
        );
    }
    let newest = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(version) = applied.keys().copied().filter(|&v| v > newest).max() {
        // A newer build migrated this schema (a rolling deploy): its migrations only add.
        tracing::warn!(
            schema = schema.name(),
            version,
            "customer session schema is newer than this build"
        );
    }
    tx.commit().await?;
    Ok(())
}
