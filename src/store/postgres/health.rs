//! Replacing a pool that stopped making progress.
//!
//! sqlx tests every connection returned to the pool with a round trip that has no deadline.
//! A network that turns that connection into a black hole at that moment (a NAT or a
//! firewall forgetting the flow, a proxy that stalls) leaves the test waiting for as long as
//! the kernel keeps the socket: many minutes, or for ever if something still acknowledges
//! the packets. The slot goes with it, no statement of ours ever reaches that connection,
//! and the feed may be fine all along (its own connection was spared), so nothing else
//! replaces the pool. Once every slot is lost so, every call fails.
//!
//! So the pool is judged by its progress: when a caller waited a whole `acquire_timeout`
//! for a connection and no statement was answered meanwhile, the pool is replaced (the old
//! one is left to close what it can). At most once per backoff, which starts at
//! `acquire_timeout`, doubles up to the feed's `max_reconnect_delay`, randomised, and starts
//! over once a statement is answered. A busy pool keeps answering, so it is never replaced;
//! a database that is down makes each replacement cheap (a pool opens connections lazily).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::listen::jitter;

pub(super) struct PoolHealth {
    /// When the store was opened: the origin of `last_answer`.
    origin: Instant,
    /// Milliseconds from `origin` to the last answered statement. An atomic: every
    /// statement writes it.
    last_answer: AtomicU64,
    /// The longest wait for a connection; a pool silent for as long is stalled.
    acquire_timeout: Duration,
    cap: Duration,
    /// Whether the pool was replaced since the last answer (the backoff is then running).
    renewed: AtomicBool,
    renewal: Mutex<Renewal>,
}

struct Renewal {
    not_before: Instant,
    backoff: Duration,
}

impl PoolHealth {
    pub(super) fn new(acquire_timeout: Duration, max_backoff: Duration) -> Self {
        let origin = Instant::now();
        Self {
            origin,
            last_answer: AtomicU64::new(0),
            acquire_timeout,
            cap: max_backoff.max(acquire_timeout),
            renewed: AtomicBool::new(false),
            renewal: Mutex::new(Renewal {
                not_before: origin,
                backoff: acquire_timeout,
            }),
        }
    }

    fn millis_since_origin(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The server answered a statement (a result or an error of its own).
    pub(super) fn answered(&self) {
        self.last_answer
            .fetch_max(self.millis_since_origin(), Ordering::Relaxed);
        if self.renewed.swap(false, Ordering::Relaxed) {
            let mut renewal = self.lock();
            renewal.not_before = Instant::now();
            renewal.backoff = self.acquire_timeout;
        }
    }

    /// A caller waited `acquire_timeout` for a connection in vain: whether to replace the
    /// pool now (and if so, the next replacement waits a longer backoff).
    pub(super) fn should_renew(&self) -> bool {
        let silent_for = self
            .millis_since_origin()
            .saturating_sub(self.last_answer.load(Ordering::Relaxed));
        if Duration::from_millis(silent_for) < self.acquire_timeout {
            return false;
        }
        let now = Instant::now();
        let mut renewal = self.lock();
        if now < renewal.not_before {
            return false;
        }
        renewal.not_before = now + jitter(renewal.backoff);
        renewal.backoff = (renewal.backoff * 2).min(self.cap);
        self.renewed.store(true, Ordering::Relaxed);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Renewal> {
        // Two plain values: nothing a panic could leave half-written.
        self.renewal.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_pool_is_renewed_with_backoff_and_an_answer_starts_over() {
        let acquire = Duration::from_millis(500);
        let health = PoolHealth::new(acquire, Duration::from_secs(5));
        // Answers keep it healthy whatever the timeouts.
        health.answered();
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(!health.should_renew(), "answered 200 ms ago");

        tokio::time::advance(acquire).await;
        assert!(health.should_renew(), "silent for a whole acquire_timeout");
        assert!(!health.should_renew(), "not again before the backoff");
        tokio::time::advance(acquire).await;
        assert!(health.should_renew(), "after the first backoff");
        // Randomised between half and all of 1 s.
        tokio::time::advance(Duration::from_millis(400)).await;
        assert!(!health.should_renew(), "the backoff doubled");
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(health.should_renew());

        health.answered();
        assert!(!health.should_renew(), "answered just now");
        tokio::time::advance(acquire).await;
        assert!(health.should_renew(), "silent again");
        tokio::time::advance(acquire).await;
        assert!(health.should_renew(), "the backoff started over");
    }
}
