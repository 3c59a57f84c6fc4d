//! The invalidation feed: `LISTEN` on a dedicated connection, a heartbeat proven on that
//! same connection, and reconnection with a capped backoff.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgNotification, PgPoolOptions};
use sqlx::{Executor, Row};
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};

use super::Inner;
use crate::store::{FeedSink, Invalidation};

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
    Invalidation::parse(payload).unwrap_or_else(|| {
        tracing::debug!(
            len = payload.len(),
            "unrecognised invalidation message: flushing the cache"
        );
        Invalidation::All
    })
}

/// Run the feed until the manager behind `sink` is gone.
pub(super) async fn run(store: Arc<Inner>, sink: FeedSink) {
    let config = store.feed;
    let mut delay = FIRST_RECONNECT_DELAY;
    // After a loss the database may have been out of reach: renew the pool once the feed's
    // connection is back.
    let mut renew_pool = false;
    while !sink.is_closed() {
        match subscribe(&store, &mut renew_pool).await {
            Ok(feed) => {
                sink.connected();
                let (end, proven) = serve(feed, &sink, &store.channel, &config).await;
                match end {
                    End::Closed => return,
                    End::Lost(why) => {
                        tracing::warn!(why, "customer session feed lost; reconnecting");
                    }
                }
                renew_pool = true;
                // A connection that beat at least once was a real recovery: start over.
                if proven {
                    delay = FIRST_RECONNECT_DELAY;
                }
            }
            Err(NotSubscribed::Connection(error)) => {
                renew_pool = true;
                tracing::warn!(%error, "customer session feed could not subscribe");
            }
            Err(why) => {
                tracing::warn!(%why, "customer session feed not established");
            }
        }
        sink.lost();
        sleep(jitter(delay)).await;
        delay = (delay * 2).min(config.max_reconnect_delay.max(FIRST_RECONNECT_DELAY));
    }
}

/// A subscription: the connection and the server process that listens for it.
struct Feed {
    listener: PgListener,
    pid: i32,
}

/// Why a subscription was not established.
#[derive(Debug, thiserror::Error)]
enum NotSubscribed {
    #[error("{0}")]
    Connection(sqlx::Error),
    #[error(
        "the check notification sent on the probe channel {channel:?} did not reach the feed's \
         connection within {waited:?}; the likely cause is a transaction-pooling proxy \
         (PgBouncer pool_mode=transaction, a managed proxy), and LISTEN cannot work through \
         one: give the feed a direct connection with PostgresStoreBuilder::listen_url"
    )]
    NoNotification { channel: String, waited: Duration },
    #[error("the check notification could not be sent: {0}")]
    ProbeFailed(sqlx::Error),
    #[error("{MOVED}")]
    Moved,
}

/// Why a session that moves between server processes cannot carry the feed.
const MOVED: &str = "the feed's statements ran on different server processes: a \
     transaction-pooling proxy is in between, which cannot carry LISTEN; give the feed a \
     direct connection with PostgresStoreBuilder::listen_url";

/// A fresh connection (its own one-connection pool, so a previous connection that hangs
/// while being dropped holds nothing this one needs), subscribed to the store's channel once
/// it has proven that notifications reach it.
///
/// The proof: the connection listens on a private probe channel, the store sends a
/// notification there from another connection, made as the pool's are, and it must arrive. Only a connection that is a
/// server session of its own receives a notification while it is idle: through a
/// transaction pooler, the `LISTEN` stays on a server connection that the proxy lends to
/// other clients between transactions, and the notification never reaches this one. The
/// feed's own channel is subscribed only after that, so a failed proof leaves no listener
/// on it behind a proxy, where its messages would reach other clients.
async fn subscribe(store: &Inner, renew_pool: &mut bool) -> Result<Feed, NotSubscribed> {
    let deadline = store.feed.subscribe_timeout;
    let probe = format!(
        "customer_session_probe_{:08x}",
        getrandom::u32().unwrap_or(0)
    );
    let opened = open(store.listen_connect.clone(), deadline, quoted(&probe));
    let mut feed = timeout(deadline, opened)
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
        .map_err(NotSubscribed::Connection)?;
    if std::mem::take(renew_pool) {
        // The database was out of reach: the pool may hold stalled connections.
        store.renew_pool();
    }
    if let Err(why) = prove(store, &mut feed, &probe).await {
        // Best effort: behind a transaction pooler this may reach the server process that
        // listens, or not (the probe channel is private: nobody else notifies it).
        let _ = timeout(store.feed.heartbeat_timeout, unlisten(&mut feed.listener)).await;
        return Err(why);
    }
    let subscribe = format!(
        "LISTEN {}; UNLISTEN {};",
        quoted(&store.channel),
        quoted(&probe)
    );
    let pid = timeout(deadline, backend_pid(&mut feed.listener, &subscribe))
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
        .map_err(NotSubscribed::Connection)?;
    if pid != feed.pid {
        return Err(NotSubscribed::Moved);
    }
    Ok(feed)
}

/// Connect and listen on the probe channel (`probe`, quoted); the server process's id.
async fn open(
    options: PgConnectOptions,
    deadline: Duration,
    probe: String,
) -> Result<Feed, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(deadline)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(options);
    let mut listener = PgListener::connect_with(&pool).await?;
    // Reconnection is ours: report the loss first, then back off.
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    // One message: through any proxy, both statements reach one server process.
    let pid = backend_pid(&mut listener, &format!("LISTEN {probe};")).await?;
    Ok(Feed { listener, pid })
}

