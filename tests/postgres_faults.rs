//! The database unreachable, then back, without restarting the instances: through a TCP
//! proxy each test controls (the shared server is never touched), cut (connections closed,
//! new ones refused) or hung (connections open, nothing forwarded). Requests get `503` with
//! `Retry-After` within the store timeout, never `401` and never a pass-through; the feed's
//! loss is noticed within its heartbeat bound; once the proxy forwards again, the pool and
//! the feed recover and a revocation on one instance is refused on the other within 100 ms.

mod common;
mod postgres_common;

use std::time::Duration;

use common::{Recorder, bearer, recording_service, send};
use http::StatusCode;
use postgres_common::proxy::{At, Mode, Proxy, Scope, upstream_of};
use postgres_common::{PROPAGATION, Schemas, customer, database_url, wait_for};
use tokio::time::Instant;
use tower::Layer;
use tower_customer_session::store::FeedState;
use tower_customer_session::store::postgres::{PostgresStore, PostgresStoreBuilder};
use tower_customer_session::token::TokenHasher;
use tower_customer_session::{
    CreateSession, CredentialSource, CustomerSessionLayer, Rejection, SessionAdmin, SessionKey,
    SessionManager, SessionStore, StoreError,
};

const STORE_TIMEOUT: Duration = Duration::from_millis(500);
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(200);
/// Scheduling slack on a busy two-core machine.
const SLACK: Duration = Duration::from_millis(250);

type Manager = SessionManager<PostgresStore>;

/// Two instances: `b` reaches the database only through `proxy`, and so does `a` unless
/// the test needs it spared.
struct Fleet {
    schemas: Schemas,
    proxy: Proxy,
    a: Manager,
    b: Manager,
}

/// Short deadlines, and fewer slots than the requests a test makes while the database
/// hangs: a connection abandoned mid-statement must not keep its slot.
fn faulty(builder: PostgresStoreBuilder) -> PostgresStoreBuilder {
    builder
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .statement_timeout(Duration::from_millis(400))
        .heartbeat_interval(HEARTBEAT_INTERVAL)
        .heartbeat_timeout(HEARTBEAT_TIMEOUT)
        .max_reconnect_delay(Duration::from_millis(200))
}

impl Fleet {
    /// Both instances through the proxy, with [`faulty`] settings.
    async fn start() -> Option<Self> {
        Self::with(true, faulty).await
    }

    /// `a` through the proxy or not; `b` through it, with `b_settings` on the store's
    /// defaults.
    async fn with(
        a_through_proxy: bool,
        b_settings: impl FnOnce(PostgresStoreBuilder) -> PostgresStoreBuilder,
    ) -> Option<Self> {
        if !postgres_common::available().await {
            return None;
        }
        let schemas = Schemas::default();
        let schema = schemas.fresh();
        postgres_common::store(&schema).await;
        let proxy = Proxy::start(upstream_of(&database_url()).await).await;
        let url = proxy.url(&database_url());
        let manager = |store| {
            SessionManager::builder(store)
                .secret(postgres_common::SECRET)
                .store_timeout(STORE_TIMEOUT)
                .build()
                .unwrap()
        };
        let a = if a_through_proxy {
            faulty(PostgresStore::builder().schema(&schema))
                .connect(&url)
                .await
                .expect("connect through the proxy")
        } else {
            postgres_common::store(&schema).await
        };
        let b = b_settings(PostgresStore::builder().schema(&schema))
            .connect(&url)
            .await
            .expect("connect through the proxy");
        let fleet = Self {
            a: manager(a),
            b: manager(b),
            schemas,
            proxy,
        };
        fleet.feeds(FeedState::Live, Duration::from_secs(5)).await;
        Some(fleet)
    }

    async fn feeds(&self, state: FeedState, within: Duration) {
        for side in [&self.a, &self.b] {
            wait_for(|| side.feed_state() == state, within, state.as_str()).await;
        }
    }

    /// A session of a new customer, created on `a`.
    async fn new_session(&self) -> String {
        let jane = self.a.upsert_customer(customer("Jane")).await.unwrap();
        let session = self
            .a
            .create(jane.id, CreateSession::default())
            .await
            .unwrap();
        session.token.expose_secret().to_owned()
    }

    /// A session of a new customer, created on `a` and cached on `b`.
    async fn session(&self) -> String {
        let token = self.new_session().await;
        for _ in 0..2 {
            self.b
                .authenticate(&token, CredentialSource::Header)
                .await
                .unwrap();
        }
        token
    }

