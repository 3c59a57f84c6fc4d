#![allow(missing_docs)] // criterion_group! generates undocumented items

//! A cache miss through `RedisStore` against the plain `redis` client doing the same
//! round trip, in one run, on the shared Redis (127.0.0.1:6379 or `REDIS_URL`).
//!
//! Rows (group `redis_load`), all for the same stored session of a realistic customer:
//!
//! - `raw GET`: the plain client reads the session key alone (no customer, no decoding);
//!   the floor of any round trip;
//! - `raw script`: the plain client runs a script equivalent to the store's load (session
//!   and customer in one round trip) and keeps the raw reply;
//! - `RedisStore::load`: the store's load, decoded and checked into a `SessionRecord`;
//! - `authenticate (miss)`: `SessionManager::authenticate` with a cache that cannot hit
//!   (`cache_capacity(0)`): parse, hash, coalesce, load, verify.
//!
//! The goal is `RedisStore::load` ≤ 1.5 × `raw script`.
//!
//! Run: `cargo bench -p tower-customer-session-benches --features redis --bench redis`. Skipped (with a message) when no
//! Redis answers.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tower_customer_session::model::{Address, CustomerData, Metadata, MetadataValue};
use tower_customer_session::redis::{self, AsyncCommands, Script, Value};
use tower_customer_session::{
    CreateSession, CredentialSource, RedisStore, SessionKey, SessionManager, SessionStore,
};

const SECRET: &[u8] = b"redis benchmark secret, 32 bytes";

/// The same work as the store's load script: the session, then its customer's fields.
const LOAD: &str = r"
local session = redis.call('GET', KEYS[1])
if not session then return false end
local customer_id = string.match(session, '^[^|]*|([^|]*)|')
return {session, redis.call('HMGET', ARGV[1] .. customer_id, 'v', 'del', 'data')}
";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A customer with the fields a real one carries.
fn customer() -> CustomerData {
    let mut data = CustomerData::new(chrono::Utc::now());
    data.name = Some("Jane Doe".to_owned());
    data.email = Some("jane@example.com".to_owned());
    data.email_verified = true;
    data.external_id = Some(format!("usr_{}", data.id.simple()));
    data.metadata = Metadata::from([
        ("plan".to_owned(), MetadataValue::from("pro")),
        ("seats".to_owned(), MetadataValue::from(5_i64)),
    ]);
    data.billing_address = Some(Address {
        line1: Some("123 Main St".to_owned()),
        city: Some("San Francisco".to_owned()),
        postal_code: Some("94105".to_owned()),
        state: Some("US-CA".to_owned()),
        ..Address::new("US")
    });
    data.locale = Some("en".to_owned());
    data
}

fn bench(c: &mut Criterion) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let rt = runtime();
    let prefix = format!("tcs-bench:{}:", uuid::Uuid::new_v4().simple());
    let Ok(store) = rt.block_on(
        RedisStore::builder(url.as_str())
            .key_prefix(&prefix)
            .connect(),
    ) else {
        eprintln!("SKIPPED: no Redis at {url}; start one (`redis-server`) to run this benchmark");
        return;
    };
    let sessions = rt.block_on(async {
        SessionManager::builder(store.clone())
            .secret(SECRET)
            .cache_capacity(0)
            .build()
            .expect("manager")
    });
    let (token, key, customer_prefix) = rt.block_on(async {
        let jane = sessions.upsert_customer(customer()).await.expect("upsert");
        let session = sessions
            .create(
                jane.id,
                CreateSession::default().return_url("https://shop.example/account"),
            )
            .await
            .expect("create");
        let token = session.token.expose_secret().to_owned();
        let hash = sessions.hasher().hash(&token);
        (
            token,
            format!("{prefix}s:{}", hash.to_hex()),
            format!("{prefix}c:"),
        )
    });
    let hash = sessions.hasher().hash(&token);
    let client = redis::Client::open(url.as_str()).expect("url");
    let mut raw = rt
        .block_on(client.get_multiplexed_async_connection())
        .expect("plain connection");
    let script = Script::new(LOAD);

    // Every row must read the session, or it measures nothing.
    rt.block_on(async {
        let value: Option<Vec<u8>> = raw.get(&key).await.unwrap();
        assert!(value.is_some());
        let reply: Value = script
            .key(&key)
            .arg(&customer_prefix)
            .invoke_async(&mut raw)
            .await
            .unwrap();
        assert!(matches!(reply, Value::Array(_)));
        assert!(
            store
                .load(SessionKey::new(&hash, &token))
                .await
                .unwrap()
                .is_some()
        );
        sessions
            .authenticate(&token, CredentialSource::Header)
            .await
            .expect("authenticates");
    });

    let mut group = c.benchmark_group("redis_load");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("raw GET", |b| {
        b.to_async(&rt).iter(|| {
            let mut raw = raw.clone();
            let key = &key;
            async move {
                let value: Option<Vec<u8>> = raw.get(key).await.unwrap();
                black_box(value)
            }
        })
    });
    group.bench_function("raw script", |b| {
        b.to_async(&rt).iter(|| {
            let mut raw = raw.clone();
            let (script, key, customer_prefix) = (&script, &key, &customer_prefix);
            async move {
                let reply: Value = script
                    .key(key)
                    .arg(customer_prefix)
                    .invoke_async(&mut raw)
                    .await
                    .unwrap();
                black_box(reply)
            }
        })
    });
    group.bench_function("RedisStore::load", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(store.load(SessionKey::new(&hash, &token)).await.unwrap()) })
    });
    group.bench_function("authenticate (miss)", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                sessions
                    .authenticate(&token, CredentialSource::Header)
                    .await
                    .unwrap(),
            )
        })
    });
    group.finish();

    // The cache really cannot hit: with the session gone from Redis, it is refused.
    rt.block_on(async {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut raw)
            .await
            .unwrap();
        let _: i64 = raw.del(&keys).await.unwrap();
        assert!(
            sessions
                .authenticate(&token, CredentialSource::Header)
                .await
                .is_err(),
            "the `authenticate (miss)` row was served by the cache"
        );
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
