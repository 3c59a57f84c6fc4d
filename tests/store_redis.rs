//! `RedisStore` on the shared Redis (127.0.0.1:6379 or `REDIS_URL`): the store test kit,
//! and what the kit cannot see: server-side expiry and the customer index, the record
//! format versions, the feed's wire format, and the secret requirement. Every test works
//! under its own random key prefix and channel, deleted at the end.

#[allow(dead_code)]
#[path = "postgres_common/proxy.rs"]
mod proxy;
mod redis_support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use futures_util::StreamExt;
use redis_support::{Namespace, PROPAGATION, authenticates, customer, manager, refused_within};
use tower_customer_session::redis::{self, AsyncCommands};
use tower_customer_session::store::{FeedState, Invalidation, NewSession};
use tower_customer_session::testing::{Backend, Kit, Outage};
use tower_customer_session::token::{TokenFormat, TokenHasher, TokenKind};
use tower_customer_session::{
    BuildError, CreateSession, CredentialSource, CustomerStore, RedisStore, Rejection,
    SessionAdmin, SessionKey, SessionManager, SessionStore, StoreError,
};
use uuid::Uuid;

/// A fresh prefix on the shared server, reached through a proxy the kit can cut.
struct ThroughProxy {
    store: RedisStore,
    proxy: Arc<proxy::Proxy>,
}

impl ThroughProxy {
    async fn new(redis: &Namespace) -> Self {
        let proxy = proxy::Proxy::start(proxy::upstream_of(redis.url()).await).await;
        let store = RedisStore::builder(proxy.url(redis.url()))
            .key_prefix(redis.new_prefix())
            .heartbeat_interval(Duration::from_millis(100))
            .connect()
            .await
            .expect("connect through the proxy");
        Self {
            store,
            proxy: Arc::new(proxy),
        }
    }
}

impl Backend for ThroughProxy {
    type Store = RedisStore;

    fn store(&self) -> RedisStore {
        self.store.clone()
    }

    async fn peer(&self) -> Option<RedisStore> {
        self.store.peer().await
    }

    async fn outage(&self) -> Option<Outage> {
        self.proxy.set(proxy::Mode::Cut);
        let proxy = self.proxy.clone();
        Some(Outage::new(move || proxy.set(proxy::Mode::Open)))
    }

    async fn dump(&self) -> Option<String> {
        self.store.dump().await
    }

