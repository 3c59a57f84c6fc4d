//! The invalidation-feed mechanism of the core, driven by hand: what the cache does while a
//! feed starts, lives, goes silent, is lost and comes back, under both policies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tower_customer_session::model::CustomerData;
use tower_customer_session::store::{
    CustomerRef, FeedPolicy, FeedSink, FeedState, Invalidation, NewSession, SessionRecord, Watch,
};
use tower_customer_session::{
    BuildError, CreateSession, CredentialSource, Customer, CustomerStore, MemoryStore,
    SessionAdmin, SessionKey, SessionManager, SessionStore, StoreError,
};
use uuid::Uuid;

const SECRET: &[u8] = b"feed test secret, thirty-two b!!";

/// A memory store with a feed the test drives through the sink it hands out, counting loads.
#[derive(Clone, Default)]
struct FeedStore {
    memory: MemoryStore,
    sink: Arc<Mutex<Option<FeedSink>>>,
    loads: Arc<Mutex<usize>>,
    max_silence: Option<Duration>,
}

impl FeedStore {
    fn with_silence(max_silence: Duration) -> Self {
        Self {
            max_silence: Some(max_silence),
            ..Self::default()
        }
    }

    fn sink(&self) -> FeedSink {
        self.sink.lock().unwrap().clone().expect("watch was called")
    }

    fn loads(&self) -> usize {
        *self.loads.lock().unwrap()
    }
}

impl SessionStore for FeedStore {
    async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
        *self.loads.lock().unwrap() += 1;
        self.memory.load(key).await
    }

    fn watch(&self, sink: FeedSink) -> Option<Watch> {
        *self.sink.lock().unwrap() = Some(sink);
        Some(Watch::new(
            self.max_silence.unwrap_or(Duration::from_secs(3600)),
        ))
    }
}

impl SessionAdmin for FeedStore {
    async fn create(&self, session: NewSession) -> Result<SessionRecord, StoreError> {
        self.memory.create(session).await
    }
    async fn revoke(
        &self,
        hash: &tower_customer_session::token::TokenHash,
    ) -> Result<bool, StoreError> {
        self.memory.revoke(hash).await
    }
    async fn revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
        self.memory.revoke_all(customer_id).await
    }
}

impl CustomerStore for FeedStore {
    async fn upsert_customer(&self, customer: Customer) -> Result<Customer, StoreError> {
        self.memory.upsert_customer(customer).await
    }
    async fn customer(&self, by: &CustomerRef) -> Result<Option<Customer>, StoreError> {
        CustomerStore::customer(&self.memory, by).await
    }
    async fn delete_customer(
        &self,
        id: Uuid,
        at: chrono::DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.memory.delete_customer(id, at).await
    }
}

fn manager(store: &FeedStore, policy: FeedPolicy) -> SessionManager<FeedStore> {
    SessionManager::builder(store.clone())
        .secret(SECRET)
        .feed_policy(policy)
        .build()
        .expect("configured")
}

async fn session(sessions: &SessionManager<FeedStore>) -> String {
    let jane = sessions
        .upsert_customer(CustomerData::new(Utc::now()))
        .await
        .unwrap();
    let session = sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    session.token.expose_secret().to_owned()
}

async fn auth(sessions: &SessionManager<FeedStore>, token: &str) -> bool {
    sessions
        .authenticate(token, CredentialSource::Header)
        .await
        .is_ok()
}

#[tokio::test]
async fn until_the_feed_is_confirmed_every_request_asks_the_store() {
    let store = FeedStore::default();
    let sessions = manager(&store, FeedPolicy::BypassCache);
    assert_eq!(sessions.feed_state(), FeedState::Starting);
    let token = session(&sessions).await;
    assert!(auth(&sessions, &token).await);
    assert!(auth(&sessions, &token).await);
    assert_eq!(
        store.loads(),
        2,
        "nothing is cached before the feed is live"
    );

    store.sink().connected();
    assert_eq!(sessions.feed_state(), FeedState::Live);
    assert!(auth(&sessions, &token).await);
    assert!(auth(&sessions, &token).await);
    assert_eq!(store.loads(), 3, "cached once the feed is live");
}

