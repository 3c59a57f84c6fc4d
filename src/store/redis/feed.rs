//! The invalidation feed over Redis pub/sub: the wire format of its messages, and the task
//! that keeps one subscription per [`SessionManager`](crate::SessionManager) alive.
//!
//! Messages are short ASCII strings; the first character says what follows, so a later
//! kind can be added and older instances, not knowing it, flush everything rather than
//! ignore it:
//!
//! | message | meaning |
//! |---|---|
//! | `s:{token hash, 64 hex digits}` | one session was revoked |
//! | `c:{customer id}` | a customer was edited or deleted, or all their sessions revoked |
//! | `*` | anything may have changed (for operators: `PUBLISH {channel} '*'`) |
//! | anything else | treated as `*` |

use std::pin::pin;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::{Either, select};
use redis::aio::PubSub;
use tokio::time::Instant;

use super::identity::{Changes, Identity};
use super::target::Target;
use super::{MAX_BACKOFF, MIN_BACKOFF};
use crate::store::{FeedSink, Invalidation};

/// The message announcing `invalidation` (the format every store shares).
pub(super) fn message(invalidation: Invalidation) -> String {
    invalidation.message()
}

/// What a message asks for. Anything unreadable flushes everything: a message we cannot
/// read may be a revocation.
pub(super) fn parse(payload: &[u8]) -> Invalidation {
    let parsed = std::str::from_utf8(payload)
        .ok()
        .and_then(Invalidation::parse);
    parsed.unwrap_or_else(|| {
        tracing::warn!(
            bytes = payload.len(),
            "unknown message on the redis invalidation channel: flushing the session cache"
        );
        Invalidation::All
    })
}

/// What the feed task needs; cloned from the store for each manager.
#[derive(Clone)]
pub(super) struct FeedSettings {
    /// Asked again on each subscription: through Sentinel, the primary may have moved.
    pub(super) target: Target,
    pub(super) channel: String,
    pub(super) heartbeat_interval: Duration,
    pub(super) heartbeat_timeout: Duration,
    pub(super) connect_timeout: Duration,
    /// The key of the store's marker (see [`Identity`]).
    pub(super) marker: String,
    /// The server as the store saw it at connect.
    pub(super) initial: Identity,
    pub(super) changes: Changes,
}

impl FeedSettings {
    /// The longest a dead subscription goes unnoticed, counted from the sending of the
    /// last `PING` answered through it; see
    /// [`RedisStoreBuilder::silence_bound`](super::RedisStoreBuilder::silence_bound).
    pub(super) fn silence_bound(&self) -> Duration {
        self.heartbeat_interval + self.heartbeat_timeout
    }
}

/// Subscribe, report, listen and ping until the subscription fails; then resubscribe
/// with backoff. Returns once the manager behind `sink` is gone.
pub(super) async fn run(settings: FeedSettings, sink: FeedSink) {
    let mut backoff = MIN_BACKOFF;
    let mut failures = 0u32;
    let mut known = settings.initial.clone();
    while !sink.is_closed() {
        match subscribe(&settings).await {
            Ok((pubsub, identity)) => {
                backoff = MIN_BACKOFF;
                failures = 0;
                if let Some(why) = known.change(&identity) {
                    // Messages, and perhaps acknowledged writes, were lost with the old
                    // server: a lost feed, whose reconnection flushes the cache.
                    settings.changes.record();
                    tracing::warn!(
                        why,
                        "the redis server behind the invalidation feed changed; \
                         changes it acknowledged before may be lost"
                    );
                    sink.lost();
                    known = identity;
                }
                sink.connected();
                let why = listen(pubsub, &settings, &sink).await;
                if sink.is_closed() {
                    break;
                }
                tracing::warn!(why, "redis invalidation feed lost, resubscribing");
                sink.lost();
            }
            Err(error) => {
                // One warning per outage; the retries are at debug level.
                if failures == 0 {
                    tracing::warn!(%error, "redis invalidation feed cannot subscribe, retrying");
                } else {
                    tracing::debug!(%error, failures, "redis invalidation feed still down");
                }
                failures = failures.saturating_add(1);
                sink.lost();
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    tracing::debug!("redis invalidation feed stopped: its session manager is gone");
}

/// A dedicated connection, subscribed once `SUBSCRIBE` is confirmed, and the server's
/// identity read after that (so a change after the reading reaches the subscription).
async fn subscribe(settings: &FeedSettings) -> Result<(PubSub, Identity), SubscribeError> {
    let attempt = async {
        let client = settings.target.client().await?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&settings.channel).await?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let identity = Identity::read(&mut connection, &settings.marker).await?;
        Ok::<_, redis::RedisError>((pubsub, identity))
    };
    match tokio::time::timeout(settings.connect_timeout, attempt).await {
        Ok(Ok(subscribed)) => Ok(subscribed),
        Ok(Err(error)) => Err(SubscribeError::Redis(error)),
        Err(_) => Err(SubscribeError::Timeout),
    }
}

#[derive(Debug, thiserror::Error)]
enum SubscribeError {
    #[error(transparent)]
    Redis(redis::RedisError),
    #[error("no subscription within the connect timeout")]
    Timeout,
}

/// Apply messages and prove the connection alive with a `PING` through it every
/// `heartbeat_interval` (or as soon as the previous one is answered, if later), each
/// answered within `heartbeat_timeout`. Returns why it stopped.
///
/// An answer proves that every message published before its `PING` was sent has been
/// delivered (one connection, in order), so the proof is dated from the sending: the
/// manager then counts the feed lost `interval + timeout` after the last `PING` that came
/// back, the same moment this task would give up on the next one.
async fn listen(pubsub: PubSub, settings: &FeedSettings, sink: &FeedSink) -> &'static str {
    let (mut control, mut messages) = pubsub.split();
    let heartbeat = async {
        // `connected` was the proof of the subscription itself.
        let mut sent = Instant::now();
        loop {
            tokio::time::sleep_until(sent + settings.heartbeat_interval).await;
            if sink.is_closed() {
                return "closed";
            }
            sent = Instant::now();
            let ping = control.ping::<redis::Value>();
            match tokio::time::timeout(settings.heartbeat_timeout, ping).await {
                Ok(Ok(_)) => sink.alive_since(sent.into_std()),
                Ok(Err(_)) => return "ping failed",
                Err(_) => return "ping unanswered",
            }
        }
    };
    let receive = async {
        while let Some(message) = messages.next().await {
            sink.invalidate(parse(message.get_payload_bytes()));
            if sink.is_closed() {
                return "closed";
            }
        }
        "connection closed"
    };
    // Dropping both halves closes the connection.
    match select(pin!(heartbeat), pin!(receive)).await {
        Either::Left((why, _)) | Either::Right((why, _)) => why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_messages_flush_everything() {
        for payload in [&b""[..], b"x:whatever", b"\xff\xfe", b"*"] {
            assert_eq!(parse(payload), Invalidation::All, "{payload:?}");
        }
    }
}