    async fn feed_subscriptions(&self) -> Option<usize> {
        self.store.feed_subscriptions().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_runs_on_redis() {
    let Some(redis) = Namespace::shared() else {
        return;
    };
    let report = Kit::new(|| ThroughProxy::new(&redis)).run().await;
    report.assert_passed();
    // Redis judges expiry by this host's clock, which the kit can read but not set.
    let skipped: Vec<&str> = report.skipped().collect();
    assert_eq!(skipped, ["time.expires_at_itself_is_expired"], "{report}");
}

#[tokio::test]
async fn a_shared_store_needs_a_secret() {
    let Some(redis) = Namespace::shared() else {
        return;
    };
    let store = redis.fresh_store().await;
    assert!(matches!(
        SessionManager::builder(store.clone()).build(),
        Err(BuildError::SecretRequired)
    ));
    assert!(
        SessionManager::builder(store)
            .secret(redis_support::SECRET)
            .build()
            .is_ok()
    );
}

/// A fresh token's hash and the request to store it, expiring in `ttl`.
fn new_session(customer: Uuid, ttl: TimeDelta) -> (String, NewSession) {
    let token = TokenFormat::polar().generate(TokenKind::Customer).unwrap();
    let created_at = tower_customer_session::model::truncate_to_micros(Utc::now());
    let new = NewSession {
        id: Uuid::new_v4(),
        token_hash: TokenHasher::new(redis_support::SECRET).hash(token.expose_secret()),
        kind: TokenKind::Customer,
        customer: customer.into(),
        created_at,
        expires_at: created_at + ttl,
        return_url: None,
        member: None,
    };
    (token.expose_secret().to_owned(), new)
}

/// Where the server will expire `key`, in Unix milliseconds (from `PTTL`, so it works on
/// every supported server version).
async fn expires_at_ms(store: &RedisStore, key: &str) -> i64 {
    let mut connection = store.connection();
    let ttl: i64 = connection.pttl(key).await.unwrap();
    assert!(ttl > 0, "{key} has no expiry (PTTL {ttl})");
    Utc::now().timestamp_millis() + ttl
}

#[tokio::test]
async fn sessions_expire_on_the_server_and_the_index_with_its_newest_member() {
    let Some(redis) = Namespace::shared() else {
        return;
    };
    let store = redis.fresh_store().await;
    let jane = store.upsert_customer(customer("Jane")).await.unwrap();
    let prefix = store.key_prefix().to_owned();
    let index = format!("{prefix}cs:{}", jane.id);
    let close = |a: i64, b: i64| (a - b).abs() < 1_000;

    let (_, hour) = new_session(jane.id, TimeDelta::hours(1));
    store.create(hour.clone()).await.unwrap();
    let session_key = format!("{prefix}s:{}", hour.token_hash.to_hex());
    let hour_ms = hour.expires_at.timestamp_millis();
    assert!(close(expires_at_ms(&store, &session_key).await, hour_ms));
    assert!(close(expires_at_ms(&store, &index).await, hour_ms));

    // A longer session pushes the index's expiry out; a shorter one leaves it there.
    let (_, two_hours) = new_session(jane.id, TimeDelta::hours(2));
    store.create(two_hours.clone()).await.unwrap();
    let two_hours_ms = two_hours.expires_at.timestamp_millis();
    assert!(close(expires_at_ms(&store, &index).await, two_hours_ms));
    let (_, minutes) = new_session(jane.id, TimeDelta::minutes(10));
    store.create(minutes).await.unwrap();
    assert!(close(expires_at_ms(&store, &index).await, two_hours_ms));

    // An already expired session is not indexed, and does not shorten the index's life.
    let (_, expired) = new_session(jane.id, TimeDelta::seconds(-5));
    store.create(expired.clone()).await.unwrap();
    let mut connection = store.connection();
    let members: Vec<String> = connection.smembers(&index).await.unwrap();
    assert_eq!(members.len(), 3);
    assert!(!members.contains(&expired.token_hash.to_hex()));
    assert!(close(expires_at_ms(&store, &index).await, two_hours_ms));
}

#[tokio::test]
async fn revocations_keep_the_customer_index_clean() {
    let Some(redis) = Namespace::shared() else {
        return;
    };
    let store = redis.fresh_store().await;
    let jane = store.upsert_customer(customer("Jane")).await.unwrap();
    let index = format!("{}cs:{}", store.key_prefix(), jane.id);
    let mut connection = store.connection();
    let (_, first) = new_session(jane.id, TimeDelta::hours(1));
    let (_, second) = new_session(jane.id, TimeDelta::hours(1));
    store.create(first.clone()).await.unwrap();
    store.create(second.clone()).await.unwrap();

    assert!(store.revoke(&first.token_hash).await.unwrap());
    let members: Vec<String> = connection.smembers(&index).await.unwrap();
    assert_eq!(members, vec![second.token_hash.to_hex()]);

    assert_eq!(store.revoke_all(jane.id).await.unwrap(), 1);
    let exists: bool = connection.exists(&index).await.unwrap();
    assert!(!exists, "revoke_all removes the index itself");
}

#[tokio::test]
async fn records_in_another_format_version_are_errors_never_sessions() {
    let Some(redis) = Namespace::shared() else {
        return;
    };
    let store = redis.fresh_store().await;
    let sessions = manager(store.clone());
    let jane = sessions.upsert_customer(customer("Jane")).await.unwrap();
    let prefix = store.key_prefix().to_owned();
    let mut connection = store.connection();

    // A session written by a later format: same header, version 2.
    let session = sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    let token = session.token.expose_secret();
    let hash = sessions.hasher().hash(token);
    let key = format!("{prefix}s:{}", hash.to_hex());
    let stored: Vec<u8> = connection.get(&key).await.unwrap();
    let newer = [b"2".as_slice(), &stored[1..]].concat();
    let _: () = connection.set(&key, newer).await.unwrap();
    match store.load(SessionKey::new(&hash, token)).await {
        Err(StoreError::Backend(error)) => {
            assert!(error.to_string().contains("version"), "{error}");
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    // Through the manager: 503, not a session and not a 401.
    assert!(matches!(
        sessions.authenticate(token, CredentialSource::Header).await,
        Err(Rejection::StoreUnavailable(_))
    ));

    // A customer written by a later format.
    let other = sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    let other_token = other.token.expose_secret();
    let other_hash = sessions.hasher().hash(other_token);
    let _: () = connection
        .hset(format!("{prefix}c:{}", jane.id), "v", "2")
        .await
        .unwrap();
    assert!(matches!(
        store.load(SessionKey::new(&other_hash, other_token)).await,
        Err(StoreError::Backend(_))
    ));
    assert!(matches!(
        store.customer(&jane.id.into()).await,
        Err(StoreError::Backend(_))
    ));
    assert!(matches!(
        sessions
            .authenticate(other_token, CredentialSource::Header)
            .await,
        Err(Rejection::StoreUnavailable(_))
    ));

    // And plain garbage.
    let _: () = connection.set(&key, "not a session").await.unwrap();
    assert!(store.load(SessionKey::new(&hash, token)).await.is_err());
}

#[tokio::test]
async fn every_change_is_published_in_the_documented_format() {
    let Some(redis) = Namespace::shared() else {
        return;
    };
    let store = redis.fresh_store().await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(store.channel()).await.unwrap();

    let jane = store.upsert_customer(customer("Jane")).await.unwrap();
    let (_, session) = new_session(jane.id, TimeDelta::hours(1));
    store.create(session.clone()).await.unwrap();
    store.revoke(&session.token_hash).await.unwrap();
    store.revoke_all(jane.id).await.unwrap();
    store.delete_customer(jane.id, Utc::now()).await.unwrap();

    let mut messages = pubsub.on_message();
    let mut received = Vec::new();
    for _ in 0..4 {
        let message = tokio::time::timeout(Duration::from_secs(2), messages.next())
            .await
            .expect("a message within 2 s")
            .expect("the subscription is open");
        received.push(String::from_utf8(message.get_payload_bytes().to_vec()).unwrap());
    }
    // An upsert is a plain change; the revocations are announced as revocations: the one
    // session, then every session of the customer before the server's time (revoke_all)
    // and before the deletion time given.
    let (id, hex) = (jane.id, session.token_hash.to_hex());
    assert_eq!(received[..2], [format!("c:{id}"), format!("r:{hex}")]);
    let before = |message: &str| {
        let Some(Invalidation::CustomerRevoked { customer, before }) = Invalidation::parse(message)
        else {
            panic!("{message:?} is not a customer revocation");
        };
        assert_eq!(customer, id);
        before
    };
    let (revoked_all, deleted) = (before(&received[2]), before(&received[3]));
    let now = Utc::now();
    assert!(
        (now - revoked_all).num_seconds().abs() < 5,
        "the server's time: {revoked_all}"
    );
    assert!(revoked_all <= deleted && deleted <= now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_feed_message_flushes_the_cache() {
    let Some(redis) = Namespace::shared() else {
        return;
    };
    let store = redis.fresh_store().await;
    let sessions = manager(store.clone());
    redis_support::wait_for_feed(&sessions, FeedState::Live, Duration::from_secs(5)).await;
    let jane = sessions.upsert_customer(customer("Jane")).await.unwrap();
    let session = sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    let token = session.token.expose_secret();
    authenticates(&sessions, token).await;

    // Removed behind the store's back (no announcement): the cache still serves it...
    let mut connection = store.connection();
    let key = format!(
        "{}s:{}",
        store.key_prefix(),
        sessions.hasher().hash(token).to_hex()
    );
    let _: () = connection.del(&key).await.unwrap();
    authenticates(&sessions, token).await;

    // ...until a message this build cannot read arrives: it flushes everything.
    let _: () = connection
        .publish(store.channel(), "v9:something-new")
        .await
        .unwrap();
    refused_within(&sessions, token, PROPAGATION, "an unknown message").await;
}

#[tokio::test]
async fn an_unreachable_server_fails_connect_quickly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let result = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_millis(300))
        .connect()
        .await;
    assert!(matches!(
        result,
        Err(StoreError::Timeout | StoreError::Backend(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_url_password_shows_nowhere() {
    let Some(redis) = Namespace::shared() else {
        return;
    };
    // The shared server has no such user: connecting fails, and says so without the password.
    let url = redis
        .url()
        .replacen("redis://", "redis://nobody:hunter2-password@", 1);
    let builder = RedisStore::builder(url.as_str()).connect_timeout(Duration::from_secs(1));
    assert!(!format!("{builder:?}").contains("hunter2"));
    let error = builder.connect().await.expect_err("no such user");
    assert!(
        !format!("{error} {error:?}").contains("hunter2"),
        "{error:?}"
    );

    let store = redis.fresh_store().await;
    assert!(!format!("{store:?}").contains(redis.url()));
}

/// Subscribers of `channel` on the server.
async fn subscribers(store: &RedisStore) -> i64 {
    let mut connection = store.connection();
    let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(store.channel())
        .query_async(&mut connection)
        .await
        .unwrap();
    counts[0].1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_manager_subscribes_once_and_its_feed_stops_with_it() {
    let Some(redis) = Namespace::shared() else {
        return;
    };
    let store = redis.fresh_store().await;
    assert_eq!(subscribers(&store).await, 0);
    let first = manager(store.clone());
    let second = manager(store.clone());
    for side in [&first, &second] {
        redis_support::wait_for_feed(side, FeedState::Live, Duration::from_secs(5)).await;
    }
    assert_eq!(subscribers(&store).await, 2, "one subscription per manager");

    // The feed task notices within a heartbeat that nobody listens any more.
    drop((first, second));
    let started = std::time::Instant::now();
    while subscribers(&store).await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the feed outlived its manager"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn building_outside_a_runtime_is_an_error_not_a_panic() {
    let Some(redis) = Namespace::shared() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime.block_on(redis.fresh_store());
    // `watch` spawns on the runtime the store was made on; the manager still refuses to
    // build where its own watchdog could not run.
    let built = std::thread::spawn(move || {
        SessionManager::builder(store)
            .secret(redis_support::SECRET)
            .build()
            .map(drop)
    })
    .join()
    .expect("no panic");
    assert!(matches!(built, Err(BuildError::NoRuntime)));
}