/// Send a notification on `probe` from another connection to where the pool connects, and
/// wait for it on `feed`.
async fn prove(store: &Inner, feed: &mut Feed, probe: &str) -> Result<(), NotSubscribed> {
    let waited = store.feed.subscribe_timeout;
    let until = Instant::now() + waited;
    let nonce = format!("{:08x}", getrandom::u32().unwrap_or(0));
    let notify = format!("NOTIFY {}, '{nonce}'", quoted(probe));
    let sent = timeout_at(until, send(store.pool_connect.clone(), notify, waited))
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
    sent.map_err(NotSubscribed::ProbeFailed)?;
    loop {
        let Ok(received) = timeout_at(until, feed.listener.try_recv()).await else {
            return Err(NotSubscribed::NoNotification {
                channel: probe.to_owned(),
                waited,
            });
        };
        match received {
            Ok(Some(message)) if message.channel() == probe && message.payload() == nonce => {
                return Ok(());
            }
            // The feed's channel is not subscribed yet; anything else is not ours.
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(NotSubscribed::Connection(sqlx::Error::Protocol(
                    "connection closed".to_owned(),
                )));
            }
            Err(error) => return Err(NotSubscribed::Connection(error)),
        }
    }
}

/// Run `sql` on a connection of its own, opened as the pool's are (through the same proxy,
/// if any). A listener's, not a plain one: through a transaction pooler the probe may come
/// back to the sender, which a plain sqlx connection would take for a protocol error.
async fn send(
    options: PgConnectOptions,
    sql: String,
    deadline: Duration,
) -> Result<(), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(deadline)
        .connect_lazy_with(options);
    let mut sender = PgListener::connect_with(&pool).await?;
    sender.execute(sqlx::raw_sql(&sql)).await.map(drop)
}

/// The heartbeat's statement: the server process's id.
const PID: &str = "SELECT pg_backend_pid()";

/// Run `prefix` (statements without results) and [`PID`] as one simple query, so that
/// through any proxy all of it reaches one server process; that process's id.
async fn backend_pid(listener: &mut PgListener, prefix: &str) -> Result<i32, sqlx::Error> {
    let rows = listener
        .fetch_all(sqlx::raw_sql(&format!("{prefix} {PID}")))
        .await?;
    rows.first().ok_or(sqlx::Error::RowNotFound)?.try_get(0)
}

/// One heartbeat: [`PID`], prepared once, so each beat costs as little as a `SELECT 1`.
/// Reads the whole answer, up to its `ReadyForQuery`, so every notification the server sent
/// before it is in the listener's buffer.
async fn beat(listener: &mut PgListener) -> Result<i32, sqlx::Error> {
    let rows = listener.fetch_all(sqlx::query(PID)).await?;
    rows.first().ok_or(sqlx::Error::RowNotFound)?.try_get(0)
}

/// `UNLISTEN *`.
async fn unlisten(listener: &mut PgListener) -> Result<(), sqlx::Error> {
    listener
        .execute(sqlx::raw_sql("UNLISTEN *"))
        .await
        .map(drop)
}

/// `name` as a quoted SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
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
/// response). So a beat sent after a commit returned gets its answer only after the
/// commit's notifications; sqlx, reading that answer, moves them into the listener's
/// buffer, which is drained into the cache before the beat is counted. The beat asks for
/// the server process's id, which must be the one that subscribed: a beat answered by
/// another (a transaction pooler in between) proves nothing, and ends the feed.
async fn serve(mut feed: Feed, sink: &FeedSink, channel: &str, config: &FeedConfig) -> (End, bool) {
    let mut proven = false;
    let mut next_beat = Instant::now() + config.heartbeat_interval;
    loop {
        // `try_recv` is cancel-safe: a notification half-read when the timer fires stays
        // buffered for the next call.
        tokio::select! {
            received = feed.listener.try_recv() => match received {
                Ok(Some(message)) => deliver(sink, channel, &message),
                Ok(None) => return (End::Lost("connection closed"), proven),
                Err(_) => return (End::Lost("connection failed"), proven),
            },
            () = sleep_until(next_beat) => {
                if sink.is_closed() {
                    return (End::Closed, proven);
                }
                let sent = Instant::now();
                let answer = beat(&mut feed.listener);
                match timeout_at(sent + config.heartbeat_timeout, answer).await {
                    Ok(Ok(pid)) if pid == feed.pid => {
                        while let Some(message) = feed.listener.next_buffered() {
                            deliver(sink, channel, &message);
                        }
                        proven = true;
                        sink.alive_since(sent.into_std());
                    }
                    Ok(Ok(_)) => return (End::Lost(MOVED), proven),
                    Ok(Err(_)) => return (End::Lost("heartbeat failed"), proven),
                    Err(_) => return (End::Lost("heartbeat timed out"), proven),
                }
                next_beat = Instant::now() + config.heartbeat_interval;
            }
        }
    }
}

/// Apply `message` if it is the feed's (the probe channel's are not).
fn deliver(sink: &FeedSink, channel: &str, message: &PgNotification) {
    if message.channel() == channel {
        sink.invalidate(parse(message.payload()));
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
    fn unknown_messages_flush_everything() {
        for other in ["*", "", "x:anything", "v2:s:abc"] {
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
