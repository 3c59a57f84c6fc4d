//! What the invalidation feed's heartbeat costs PostgreSQL, per instance.
//!
//! Each instance (a `PostgresStore` with a `SessionManager`, so its feed runs) beats with a
//! `SELECT pg_backend_pid()` on its `LISTEN` connection every `heartbeat_interval` after the previous
//! answer. For each row, N instances run for a window (20 s by default) while nothing else
//! happens on them; then:
//!
//! - server CPU: the time the N listening backends spent on a CPU (`/proc/<pid>/schedstat`
//!   of each backend, found by `pg_stat_activity`), per instance, as a percentage of one
//!   core. Needs the server on this machine and the right to read its processes' `/proc`.
//! - instance CPU: this process's own CPU time over the window (its tokio runtime, the N
//!   feeds and watchdogs), per instance: what the heartbeat costs the application side.
//! - traffic: the bytes each way through a counting TCP forwarder in front of each
//!   instance (protocol payload; TCP/IP headers not included), per instance.
//!
//! Run: `cargo bench -p tower-customer-session-benches --features postgres --bench heartbeat_cost_postgres` (PostgreSQL at
//! 127.0.0.1:5432, or `TEST_DATABASE_URL`). `HEARTBEAT_SECONDS` sets the window,
//! `HEARTBEAT_ROWS` the rows as `instances@interval_ms` (default `1@100,8@100,8@1000`).
//! Creates no table: the feed needs only the channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tower_customer_session::SessionManager;
use tower_customer_session::store::FeedState;
use tower_customer_session::store::postgres::PostgresStore;

const SECRET: &[u8] = b"postgres bench secret, 32 bytes!";
const APPLICATION: &str = "tcs_heartbeat_bench";

fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Bytes each way through one forwarder, and the client's writes (one per statement).
#[derive(Default)]
struct Traffic {
    to_server: AtomicU64,
    from_server: AtomicU64,
    client_writes: AtomicU64,
}

/// A forwarder on a free port in front of `upstream`, counting into `traffic`.
async fn forwarder(upstream: SocketAddr, traffic: Arc<Traffic>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(copy(client_read, server_write, traffic.clone(), true));
            tokio::spawn(copy(server_read, client_write, traffic.clone(), false));
        }
    });
    port
}

async fn copy(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, traffic: Arc<Traffic>, up: bool) {
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buffer).await {
        let counter = if up {
            traffic.client_writes.fetch_add(1, Ordering::Relaxed);
            &traffic.to_server
        } else {
            &traffic.from_server
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// Nanoseconds `pid` spent on a CPU (the first field of its `schedstat`).
fn cpu_ns(pid: &str) -> Option<u64> {
    schedstat(&format!("/proc/{pid}/schedstat"))
}

fn schedstat(path: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Nanoseconds this process's threads spent on a CPU (a process's own `schedstat` counts
/// its first thread only).
fn own_cpu_ns() -> Option<u64> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .map(|task| schedstat(&format!("{}/schedstat", task.ok()?.path().display())))
        .sum()
}

struct Row {
    instances: usize,
    interval: Duration,
}

fn rows() -> Vec<Row> {
    let spec = std::env::var("HEARTBEAT_ROWS").unwrap_or_else(|_| "1@100,8@100,8@1000".into());
    spec.split(',')
        .filter_map(|row| {
            let (n, ms) = row.trim().split_once('@')?;
            Some(Row {
                instances: n.parse().ok()?,
                interval: Duration::from_millis(ms.parse().ok()?),
            })
        })
        .collect()
}

async fn measure(row: &Row, window: Duration, upstream: SocketAddr, base: &PgConnectOptions) {
    let traffic = Arc::new(Traffic::default());
    let mut managers = Vec::new();
    for _ in 0..row.instances {
        let port = forwarder(upstream, traffic.clone()).await;
        let options = base
            .clone()
            .host("127.0.0.1")
            .port(port)
            .application_name(APPLICATION);
        let store = PostgresStore::builder()
            .schema("tcs_heartbeat_bench")
            .max_connections(1)
            .heartbeat_interval(row.interval)
            .connect_with(options)
            .await
            .expect("connect");
        managers.push(
            SessionManager::builder(store)
                .secret(SECRET)
                .build()
                .unwrap(),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while managers.iter().any(|m| m.feed_state() != FeedState::Live) {
        assert!(Instant::now() < deadline, "feeds live");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A few beats first, so every listener has run its heartbeat and shows it.
    tokio::time::sleep(row.interval * 3).await;
    let mut admin = PgConnection::connect_with(base).await.expect("connect");
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE application_name = $1 AND query = 'SELECT pg_backend_pid()'",
    )
    .bind(APPLICATION)
    .fetch_all(&mut admin)
    .await
    .expect("pg_stat_activity");
    let _ = admin.close().await;
    assert_eq!(pids.len(), row.instances, "one listening backend each");
    let pids: Vec<String> = pids.iter().map(i32::to_string).collect();

    let server_cpu = || pids.iter().map(|pid| cpu_ns(pid)).sum::<Option<u64>>();
    let counters = || {
        (
            traffic.to_server.load(Ordering::Relaxed),
            traffic.from_server.load(Ordering::Relaxed),
            traffic.client_writes.load(Ordering::Relaxed),
        )
    };
    let (server_before, own_before, bytes_before, started) =
        (server_cpu(), own_cpu_ns(), counters(), Instant::now());
    tokio::time::sleep(window).await;
    let (server_after, own_after, bytes_after, elapsed) =
        (server_cpu(), own_cpu_ns(), counters(), started.elapsed());
    assert!(
        managers.iter().all(|m| m.feed_state() == FeedState::Live),
        "no feed loss during the window"
    );

    let seconds = elapsed.as_secs_f64();
    let per_instance = |delta: u64| delta as f64 / seconds / row.instances as f64;
    let percent = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(b), Some(a)) => format!("{:.3} %", per_instance(a - b) / 1e7),
        _ => "n/a".to_owned(),
    };
    println!(
        "| PostgreSQL | {} | {} ms | {:.1} | {} | {} | {:.0} / {:.0} |",
        row.instances,
        row.interval.as_millis(),
        per_instance(bytes_after.2 - bytes_before.2),
        percent(server_before, server_after),
        percent(own_before, own_after),
        per_instance(bytes_after.0 - bytes_before.0),
        per_instance(bytes_after.1 - bytes_before.1),
    );
    drop(managers);
    // Let the feeds notice and close before the next row.
    tokio::time::sleep(row.interval * 2 + Duration::from_millis(200)).await;
}

fn main() {
    // Listing the benches measures nothing.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let window = Duration::from_secs(
        std::env::var("HEARTBEAT_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let url = database_url();
        let base: PgConnectOptions = url.parse().expect("a database URL");
        let host_port = format!("{}:{}", base.get_host(), base.get_port());
        let upstream = tokio::net::lookup_host(host_port)
            .await
            .expect("resolve")
            .next()
            .expect("an address");
        if let Err(error) = PgConnection::connect_with(&base).await {
            eprintln!("PostgreSQL unreachable at {url}: {error}; nothing measured");
            return;
        }
        println!("window: {} s per row\n", window.as_secs());
        println!(
            "| store | instances | heartbeat every | beats/s per instance | server CPU per instance (of one core) | instance CPU per instance (of one core) | bytes/s per instance (to / from server) |"
        );
        println!("|---|---|---|---|---|---|---|");
        for row in rows() {
            measure(&row, window, upstream, &base).await;
        }
    });
}