#[tokio::test]
async fn invalidations_from_the_feed_drop_entries_at_once() {
    let store = FeedStore::default();
    let sessions = manager(&store, FeedPolicy::BypassCache);
    store.sink().connected();
    let token = session(&sessions).await;
    assert!(auth(&sessions, &token).await);
    let loads = store.loads();

    // Another instance revoked it: the store no longer has it, and the feed says so.
    let hash = sessions.hasher().hash(&token);
    assert!(
        auth(&sessions, &token).await,
        "still cached before the message"
    );
    store.memory.revoke(&hash).await.unwrap();
    store.sink().invalidate(Invalidation::Session(hash));
    assert!(!auth(&sessions, &token).await);
    assert_eq!(store.loads(), loads + 1, "the store was asked again");

    // A customer-level message drops every session of that customer.
    let other = session(&sessions).await;
    assert!(auth(&sessions, &other).await);
    let (customer, _) = sessions
        .authenticate(&other, CredentialSource::Header)
        .await
        .unwrap();
    store
        .memory
        .delete_customer(customer.id, Utc::now())
        .await
        .unwrap();
    assert!(auth(&sessions, &other).await, "cached until told");
    store.sink().invalidate(Invalidation::Customer(customer.id));
    assert!(!auth(&sessions, &other).await);
}

#[tokio::test]
async fn a_lost_feed_flushes_and_bypasses_the_cache_until_it_is_back() {
    let store = FeedStore::default();
    let sessions = manager(&store, FeedPolicy::BypassCache);
    store.sink().connected();
    let token = session(&sessions).await;
    assert!(auth(&sessions, &token).await);
    let loads = store.loads();
    assert!(auth(&sessions, &token).await);
    assert_eq!(store.loads(), loads, "a hit");

    store.sink().lost();
    assert_eq!(sessions.feed_state(), FeedState::Lost);
    // A revocation elsewhere while the feed is down: its message is lost, but the store
    // is asked for every request, so it holds at once.
    let hash = sessions.hasher().hash(&token);
    store.memory.revoke(&hash).await.unwrap();
    assert!(!auth(&sessions, &token).await);
    let fresh = session(&sessions).await;
    assert!(auth(&sessions, &fresh).await);
    assert!(auth(&sessions, &fresh).await);
    let during = store.loads();

    store.sink().alive();
    assert_eq!(
        sessions.feed_state(),
        FeedState::Live,
        "a beat after a loss reconnects"
    );
    assert!(auth(&sessions, &fresh).await);
    assert!(auth(&sessions, &fresh).await);
    assert_eq!(store.loads(), during + 1, "cached again, after one load");
}

#[tokio::test]
async fn serve_cached_keeps_serving_through_an_outage_and_flushes_on_return() {
    let store = FeedStore::default();
    let sessions = manager(&store, FeedPolicy::ServeCached);
    store.sink().connected();
    let token = session(&sessions).await;
    assert!(auth(&sessions, &token).await);
    store.sink().lost();
    let hash = sessions.hasher().hash(&token);
    store.memory.revoke(&hash).await.unwrap();
    assert!(
        auth(&sessions, &token).await,
        "the opt-in policy serves the cached entry (bounded by cache_max_ttl)"
    );
    store.sink().connected();
    assert!(
        !auth(&sessions, &token).await,
        "the return flushes what may have been missed"
    );
}

#[tokio::test]
async fn a_silent_feed_is_declared_lost_by_the_watchdog() {
    let store = FeedStore::with_silence(Duration::from_millis(200));
    let sessions = manager(&store, FeedPolicy::BypassCache);
    store.sink().connected();
    let token = session(&sessions).await;
    assert!(auth(&sessions, &token).await);

    // Beats on time keep it live.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        store.sink().alive();
    }
    assert_eq!(sessions.feed_state(), FeedState::Live);

    // Then silence: detected within max_silence × 1.25 plus scheduling slack.
    let started = tokio::time::Instant::now();
    while sessions.feed_state() == FeedState::Live {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "silence not detected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sessions.feed_state(), FeedState::Lost);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let loads = store.loads();
    assert!(auth(&sessions, &token).await);
    assert_eq!(
        store.loads(),
        loads + 1,
        "the cache is bypassed after a missed beat"
    );
}

