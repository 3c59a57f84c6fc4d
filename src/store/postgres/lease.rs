//! A pooled connection that is closed rather than reused if a statement on it is abandoned
//! or goes unanswered past its deadline.
//!
//! The core drops a store call at its timeout. A connection dropped mid-statement still owes
//! a reply; sqlx would test it with a round trip before reusing it, and on a network that
//! stalled that test never ends and the pool slot is lost until the kernel gives up on the
//! socket. A lease marks the connection busy around each statement, and a busy connection is
//! closed on drop (sqlx bounds that close). A statement past its own deadline is abandoned
//! the same way, so a store used without a session manager does not wait for ever either.

use std::time::Duration;

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

    /// Run `query`; past `deadline`, give up on it (a timeout) and leave the connection
    /// busy, so it is closed, not reused.
    pub(super) async fn fetch_optional(
        &mut self,
        query: PgQuery<'_>,
        deadline: Option<Duration>,
    ) -> Result<Option<PgRow>, sqlx::Error> {
        self.busy = true;
        let statement = query.fetch_optional(&mut *self.connection);
        let result = match deadline {
            Some(deadline) => tokio::time::timeout(deadline, statement)
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?,
            None => statement.await,
        };
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
