#![allow(missing_docs)] // criterion_group! generates undocumented items

//! The PostgreSQL store against a real server: what a cache miss costs through
//! `PostgresStore` next to the same `SELECT` issued directly with sqlx, in the same run; and
//! how long a revocation on one instance takes to be refused on another.
//!
//! Run: `cargo bench -p tower-customer-session-benches --features postgres --bench postgres` (PostgreSQL at 127.0.0.1:5432, or
//! `TEST_DATABASE_URL`). Works in a schema of its own, dropped at the end.
//!
//! Rows of the `postgres_miss` group (criterion, one tokio current-thread runtime):
//!
//! - `store_load`: `PostgresStore::load` of a live session: the one-statement join, decoded
//!   into a `SessionRecord` with its `Customer`.
//! - `sqlx_same_pool`: the same `SELECT`, bound and fetched with sqlx on the store's own pool,
//!   row not decoded: the floor `store_load` is compared with.
//! - `sqlx_default_pool`: the same, on a `PgPool` with sqlx's default options (which test
//!   each connection with a round trip before handing it out).
//!
//! Then, outside criterion, 1,000 revocations on instance A, each of a session that instance
//! B has cached: the time from the revocation's commit on A to B's cache dropping the
//! session (the feed's delivery), to B refusing it (plus B's one reload from the database),
//! and from the call on A (plus the commit itself). Printed as median, p99 and max.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::Criterion;
use sqlx::postgres::PgPoolOptions;
use tower_customer_session::model::CustomerData;
use tower_customer_session::store::FeedState;
use tower_customer_session::store::postgres::PostgresStore;
use tower_customer_session::{
    CreateSession, CredentialSource, Customer, SessionKey, SessionManager, SessionStore,
};

const SECRET: &[u8] = b"postgres bench secret, 32 bytes!";
const REVOCATIONS: usize = 1_000;

fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn manager(store: PostgresStore) -> SessionManager<PostgresStore> {
    SessionManager::builder(store)
        .secret(SECRET)
        .build()
        .expect("a secret is configured")
}

/// The store's load statement, written out as a user would issue it by hand.
fn load_sql(schema: &str) -> String {
    format!(
        "SELECT s.token, s.id, s.kind, s.created_at, s.modified_at, s.expires_at, s.return_url, \
         c.id, c.created_at, c.modified_at, c.metadata, c.external_id, c.email, \
         c.email_verified, c.type, c.name, c.billing_name, c.billing_address, c.tax_id, \
         c.locale, c.organization_id, c.default_payment_method_id, c.deleted_at, \
         c.first_user_event_at, c.avatar_url \
         FROM \"{schema}\".customer_sessions s JOIN \"{schema}\".customers c \
         ON c.id = s.customer_id \
         WHERE s.token = $1::bpchar AND s.deleted_at IS NULL AND s.expires_at > now() \
         AND c.deleted_at IS NULL"
    )
}

fn main() {
    let url = database_url();
    let schema = format!(
        "tcs_bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = match rt.block_on(
        PostgresStore::builder()
            .schema(schema.as_str())
            .connect(&url),
    ) {
        Ok(store) => store,
        Err(error) => {
            eprintln!("PostgreSQL unreachable at {url} ({error}): nothing to measure");
            return;
        }
    };
    let _cleanup = DropSchema {
        url: url.clone(),
        schema: schema.clone(),
    };
    rt.block_on(store.migrate()).expect("migrate");

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    misses(&mut criterion, &rt, &store, &url);
    criterion.final_summary();

    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    multi.block_on(propagation(&schema, &url));
}

/// Drops the bench's schema at the end, or after a failure.
struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // A runtime of its own on a thread of its own: whatever state the bench's runtimes
        // are in.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut connection) = sqlx::PgConnection::connect(&url).await {
                    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                    let _ = sqlx::query(&drop).execute(&mut connection).await;
                }
            });
        })
        .join();
    }
}

