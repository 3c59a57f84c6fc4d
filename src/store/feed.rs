//! Invalidation feeds: how a shared backend tells every instance's cache what changed.

use std::sync::Weak;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::token::TokenHash;

/// One change announced on a feed.
///
/// Two kinds say more than "this changed": [`Revoked`](Self::Revoked) and
/// [`CustomerRevoked`](Self::CustomerRevoked) announce a revocation made through the store's
/// API that returned `Ok`. Every instance that hears one keeps refusing those sessions while
/// they could still be valid, even if the store later serves them again (a restart from
/// older data, a failover to a replica that missed the change), as the instance that made
/// the revocation does. Announce changes made any other way (an edit in SQL, which may be
/// undone the same way) with the plain kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// One session changed (an edit, or a revocation that may be undone): drop the entry
    /// for this token hash.
    Session(TokenHash),
    /// A customer was edited, deleted, or had all sessions revoked: drop their entries.
    Customer(Uuid),
    /// Anything may have changed: drop every entry.
    All,
    /// The session with this token hash was revoked through the store's API (it existed,
    /// and the revocation returned `Ok`): drop it and never believe it valid again.
    Revoked(TokenHash),
    /// Every session `customer` had before `before` was revoked through the store's API
    /// (`revoke_all`, or the customer's deletion): drop them and never believe them valid
    /// again. A receiver uses the earlier of `before` and its own clock, so a revoker's
    /// clock running ahead cannot refuse sessions made after the message arrived.
    CustomerRevoked {
        /// The customer.
        customer: Uuid,
        /// Sessions created strictly before this instant are revoked.
        before: chrono::DateTime<chrono::Utc>,
    },
}

impl Invalidation {
    /// The text a store sends on its channel for this change; [`parse`](Self::parse) reads
    /// it back. One format for every backend:
    ///
    /// | change | message |
    /// |---|---|
    /// | [`Session`](Self::Session) | `s:<token hash, 64 hex>` |
    /// | [`Customer`](Self::Customer) | `c:<uuid>` |
    /// | [`All`](Self::All) | `*` |
    /// | [`Revoked`](Self::Revoked) | `r:<token hash, 64 hex>` |
    /// | [`CustomerRevoked`](Self::CustomerRevoked) | `a:<uuid>:<microseconds since the Unix epoch>` |
    ///
    /// ```
    /// use tower_customer_session::store::Invalidation;
    /// # let customer = uuid::Uuid::nil();
    /// let message = Invalidation::Customer(customer).message();
    /// assert_eq!(message, format!("c:{customer}"));
    /// assert_eq!(Invalidation::parse(&message), Some(Invalidation::Customer(customer)));
    /// ```
    pub fn message(&self) -> String {
        match self {
            Self::Session(hash) => format!("s:{}", hash.to_hex()),
            Self::Customer(id) => format!("c:{id}"),
            Self::All => "*".to_owned(),
            Self::Revoked(hash) => format!("r:{}", hash.to_hex()),
            Self::CustomerRevoked { customer, before } => {
                format!("a:{customer}:{}", before.timestamp_micros())
            }
        }
    }

    /// The change a message announces, or `None` for a message this version cannot read.
    /// A store should treat `None` as [`All`](Self::All): a message it cannot read may be a
    /// revocation.
    pub fn parse(message: &str) -> Option<Self> {
        if message == "*" {
            return Some(Self::All);
        }
        let (kind, rest) = message.split_once(':')?;
        match kind {
            "s" => TokenHash::from_hex(rest).map(Self::Session),
            "r" => TokenHash::from_hex(rest).map(Self::Revoked),
            "c" => Uuid::try_parse(rest).ok().map(Self::Customer),
            "a" => {
                let (id, micros) = rest.split_once(':')?;
                Some(Self::CustomerRevoked {
                    customer: Uuid::try_parse(id).ok()?,
                    before: chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?,
                })
            }
            _ => None,
        }
    }
}

/// The state of a store's invalidation feed, as [`SessionManager::feed_state`](crate::SessionManager::feed_state) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeedState {
    /// The store has no feed; cached entries live up to `cache_max_ttl`.
    Unwatched,
    /// The feed has not been confirmed yet.
    Starting,
    /// The feed is subscribed and its heartbeat is on time.
    Live,
    /// The feed was lost (reported by the store, or a missed heartbeat).
    Lost,
}

