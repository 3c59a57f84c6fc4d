//! One instance's feed: subscribe to the server's changes, beat, report losses, and end
//! with the manager; and each feed [`Bug`] where it departs from that.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tower_customer_session::store::FeedSink;

use super::{Bug, Server};

pub(super) async fn run(server: Arc<Server>, sink: FeedSink) {
    let outlives = server.has(Bug::FeedOutlivesManager);
    'subscription: while outlives || !sink.is_closed() {
        if !server.is_up() {
            sink.lost();
            tokio::time::sleep(server.heartbeat).await;
            continue;
        }
        let mut changes = server.changes.subscribe();
        sink.connected();
        // A deadline, not a sleep per turn: a stream of changes must not hold off the beat.
        let mut next_beat = tokio::time::Instant::now() + server.heartbeat;
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) => sink.invalidate(change),
                    Err(RecvError::Lagged(_)) if server.has(Bug::OverflowLosesMessagesSilently) => {}
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => {
                        // Messages were dropped: say so, and start over (which flushes).
                        sink.lost();
                        continue 'subscription;
                    }
                },
                () = tokio::time::sleep_until(next_beat) => {
                    next_beat += server.heartbeat;
                    if sink.is_closed() && !outlives {
                        return;
                    }
                    if server.has(Bug::NoHeartbeat) {
                        continue;
                    }
                    let sent = tokio::time::Instant::now().into_std();
                    if server.is_up() || server.has(Bug::BeatsDuringOutage) {
                        sink.alive_since(sent);
                    } else {
                        sink.lost();
                        continue 'subscription;
                    }
                }
            }
        }
    }
}
