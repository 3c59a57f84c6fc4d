#![allow(missing_docs)] // criterion_group! generates undocumented items

//! A cache miss through `RedisStore` on a Redis Cluster against the plain cluster client
//! (`redis` with `cluster-async`) making the same round trips, in one run, on a
//! three-primary cluster the bench starts itself on free ports (`redis-server` and
//! `redis-cli` on `PATH`; skipped with a message without them).
//!
//! Rows (group `redis_cluster_load`), all for the same stored session of a realistic
//! customer:
//!
//! - `raw GET`: the plain cluster client reads the session key alone; one round trip,
//!   the floor;
//! - `raw GET + script`: the plain cluster client makes the store's two round trips: the
//!   session, then a script reading its customer and generation (raw replies kept);
//! - `RedisStore::load`: the store's load on the cluster, decoded and checked;
//! - `authenticate (miss)`: `SessionManager::authenticate` with `cache_capacity(0)`.
//!
//! The goal is `RedisStore::load` ≤ 1.5 × `raw GET + script`.
//!
//! Run: `cargo bench -p tower-customer-session-benches --features redis --bench redis_cluster`.

use std::hint::black_box;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tower_customer_session::model::{Address, CustomerData, Metadata, MetadataValue};
use tower_customer_session::redis::{self, Script, Value};
use tower_customer_session::{
    CreateSession, CredentialSource, RedisStore, SessionKey, SessionManager, SessionStore,
};

const SECRET: &[u8] = b"redis benchmark secret, 32 bytes";

/// What the store's second round trip runs: the customer and its generation.
const CUSTOMER: &str = r"
return {redis.call('HMGET', KEYS[1], 'v', 'del', 'data'), redis.call('GET', KEYS[2])}
";

/// Three primaries on free ports, killed (and their directories removed) on drop.
struct Nodes(Vec<(u16, Child, PathBuf)>);

impl Nodes {
    fn start() -> Option<Self> {
        let mut nodes = Nodes(Vec::new());
        for _ in 0..3 {
            let port = free_cluster_port()?;
            let dir = std::env::temp_dir().join(format!(
                "tcs-bench-cluster-{port}-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&dir).ok()?;
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes"])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            nodes.0.push((port, child, dir));
        }
        let addresses: Vec<String> = nodes
            .0
            .iter()
            .map(|(port, _, _)| format!("127.0.0.1:{port}"))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        // `--cluster create` needs every node up; it then waits for them to agree.
        loop {
            let created = Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(&addresses)
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok()?;
            if created.success() {
                break;
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Every node must see every slot served.
        while !nodes.0.iter().all(|(port, _, _)| {
            let info = Command::new("redis-cli")
                .args(["-p", &port.to_string(), "cluster", "info"])
                .output()
                .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
                .unwrap_or_default();
            info.contains("cluster_state:ok")
        }) {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(nodes)
    }

    fn urls(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(port, _, _)| format!("redis://127.0.0.1:{port}"))
            .collect()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for (_, child, dir) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A free port whose Cluster bus port (`port + 10000`) is free too.
fn free_cluster_port() -> Option<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .ok()?
            .port();
        if port <= u16::MAX - 10_000
            && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok()
        {
            return Some(port);
        }
    }
    None
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A customer with the fields a real one carries (as in the single-server bench).
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
    let Some(nodes) = Nodes::start() else {
        eprintln!(
            "SKIPPED: cannot start a Redis Cluster (redis-server and redis-cli on PATH are needed)"
        );
        return;
    };
    let rt = runtime();
    let prefix = "tcs-bench:";
    let store = rt
        .block_on(
            RedisStore::cluster(nodes.urls())
                .key_prefix(prefix)
                .connect(),
        )
        .expect("connect to the cluster");
    let sessions = rt.block_on(async {
        SessionManager::builder(store.clone())
            .secret(SECRET)
            .cache_capacity(0)
            .store_timeout(Duration::from_secs(3))
            .build()
            .expect("manager")
    });
    let (token, session_key, customer_key, generation_key) = rt.block_on(async {
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
            format!("{prefix}c:{{{}}}", jane.id),
            format!("{prefix}cg:{{{}}}", jane.id),
        )
    });
    let hash = sessions.hasher().hash(&token);
    let client = redis::cluster::ClusterClient::new(nodes.urls()).expect("cluster client");
    let raw = rt
        .block_on(client.get_async_connection())
        .expect("plain cluster connection");
    let script = Script::new(CUSTOMER);

    // Every row must read the session and its customer, or it measures nothing.
    rt.block_on(async {
        let mut raw = raw.clone();
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&session_key)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(value.is_some());
        let reply: Value = script
            .key(&customer_key)
            .key(&generation_key)
            .invoke_async(&mut raw)
            .await
            .unwrap();
        let Value::Array(parts) = &reply else {
            panic!("unexpected reply {reply:?}");
        };
        assert!(matches!(&parts[0], Value::Array(fields) if fields[2] != Value::Nil));
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

    let mut group = c.benchmark_group("redis_cluster_load");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("raw GET", |b| {
        b.to_async(&rt).iter(|| {
            let mut raw = raw.clone();
            let key = &session_key;
            async move {
                let value: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut raw)
                    .await
                    .unwrap();
                black_box(value)
            }
        })
    });
    group.bench_function("raw GET + script", |b| {
        b.to_async(&rt).iter(|| {
            let mut raw = raw.clone();
            let (script, session_key, customer_key, generation_key) =
                (&script, &session_key, &customer_key, &generation_key);
            async move {
                let session: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(session_key)
                    .query_async(&mut raw)
                    .await
                    .unwrap();
                let reply: Value = script
                    .key(customer_key)
                    .key(generation_key)
                    .invoke_async(&mut raw)
                    .await
                    .unwrap();
                black_box((session, reply))
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

    // The cache really cannot hit: with the session revoked, it is refused.
    rt.block_on(async {
        sessions.revoke(&token).await.expect("revoke");
        assert!(
            sessions
                .authenticate(&token, CredentialSource::Header)
                .await
                .is_err(),
            "the `authenticate (miss)` row was served by the cache"
        );
    });
    drop(store);
    drop(nodes);
}

criterion_group!(benches, bench);
criterion_main!(benches);
