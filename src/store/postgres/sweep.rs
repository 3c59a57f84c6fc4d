//! Deleting expired sessions: one sweep, or a task that sweeps periodically.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use sqlx::Row;

use super::error::store_error;
use super::{Inner, PostgresStore};
use crate::store::StoreError;

/// Rows per `DELETE`: each statement stays short whatever the backlog.
const BATCH: i64 = 1_000;

impl PostgresStore {
    /// Delete every session whose `expires_at` has passed (by the database clock); returns
    /// how many. Expired rows are never loaded, so this only keeps the table small, as
    /// Polar's daily `customer_session.delete_expired` job does. It announces nothing on the
    /// feed: an expired session is refused by every instance already.
    ///
    /// ```no_run
    /// # async fn demo(store: tower_customer_session::store::postgres::PostgresStore) {
    /// let deleted = store.delete_expired().await.unwrap();
    /// println!("{deleted} expired sessions deleted");
    /// # }
    /// ```
    pub async fn delete_expired(&self) -> Result<u64, StoreError> {
        delete_expired(self).await
    }

    /// Run [`delete_expired`](Self::delete_expired) now and then every `every`, on the
    /// runtime the store was opened on. Failures are logged and retried at the next tick.
    /// The task ends when every handle to the store is dropped, or when aborted through the
    /// returned handle.
    ///
    /// ```no_run
    /// # async fn demo(store: tower_customer_session::store::postgres::PostgresStore) {
    /// let sweep = store.spawn_sweep(std::time::Duration::from_secs(15 * 60));
    /// // … at shutdown:
    /// sweep.abort();
    /// # }
    /// ```
    pub fn spawn_sweep(&self, every: Duration) -> JoinHandle<()> {
        let store = Arc::downgrade(&self.inner);
        self.inner.runtime.spawn(sweep_forever(store, every))
    }
}

async fn delete_expired(store: &PostgresStore) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let row = store
            .fetch_one(|| sqlx::query(&store.inner.sql.delete_expired).bind(BATCH))
            .await?;
        let deleted: i64 = row.try_get(0).map_err(store_error)?;
        total += u64::try_from(deleted).unwrap_or(0);
        if deleted < BATCH {
            return Ok(total);
        }
    }
}

async fn sweep_forever(store: Weak<Inner>, every: Duration) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = store.upgrade() else { return };
        match delete_expired(&PostgresStore { inner }).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "expired customer sessions deleted"),
            Err(error) => tracing::warn!(%error, "expired customer session sweep failed"),
        }
    }
}
