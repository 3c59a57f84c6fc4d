//! The PostgreSQL store on a real server over TCP: the store test kit, the migrations, and
//! Polar's customer shapes through the JSON columns. Each test works in schemas of its own,
//! dropped at the end. Needs PostgreSQL at 127.0.0.1:5432 (or `TEST_DATABASE_URL`); skipped
//! loudly without one, failed under `CI=true`.

#[path = "common/log_capture.rs"]
mod log_capture;
mod postgres_common;

use std::sync::Arc;

use log_capture::LogCapture;
use postgres_common::proxy::{Mode, Proxy, upstream_of};
use postgres_common::{Schemas, database_url, plain_connection, store};
use sqlx::Row;
use sqlx::postgres::PgConnectOptions;
use tower_customer_session::store::postgres::{PostgresError, PostgresStore};
use tower_customer_session::store::{CustomerRef, SessionRecord};
use tower_customer_session::testing::{Backend, Kit, Outage};
use tower_customer_session::token::{TokenFormat, TokenHasher, TokenKind};
use tower_customer_session::{
    CreateSession, CredentialSource, Customer, CustomerStore, SessionKey, SessionManager,
    SessionStore,
};
use tracing::instrument::WithSubscriber;

const CUSTOMER: &str = include_str!("fixtures/polar/customer.json");
const TEAM: &str = include_str!("fixtures/polar/customer_team.json");

/// A fresh schema, reached through a proxy the kit can cut, under an application name of
/// its own (by which the kit counts the feed's connections).
struct ThroughProxy {
    store: PostgresStore,
    proxy: Arc<Proxy>,
}

impl ThroughProxy {
    async fn new(schema: &str) -> Self {
        let url = database_url();
        let proxy = Proxy::start(upstream_of(&url).await).await;
        let options: PgConnectOptions = proxy.url(&url).parse().expect("a URL");
        let store = postgres_common::builder(schema)
            .connect_with(options.application_name(schema))
            .await
            .expect("connect through the proxy");
        store.migrate().await.expect("migrate");
        Self {
            store,
            proxy: Arc::new(proxy),
        }
    }
}

impl Backend for ThroughProxy {
    type Store = PostgresStore;

    fn store(&self) -> PostgresStore {
        self.store.clone()
    }

    async fn peer(&self) -> Option<PostgresStore> {
        self.store.peer().await
    }

    async fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.store.now().await
    }

    async fn outage(&self) -> Option<Outage> {
        self.proxy.set(Mode::Cut);
        let proxy = self.proxy.clone();
        Some(Outage::new(move || proxy.set(Mode::Open)))
    }

    async fn dump(&self) -> Option<String> {
        self.store.dump().await
    }

    async fn feed_subscriptions(&self) -> Option<usize> {
        self.store.feed_subscriptions().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_passes_on_postgres() {
    if !postgres_common::available().await {
        return;
    }
    let schemas = Schemas::default();
    let report = Kit::new(|| ThroughProxy::new_in(&schemas)).run().await;
    schemas.drop_all().await;
    report.assert_passed();
    // Expiry is judged by the database's clock, which the kit can read but not set.
    let skipped: Vec<&str> = report.skipped().collect();
    assert_eq!(skipped, ["time.expires_at_itself_is_expired"], "{report}");
}

impl ThroughProxy {
    async fn new_in(schemas: &Schemas) -> Self {
        Self::new(&schemas.fresh()).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_and_safe_when_instances_start_together() {
    if !postgres_common::available().await {
        return;
    }
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(
            postgres_common::builder(&schema)
                .connect(&database_url())
                .await
                .unwrap(),
        );
    }
    // Four instances at once on a database without the schema: one creates it, the others
    // queue on the advisory lock and find the work done.
    let running: Vec<_> = stores
        .iter()
        .cloned()
        .map(|store| tokio::spawn(async move { store.migrate().await }))
        .collect();
    for migration in running {
        migration
            .await
            .unwrap()
            .expect("every concurrent migrate succeeds");
    }
    stores[0].migrate().await.expect("and again");

    let mut sql = plain_connection().await;
    let versions: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM \"{schema}\".customer_session_migrations ORDER BY version"
    ))
    .fetch_all(&mut sql)
    .await
    .unwrap();
    assert_eq!(versions, [1, 2, 3, 4], "each migration recorded once");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
    )
    .bind(&schema)
    .fetch_all(&mut sql)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "customer_session_migrations",
            "customer_sessions",
            "customers"
        ]
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 ORDER BY 1",
    )
    .bind(&schema)
    .fetch_all(&mut sql)
    .await
    .unwrap();
    for expected in [
        "customer_sessions_customer_id_idx",
        "customer_sessions_expires_at_idx",
        "customer_sessions_token_key",
        "customers_external_id_live_key",
    ] {
        assert!(indexes.iter().any(|i| i == expected), "index {expected}");
    }
    schemas.drop_all().await;
}

