//! The invalidation feed on a Cluster: sharded pub/sub on a fixed set of shard channels
//! (`SSUBSCRIBE`; classic pub/sub would be relayed to every node of the cluster).
//!
//! Each [`SessionManager`](crate::SessionManager) subscribes to every shard channel, on
//! the primary that owns the channel's slot (read from `CLUSTER SLOTS` on a node that
//! answers): one RESP3 connection per such primary, whose messages and notices all go
//! to one queue. The feed is live only while every one of those connections is: each
//! heartbeat sends a `PING` through each, and proves the feed alive from the moment it
//! sent them only once every one came back (so every message published before on any
//! shard is queued) and the queue was applied. Lost, and subscribed again from a fresh
//! slot map, when a connection closes or a `PING` goes unanswered (a node died or
//! hangs), or a node drops one of the subscriptions (`sunsubscribe`: its slot moved to
//! another node in a resharding or a failover).

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{Either, join_all, select};
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ProtocolVersion, PushInfo,
    PushKind, Value,
};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::Instant;

use super::slot;
use crate::store::FeedSink;
use crate::store::redis::feed::parse;
use crate::store::redis::identity::{Changes, Identity};
use crate::store::redis::{MAX_BACKOFF, MIN_BACKOFF};

/// What the feed task needs; shared by the store's feeds.
pub(in crate::store::redis) struct ClusterFeed {
    /// The nodes the store was given; each answers `CLUSTER SLOTS` as well as any.
    pub(in crate::store::redis) seeds: Vec<ConnectionInfo>,
    pub(in crate::store::redis) channels: Vec<String>,
    /// The data set's marker for each channel, in the channel's slot.
    pub(in crate::store::redis) markers: Vec<String>,
    pub(in crate::store::redis) heartbeat_interval: Duration,
    pub(in crate::store::redis) heartbeat_timeout: Duration,
    pub(in crate::store::redis) connect_timeout: Duration,
    pub(in crate::store::redis) changes: Changes,
}

/// A slot range (first, last) and its primary (`host`, `port`).
type SlotRange = (u16, u16, (String, u16));

/// Every shard channel subscribed, and the queue their connections feed.
struct Subscription {
    nodes: Vec<MultiplexedConnection>,
    pushes: UnboundedReceiver<PushInfo>,
}

/// Subscribe, report, listen and ping until a subscription fails; then subscribe again
/// with backoff. Returns once the manager behind `sink` is gone.
pub(in crate::store::redis) async fn run(settings: Arc<ClusterFeed>, sink: FeedSink) {
    let mut backoff = MIN_BACKOFF;
    let mut failures = 0u32;
    // Each channel's node (`run_id`) and marker, as first seen by this feed.
    let mut known: Option<Vec<Identity>> = None;
    while !sink.is_closed() {
        match subscribe(&settings).await {
            Ok((subscription, identities)) => {
                backoff = MIN_BACKOFF;
                failures = 0;
                let change = known.as_ref().and_then(|known| {
                    known
                        .iter()
                        .zip(&identities)
                        .find_map(|(before, now)| before.change(now))
                });
                if let Some(why) = change {
                    settings.changes.record();
                    tracing::warn!(
                        why,
                        "a redis cluster node behind the invalidation feed changed; \
                         changes it acknowledged before may be lost"
                    );
                    sink.lost();
                }
                known = Some(identities);
                sink.connected();
                let why = listen(subscription, &settings, &sink).await;
                if sink.is_closed() {
                    break;
                }
                tracing::warn!(why, "redis cluster invalidation feed lost, resubscribing");
                sink.lost();
            }
            Err(error) => {
                if failures == 0 {
                    tracing::warn!(%error, "redis cluster invalidation feed cannot subscribe, retrying");
                } else {
                    tracing::debug!(%error, failures, "redis cluster invalidation feed still down");
                }
                failures = failures.saturating_add(1);
                sink.lost();
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    tracing::debug!("redis cluster invalidation feed stopped: its session manager is gone");
}

/// One connection per primary that owns a channel, every channel subscribed there, then
/// each channel's identity (its node's `run_id`, the marker in its slot) read through
/// the same connection.
async fn subscribe(
    settings: &ClusterFeed,
) -> Result<(Subscription, Vec<Identity>), redis::RedisError> {
    let attempt = async {
        let owners = slot_owners(settings).await?;
        let mut by_node: BTreeMap<(String, u16), Vec<usize>> = BTreeMap::new();
        for (k, channel) in settings.channels.iter().enumerate() {
            let slot = slot::of(channel.as_bytes());
            let owner = owners
                .iter()
                .find(|(start, end, _)| (*start..=*end).contains(&slot))
                .map(|(_, _, node)| node.clone())
                .ok_or_else(|| error("a shard channel's slot has no primary"))?;
            by_node.entry(owner).or_default().push(k);
        }
        let (sender, pushes) = unbounded_channel();
        let mut nodes = Vec::with_capacity(by_node.len());
        let mut identities = vec![None; settings.channels.len()];
        for ((host, port), channels) in by_node {
            let seed = &settings.seeds[0];
            let info = seed
                .clone()
                .set_addr(ConnectionAddr::Tcp(host, port))
                .set_redis_settings(
                    seed.redis_settings()
                        .clone()
                        .set_protocol(ProtocolVersion::RESP3),
                );
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(settings.connect_timeout))
                .set_push_sender(sender.clone());
            let mut connection = Client::open(info)?
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            // One channel a command: each confirmation answers one.
            for &k in &channels {
                redis::cmd("SSUBSCRIBE")
                    .arg(&settings.channels[k])
                    .exec_async(&mut connection)
                    .await?;
            }
            for &k in &channels {
                identities[k] = Some(Identity::read(&mut connection, &settings.markers[k]).await?);
            }
            nodes.push(connection);
        }
        let identities = identities
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        Ok((Subscription { nodes, pushes }, identities))
    };
    match tokio::time::timeout(settings.connect_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(error("no subscription within the connect timeout")),
    }
}

/// Slot ranges and their primaries (`host`, `port`), from the first node that answers.
async fn slot_owners(settings: &ClusterFeed) -> Result<Vec<SlotRange>, redis::RedisError> {
    let mut last = error("no cluster node given");
    for seed in &settings.seeds {
        let ask = async {
            let client = Client::open(seed.clone())?;
            let mut connection = client.get_multiplexed_async_connection().await?;
            let reply: Value = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async(&mut connection)
                .await?;
            let seed_host = match seed.addr() {
                ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
                _ => String::new(),
            };
            parse_slots(reply, &seed_host).ok_or_else(|| error("unexpected CLUSTER SLOTS reply"))
        };
        match tokio::time::timeout(settings.connect_timeout, ask).await {
            Ok(Ok(owners)) => return Ok(owners),
            Ok(Err(failed)) => last = failed,
            Err(_) => last = error("a cluster node did not answer CLUSTER SLOTS in time"),
        }
    }
    Err(last)
}

/// `CLUSTER SLOTS`: `[[start, end, [host, port, id, …], replicas…], …]`. An empty host
/// means the node we asked.
fn parse_slots(reply: Value, seed_host: &str) -> Option<Vec<SlotRange>> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    ranges
        .into_iter()
        .map(|range| {
            let Value::Array(range) = range else {
                return None;
            };
            let mut range = range.into_iter();
            let start = u16::try_from(int(range.next()?)?).ok()?;
            let end = u16::try_from(int(range.next()?)?).ok()?;
            let Some(Value::Array(primary)) = range.next() else {
                return None;
            };
            let mut primary = primary.into_iter();
            let host: String = redis::from_redis_value(primary.next()?).ok()?;
            let port = u16::try_from(int(primary.next()?)?).ok()?;
            let host = if host.is_empty() || host == "?" {
                seed_host.to_owned()
            } else {
                host
            };
            Some((start, end, (host, port)))
        })
        .collect()
}

fn int(value: Value) -> Option<i64> {
    match value {
        Value::Int(value) => Some(value),
        _ => None,
    }
}

fn error(message: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, message))
}

