//! Rotating the session key: a mixed fleet in neighbouring phases of a rotation from key A
//! to key B, on the memory store, on Redis and on PostgreSQL. Sessions made on either
//! instance work on both, revocations of either key's sessions hold on both, and once A
//! is dropped its sessions are refused while B's work. On the memory store: the cost of a
//! rotation (hits stay hits; an unknown token costs one lookup per key, once).

mod common;
mod postgres_common;
mod redis_support;

use std::future::Future;
use std::time::Duration;

use common::instrumented::Instrumented;
use tower_customer_session::model::CustomerData;
use tower_customer_session::{
    CreateSession, CredentialSource, CustomerStore, MemoryStore, SessionAdmin, SessionManager,
    SessionStore,
};

const KEY_A: &[u8] = b"rotation key A: thirty-two bytes!";
const KEY_B: &[u8] = b"rotation key B: thirty-two bytes!";
const KEY_C: &[u8] = b"rotation key C: thirty-two bytes!";

async fn accepts<S: SessionStore>(manager: &SessionManager<S>, token: &str, what: &str) {
    for _ in 0..2 {
        if let Err(rejection) = manager.authenticate(token, CredentialSource::Header).await {
            panic!("{what}: refused with {rejection:?}");
        }
    }
}

async fn refused_within<S: SessionStore>(
    manager: &SessionManager<S>,
    token: &str,
    within: Duration,
    what: &str,
) {
    let started = tokio::time::Instant::now();
    while manager
        .authenticate(token, CredentialSource::Header)
        .await
        .is_ok()
    {
        assert!(
            started.elapsed() < within,
            "{what}: still accepted after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One rotation from A to B on the backend `instance` opens (a new connection and feed for
/// each call). `propagation` bounds how soon a change on one instance holds on the other.
async fn rotation<S, F, Fut>(instance: F, propagation: Duration)
where
    S: SessionAdmin + CustomerStore,
    F: Fn(&'static [u8], Vec<&'static [u8]>) -> Fut,
    Fut: Future<Output = SessionManager<S>>,
{
    // Phases 1 and 2 side by side: A current and B accepted, next to B current and A
    // accepted.
    let a = instance(KEY_A, vec![KEY_B]).await;
    let b = instance(KEY_B, vec![KEY_A]).await;
    let jane = a
        .upsert_customer(CustomerData::new(chrono::Utc::now()))
        .await
        .unwrap()
        .id;
    let new = move |manager: &SessionManager<S>| {
        let manager = manager.clone();
        async move {
            let session = manager
                .create(jane, CreateSession::default())
                .await
                .unwrap();
            session.token.expose_secret().to_owned()
        }
    };

    let under_a = new(&a).await;
    let under_b = new(&b).await;
    for (token, what) in [(&under_a, "A's session"), (&under_b, "B's session")] {
        accepts(&a, token, &format!("{what} on the instance on A")).await;
        accepts(&b, token, &format!("{what} on the instance on B")).await;
    }

    // Each key's session revoked through the instance on the other key.
    assert!(b.revoke(&under_a).await.unwrap(), "found under A by B");
    refused_within(
        &b,
        &under_a,
        Duration::from_millis(1),
        "A's session, revoked on B",
    )
    .await;
    refused_within(&a, &under_a, propagation, "A's session, revoked on B, on A").await;
    assert!(a.revoke(&under_b).await.unwrap(), "found under B by A");
    refused_within(
        &a,
        &under_b,
        Duration::from_millis(1),
        "B's session, revoked on A",
    )
    .await;
    refused_within(&b, &under_b, propagation, "B's session, revoked on A, on B").await;

    // Revoked on the instance whose key it is under: the other instance has it cached
    // under its own key's hash, and the feed names the stored one.
    let third = new(&a).await;
    accepts(&b, &third, "A's session on B, cached").await;
    assert!(a.revoke(&third).await.unwrap());
    refused_within(&b, &third, propagation, "A's session, revoked on A, on B").await;

    // A handler revoking by `SessionInfo::token_hash` (the stored hash) works too.
    let another = new(&a).await;
    let (_, info) = b
        .authenticate(&another, CredentialSource::Header)
        .await
        .unwrap();
    assert!(b.revoke_hash(&info.token_hash).await.unwrap());
    refused_within(
        &b,
        &another,
        Duration::from_millis(1),
        "revoked by stored hash",
    )
    .await;
    refused_within(&a, &another, propagation, "revoked by stored hash, on A").await;

    // All of a customer's sessions, whatever key they are under.
    let (one, two) = (new(&a).await, new(&b).await);
    for token in [&one, &two] {
        accepts(&a, token, "before revoke_all").await;
        accepts(&b, token, "before revoke_all").await;
    }
    assert_eq!(b.revoke_all(jane).await.unwrap(), 2);
    for token in [&one, &two] {
        refused_within(&a, token, propagation, "after revoke_all, on A").await;
        refused_within(&b, token, propagation, "after revoke_all, on B").await;
    }

    // Phase 3: A dropped. A's sessions are refused, B's work.
    let (old, current) = (new(&a).await, new(&b).await);
    let dropped = instance(KEY_B, vec![]).await;
    refused_within(
        &dropped,
        &old,
        Duration::from_millis(1),
        "A's session after A is dropped",
    )
    .await;
    accepts(&dropped, &current, "B's session after A is dropped").await;
}

fn memory_instance(
    store: &MemoryStore,
) -> impl Fn(&'static [u8], Vec<&'static [u8]>) -> std::future::Ready<SessionManager<MemoryStore>> {
    let store = store.clone();
    move |current, accepted| {
        // No feed in one process: entries live a millisecond, so each instance asks the
        // shared store about as often as a fleet's feed would make it.
        std::future::ready(
            SessionManager::builder(store.clone())
                .secret(current)
                .accept_secrets(accepted)
                .cache_max_ttl(Duration::from_millis(1))
                .build()
                .unwrap(),
        )
    }
}

#[tokio::test]
async fn a_rotation_on_the_memory_store() {
    rotation(
        memory_instance(&MemoryStore::new()),
        Duration::from_millis(50),
    )
    .await;
}

/// An instance on a shared store with a feed, once its feed is live.
async fn live<S: SessionStore>(
    store: S,
    current: &'static [u8],
    accepted: Vec<&'static [u8]>,
) -> SessionManager<S> {
    let manager = SessionManager::builder(store)
        .secret(current)
        .accept_secrets(accepted)
        .build()
        .unwrap();
    redis_support::wait_for_feed(
        &manager,
        tower_customer_session::store::FeedState::Live,
        Duration::from_secs(5),
    )
    .await;
    manager
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_on_redis() {
    let Some(namespace) = redis_support::Namespace::shared() else {
        return;
    };
    let prefix = namespace.new_prefix();
    let namespace = &namespace;
    rotation(
        |current, accepted| {
            let prefix = prefix.clone();
            async move {
                let store = namespace.builder(&prefix).connect().await.expect("connect");
                live(store, current, accepted).await
            }
        },
        redis_support::PROPAGATION,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_on_postgres() {
    if !postgres_common::available().await {
        return;
    }
    let schemas = postgres_common::Schemas::default();
    let schema = schemas.fresh();
    postgres_common::store(&schema).await;
    let schema = &schema;
    rotation(
        |current, accepted| async move {
            let store = postgres_common::builder(schema)
                .connect(&postgres_common::database_url())
                .await
                .expect("connect");
            live(store, current, accepted).await
        },
        postgres_common::PROPAGATION,
    )
    .await;
    schemas.drop_all().await;
}

#[tokio::test]
async fn a_session_found_under_an_accepted_key_is_then_an_ordinary_hit() {
    let store = Instrumented::new(MemoryStore::new());
    let jane = store
        .memory()
        .insert_customer(CustomerData::new(chrono::Utc::now()));
    let old = SessionManager::builder(store.clone())
        .secret(KEY_A)
        .build()
        .unwrap();
    let token = old.create(jane.id, CreateSession::default()).await.unwrap();
    let token = token.token.expose_secret();
    let rotated = SessionManager::builder(store.clone())
        .secret(KEY_B)
        .accept_secrets([KEY_C, KEY_A])
        .build()
        .unwrap();
    let before = store.loads();
    rotated
        .authenticate(token, CredentialSource::Header)
        .await
        .unwrap();
    assert_eq!(store.loads() - before, 3, "under B, C, then A");
    for _ in 0..10 {
        rotated
            .authenticate(token, CredentialSource::Header)
            .await
            .unwrap();
    }
    assert_eq!(
        store.loads() - before,
        3,
        "then cached under B's hash: hits"
    );
}

#[tokio::test]
async fn an_unknown_token_costs_one_lookup_per_key_once() {
    let store = Instrumented::new(MemoryStore::new());
    store.count_per_hash(false);
    let sessions = SessionManager::builder(store.clone())
        .secret(KEY_B)
        .accept_secrets([KEY_A, KEY_C])
        .build()
        .unwrap();
    let flood: Vec<_> = (0..500).map(|_| common::unknown_token()).collect();
    for round in 0..3 {
        for token in &flood {
            assert!(
                sessions
                    .authenticate(token.expose_secret(), CredentialSource::Header)
                    .await
                    .is_err()
            );
        }
        assert_eq!(
            store.loads(),
            flood.len() * 3,
            "round {round}: one lookup per key per token, the first time only"
        );
    }
}