fn misses(c: &mut Criterion, rt: &tokio::runtime::Runtime, store: &PostgresStore, url: &str) {
    // The manager's feed runs on the runtime.
    let _runtime = rt.enter();
    let sessions = manager(store.clone());
    let (token, default_pool) = rt.block_on(async {
        let mut data = CustomerData::new(Utc::now());
        data.name = Some("Jane".to_owned());
        data.email = Some("jane@example.com".to_owned());
        let jane = sessions.upsert_customer(Customer::new(data)).await.unwrap();
        let session = sessions
            .create(jane.id, CreateSession::default())
            .await
            .unwrap();
        let default_pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(url)
            .await
            .unwrap();
        (session.token.expose_secret().to_owned(), default_pool)
    });
    let hash = sessions.hasher().hash(&token);
    let hex = hash.to_hex();
    let sql = load_sql(store.schema());
    let pool = store.pool();

    // Each row must find the session, or it measures something else.
    rt.block_on(async {
        assert!(
            store
                .load(SessionKey::new(&hash, &token))
                .await
                .unwrap()
                .is_some()
        );
        for pool in [&pool, &default_pool] {
            let row = sqlx::query(&sql).bind(&hex).fetch_optional(pool).await;
            assert!(row.unwrap().is_some());
        }
    });

    let mut group = c.benchmark_group("postgres_miss");
    group.bench_function("store_load", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(store.load(SessionKey::new(&hash, &token)).await) })
    });
    group.bench_function("sqlx_same_pool", |b| {
        b.to_async(rt).iter(|| async {
            black_box(
                sqlx::query(&sql)
                    .bind(hex.as_str())
                    .fetch_optional(&pool)
                    .await,
            )
        })
    });
    group.bench_function("sqlx_default_pool", |b| {
        b.to_async(rt).iter(|| async {
            black_box(
                sqlx::query(&sql)
                    .bind(hex.as_str())
                    .fetch_optional(&default_pool)
                    .await,
            )
        })
    });
    group.finish();
}

async fn propagation(schema: &str, url: &str) {
    let open = || async {
        let store = PostgresStore::builder()
            .schema(schema)
            .connect(url)
            .await
            .expect("connect");
        manager(store)
    };
    let (a, b) = (open().await, open().await);
    for side in [&a, &b] {
        while side.feed_state() != FeedState::Live {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut data = CustomerData::new(Utc::now());
    data.name = Some("John".to_owned());
    let john = a.upsert_customer(Customer::new(data)).await.unwrap();

    let mut call_to_refused = Vec::with_capacity(REVOCATIONS);
    let mut commit_to_dropped = Vec::with_capacity(REVOCATIONS);
    let mut commit_to_refused = Vec::with_capacity(REVOCATIONS);
    for _ in 0..REVOCATIONS {
        let session = a.create(john.id, CreateSession::default()).await.unwrap();
        let token = session.token.expose_secret();
        for _ in 0..2 {
            b.authenticate(token, CredentialSource::Header)
                .await
                .expect("cached on b");
        }
        assert_eq!(b.cached_sessions(), 1, "b caches this session only");
        let called = Instant::now();
        assert!(a.revoke(token).await.unwrap());
        let committed = Instant::now();
        let deadline = called + Duration::from_secs(5);
        // The feed's message applied: b's cache no longer holds the session.
        while b.cached_sessions() != 0 {
            assert!(Instant::now() < deadline, "revocation never reached b");
            tokio::task::yield_now().await;
        }
        let dropped = Instant::now();
        // And b refuses it (one reload from the database).
        assert!(
            b.authenticate(token, CredentialSource::Header)
                .await
                .is_err()
        );
        let refused = Instant::now();
        call_to_refused.push(refused - called);
        commit_to_dropped.push(dropped - committed);
        commit_to_refused.push(refused - committed);
    }
    println!("\npostgres_propagation ({REVOCATIONS} revocations on A of a session B has cached)");
    println!("| from | to | median | p99 | max |");
    println!("|---|---|---|---|---|");
    for (from, to, mut samples) in [
        (
            "revoke returned on A (committed)",
            "B's cache entry dropped",
            commit_to_dropped,
        ),
        (
            "revoke returned on A (committed)",
            "B refuses (after one reload)",
            commit_to_refused,
        ),
        ("revoke called on A", "B refuses", call_to_refused),
    ] {
        samples.sort();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        println!(
            "| {from} | {to} | {:.0} µs | {:.0} µs | {:.0} µs |",
            micros(at(0.5)),
            micros(at(0.99)),
            micros(at(1.0))
        );
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
