//! Traffic through every instance while a test breaks the store: a session that must stay
//! valid and one revoked before, each asked for in a loop until the test stops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::task::JoinHandle;
use tower_customer_session::store::FeedState;
use tower_customer_session::{CredentialSource, RedisStore, SessionManager};

/// What the traffic saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// The valid session served.
    pub ok: usize,
    /// The valid session answered 503.
    pub unavailable: usize,
    /// The valid session refused as invalid (401), or the revoked one accepted.
    pub wrong: usize,
}

#[derive(Default)]
struct Counts {
    ok: AtomicUsize,
    unavailable: AtomicUsize,
    wrong: AtomicUsize,
}

/// The running traffic; [`stop`](Self::stop) it to read what it saw.
pub struct Traffic {
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Traffic {
    /// Ask each of `sides` for `kept` and `revoked` every 2 ms.
    pub fn start(sides: &[SessionManager<RedisStore>], kept: &str, revoked: &str) -> Self {
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = sides
            .iter()
            .map(|side| {
                let (side, counts, stop) = (side.clone(), Arc::clone(&counts), Arc::clone(&stop));
                let (kept, revoked) = (kept.to_owned(), revoked.to_owned());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let counter = match side.authenticate(&kept, CredentialSource::Header).await
                        {
                            Ok(_) => &counts.ok,
                            Err(e) if e.status() == StatusCode::SERVICE_UNAVAILABLE => {
                                &counts.unavailable
                            }
                            Err(_) => &counts.wrong,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        let accepted = side.authenticate(&revoked, CredentialSource::Header).await;
                        if accepted.is_ok() {
                            counts.wrong.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Self {
            counts,
            stop,
            tasks,
        }
    }

    /// Stop every request loop and say what they saw.
    pub async fn stop(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a traffic task");
        }
        Seen {
            ok: self.counts.ok.load(Ordering::Relaxed),
            unavailable: self.counts.unavailable.load(Ordering::Relaxed),
            wrong: self.counts.wrong.load(Ordering::Relaxed),
        }
    }
}

/// Wait until every side serves `token` again with its feed live; fail after `within`
/// (counted from `since`, named `what` in the failure).
pub async fn recovered(
    sides: &[&SessionManager<RedisStore>],
    token: &str,
    since: Instant,
    within: Duration,
    what: &str,
) {
    for side in sides {
        loop {
            if side
                .authenticate(token, CredentialSource::Header)
                .await
                .is_ok()
                && side.feed_state() == FeedState::Live
            {
                break;
            }
            assert!(
                since.elapsed() < within,
                "no recovery within {within:?} of {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
