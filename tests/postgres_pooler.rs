//! The PostgreSQL store behind a real PgBouncer that each test starts on a free port, in
//! front of the test server, with fewer server connections than clients: in transaction
//! mode, queries go through PgBouncer and the feed listens on a direct connection; a feed
//! that listens through the pooler never comes up, says why, and the instance stays correct;
//! in session mode the store works unchanged. Needs PostgreSQL at 127.0.0.1:5432 (or
//! `TEST_DATABASE_URL`) and `pgbouncer`; skipped loudly without them, failed under `CI=true`.

// Only its writer is used here.
#[allow(dead_code)]
#[path = "common/log_capture.rs"]
mod log_capture;
mod postgres_common;

use std::sync::OnceLock;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::time::Duration;

use log_capture::LogCapture;
use postgres_common::servers::PgBouncer;
use postgres_common::{Schemas, customer, database_url, manager, plain_connection, wait_for};
use tower_customer_session::store::postgres::{PostgresStore, PostgresStoreBuilder};
use tower_customer_session::store::{FeedState, SessionStore};
use tower_customer_session::testing::{self, refused_within};
use tower_customer_session::token::TokenHasher;
use tower_customer_session::{
    CreateSession, CredentialSource, CustomerStore, SessionKey, SessionManager,
};

type Manager = SessionManager<PostgresStore>;

/// PgBouncer's server connections in transaction mode: far fewer than its clients, so that
/// clients share them as they do in production.
const SHARED: u32 = 3;

/// Every warning of this test binary, the feed tasks' included (they run on the runtime's
/// threads, outside any test's own subscriber).
fn warnings() -> &'static LogCapture {
    static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = LogCapture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(capture.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        capture
    })
}

/// The settings a deployment behind a transaction pooler uses: statements through
/// `bouncer`, the feed and migrations on a direct connection.
fn behind(bouncer: &PgBouncer, schema: &str) -> (PostgresStoreBuilder, String) {
    let builder = postgres_common::builder(schema)
        .transaction_pooler(true)
        .listen_url(database_url());
    (builder, bouncer.url())
}

async fn live(manager: &Manager) {
    wait_for(
        || manager.feed_state() == FeedState::Live,
        Duration::from_secs(5),
        "feed live",
    )
    .await;
}

/// A new session of a new customer, created on `a` and cached on `b`.
async fn cached_session(a: &Manager, b: &Manager) -> String {
    let jane = a.upsert_customer(customer("Jane")).await.unwrap();
    let session = a.create(jane.id, CreateSession::default()).await.unwrap();
    let token = session.token.expose_secret().to_owned();
    for _ in 0..2 {
        b.authenticate(&token, CredentialSource::Header)
            .await
            .expect("the session authenticates");
    }
    token
}