/// Apply messages as they come, and every `heartbeat_interval` ping every node; returns
/// why the feed stopped.
async fn listen(
    mut subscription: Subscription,
    settings: &ClusterFeed,
    sink: &FeedSink,
) -> &'static str {
    // `connected` was the proof of the subscriptions themselves.
    let mut sent = Instant::now();
    loop {
        let next = sent + settings.heartbeat_interval;
        loop {
            let push = pin!(subscription.pushes.recv());
            let tick = pin!(tokio::time::sleep_until(next));
            match select(push, tick).await {
                Either::Left((Some(push), _)) => {
                    if let Err(why) = apply(push, sink) {
                        return why;
                    }
                }
                // Every connection is gone.
                Either::Left((None, _)) => return "connections closed",
                Either::Right(_) => break,
            }
            if sink.is_closed() {
                return "closed";
            }
        }
        if sink.is_closed() {
            return "closed";
        }
        sent = Instant::now();
        let pings = subscription.nodes.iter_mut().map(|connection| async {
            let ping = redis::cmd("PING");
            tokio::time::timeout(
                settings.heartbeat_timeout,
                ping.query_async::<Value>(connection),
            )
            .await
        });
        for answer in join_all(pings).await {
            match answer {
                Ok(Ok(Value::SimpleString(pong))) if pong == "PONG" => {}
                // A notice (`sunsubscribe`) taken for the answer: the queue says which.
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return "ping failed",
                Err(_) => return "ping unanswered",
            }
        }
        // Everything published before `sent`, on any shard, is queued now: apply it
        // before saying so.
        while let Ok(push) = subscription.pushes.try_recv() {
            if let Err(why) = apply(push, sink) {
                return why;
            }
        }
        sink.alive_since(sent.into_std());
    }
}

/// One message or notice from a node.
fn apply(push: PushInfo, sink: &FeedSink) -> Result<(), &'static str> {
    match push.kind {
        PushKind::SMessage => {
            // `[channel, payload]`
            match push.data.get(1) {
                Some(Value::BulkString(payload)) => sink.invalidate(parse(payload)),
                _ => sink.invalidate(parse(b"")),
            }
            Ok(())
        }
        PushKind::SUnsubscribe => Err("a node dropped a shard channel (its slot moved)"),
        PushKind::Disconnection => Err("a node's connection closed"),
        // Confirmations of the feed's own `SSUBSCRIBE`s, and nothing else it asked for.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cluster_slots() {
        let node = |host: &str, port| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                node("", 7001),
                node("10.0.0.3", 7002),
            ]),
        ]);
        assert_eq!(
            parse_slots(reply, "seed").unwrap(),
            vec![
                (0, 5460, ("10.0.0.1".to_owned(), 7000)),
                (5461, 16383, ("seed".to_owned(), 7001)),
            ]
        );
        assert!(parse_slots(Value::Int(1), "seed").is_none());
    }
}