impl FeedState {
    /// `"unwatched"`, `"starting"`, `"live"` or `"lost"`, for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unwatched => "unwatched",
            Self::Starting => "starting",
            Self::Live => "live",
            Self::Lost => "lost",
        }
    }
}

/// What the cache does while a feed is not live.
///
/// What a lost feed does to the cache:
///
/// | policy | while the feed is down | when it is back |
/// |---|---|---|
/// | [`BypassCache`](FeedPolicy::BypassCache) (default) | cache flushed, every request asks the store (still coalesced); a revocation anywhere holds at once once the loss is known, and a silent loss is known within the store's [`Watch::max_silence`] | flushed again: messages may have been lost |
/// | [`ServeCached`](FeedPolicy::ServeCached) | cached entries keep serving; a revocation elsewhere holds within `cache_max_ttl` | flushed: messages may have been lost |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeedPolicy {
    /// Flush the cache and answer every request from the store until the feed is back.
    #[default]
    BypassCache,
    /// Keep serving cached entries, each for at most `cache_max_ttl`, through the outage.
    ServeCached,
}

/// What a store promises about its feed, returned by [`SessionStore::watch`](super::SessionStore::watch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    max_silence: Duration,
}

impl Watch {
    /// The store proves the feed alive ([`FeedSink::alive_since`], or `connected`) with
    /// proofs sent at most `max_silence` apart; a longer silence counts as a lost feed.
    ///
    /// This is the whole window in which a silently dead feed can let this instance serve
    /// a session revoked elsewhere from its cache: a change announced before a proof was
    /// sent is delivered before that proof's answer, and the cache stops serving (default
    /// [`FeedPolicy`]) `max_silence` after the last proof was sent. For a store that pings
    /// every `interval` and waits `timeout` for each answer, it is `interval + timeout`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::store::Watch;
    /// let (interval, timeout) = (Duration::from_millis(100), Duration::from_millis(200));
    /// assert_eq!(Watch::new(interval + timeout).max_silence(), Duration::from_millis(300));
    /// ```
    pub fn new(max_silence: Duration) -> Self {
        Self {
            max_silence: max_silence.max(Duration::from_millis(1)),
        }
    }

    /// The longest silence before the feed counts as lost.
    pub fn max_silence(&self) -> Duration {
        self.max_silence
    }
}

/// The core's end of an invalidation feed, handed to [`SessionStore::watch`](super::SessionStore::watch).
///
/// One mechanism for every backend. The store's [`watch`](super::SessionStore::watch) gets a
/// [`FeedSink`] and returns a [`Watch`] stating how long the feed may stay silent. From then
/// on the store reports three things: the subscription is up ([`FeedSink::connected`]), it is
/// still up ([`FeedSink::alive_since`], a heartbeat proven on the subscription's own
/// connection, e.g. a `PING` answered through it), and what changed ([`FeedSink::invalidate`]). The core
/// applies each invalidation exactly as a local revocation (epochs bumped first, so a racing
/// load cannot put the entry back) and runs a watchdog: a feed silent for longer than the
/// [`Watch`] allows counts as lost, whatever the store believes.
///
///
/// Cheap to clone. Once the [`SessionManager`](crate::SessionManager) it belongs to is
/// dropped, every call is a no-op and [`is_closed`](Self::is_closed) says the store may stop.
#[derive(Clone)]
pub struct FeedSink {
    feed: Weak<dyn Consumer>,
}