/// Soft-delete the session of `token` with plain SQL, as another program would.
async fn revoke_with_sql(schema: &str, token: &str) {
    let hex = TokenHasher::new(postgres_common::SECRET)
        .hash(token)
        .to_hex();
    let mut sql = plain_connection().await;
    sqlx::raw_sql(&format!(
        "UPDATE \"{schema}\".customer_sessions SET deleted_at = now() WHERE token = '{hex}'"
    ))
    .execute(&mut sql)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_pgbouncer_in_transaction_mode_queries_go_through_it_and_the_feed_goes_direct() {
    if !postgres_common::available().await {
        return;
    }
    let Some(bouncer) = PgBouncer::start("transaction", SHARED).await else {
        return;
    };
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let (builder, url) = behind(&bouncer, &schema);
        let store = builder
            .connect(&url)
            .await
            .expect("connect through PgBouncer");
        store.migrate().await.expect("migrate");
        instances.push(manager(store));
    }
    let (a, b) = (&instances[0], &instances[1]);
    live(a).await;
    live(b).await;

    // Many more clients than PgBouncer has server connections, each statement prepared:
    // none may find another client's prepared statement, or miss its own.
    let jane = a.upsert_customer(customer("Jane")).await.unwrap().id;
    let burst: Vec<_> = (0..40)
        .map(|i| {
            let (creator, reader) = if i % 2 == 0 { (a, b) } else { (b, a) };
            let (creator, reader) = (creator.clone(), reader.clone());
            tokio::spawn(async move {
                let session = creator
                    .create(jane, CreateSession::default())
                    .await
                    .map_err(|e| format!("create: {e}"))?;
                reader
                    .authenticate(session.token.expose_secret(), CredentialSource::Header)
                    .await
                    .map_err(|e| format!("authenticate: {e:?}"))?;
                Ok::<_, String>(())
            })
        })
        .collect();
    for task in burst {
        task.await
            .unwrap()
            .expect("every statement through PgBouncer");
    }

    // A revocation with plain SQL is refused on both instances within 100 ms.
    let token = cached_session(a, b).await;
    a.authenticate(&token, CredentialSource::Header)
        .await
        .unwrap();
    revoke_with_sql(&schema, &token).await;
    refused_within(a, &token, "a plain-SQL revocation").await;
    refused_within(b, &token, "a plain-SQL revocation").await;
    // And one through an instance, on the other.
    let token = cached_session(a, b).await;
    a.revoke(&token).await.unwrap();
    refused_within(b, &token, "a revocation through the pooler").await;

    // The statements did go through PgBouncer, and the feeds did not: without it, a load
    // fails while both feeds stay live.
    drop(bouncer);
    let hash = TokenHasher::new(postgres_common::SECRET).hash("polar_cst_x");
    let load = a.store().load(SessionKey::new(&hash, "polar_cst_x")).await;
    assert!(load.is_err(), "a load without PgBouncer: {load:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(a.feed_state(), FeedState::Live);
    assert_eq!(b.feed_state(), FeedState::Live);

    drop(instances);
    schemas.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_passes_behind_pgbouncer_in_transaction_mode() {
    if !postgres_common::available().await {
        return;
    }
    let Some(bouncer) = PgBouncer::start("transaction", SHARED).await else {
        return;
    };
    let schemas = Schemas::default();
    testing::run(|| async {
        let (builder, url) = behind(&bouncer, &schemas.fresh());
        let store = builder.connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    })
    .await;
    schemas.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_listening_through_a_transaction_pooler_never_comes_up_and_says_why() {
    if !postgres_common::available().await {
        return;
    }
    let warnings = warnings();
    let Some(bouncer) = PgBouncer::start("transaction", SHARED).await else {
        return;
    };
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    // Everything through PgBouncer, the feed included: no direct connection was given.
    // Two instances start, and both migrate through it too.
    let mut stores = Vec::new();
    for _ in 0..2 {
        let store = postgres_common::builder(&schema)
            .transaction_pooler(true)
            .connect(&bouncer.url())
            .await
            .expect("connect through PgBouncer");
        store.migrate().await.expect("migrate through PgBouncer");
        stores.push(store);
    }
    let sessions = manager(stores.pop().unwrap());
    let other = manager(postgres_common::store(&schema).await);
    live(&other).await;

    // Meanwhile the default policy asks the database on every request: a session revoked
    // with plain SQL is refused at once.
    let token = cached_session(&other, &sessions).await;
    revoke_with_sql(&schema, &token).await;
    assert!(
        sessions
            .authenticate(&token, CredentialSource::Header)
            .await
            .is_err(),
        "a revoked session accepted while the feed is down"
    );

    // Several subscriptions are tried (the probe waits 500 ms each): none comes up.
    let watched = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < watched {
        assert_ne!(sessions.feed_state(), FeedState::Live);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let logs = warnings.text();
    assert!(
        logs.contains("LISTEN cannot work through one")
            && logs.contains("a transaction-pooling proxy")
            && logs.contains("listen_url"),
        "the warning says why: {logs}"
    );

    drop((sessions, stores, other, bouncer));
    schemas.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_pgbouncer_in_session_mode_the_store_works_unchanged() {
    if !postgres_common::available().await {
        return;
    }
    let Some(bouncer) = PgBouncer::start("session", 20).await else {
        return;
    };
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store = postgres_common::builder(&schema)
            .connect(&bouncer.url())
            .await
            .expect("connect through PgBouncer");
        store.migrate().await.expect("migrate");
        instances.push(manager(store));
    }
    let (a, b) = (&instances[0], &instances[1]);
    live(a).await;
    live(b).await;
    let token = cached_session(a, b).await;
    revoke_with_sql(&schema, &token).await;
    refused_within(a, &token, "a plain-SQL revocation").await;
    refused_within(b, &token, "a plain-SQL revocation").await;

    drop(instances);
    schemas.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_not_told_of_a_transaction_pooler_says_what_is_in_its_way() {
    if !postgres_common::available().await {
        return;
    }
    let warnings = warnings();
    let Some(bouncer) = PgBouncer::start("transaction", SHARED).await else {
        return;
    };
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    postgres_common::store(&schema).await;
    // Two instances through PgBouncer, opened as if it were the server.
    let mut stores = Vec::new();
    for _ in 0..2 {
        let store = postgres_common::builder(&schema)
            .connect(&bouncer.url())
            .await
            .expect("connect through PgBouncer");
        stores.push(store);
    }
    // Their named statements meet on the server connections they share.
    let mut failed = 0;
    for round in 0..20 {
        let store = &stores[round % 2];
        if store.upsert_customer(customer("Jane")).await.is_err() {
            failed += 1;
        }
    }
    assert!(failed > 0, "no statement failed through the pooler");
    let logs = warnings.text();
    assert!(
        logs.contains("the database URL leads to a transaction-pooling proxy")
            && logs.contains("transaction_pooler(true)"),
        "the warning says why: {logs}"
    );
    drop((stores, bouncer));
    schemas.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_statement_behind_a_transaction_pooler_frees_its_server_connection_at_once() {
    if !postgres_common::available().await {
        return;
    }
    // One server connection for every client: one left in a transaction blocks the rest.
    let Some(bouncer) = PgBouncer::start("transaction", 1).await else {
        return;
    };
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let (builder, url) = behind(&bouncer, &schema);
    let store = builder.connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");

    // Two customers with one external id: the database refuses the second.
    let mut first = customer("Jane");
    first.make_mut().external_id = Some("ext_1".to_owned());
    let mut second = customer("John");
    second.make_mut().external_id = Some("ext_1".to_owned());
    store.upsert_customer(first).await.unwrap();
    let refused = store.upsert_customer(second).await;
    assert!(refused.is_err(), "{refused:?}");

    // Another client of the same PgBouncer gets the server connection at once.
    let options: PgConnectOptions = url.parse().unwrap();
    let mut other = PgConnection::connect_with(&options.extra_float_digits(None))
        .await
        .unwrap();
    let answered = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::raw_sql("SELECT 1").execute(&mut other),
    )
    .await;
    assert!(
        matches!(answered, Ok(Ok(_))),
        "the failed statement's transaction still holds the only server connection"
    );
    drop((other, store, bouncer));
    schemas.drop_all().await;
}
