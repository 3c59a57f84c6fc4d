//! Coalescing of concurrent first requests, and floods of unknown tokens.
//!
//! 1. **Thundering herd**: 1,000 concurrent first requests for one live token against a
//!    store that takes 1 ms per load. Counts store loads and the wall time until all 1,000
//!    responses are in. The same herd is sent to tower-sessions' `CachingSessionStore`
//!    (moka in front of a store with the same 1 ms latency) for comparison.
//! 2. **Flood**: 50,000 live sessions are warmed into the cache; then 100,000 distinct
//!    random well-formed tokens (valid prefix and checksum) are sent, 64 at a time; then
//!    every live session is requested again. A counting store tells how many requests of
//!    each phase reached it, which gives the live sessions' hit rate after the flood. The
//!    same is done with 100,000 tokens that fail the checksum.
//!
//! Run: `cargo bench -p tower-customer-session-benches --bench flood` (writes `benches/results/flood.md`).

mod common;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::sync::Barrier;
use tower::{Layer, ServiceExt, service_fn};
use tower_customer_session::{Customer, CustomerSessionLayer, MemoryStore};
use uuid::Uuid;

use common::{
    Req, Spread, bad_checksum, bearer_request, bench_store, builder, populate, unknown_token,
};

mod ts_store {
    //! The same counting, slow wrapper for tower-sessions' store trait.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use tower_sessions::session::{Id, Record};
    use tower_sessions::session_store::{Result, SessionStore};

    #[derive(Debug, Clone)]
    pub struct Counting<S> {
        pub inner: S,
        pub loads: Arc<AtomicU64>,
        pub latency: Duration,
    }

    #[async_trait::async_trait]
    impl<S: SessionStore + Clone> SessionStore for Counting<S> {
        async fn create(&self, record: &mut Record) -> Result<()> {
            self.inner.create(record).await
        }

        async fn save(&self, record: &Record) -> Result<()> {
            self.inner.save(record).await
        }

        async fn load(&self, id: &Id) -> Result<Option<Record>> {
            self.loads.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.latency).await;
            self.inner.load(id).await
        }

        async fn delete(&self, id: &Id) -> Result<()> {
            self.inner.delete(id).await
        }
    }
}

async fn customer_handler(
    request: Req,
) -> Result<http::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> {
    let status = if request.extensions().get::<Customer>().is_some() {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let mut response = http::Response::new(http_body_util::Full::default());
    *response.status_mut() = status;
    Ok(response)
}

/// Send every request at once (released together by a barrier); returns the statuses and
/// the time from the first request's release until the last response. Each task takes its
/// own timestamps: on two cores the spawning thread may not run again for milliseconds.
async fn herd<S, B>(service: S, requests: Vec<Req>) -> (Vec<StatusCode>, Duration)
where
    S: tower::Service<Req, Response = http::Response<B>> + Clone + Send + 'static,
    B: Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let barrier = Arc::new(Barrier::new(requests.len()));
    let mut tasks = Vec::with_capacity(requests.len());
    for request in requests {
        let service = service.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let released = Instant::now();
            let status = service.oneshot(request).await.expect("infallible").status();
            (status, released, Instant::now())
        }));
    }
    let mut statuses = Vec::with_capacity(tasks.len());
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for task in tasks {
        let (status, released, done) = task.await.expect("task");
        statuses.push(status);
        first = Some(first.map_or(released, |f| f.min(released)));
        last = Some(last.map_or(done, |l| l.max(done)));
    }
    let elapsed = last.expect("requests") - first.expect("requests");
    (statuses, elapsed)
}

struct Herd {
    system: &'static str,
    loads: u64,
    ok: usize,
    elapsed: Duration,
}