/// Whoever applies a feed: the session manager's end. Defined here so that stores, which
/// produce feeds, need to know nothing about the cache that consumes them.
pub(crate) trait Consumer: Send + Sync {
    /// A proof of life that started at `at`.
    fn beat(&self, at: Instant);
    fn is_live(&self) -> bool;
    /// The subscription is (again) established: flush, then serve.
    fn go_live(&self, why: &'static str);
    fn go_down(&self, why: &'static str);
    fn invalidate(&self, invalidation: Invalidation);
}

impl FeedSink {
    /// The subscription is established (first time, or again after a loss). The cache is
    /// flushed, because anything published while it was down is lost, then served again.
    pub fn connected(&self) {
        if let Some(feed) = self.feed.upgrade() {
            feed.beat(Instant::now());
            feed.go_live("connected");
        }
    }

    /// The subscription was proven alive just now. After a loss this counts as a
    /// reconnection. Prefer [`alive_since`](Self::alive_since) when the proof took a round
    /// trip: this one counts the silence from the answer, not from the question.
    pub fn alive(&self) {
        // Tokio's clock, not std's: the two differ in tests that pause time.
        self.alive_since(Instant::now().into_std());
    }

    /// The subscription was proven alive by a proof sent at `sent` and answered through it
    /// (e.g. a `PING` sent then): every change announced before `sent` has been delivered.
    /// Read `sent` from Tokio's clock (`tokio::time::Instant::now().into_std()`), which
    /// the watchdog runs on.
    /// The silence the [`Watch`] allows is counted from `sent`, so the bound it states
    /// holds whatever the round trip took. After a loss this counts as a reconnection.
    ///
    /// ```
    /// # use tower_customer_session::store::FeedSink;
    /// # let sink = FeedSink::detached();
    /// let sent = tokio::time::Instant::now().into_std();
    /// // … a PING goes out on the subscription's connection and its answer comes back …
    /// sink.alive_since(sent);
    /// ```
    pub fn alive_since(&self, sent: std::time::Instant) {
        if let Some(feed) = self.feed.upgrade() {
            feed.beat(Instant::from_std(sent));
            if !feed.is_live() {
                feed.go_live("heartbeat");
            }
        }
    }

    /// The subscription is gone (connection closed, ping unanswered).
    pub fn lost(&self) {
        if let Some(feed) = self.feed.upgrade() {
            feed.go_down("reported by the store");
        }
    }

    /// Apply one change to the cache, as a local revocation would.
    pub fn invalidate(&self, invalidation: Invalidation) {
        if let Some(feed) = self.feed.upgrade() {
            feed.invalidate(invalidation);
        }
    }

    /// Whether the manager this sink feeds is gone; a store's feed task should then stop.
    pub fn is_closed(&self) -> bool {
        self.feed.strong_count() == 0
    }

    /// A sink that belongs to no manager (every call is a no-op). For tests of a store's
    /// feed that look at what it sends through their own sink.
    pub fn detached() -> Self {
        Self {
            feed: Weak::<Detached>::new(),
        }
    }

    /// The sink that feeds `consumer`.
    pub(crate) fn new(consumer: Weak<dyn Consumer>) -> Self {
        Self { feed: consumer }
    }
}

impl std::fmt::Debug for FeedSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedSink")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The type behind a detached sink's empty handle; never instantiated.
struct Detached;

impl Consumer for Detached {
    fn beat(&self, _: Instant) {}
    fn is_live(&self) -> bool {
        false
    }
    fn go_live(&self, _: &'static str) {}
    fn go_down(&self, _: &'static str) {}
    fn invalidate(&self, _: Invalidation) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let hash = TokenHash::from_bytes([0x5a; 32]);
        let customer = Uuid::new_v4();
        let before = chrono::DateTime::from_timestamp_micros(1_765_000_000_123_456).unwrap();
        for invalidation in [
            Invalidation::Session(hash),
            Invalidation::Customer(customer),
            Invalidation::All,
            Invalidation::Revoked(hash),
            Invalidation::CustomerRevoked { customer, before },
        ] {
            assert_eq!(
                Invalidation::parse(&invalidation.message()),
                Some(invalidation)
            );
        }
        assert_eq!(
            Invalidation::Session(hash).message(),
            format!("s:{}", "5a".repeat(32))
        );
        assert_eq!(
            Invalidation::CustomerRevoked { customer, before }.message(),
            format!("a:{customer}:1765000000123456")
        );
    }

    #[test]
    fn anything_else_is_unreadable() {
        let id = Uuid::new_v4();
        let hex = "5a".repeat(32);
        for message in [
            String::new(),
            "s:".into(),
            "s:abc".into(),
            format!("s:{hex}0"),
            format!("s:zz{}", &hex[2..]),
            "c:not-a-uuid".into(),
            format!("C:{id}"),
            format!("v2:c:{id}"),
            format!("a:{id}"),
            format!("a:{id}:"),
            format!("a:{id}:soon"),
            format!("a:{id}:{}", i64::MAX),
            "a:not-a-uuid:1".into(),
            "revoke".into(),
            "**".into(),
        ] {
            assert_eq!(Invalidation::parse(&message), None, "{message:?}");
        }
    }
}