#[tokio::test]
async fn a_dropped_manager_closes_the_sink() {
    let store = FeedStore::default();
    let sessions = manager(&store, FeedPolicy::BypassCache);
    let sink = store.sink();
    assert!(!sink.is_closed());
    drop(sessions);
    assert!(sink.is_closed(), "the store's feed task can stop");
    sink.connected(); // a no-op, not a panic
}

#[test]
fn a_store_with_a_feed_needs_a_runtime_to_build() {
    let result = SessionManager::builder(FeedStore::default())
        .secret(SECRET)
        .build();
    assert!(matches!(result, Err(BuildError::NoRuntime)));
}

#[tokio::test]
async fn a_shared_store_needs_a_secret_and_the_memory_store_does_not() {
    let result = SessionManager::builder(FeedStore::default()).build();
    match result {
        Err(error @ BuildError::SecretRequired) => {
            assert!(
                error.to_string().contains(".secret("),
                "the message says what to do"
            );
        }
        other => panic!("expected SecretRequired, got {:?}", other.map(|_| ())),
    }
    let memory = SessionManager::builder(MemoryStore::new()).build().unwrap();
    assert_eq!(memory.feed_state(), FeedState::Unwatched);
}

#[tokio::test(start_paused = true)]
async fn the_silence_counts_from_when_the_last_proof_was_sent() {
    let store = FeedStore::with_silence(Duration::from_millis(300));
    let sessions = manager(&store, FeedPolicy::BypassCache);
    store.sink().connected();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A ping sent 50 ms ago whose answer arrives only now proves the feed as of then.
    let sent = tokio::time::Instant::now() - Duration::from_millis(50);
    store.sink().alive_since(sent.into_std());
    assert_eq!(sessions.feed_state(), FeedState::Live);
    // An older proof arriving late never moves the beat back.
    store
        .sink()
        .alive_since((sent - Duration::from_millis(100)).into_std());
    tokio::time::sleep(Duration::from_millis(245)).await;
    assert_eq!(
        sessions.feed_state(),
        FeedState::Live,
        "295 ms after the proof"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        sessions.feed_state(),
        FeedState::Lost,
        "lost at 300 ms after the proof was sent, to the millisecond, not on a coarse tick"
    );
}

/// An empty or short secret is no key: `build` refuses it and says the minimum, for the
/// memory store and a shared store alike, without echoing the secret.
#[tokio::test]
async fn a_secret_shorter_than_32_bytes_is_refused() {
    use tower_customer_session::token::MIN_SECRET_LEN;
    assert_eq!(MIN_SECRET_LEN, 32);
    for secret in ["", "k", "super secret jwt secret", &"s".repeat(31)] {
        for result in [
            SessionManager::builder(MemoryStore::new())
                .secret(secret)
                .build()
                .map(|_| ()),
            SessionManager::builder(FeedStore::default())
                .secret(secret)
                .build()
                .map(|_| ()),
        ] {
            match result {
                Err(error @ BuildError::SecretTooShort { len, min: 32 }) => {
                    assert_eq!(len, secret.len());
                    let message = error.to_string();
                    assert!(message.contains("at least 32 bytes"), "{message}");
                    assert!(secret.len() < 2 || !message.contains(secret), "{message}");
                }
                other => panic!("{secret:?}: expected SecretTooShort, got {other:?}"),
            }
        }
    }
    let exact = "s".repeat(MIN_SECRET_LEN);
    assert!(
        SessionManager::builder(MemoryStore::new())
            .secret(&exact)
            .build()
            .is_ok()
    );
}