async fn herd_this_crate() -> Herd {
    let memory = MemoryStore::new();
    let store = bench_store(memory.clone());
    store.set_latency(Duration::from_millis(1));
    let sessions = builder(store.clone()).build().unwrap();
    let token = populate(&memory, &sessions, 1, Spread::OneCustomer)
        .await
        .remove(0);
    let service = CustomerSessionLayer::new(sessions).layer(service_fn(customer_handler));
    let requests = (0..1_000).map(|_| bearer_request(&token)).collect();
    let (statuses, elapsed) = herd(service, requests).await;
    Herd {
        system: "this crate",
        loads: store.loads() as u64,
        ok: statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        elapsed,
    }
}

async fn herd_tower_sessions() -> Herd {
    use tower_sessions::{
        CachingSessionStore, MemoryStore as TsMemory, Session, SessionManagerLayer,
    };
    use tower_sessions_moka_store::MokaStore;

    let customer = Customer::new(common::demo_customer());
    let backing = ts_store::Counting {
        inner: TsMemory::default(),
        loads: Arc::default(),
        latency: Duration::from_millis(1),
    };

    // Log in through one stack, then herd a second stack with a cold moka cache over the
    // same backing store.
    let login = SessionManagerLayer::new(CachingSessionStore::new(
        MokaStore::new(Some(10_000)),
        backing.clone(),
    ))
    .with_secure(false)
    .layer(service_fn(move |request: Req| {
        let id = customer.id;
        async move {
            let session = request
                .extensions()
                .get::<Session>()
                .cloned()
                .expect("layer");
            session.insert("customer_id", id).await.expect("store");
            let response = http::Response::new(http_body_util::Full::<bytes::Bytes>::default());
            Ok::<_, std::convert::Infallible>(response)
        }
    }));
    let response = login.oneshot(common::plain_request()).await.expect("login");
    let set_cookie = response.headers()[http::header::SET_COOKIE]
        .to_str()
        .expect("ASCII");
    let cookie = set_cookie.split(';').next().expect("pair").to_owned();
    let value = cookie.strip_prefix("id=").expect("default name").to_owned();

    let service = SessionManagerLayer::new(CachingSessionStore::new(
        MokaStore::new(Some(10_000)),
        backing.clone(),
    ))
    .with_secure(false)
    .layer(service_fn(|request: Req| async move {
        let session = request
            .extensions()
            .get::<Session>()
            .cloned()
            .expect("layer");
        let id: Option<Uuid> = session.get("customer_id").await.expect("store");
        let mut response = http::Response::new(http_body_util::Full::<bytes::Bytes>::default());
        if id.is_none() {
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        Ok::<_, std::convert::Infallible>(response)
    }));
    let before = backing.loads.load(Ordering::Relaxed);
    let requests = (0..1_000)
        .map(|_| common::cookie_request("id", &value))
        .collect();
    let (statuses, elapsed) = herd(service, requests).await;
    Herd {
        system: "tower-sessions CachingSessionStore<MokaStore, _>",
        loads: backing.loads.load(Ordering::Relaxed) - before,
        ok: statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        elapsed,
    }
}

struct Flood {
    kind: &'static str,
    live: usize,
    flood: usize,
    flood_loads: usize,
    flood_rejected: usize,
    flood_elapsed: Duration,
    cached_before: u64,
    cached_after: u64,
    after_loads: usize,
}

/// Run `requests` through `service`, `concurrency` at a time; returns the statuses.
async fn run_all<S, B>(service: S, requests: Vec<Req>, concurrency: usize) -> Vec<StatusCode>
where
    S: tower::Service<Req, Response = http::Response<B>> + Clone + Send + 'static,
    B: Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let chunk = requests.len().div_ceil(concurrency);
    let mut requests = requests;
    let mut tasks = Vec::new();
    while !requests.is_empty() {
        let rest = requests.split_off(chunk.min(requests.len()));
        let mine = std::mem::replace(&mut requests, rest);
        let mut service = service.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::with_capacity(mine.len());
            for request in mine {
                let response = service
                    .ready()
                    .await
                    .expect("ready")
                    .call(request)
                    .await
                    .expect("infallible");
                statuses.push(response.status());
            }
            statuses
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.extend(task.await.expect("task"));
    }
    statuses
}

