//! Helpers for the PostgreSQL tests: the server to use, a schema per test that is dropped
//! afterwards, stores with short heartbeats, and a TCP proxy the fault tests can cut.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod cluster;
pub mod proxy;
pub mod servers;

use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tower_customer_session::model::CustomerData;
use tower_customer_session::store::postgres::{PostgresStore, PostgresStoreBuilder};
use tower_customer_session::{Customer, SessionManager};

/// The HMAC key every instance of a test shares.
pub const SECRET: &[u8] = b"postgres tests secret, 32 bytes!";

/// How soon a change on one instance must be refused on another.
pub const PROPAGATION: Duration = Duration::from_millis(100);

/// The server the tests use: `TEST_DATABASE_URL`, or the machine's local PostgreSQL.
pub fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether the server answers. Under `CI=true` an unreachable server fails the test;
/// elsewhere the test is skipped, loudly.
pub async fn available() -> bool {
    let url = database_url();
    let reached = tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&url)).await;
    match reached {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            true
        }
        failure => {
            let why = match failure {
                Ok(Err(error)) => error.to_string(),
                _ => "no answer within 5 s".to_owned(),
            };
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "PostgreSQL unreachable at {url} under CI=true: {why}; \
                     start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
                );
            }
            eprintln!("\n!!! SKIPPED: PostgreSQL unreachable at {url}: {why} !!!\n");
            false
        }
    }
}

/// Schemas created by a test, dropped by [`drop_all`](Self::drop_all) at its end, or when
/// the value is dropped if the test failed first.
#[derive(Default)]
pub struct Schemas {
    names: Mutex<Vec<String>>,
}

impl Schemas {
    /// A fresh, unused schema name (not created yet; `migrate` creates it).
    pub fn fresh(&self) -> String {
        let name = format!(
            "tcs_test_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..16]
        );
        self.names.lock().unwrap().push(name.clone());
        name
    }

    pub async fn drop_all(&self) {
        let names = std::mem::take(&mut *self.names.lock().unwrap());
        drop_schemas(names).await;
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.names.lock().unwrap());
        if names.is_empty() {
            return;
        }
        // A failed test: clean up on a runtime of our own, whatever state the test's is in.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(drop_schemas(names));
        })
        .join();
    }
}

async fn drop_schemas(names: Vec<String>) {
    let Ok(mut connection) = PgConnection::connect(&database_url()).await else {
        return;
    };
    for name in names {
        let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
            .execute(&mut connection)
            .await;
    }
}

/// Test settings: short heartbeats and backoff, so losses and recoveries show fast.
pub fn builder(schema: &str) -> PostgresStoreBuilder {
    PostgresStore::builder()
        .schema(schema)
        .max_connections(5)
        .heartbeat_interval(Duration::from_millis(100))
        .heartbeat_timeout(Duration::from_millis(200))
        .max_reconnect_delay(Duration::from_millis(200))
}

/// A migrated store in `schema` on the test server.
pub async fn store(schema: &str) -> PostgresStore {
    let store = builder(schema)
        .connect(&database_url())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    store
}

/// A session manager over `store`, with the shared secret.
pub fn manager(store: PostgresStore) -> SessionManager<PostgresStore> {
    SessionManager::builder(store)
        .secret(SECRET)
        .build()
        .expect("a secret is configured")
}

/// A plain connection, as another program would open one.
pub async fn plain_connection() -> PgConnection {
    PgConnection::connect(&database_url())
        .await
        .expect("connect")
}

/// A new individual customer named `name`.
pub fn customer(name: &str) -> Customer {
    let mut data = CustomerData::new(Utc::now());
    data.name = Some(name.to_owned());
    data.email = Some(format!("{}@example.com", name.to_lowercase()));
    Customer::new(data)
}

/// Wait until `done`, polling, for at most `within`.
pub async fn wait_for(mut done: impl FnMut() -> bool, within: Duration, what: &str) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
