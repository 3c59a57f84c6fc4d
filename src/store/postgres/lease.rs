//! A pooled connection that is closed rather than reused if a statement on it is abandoned.
//!
//! The core drops a store call at its timeout. A connection dropped mid-statement still owes
//! a reply; sqlx would test it with a round trip before reusing it, and on a network that
//! stalled that test never ends and the pool slot is lost until the kernel gives up on the
//! socket. A lease marks the connection busy around each statement, and a busy connection is
//! closed on drop (sqlx bounds that close). This covers stalls the feed does not notice (a
//! store without a session manager); after a feed loss the whole pool is renewed anyway.

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres};

pub(super) struct Lease {
    connection: PoolConnection<Postgres>,
    busy: bool,
}

pub(super) type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

impl Lease {
    pub(super) async fn acquire(pool: &PgPool) -> Result<Self, sqlx::Error> {
        Ok(Self {
            connection: pool.acquire().await?,
            busy: false,
        })
    }

    pub(super) async fn fetch_optional(
        &mut self,
        query: PgQuery<'_>,
    ) -> Result<Option<PgRow>, sqlx::Error> {
        self.busy = true;
        let result = query.fetch_optional(&mut *self.connection).await;
        self.busy = false;
        result
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.busy {
            self.connection.close_on_drop();
        }
    }
}