async fn flood(kind: &'static str, well_formed: bool) -> Flood {
    const LIVE: usize = 50_000;
    const FLOOD: usize = 100_000;
    let memory = MemoryStore::new();
    let store = bench_store(memory.clone());
    // Default cache sizes: 100,000 sessions, 10,000 negative entries for 5 s.
    let sessions = tower_customer_session::SessionManager::builder(store.clone())
        .secret(common::SECRET)
        .build()
        .unwrap();
    let tokens = populate(&memory, &sessions, LIVE, Spread::CustomerPerSession).await;
    let service = CustomerSessionLayer::new(sessions.clone()).layer(service_fn(customer_handler));

    let live: Vec<Req> = tokens.iter().map(|t| bearer_request(t)).collect();
    let warm = run_all(service.clone(), live.clone(), 64).await;
    assert!(warm.iter().all(|s| *s == StatusCode::OK));
    let cached_before = sessions.cached_sessions();

    let attack: Vec<Req> = (0..FLOOD)
        .map(|_| {
            let token = unknown_token();
            bearer_request(&if well_formed {
                token
            } else {
                bad_checksum(&token)
            })
        })
        .collect();
    let loads_before = store.loads();
    let start = Instant::now();
    let statuses = run_all(service.clone(), attack, 64).await;
    let flood_elapsed = start.elapsed();
    let flood_loads = store.loads() - loads_before;
    let flood_rejected = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let cached_after = sessions.cached_sessions();

    let loads_before = store.loads();
    let again = run_all(service, live, 64).await;
    assert!(again.iter().all(|s| *s == StatusCode::OK));
    Flood {
        kind,
        live: LIVE,
        flood: FLOOD,
        flood_loads,
        flood_rejected,
        flood_elapsed,
        cached_before,
        cached_after,
        after_loads: store.loads() - loads_before,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let herds = [
        rt.block_on(herd_this_crate()),
        rt.block_on(herd_tower_sessions()),
    ];
    let floods = [
        rt.block_on(flood("well-formed random tokens", true)),
        rt.block_on(flood("bad-checksum tokens", false)),
    ];

    let mut out = String::new();
    writeln!(
        out,
        "1,000 concurrent first requests for one token, store latency 1 ms:"
    )
    .ok();
    writeln!(out).ok();
    writeln!(
        out,
        "| system | store loads | 200 responses | time until all answered |"
    )
    .ok();
    writeln!(out, "|---|---:|---:|---:|").ok();
    for h in &herds {
        writeln!(
            out,
            "| {} | {} | {} | {:.2} ms |",
            h.system,
            h.loads,
            h.ok,
            h.elapsed.as_secs_f64() * 1e3
        )
        .ok();
    }
    writeln!(out).ok();
    writeln!(
        out,
        "Flood against a warm cache of live sessions (this crate, default cache sizes):"
    )
    .ok();
    writeln!(out).ok();
    writeln!(
        out,
        "| flood | live sessions | flood requests | 401s | store loads during flood | flood time | flood req/s | cached before / after | live requests after | store loads | live hit rate after |"
    )
    .ok();
    writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    .ok();
    for f in &floods {
        let hit_rate = 1.0 - f.after_loads as f64 / f.live as f64;
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.0} ms | {:.0} | {} / {} | {} | {} | {:.2}% |",
            f.kind,
            f.live,
            f.flood,
            f.flood_rejected,
            f.flood_loads,
            f.flood_elapsed.as_secs_f64() * 1e3,
            f.flood as f64 / f.flood_elapsed.as_secs_f64(),
            f.cached_before,
            f.cached_after,
            f.live,
            f.after_loads,
            hit_rate * 100.0
        )
        .ok();
    }
    print!("{out}");
    std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/results")).ok();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/results/flood.md");
    std::fs::write(path, out).expect("write results");
}
