//! The manager's end of a store's invalidation feed: its state, the watchdog that counts a
//! silent feed as lost, and what each change does to the cache.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::BuildError;
use crate::cache::SessionCache;
use crate::clock::Clock;
use crate::store::{Consumer, FeedPolicy, FeedSink, FeedState, Invalidation, Watch};

/// The feed's state and the cache it acts on; owned by the manager, watched by a task.
pub(crate) struct Feed {
    cache: Arc<SessionCache>,
    policy: FeedPolicy,
    /// The manager's clock, which caps the time a received customer revocation names.
    clock: Arc<dyn Clock>,
    inner: Mutex<FeedInner>,
}

struct FeedInner {
    state: FeedState,
    last_beat: Instant,
}

impl Feed {
    /// Start watching `store`'s feed, if it has one: the cache serves nothing (under the
    /// default policy) until the store confirms the subscription.
    pub(crate) fn start(
        cache: Arc<SessionCache>,
        policy: FeedPolicy,
        clock: Arc<dyn Clock>,
        watch: impl FnOnce(FeedSink) -> Option<Watch>,
    ) -> Result<Option<Arc<Self>>, BuildError> {
        let feed = Arc::new(Self {
            cache,
            policy,
            clock,
            inner: Mutex::new(FeedInner {
                state: FeedState::Starting,
                last_beat: Instant::now(),
            }),
        });
        if policy == FeedPolicy::BypassCache {
            feed.cache.set_bypass(true);
        }
        let consumer: Weak<dyn Consumer> = Arc::downgrade(&feed) as Weak<dyn Consumer>;
        let Some(watch) = watch(FeedSink::new(consumer)) else {
            feed.cache.set_bypass(false);
            return Ok(None);
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        feed.cache.metrics.feed_state(FeedState::Starting);
        runtime.spawn(watchdog(Arc::downgrade(&feed), watch.max_silence()));
        Ok(Some(feed))
    }

    pub(crate) fn state(&self) -> FeedState {
        self.lock().state
    }

    fn lock(&self) -> MutexGuard<'_, FeedInner> {
        // A state and a timestamp: nothing a panic could leave half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lost if live and silent for longer than `max_silence`; otherwise the moment at
    /// which it would be, if no beat comes first.
    fn check(&self, max_silence: Duration) -> Option<Instant> {
        let deadline = {
            let inner = self.lock();
            if inner.state != FeedState::Live {
                // Nothing to watch until the store reports the feed live again.
                return None;
            }
            inner.last_beat + max_silence
        };
        if Instant::now() > deadline {
            self.go_down("heartbeat missed");
            return None;
        }
        Some(deadline)
    }
}

impl Consumer for Feed {
    /// An older proof never moves the beat back.
    fn beat(&self, at: Instant) {
        let mut inner = self.lock();
        inner.last_beat = inner.last_beat.max(at);
    }

    fn is_live(&self) -> bool {
        self.state() == FeedState::Live
    }

    fn go_live(&self, why: &'static str) {
        let mut inner = self.lock();
        // Flush before serving: whatever was published while the feed was down is lost, and
        // a repeated `connected` still means a new subscription.
        self.cache.invalidate_all();
        if inner.state == FeedState::Live {
            return;
        }
        self.cache.set_bypass(false);
        tracing::info!(from = inner.state.as_str(), why, "invalidation feed live");
        inner.state = FeedState::Live;
        self.cache.metrics.feed_state(FeedState::Live);
    }

    fn go_down(&self, why: &'static str) {
        let mut inner = self.lock();
        if inner.state == FeedState::Lost {
            return;
        }
        if self.policy == FeedPolicy::BypassCache {
            // Stop serving first, then drop what was cached.
            self.cache.set_bypass(true);
            self.cache.invalidate_all();
        }
        tracing::warn!(from = inner.state.as_str(), why, "invalidation feed lost");
        inner.state = FeedState::Lost;
        self.cache.metrics.feed_state(FeedState::Lost);
    }

    fn invalidate(&self, invalidation: Invalidation) {
        self.cache.metrics.feed_message(&invalidation);
        let invalidation = match invalidation {
            // A revoker's clock running ahead must not refuse sessions made after this.
            Invalidation::CustomerRevoked { customer, before } => Invalidation::CustomerRevoked {
                customer,
                before: before.min(self.clock.now()),
            },
            other => other,
        };
        self.cache.apply(invalidation);
    }
}

/// Wakes at the moment the last beat runs out (not on a coarse tick), so a silent feed is
/// counted lost `max_silence` after its last proof of life, to the timer's millisecond.
/// Ends when the manager is dropped.
async fn watchdog(feed: Weak<Feed>, max_silence: Duration) {
    // While the feed is not live, look again this often.
    let idle = max_silence.min(Duration::from_millis(50));
    loop {
        let wake = match feed.upgrade() {
            Some(feed) => feed.check(max_silence),
            None => return,
        };
        match wake {
            Some(deadline) => {
                tokio::time::sleep_until(deadline + Duration::from_millis(1)).await;
            }
            None => tokio::time::sleep(idle).await,
        }
    }
}