    /// `b` answers a request with `token`, and whether its inner service was called.
    async fn request_on_b(&self, token: &str) -> (common::Reply, bool) {
        let recorder = Recorder::default();
        let service =
            CustomerSessionLayer::new(self.b.clone()).layer(recording_service(recorder.clone()));
        let reply = send(service, bearer(token)).await;
        (reply, recorder.calls() > 0)
    }

    async fn refused_on_b_within_100ms(&self, token: &str) {
        let deadline = Instant::now() + PROPAGATION;
        while self
            .b
            .authenticate(token, CredentialSource::Header)
            .await
            .is_ok()
        {
            assert!(Instant::now() < deadline, "revocation not seen on b");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The database back: both feeds live again, requests served, and invalidation works.
    async fn recovers(&self) {
        self.proxy.set(Mode::Open);
        self.feeds(FeedState::Live, Duration::from_secs(5)).await;
        let token = self.session().await;
        let (reply, passed) = self.request_on_b(&token).await;
        assert_eq!(reply.status, StatusCode::OK, "served again");
        assert!(passed);
        assert!(self.a.revoke(&token).await.unwrap());
        self.refused_on_b_within_100ms(&token).await;
    }

    async fn stop(self) {
        let Self {
            schemas,
            a,
            b,
            proxy,
            ..
        } = self;
        drop((a, b, proxy));
        schemas.drop_all().await;
    }
}

/// `503`, `Retry-After`, the typed rejection, and the request never reached the service.
fn assert_unavailable(reply: &common::Reply, passed: bool) {
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert!(reply.header("retry-after").is_some(), "Retry-After");
    assert!(
        matches!(reply.rejection, Some(Rejection::StoreUnavailable(_))),
        "{:?}",
        reply.rejection
    );
    assert!(!passed, "never a pass-through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_database_answers_503_and_everything_recovers_without_a_restart() {
    let Some(fleet) = Fleet::start().await else {
        return;
    };
    let token = fleet.session().await;
    let (reply, _) = fleet.request_on_b(&token).await;
    assert_eq!(reply.status, StatusCode::OK);

    fleet.proxy.set(Mode::Cut);
    fleet
        .feeds(
            FeedState::Lost,
            HEARTBEAT_INTERVAL + HEARTBEAT_TIMEOUT + SLACK,
        )
        .await;
    // The session was cached on b, but a lost feed means the cache cannot be trusted.
    for _ in 0..3 {
        let started = Instant::now();
        let (reply, passed) = fleet.request_on_b(&token).await;
        assert_unavailable(&reply, passed);
        assert!(
            started.elapsed() <= STORE_TIMEOUT + SLACK,
            "answered in time"
        );
    }
    // Admin calls fail too, and say so.
    assert!(fleet.a.revoke(&token).await.is_err());

    fleet.recovers().await;
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_database_answers_503_within_the_deadline_and_the_feed_notices() {
    let Some(fleet) = Fleet::start().await else {
        return;
    };
    let token = fleet.session().await;

    fleet.proxy.set(Mode::Hung);
    let hung = Instant::now();
    fleet
        .feeds(
            FeedState::Lost,
            HEARTBEAT_INTERVAL + HEARTBEAT_TIMEOUT + SLACK,
        )
        .await;
    eprintln!("feed loss noticed after {:?}", hung.elapsed());
    for _ in 0..3 {
        let started = Instant::now();
        let (reply, passed) = fleet.request_on_b(&token).await;
        assert_unavailable(&reply, passed);
        assert!(
            started.elapsed() <= STORE_TIMEOUT + SLACK,
            "503 within the store timeout, took {:?}",
            started.elapsed()
        );
    }

    fleet.recovers().await;
    fleet.stop().await;
}

/// A store with a one-connection pool, reached only through a proxy, on a migrated schema
/// of its own, with no session manager (so no feed renews anything).
async fn lone_store(
    configure: impl FnOnce(PostgresStoreBuilder) -> PostgresStoreBuilder,
) -> (Schemas, Proxy, PostgresStore) {
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    postgres_common::store(&schema).await;
    let proxy = Proxy::start(upstream_of(&database_url()).await).await;
    let store = configure(postgres_common::builder(&schema).max_connections(1))
        .connect(&proxy.url(&database_url()))
        .await
        .unwrap();
    (schemas, proxy, store)
}

/// A well-formed token no store knows, and its hash.
fn lone_token() -> (&'static str, tower_customer_session::token::TokenHash) {
    let token = "polar_cst_not-a-session";
    (token, TokenHasher::new(postgres_common::SECRET).hash(token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_abandoned_on_a_hung_connection_does_not_keep_its_pool_slot() {
    if !postgres_common::available().await {
        return;
    }
    // No session manager, so no feed: nothing renews the pool; its one slot must come back
    // by itself.
    let (schemas, proxy, store) =
        lone_store(|builder| builder.acquire_timeout(Duration::from_millis(200))).await;
    let (token, hash) = lone_token();
    let load = || store.load(SessionKey::new(&hash, token));
    assert!(load().await.unwrap().is_none(), "answers through the proxy");
    // Let the release of that connection finish before the network stalls.
    tokio::time::sleep(Duration::from_millis(100)).await;

    proxy.set(Mode::Hung);
    // The caller gives up (as the session manager does at its store timeout).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), load())
            .await
            .is_err()
    );
    proxy.set(Mode::Open);
    let answered = tokio::time::timeout(Duration::from_secs(2), load()).await;
    assert!(
        matches!(answered, Ok(Ok(None))),
        "the abandoned connection was closed and its slot reused: {answered:?}"
    );
    drop((store, proxy));
    schemas.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_unanswered_past_its_deadline_times_out_and_its_connection_is_replaced() {
    if !postgres_common::available().await {
        return;
    }
    // No session manager, so no caller's deadline: the store's own must hold.
    let (schemas, proxy, store) =
        lone_store(|builder| builder.statement_timeout(Duration::from_millis(300))).await;
    let (token, hash) = lone_token();
    let load = || store.load(SessionKey::new(&hash, token));
    assert!(load().await.unwrap().is_none(), "answers through the proxy");
    tokio::time::sleep(Duration::from_millis(100)).await;

    proxy.set(Mode::Hung);
    let started = Instant::now();
    let answered = tokio::time::timeout(Duration::from_secs(2), load()).await;
    assert!(
        matches!(answered, Ok(Err(StoreError::Timeout))),
        "{answered:?}"
    );
    // `statement_timeout` + 250 ms.
    assert!(started.elapsed() <= Duration::from_millis(550) + SLACK);
    proxy.set(Mode::Open);
    let answered = tokio::time::timeout(Duration::from_secs(2), load()).await;
    assert!(matches!(answered, Ok(Ok(None))), "{answered:?}");
    drop((store, proxy));
    schemas.drop_all().await;
}

/// The documented silence bound with the store's default settings:
/// `heartbeat_interval + heartbeat_timeout`.
const DEFAULT_SILENCE_BOUND: Duration = Duration::from_millis(100 + 200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_revoked_elsewhere_is_refused_within_the_silence_bound_when_the_feed_dies_silently()
 {
    // `b` with the store's default feed settings; `a` spared by the proxy.
    let Some(fleet) = Fleet::with(false, |b| b).await else {
        return;
    };
    let token = fleet.session().await;

    // `b`'s feed connection goes silent, both ways, without closing: the revocation's
    // message never reaches `b`, and neither does the answer to its next heartbeat.
    fleet.proxy.hang(Scope::Feed, At::Traffic);
    let b = fleet.b.clone();
    let client_token = token.clone();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let client = tokio::spawn(async move {
        // When each request that `b` accepted had started.
        let mut accepted = Vec::new();
        while !*stopped.borrow_and_update() {
            let started = Instant::now();
            if b.authenticate(&client_token, CredentialSource::Header)
                .await
                .is_ok()
            {
                accepted.push(started);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        accepted
    });
    // Wherever the heartbeat is in its cycle when the connection stalls.
    tokio::time::sleep(Duration::from_millis(u64::from(
        getrandom::u32().unwrap() % 100,
    )))
    .await;
    assert!(fleet.a.revoke(&token).await.unwrap(), "revoked on a");
    let returned = Instant::now();
    tokio::time::sleep(DEFAULT_SILENCE_BOUND + Duration::from_secs(1)).await;
    stop.send_replace(true);
    let accepted = client.await.unwrap();

    let last = accepted
        .last()
        .expect("b served the session before the revocation");
    let after = last.saturating_duration_since(returned);
    eprintln!(
        "last accept on b started {after:?} after the revocation returned ({} accepted after it)",
        accepted.iter().filter(|at| **at > returned).count()
    );
    assert!(
        after <= DEFAULT_SILENCE_BOUND + Duration::from_millis(100),
        "b accepted the revoked session {after:?} after the revocation returned"
    );
    assert_eq!(
        fleet.b.feed_state(),
        FeedState::Lost,
        "the silence was noticed"
    );
    assert!(
        fleet
            .b
            .authenticate(&token, CredentialSource::Header)
            .await
            .is_err()
    );
    fleet.proxy.set(Mode::Open);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_turned_black_holes_are_replaced_while_the_feed_stays_up() {
    // One pool slot on `b`: a single lost connection would stop it for good.
    let Some(fleet) = Fleet::with(false, faulty).await else {
        return;
    };
    // A session `b` has never seen, so it asks the database.
    let miss_on_b = || async {
        let token = fleet.new_session().await;
        fleet.request_on_b(&token).await
    };
    let (reply, _) = miss_on_b().await;
    assert_eq!(reply.status, StatusCode::OK);

    // Every connection of `b`'s pool stalls, at its next byte or when the pool tests it on
    // its return (no caller waits then); the feed's connection keeps working. Stalled
    // connections stay black holes for good; new ones flow once the hang is over.
    for at in [At::Traffic, At::Ping] {
        fleet.proxy.hang(Scope::Pool, at);
        let hang = Instant::now();
        let mut refused = 0;
        while hang.elapsed() < Duration::from_secs(1) {
            let (reply, passed) = miss_on_b().await;
            if reply.status != StatusCode::OK {
                assert_unavailable(&reply, passed);
                refused += 1;
            }
        }
        assert!(refused > 0, "{at:?}: the hang was felt");
        assert_eq!(fleet.b.feed_state(), FeedState::Live, "{at:?}: feed spared");

        fleet.proxy.set(Mode::Open);
        let open = Instant::now();
        loop {
            let (reply, passed) = miss_on_b().await;
            if reply.status == StatusCode::OK {
                assert!(passed);
                break;
            }
            assert_unavailable(&reply, passed);
            assert!(
                open.elapsed() < Duration::from_secs(3),
                "{at:?}: still {} {:?} after the hang",
                reply.status,
                open.elapsed()
            );
        }
        eprintln!("{at:?}: served again {:?} after the hang", open.elapsed());
        for _ in 0..10 {
            let (reply, passed) = miss_on_b().await;
            assert_eq!(reply.status, StatusCode::OK, "{at:?}: served steadily");
            assert!(passed);
        }
        assert_eq!(
            fleet.b.feed_state(),
            FeedState::Live,
            "{at:?}: no feed loss"
        );
    }
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_whose_commit_went_unseen_is_retried_and_reports_what_it_did() {
    if !postgres_common::available().await {
        return;
    }
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    postgres_common::store(&schema).await;
    let proxy = Proxy::start(upstream_of(&database_url()).await).await;
    let store = postgres_common::builder(&schema)
        .connect(&proxy.url(&database_url()))
        .await
        .unwrap();
    let sessions = SessionManager::builder(store.clone())
        .secret(postgres_common::SECRET)
        .build()
        .unwrap();
    let jane = sessions.upsert_customer(customer("Jane")).await.unwrap();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let session = sessions
            .create(jane.id, CreateSession::default())
            .await
            .unwrap();
        tokens.push(session.token.expose_secret().to_owned());
    }
    let hasher = TokenHasher::new(postgres_common::SECRET);

    // The revocation reaches the server and commits; its answer is lost with the
    // connection. The store runs it again on another connection, which finds the session
    // already revoked: by this very call.
    let hash = hasher.hash(&tokens[0]);
    proxy.cut_after(hash.to_hex());
    assert!(
        store.revoke(&hash).await.unwrap(),
        "the revocation that committed unseen is reported as done"
    );
    assert!(
        store
            .load(SessionKey::new(&hash, &tokens[0]))
            .await
            .unwrap()
            .is_none()
    );
    // A separate, later call did nothing.
    assert!(!store.revoke(&hash).await.unwrap(), "already revoked");

    // The same for every session of a customer: the two left.
    proxy.cut_after(jane.id.as_bytes());
    assert_eq!(store.revoke_all(jane.id).await.unwrap(), 2);
    assert_eq!(
        store.revoke_all(jane.id).await.unwrap(),
        0,
        "already revoked"
    );
    for token in &tokens {
        let hash = hasher.hash(token);
        assert!(
            store
                .load(SessionKey::new(&hash, token))
                .await
                .unwrap()
                .is_none()
        );
    }
    drop((sessions, store, proxy));
    schemas.drop_all().await;
}
