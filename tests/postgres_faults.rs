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
use postgres_common::proxy::{Mode, Proxy, upstream_of};
use postgres_common::{PROPAGATION, Schemas, customer, database_url, wait_for};
use tokio::time::Instant;
use tower::Layer;
use tower_customer_session::store::FeedState;
use tower_customer_session::store::postgres::PostgresStore;
use tower_customer_session::token::TokenHasher;
use tower_customer_session::{
    CreateSession, CredentialSource, CustomerSessionLayer, Rejection, SessionKey, SessionManager,
    SessionStore,
};

const STORE_TIMEOUT: Duration = Duration::from_millis(500);
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(200);
/// Scheduling slack on a busy two-core machine.
const SLACK: Duration = Duration::from_millis(250);

type Manager = SessionManager<PostgresStore>;

/// Two instances reaching the database only through `proxy`.
struct Fleet {
    schemas: Schemas,
    proxy: Proxy,
    a: Manager,
    b: Manager,
}

impl Fleet {
    async fn start() -> Option<Self> {
        if !postgres_common::available().await {
            return None;
        }
        let schemas = Schemas::default();
        let schema = schemas.fresh();
        postgres_common::store(&schema).await;
        let proxy = Proxy::start(upstream_of(&database_url()).await).await;
        let url = proxy.url(&database_url());
        let instance = || async {
            let store = postgres_common::builder(&schema)
                // Fewer slots than the requests a test makes while the database hangs: a
                // connection abandoned mid-statement must not keep its slot.
                .max_connections(1)
                .acquire_timeout(Duration::from_millis(200))
                .statement_timeout(Duration::from_millis(400))
                .heartbeat_interval(HEARTBEAT_INTERVAL)
                .heartbeat_timeout(HEARTBEAT_TIMEOUT)
                .max_reconnect_delay(Duration::from_millis(200))
                .connect(&url)
                .await
                .expect("connect through the proxy");
            SessionManager::builder(store)
                .secret(postgres_common::SECRET)
                .store_timeout(STORE_TIMEOUT)
                .build()
                .unwrap()
        };
        let fleet = Self {
            a: instance().await,
            b: instance().await,
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

    /// A session of a new customer, created on `a` and cached on `b`.
    async fn session(&self) -> String {
        let jane = self.a.upsert_customer(customer("Jane")).await.unwrap();
        let session = self
            .a
            .create(jane.id, CreateSession::default())
            .await
            .unwrap();
        let token = session.token.expose_secret().to_owned();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_abandoned_on_a_hung_connection_does_not_keep_its_pool_slot() {
    if !postgres_common::available().await {
        return;
    }
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    postgres_common::store(&schema).await;
    let proxy = Proxy::start(upstream_of(&database_url()).await).await;
    // No session manager, so no feed: nothing renews the pool; its one slot must come back
    // by itself.
    let store = postgres_common::builder(&schema)
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect(&proxy.url(&database_url()))
        .await
        .unwrap();
    let token = "polar_cst_not-a-session";
    let hash = TokenHasher::new(postgres_common::SECRET).hash(token);
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
