//! Throughput on many threads: does anything in the layer serialise requests?
//!
//! Each thread owns a clone of one layered service and a tokio current-thread runtime, and
//! drives it as fast as it can (`ready().await` then `call`) for a fixed time, walking the
//! shared token set from its own offset. The rows run at 1 thread and at every other count
//! asked for; perfect scaling is N× the 1-thread rate, up to the number of cores.
//!
//! - `bare`: the handler alone, same requests.
//! - `hit`: 100,000 live sessions, all cached (filled in creation order, walked shuffled).
//! - `miss`: the same 100,000 sessions through a cache of 1,000 entries, so nearly every
//!   request misses, takes the in-flight map and an epoch stripe, loads from the
//!   `MemoryStore` and inserts: the path where a global lock would show.
//!
//! Run: `cargo bench -p tower-customer-session-benches --bench throughput` (1 thread and every core). Thread counts and time
//! per row: `THROUGHPUT_THREADS=1,2,4,8 THROUGHPUT_SECS=5 cargo bench -p tower-customer-session-benches --bench throughput`.
//! `cargo bench -p tower-customer-session-benches --bench throughput_mimalloc` runs the same rows with mimalloc as the global
//! allocator (`benches/results/throughput-mimalloc.md`): with glibc's allocator, memory
//! freed on another thread than the one that allocated it takes an arena lock, and the cache's
//! deferred frees do exactly that.
//!
//! Rows whose key (`bare`, `hit`, `miss`) contains the first argument run alone:
//! `cargo bench -p tower-customer-session-benches --bench throughput -- miss`. Writes `benches/results/throughput.md`.

mod common;

use std::convert::Infallible;
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_customer_session::{Customer, CustomerSessionLayer, MemoryStore, SessionManager};

use common::requests::{Requests, bearer_in_order, shuffled_bearer};
use common::{Req, Spread, builder, populate, unknown_token};

const SESSIONS: usize = 100_000;

type Res = Response<Full<Bytes>>;

async fn bare_handler(_request: Req) -> Result<Res, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

async fn customer_handler(request: Req) -> Result<Res, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    match request.extensions().get::<Customer>() {
        Some(customer) => black_box(customer.id),
        None => {
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return Ok(response);
        }
    };
    Ok(response)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Requests per second over `threads` threads, each driving its own clone of `service`.
fn run<S, B>(service: &S, requests: &Requests, threads: usize, time: Duration) -> f64
where
    S: Service<Req, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (mut service, requests) = (service.clone(), requests.unshared());
            let (stop, start) = (stop.clone(), start.clone());
            std::thread::spawn(move || {
                let rt = runtime();
                let mut i = t * requests.len() / threads;
                let mut done = 0u64;
                start.wait();
                let began = Instant::now();
                rt.block_on(async {
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..256 {
                            let request = requests.get(i);
                            i = (i + 1) % requests.len();
                            let response = service.ready().await.unwrap().call(request).await;
                            let response = response.unwrap();
                            assert_eq!(response.status(), StatusCode::OK);
                            done += 1;
                        }
                    }
                });
                done as f64 / began.elapsed().as_secs_f64()
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(time);
    stop.store(true, Ordering::Relaxed);
    workers.into_iter().map(|w| w.join().unwrap()).sum()
}

/// `SESSIONS` sessions, one customer each, behind a cache of `capacity`; tokens in creation
/// order.
fn populated(
    rt: &tokio::runtime::Runtime,
    capacity: u64,
) -> (SessionManager<MemoryStore>, Vec<String>) {
    let store = MemoryStore::new();
    let sessions = builder(store.clone())
        .cache_capacity(capacity)
        .build()
        .unwrap();
    let tokens = rt.block_on(populate(
        &store,
        &sessions,
        SESSIONS,
        Spread::CustomerPerSession,
    ));
    (sessions, tokens)
}

fn layered(
    sessions: &SessionManager<MemoryStore>,
) -> impl Service<Req, Response = Response<impl Sized>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    CustomerSessionLayer::new(sessions.clone()).layer(service_fn(customer_handler))
}

/// Requests per second of `service` at each thread count.
fn rates<S, B>(service: &S, requests: &Requests, threads: &[usize], time: Duration) -> Vec<f64>
where
    S: Service<Req, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    threads
        .iter()
        .map(|&n| run(service, requests, n, time))
        .collect()
}

fn thread_counts() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    match std::env::var("THROUGHPUT_THREADS") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("THROUGHPUT_THREADS: numbers, e.g. 1,2,4")
            })
            .collect(),
        Err(_) if cores > 1 => vec![1, cores],
        Err(_) => vec![1],
    }
}

fn main() {
    run_rows("throughput");
}

/// Run the selected rows and write `benches/results/{name}.md`.
pub fn run_rows(name: &str) {
    // Like criterion: the first argument that is not an option selects rows by name.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_default();
    let selected = |row: &str| row.contains(&filter);
    let threads = thread_counts();
    let time = Duration::from_secs_f64(
        std::env::var("THROUGHPUT_SECS").map_or(3.0, |s| s.parse().expect("THROUGHPUT_SECS")),
    );
    let rt = runtime();

    let mut rows: Vec<(&str, Vec<f64>)> = Vec::new();

    if selected("bare") {
        let tokens: Vec<String> = (0..SESSIONS).map(|_| unknown_token()).collect();
        let bare = service_fn(bare_handler);
        let requests = shuffled_bearer(&tokens);
        let rates = rates(&bare, &requests, &threads, time);
        rows.push(("bare (no authentication)", rates));
    }

    if selected("hit") {
        let (sessions, tokens) = populated(&rt, 2 * SESSIONS as u64);
        let layered = layered(&sessions);
        // Fill in creation order, as a server does; every timed request is then a hit.
        let warm = bearer_in_order(&tokens);
        rt.block_on(async {
            let mut service = layered.clone();
            for i in 0..warm.len() {
                let response = service.ready().await.unwrap().call(warm.get(i)).await;
                assert_eq!(response.unwrap().status(), StatusCode::OK);
            }
        });
        assert_eq!(sessions.cached_sessions(), SESSIONS as u64, "all cached");
        let rates = rates(&layered, &shuffled_bearer(&tokens), &threads, time);
        rows.push(("cache hit, 100,000 cached sessions", rates));
    }

    if selected("miss") {
        let (sessions, tokens) = populated(&rt, 1_000);
        let rates = rates(
            &layered(&sessions),
            &shuffled_bearer(&tokens),
            &threads,
            time,
        );
        rows.push((
            "miss + MemoryStore load, 100,000 sessions through 1,000 cached",
            rates,
        ));
    }

    let mut table = String::from("| row |");
    for n in &threads {
        write!(
            table,
            " {n} thread{} req/s |",
            if *n == 1 { "" } else { "s" }
        )
        .unwrap();
    }
    table.push_str(" scaling |\n|---|");
    for _ in &threads {
        table.push_str("---:|");
    }
    table.push_str("---|\n");
    for (name, rates) in &rows {
        write!(table, "| {name} |").unwrap();
        for rate in rates {
            write!(table, " {:.0} |", rate).unwrap();
        }
        let scaling: Vec<String> = rates
            .iter()
            .zip(&threads)
            .skip(1)
            .map(|(rate, n)| format!("{:.2}× at {n}", rate / rates[0]))
            .collect();
        writeln!(table, " {} |", scaling.join(", ")).unwrap();
    }
    println!("{table}");
    let out = format!("{}/results/{name}.md", env!("CARGO_MANIFEST_DIR"));
    std::fs::write(&out, &table).expect("write the results table");
}
