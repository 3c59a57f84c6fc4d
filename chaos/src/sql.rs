//! The other program: revokes sessions in plain SQL on its own connection, as any program
//! sharing the database may (PostgreSQL's triggers announce it to the fleet).

use std::time::Duration;

use tower_customer_session::store::postgres::sqlx::postgres::{PgPool, PgPoolOptions};

use crate::history::{Kind, Outcome};
use crate::world::{Call, World};

pub struct SqlProgram {
    pool: PgPool,
}

impl SqlProgram {
    pub fn new(url: &str) -> Result<Self, String> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy(url)
            .map_err(|e| e.to_string())?;
        Ok(Self { pool })
    }

    /// Soft-delete the session whose token hashes to `hash_hex`; `200` once committed
    /// (its end is the commit as seen by this program), `503` if it failed or took over 2 s.
    pub async fn revoke(&self, world: &World, hash_hex: &str) -> Call<u64> {
        let start = world.now();
        let statement = tower_customer_session::store::postgres::sqlx::query(
            "UPDATE customer_session.customer_sessions \
             SET deleted_at = now(), modified_at = now() \
             WHERE token = $1 AND deleted_at IS NULL",
        )
        .bind(hash_hex)
        .execute(&self.pool);
        let result = tokio::time::timeout(Duration::from_secs(2), statement).await;
        let value = match result {
            Ok(Ok(done)) => Some(done.rows_affected()),
            _ => None,
        };
        Call {
            start,
            end: world.now(),
            instance: None,
            kind: Kind::SqlRevoke,
            outcome: Outcome::Status(if value.is_some() { 200 } else { 503 }),
            value,
        }
    }
}
