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
use sqlx::{Connection, PgPool, Postgres};

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
    ///
    /// With `begin` (behind a transaction pooler), the statement runs unnamed inside a
    /// transaction that `begin` opens: sqlx parses a statement and executes it in two
    /// exchanges, which a transaction pooler may send to two server connections unless a
    /// transaction keeps them on one, and a named statement would stay behind on a server
    /// connection other clients share.
    pub(super) async fn fetch_optional(
        &mut self,
        query: PgQuery<'_>,
        deadline: Option<Duration>,
        begin: Option<&str>,
    ) -> Result<Option<PgRow>, sqlx::Error> {
        self.busy = true;
        let connection = &mut *self.connection;
        let statement = async move {
            let Some(begin) = begin else {
                return query.fetch_optional(connection).await;
            };
            let mut transaction = connection.begin_with(begin.to_owned()).await?;
            let row = query
                .persistent(false)
                .fetch_optional(&mut *transaction)
                .await?;
            transaction.commit().await?;
            Ok(row)
        };
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