#[tokio::test]
async fn a_migration_changed_after_it_was_applied_is_refused() {
    if !postgres_common::available().await {
        return;
    }
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let store = store(&schema).await;
    sqlx::query(&format!(
        "UPDATE \"{schema}\".customer_session_migrations SET checksum = '\\x00' WHERE version = 2"
    ))
    .execute(&store.pool())
    .await
    .unwrap();
    match store.migrate().await {
        Err(PostgresError::MigrationChanged { version: 2 }) => {}
        other => panic!("expected MigrationChanged for version 2, got {other:?}"),
    }
    schemas.drop_all().await;
}

#[tokio::test]
async fn schema_names_are_validated_before_any_sql() {
    for bad in ["Public", "a\"b", "x; DROP SCHEMA public", "pg_temp", ""] {
        // No server needed: the name is refused before connecting.
        match PostgresStore::builder()
            .schema(bad)
            .connect("postgres://nobody@127.0.0.1:1/none")
            .await
        {
            Err(PostgresError::InvalidSchema(name)) => assert_eq!(name, bad),
            other => panic!("{bad:?}: expected InvalidSchema, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn polar_customers_keep_every_field_and_polar_json_shapes() {
    if !postgres_common::available().await {
        return;
    }
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let store = store(&schema).await;
    for fixture in [CUSTOMER, TEAM] {
        let customer: Customer = serde_json::from_str(fixture).unwrap();
        let stored = store.upsert_customer(customer.clone()).await.unwrap();
        assert_eq!(stored, customer, "upsert returns it as stored");
        let read = store
            .customer(&CustomerRef::Id(customer.id))
            .await
            .unwrap()
            .expect("found");
        assert_eq!(read, customer);
        // Serialized back, byte for byte what Polar sent.
        let fixture: serde_json::Value = serde_json::from_str(fixture).unwrap();
        assert_eq!(serde_json::to_value(&read).unwrap(), fixture);
    }

    // The nested fields are Polar's JSON in jsonb columns, readable by any SQL client.
    let row = sqlx::query(&format!(
        "SELECT metadata, billing_address, tax_id, type FROM \"{schema}\".customers WHERE email = 'customer@example.com'"
    ))
    .fetch_one(&store.pool())
    .await
    .unwrap();
    let metadata: serde_json::Value = row.get(0);
    let address: serde_json::Value = row.get(1);
    let tax_id: serde_json::Value = row.get(2);
    let kind: String = row.get(3);
    assert_eq!(
        metadata,
        serde_json::json!({"plan": "pro", "seats": 5, "ratio": 0.75, "beta": true})
    );
    assert_eq!(address["state"], "US-CA");
    assert_eq!(tax_id, serde_json::json!(["911144442", "us_ein"]));
    assert_eq!(kind, "individual");
    schemas.drop_all().await;
}

#[tokio::test]
async fn a_row_no_customer_can_hold_is_an_error_never_a_session() {
    if !postgres_common::available().await {
        return;
    }
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let store = store(&schema).await;
    let customer = store
        .upsert_customer(postgres_common::customer("Jane"))
        .await
        .unwrap();
    let token = TokenFormat::polar().generate(TokenKind::Customer).unwrap();
    let hash = TokenHasher::new(postgres_common::SECRET).hash(token.expose_secret());
    sqlx::query(&format!(
        "INSERT INTO \"{schema}\".customer_sessions (id, token, customer_id, expires_at) \
         VALUES (gen_random_uuid(), $1, $2, now() + interval '1 hour')"
    ))
    .bind(hash.to_hex())
    .bind(customer.id)
    .execute(&store.pool())
    .await
    .unwrap();
    let load = || store.load(SessionKey::new(&hash, token.expose_secret()));
    assert!(
        load().await.unwrap().is_some(),
        "loads while the row is sound"
    );

    // Another program writes metadata Polar does not allow (a nested object).
    sqlx::query(&format!(
        "UPDATE \"{schema}\".customers SET metadata = '{{\"nested\": {{\"a\": 1}}}}'"
    ))
    .execute(&store.pool())
    .await
    .unwrap();
    let loaded: Result<Option<SessionRecord>, _> = load().await;
    assert!(
        loaded.is_err(),
        "an undecodable row fails the load (503), got {loaded:?}"
    );
    schemas.drop_all().await;
}

#[tokio::test]
async fn debug_output_never_shows_the_database_password() {
    if !postgres_common::available().await {
        return;
    }
    // The local server trusts the connection, so any password is accepted and ignored.
    let url = database_url().replacen("://postgres@", "://postgres:hunter2-not-shown@", 1);
    if url == database_url() {
        eprintln!("TEST_DATABASE_URL has no plain user part; skipping");
        return;
    }
    let store = PostgresStore::connect(&url).await.unwrap();
    let shown = format!("{store:?}");
    assert!(shown.contains("PostgresStore"));
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_is_one_statement_and_no_log_line_holds_a_token() {
    if !postgres_common::available().await {
        return;
    }
    let schemas = Schemas::default();
    let store = store(&schemas.fresh()).await;
    let sessions = SessionManager::builder(store.clone())
        .secret(postgres_common::SECRET)
        .build()
        .unwrap();
    let capture = LogCapture::default();
    // sqlx logs every statement it runs under the `sqlx::query` target. A connection the
    // pool opens during the load runs its own `SET statement_timeout` first: that one is
    // the pool's, not the load's.
    let statements = || {
        capture
            .text()
            .lines()
            .filter(|line| line.contains("sqlx::query") && !line.contains("statement_timeout"))
            .count()
    };

    let jane = sessions
        .upsert_customer(postgres_common::customer("Jane"))
        .with_subscriber(capture.subscriber())
        .await
        .unwrap();
    let session = sessions
        .create(jane.id, CreateSession::default())
        .with_subscriber(capture.subscriber())
        .await
        .unwrap();
    let token = session.token.expose_secret();
    let hash = sessions.hasher().hash(token);

    let before = statements();
    let loaded = store
        .load(SessionKey::new(&hash, token))
        .with_subscriber(capture.subscriber())
        .await
        .unwrap();
    assert!(loaded.is_some());
    assert_eq!(statements() - before, 1, "one statement per load");

    async {
        sessions
            .authenticate(token, CredentialSource::Header)
            .await
            .unwrap();
        sessions.revoke(token).await.unwrap();
        sessions.revoke_all(jane.id).await.unwrap();
        sessions.delete_customer(jane.id).await.unwrap();
        assert!(
            sessions
                .authenticate(token, CredentialSource::Header)
                .await
                .is_err()
        );
    }
    .with_subscriber(capture.subscriber())
    .await;
    let logs = capture.text();
    assert!(statements() > 5, "the capture saw the statements");
    assert!(!logs.contains(token), "a token in the logs");
    assert!(
        !logs.contains(&token[10..47]),
        "a token's random part in the logs"
    );
    assert!(
        !logs.contains(&hash.to_hex()),
        "a full token hash in the logs"
    );
    drop(sessions);
    schemas.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_is_set_on_the_connections_and_ends_in_a_store_timeout() {
    if !postgres_common::available().await {
        return;
    }
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    store(&schema).await;
    let store = postgres_common::builder(&schema)
        .statement_timeout(std::time::Duration::from_millis(250))
        .connect(&database_url())
        .await
        .unwrap();
    let shown: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&store.pool())
        .await
        .unwrap();
    assert_eq!(shown, "250ms");

    // Another program holds the sessions table: the load waits, and the server ends it.
    let mut holder = plain_connection().await;
    sqlx::raw_sql(&format!(
        "BEGIN; LOCK TABLE \"{schema}\".customer_sessions IN ACCESS EXCLUSIVE MODE"
    ))
    .execute(&mut holder)
    .await
    .unwrap();
    let hash = TokenHasher::new(postgres_common::SECRET).hash("polar_cst_x");
    let started = std::time::Instant::now();
    let loaded = store.load(SessionKey::new(&hash, "polar_cst_x")).await;
    assert!(
        matches!(loaded, Err(tower_customer_session::StoreError::Timeout)),
        "{loaded:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    drop(store);
    schemas.drop_all().await;
}
