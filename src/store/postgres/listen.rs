//! The invalidation feed: `LISTEN` on a dedicated connection, a heartbeat proven on that
//! same connection, and reconnection with a capped backoff.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};
use uuid::Uuid;

use super::Inner;
use crate::store::{FeedSink, Invalidation};
use crate::token::TokenHash;

/// First wait before reconnecting; doubled after each failure up to the configured cap.
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(50);

/// How the feed's connection is watched and brought back.
#[derive(Debug, Clone, Copy)]
pub(super) struct FeedConfig {
    pub(super) heartbeat_interval: Duration,
    pub(super) heartbeat_timeout: Duration,
    pub(super) max_reconnect_delay: Duration,
    /// Deadline for opening the feed's connection and subscribing: the pool's
    /// `acquire_timeout` (opening a connection takes as long for both), or the heartbeat's
    /// deadline if longer.
    pub(super) subscribe_timeout: Duration,
}

impl FeedConfig {
    /// The silence bound: the longest time between two proofs of life *sent* while the feed
    /// is healthy (a beat is sent `heartbeat_interval` after the previous answer, which came
    /// at most `heartbeat_timeout` after its own beat was sent). The core's watchdog counts
    /// a longer silence as a loss, so a revocation made elsewhere is refused here at most
    /// this long after it returned, even if the feed died silently.
    pub(super) fn silence_bound(&self) -> Duration {
        self.heartbeat_interval + self.heartbeat_timeout
    }
}

/// What a feed message means; anything unrecognised (a newer message format, a manual
/// `NOTIFY`) flushes everything, which is always safe.
pub(super) fn parse(payload: &str) -> Invalidation {
    if let Some(hex) = payload.strip_prefix("s:") {
        if let Some(hash) = TokenHash::from_hex(hex) {
            return Invalidation::Session(hash);
        }
    } else if let Some(id) = payload.strip_prefix("c:") {
        if let Ok(id) = Uuid::try_parse(id) {
            return Invalidation::Customer(id);
        }
    }
    if payload != "*" {
        tracing::debug!(
            len = payload.len(),
            "unrecognised invalidation message: flushing the cache"
        );
    }
    Invalidation::All
}

/// Run the feed until the manager behind `sink` is gone.
pub(super) async fn run(store: Arc<Inner>, sink: FeedSink) {
    let config = store.feed;
    let mut delay = FIRST_RECONNECT_DELAY;
    let mut was_lost = false;
    while !sink.is_closed() {
        match subscribe(
            &store.session_options,
            &store.channel,
            config.subscribe_timeout,
        )
        .await
        {
            Ok(listener) => {
                if was_lost {
                    // The database was out of reach: the pool may hold stalled connections.
                    store.renew_pool();
                }
                sink.connected();
                let (end, proven) = serve(listener, &sink, &config).await;
                match end {
                    End::Closed => return,
                    End::Lost(why) => {
                        tracing::warn!(why, "customer session feed lost; reconnecting");
                    }
                }
                // A connection that beat at least once was a real recovery: start over.
                if proven {
                    delay = FIRST_RECONNECT_DELAY;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "customer session feed could not subscribe");
            }
        }
        sink.lost();
        was_lost = true;
        sleep(jitter(delay)).await;
        delay = (delay * 2).min(config.max_reconnect_delay.max(FIRST_RECONNECT_DELAY));
    }
}

/// A fresh connection (its own one-connection pool, so a previous connection that hangs
/// while being dropped holds nothing this one needs), subscribed to `channel`.
async fn subscribe(
    options: &PgConnectOptions,
    channel: &str,
    deadline: Duration,
) -> Result<PgListener, sqlx::Error> {
    let attempt = async {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(deadline)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        // Reconnection is ours: report the loss first, then back off.
        listener.eager_reconnect(false);
        listener.ignore_pool_close_event(true);
        listener.listen(channel).await?;
        Ok(listener)
    };
    timeout(deadline, attempt)
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

enum End {
    /// The manager is gone.
    Closed,
    /// The connection closed, failed, or missed a heartbeat.
    Lost(&'static str),
}

/// Deliver notifications and beat until the connection is lost or the manager is gone.
/// Also says whether a heartbeat ever succeeded.
///
/// Why an answered beat proves that every change committed before it was sent has been
/// applied: a committing transaction queues its `NOTIFY`s and, once committed, signals
/// every listening backend before its own client gets the reply. The listening backend
/// sends pending notifications when idle, and always before the `ReadyForQuery` that ends a
/// statement outside a transaction (the protocol never puts them inside a command's
/// response). So a `SELECT 1` sent after a commit returned gets its answer only after the
/// commit's notifications; sqlx, reading that answer, moves them into the listener's
/// buffer, which is drained into the cache before the beat is counted.
async fn serve(mut listener: PgListener, sink: &FeedSink, config: &FeedConfig) -> (End, bool) {
    let mut proven = false;
    let mut next_beat = Instant::now() + config.heartbeat_interval;
    loop {
        // `try_recv` is cancel-safe: a notification half-read when the timer fires stays
        // buffered for the next call.
        tokio::select! {
            received = listener.try_recv() => match received {
                Ok(Some(notification)) => sink.invalidate(parse(notification.payload())),
                Ok(None) => return (End::Lost("connection closed"), proven),
                Err(_) => return (End::Lost("connection failed"), proven),
            },
            () = sleep_until(next_beat) => {
                if sink.is_closed() {
                    return (End::Closed, proven);
                }
                let sent = Instant::now();
                let beat = sqlx::query("SELECT 1").execute(&mut listener);
                match timeout_at(sent + config.heartbeat_timeout, beat).await {
                    Ok(Ok(_)) => {
                        while let Some(notification) = listener.next_buffered() {
                            sink.invalidate(parse(notification.payload()));
                        }
                        proven = true;
                        sink.alive_since(sent.into_std());
                    }
                    Ok(Err(_)) => return (End::Lost("heartbeat failed"), proven),
                    Err(_) => return (End::Lost("heartbeat timed out"), proven),
                }
                next_beat = Instant::now() + config.heartbeat_interval;
            }
        }
    }
}

/// Between half and all of `delay`, so a fleet that lost the database together does not
/// reconnect in lockstep.
pub(super) fn jitter(delay: Duration) -> Duration {
    let fraction = f64::from(getrandom::u32().unwrap_or(u32::MAX)) / f64::from(u32::MAX);
    delay.mul_f64(0.5 + fraction / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_and_unknown_ones_flush_everything() {
        let hex = "4766cc058bd32232f56efc66ee6d768231c8ea91a1741d1022acd6fc5680e66d";
        let hash = TokenHash::from_hex(hex).unwrap();
        assert_eq!(parse(&format!("s:{hex}")), Invalidation::Session(hash));
        let id = Uuid::new_v4();
        assert_eq!(parse(&format!("c:{id}")), Invalidation::Customer(id));
        for other in [
            "*",
            "",
            "s:",
            "s:4766",
            &format!("s:{hex}0"),
            "c:not-a-uuid",
            "x:anything",
            "v2:s:abc",
        ] {
            assert_eq!(parse(other), Invalidation::All, "{other:?}");
        }
    }

    #[test]
    fn jitter_stays_within_half_and_all_of_the_delay() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(100));
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100));
        }
    }
}
