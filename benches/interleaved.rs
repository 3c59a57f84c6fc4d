//! The per-request rows of `middleware.rs` that the hit-path targets compare, without
//! criterion, in two modes:
//!
//! * `rounds ROW…`: every row is built once, then driven in rounds, each row a block of
//!   about 20 ms per round, the order rotated every round, so that load that comes and goes
//!   lands on all rows alike. Each round's ratios are taken within the round, and the tables
//!   report medians over the rounds (`ROUNDS`, default 21). The miss row also reports the
//!   process's CPU time per request, all threads together (`/proc/self/task/*/schedstat`,
//!   summed over all its blocks: the kernel updates it at scheduler ticks).
//! * `count ROW`: one row driven `ITERS` times (default 20,000) inside `measured_loop`, for
//!   `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_loop*'`
//!   (`benches/instructions.sh` does that): instruction counts stay the same on a loaded
//!   machine. They guide tuning; they are not time (a cache miss in the CPU is one
//!   instruction, and under valgrind SHA-256 runs without the CPU's SHA extensions).
//!
//! Rows, built like their namesakes in `middleware.rs`: `bare`, `tcs_hit_bearer`,
//! `tcs_negative_hit`, `bare_1k_templates`, `tcs_hit_1k`, `floor_1k`, `tcs_miss_load`
//! (`MISS_SESSIONS` sessions, default 100,000, through a cache of 1,000), `bare_1m_templates`,
//! `tcs_hit_1m`, `floor_1m`, `jwt_hs256`, `ts_memory`.
//!
//! Run: `cargo bench -p tower-customer-session-benches --bench interleaved -- rounds bare tcs_hit_bearer …`

// The floor's and the JWT's modules are shared with `middleware.rs`.
#![allow(missing_docs)]

mod common;
#[path = "middleware/floor.rs"]
mod floor;
#[path = "middleware/jwt.rs"]
mod jwt;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_customer_session::{
    Customer, CustomerSessionLayer, MemoryStore, SessionManager, SessionStore,
};

use common::requests::{Requests, bearer_in_order, shuffled_bearer};
use common::{Req, Spread, bearer_request, bench_store, builder, populate, unknown_token};

type Res = Response<Full<Bytes>>;

fn fixed(status: StatusCode) -> Res {
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    *response.status_mut() = status;
    response
}

async fn bare_handler(_request: Req) -> Result<Res, Infallible> {
    Ok(fixed(StatusCode::OK))
}

async fn customer_handler(request: Req) -> Result<Res, Infallible> {
    Ok(match request.extensions().get::<Customer>() {
        Some(customer) => {
            black_box(customer.id);
            fixed(StatusCode::OK)
        }
        None => fixed(StatusCode::INTERNAL_SERVER_ERROR),
    })
}

/// Drives `n` requests through one row, continuing where the last call stopped.
type Driver = Box<dyn FnMut(&Runtime, usize)>;

/// Check every request's status once, then hand out a driver.
fn driver<S, B>(rt: &Runtime, mut service: S, requests: Requests, expect: StatusCode) -> Driver
where
    S: Service<Req, Response = Response<B>> + 'static,
    S::Error: std::fmt::Debug,
    B: 'static,
{
    rt.block_on(call_all(&mut service, &requests, expect));
    let mut cursor = 0;
    Box::new(move |rt, n| {
        rt.block_on(async {
            for _ in 0..n {
                let request = requests.get(cursor);
                cursor = (cursor + 1) % requests.len();
                let response = service
                    .ready()
                    .await
                    .expect("ready")
                    .call(request)
                    .await
                    .expect("infallible");
                black_box(response);
            }
        })
    })
}

async fn call_all<S, B>(service: &mut S, requests: &Requests, expect: StatusCode)
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    for i in 0..requests.len() {
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(requests.get(i))
            .await
            .expect("infallible");
        assert_eq!(response.status(), expect);
    }
}

fn layered<St: SessionStore>(
    sessions: SessionManager<St>,
) -> impl Service<Req, Response = Response<impl Sized>, Error = Infallible> {
    CustomerSessionLayer::new(sessions).layer(service_fn(customer_handler))
}

fn populated(rt: &Runtime, n: usize, capacity: u64) -> (SessionManager<MemoryStore>, Vec<String>) {
    let store = MemoryStore::new();
    let sessions = builder(store.clone())
        .cache_capacity(capacity)
        .build()
        .unwrap();
    let tokens = rt.block_on(populate(&store, &sessions, n, Spread::CustomerPerSession));
    (sessions, tokens)
}

fn one(request: Req) -> Requests {
    Requests::Templates(vec![request])
}

/// `n` sessions cached in creation order, driven in random order.
fn hits(rt: &Runtime, n: usize) -> Driver {
    let (sessions, tokens) = populated(rt, n, (n as u64).max(100_000));
    let mut service = layered(sessions.clone());
    rt.block_on(call_all(
        &mut service,
        &bearer_in_order(&tokens),
        StatusCode::OK,
    ));
    assert_eq!(
        sessions.cached_sessions(),
        n as u64,
        "every session is cached"
    );
    driver(rt, service, shuffled_bearer(&tokens), StatusCode::OK)
}

fn floor_hits(rt: &Runtime, n: usize) -> Driver {
    let (mut service, tokens) = floor::setup(n);
    rt.block_on(call_all(
        &mut service,
        &bearer_in_order(&tokens),
        StatusCode::OK,
    ));
    driver(rt, service, shuffled_bearer(&tokens), StatusCode::OK)
}

fn bare_rotating(rt: &Runtime, n: usize) -> Driver {
    let tokens: Vec<String> = (0..n).map(|_| unknown_token()).collect();
    driver(
        rt,
        service_fn(bare_handler),
        shuffled_bearer(&tokens),
        StatusCode::OK,
    )
}

fn build(rt: &Runtime, row: &str, miss_sessions: usize) -> Driver {
    let ok = StatusCode::OK;
    match row {
        "bare" => driver(
            rt,
            service_fn(bare_handler),
            one(bearer_request(&unknown_token())),
            ok,
        ),
        "tcs_hit_bearer" => {
            let (sessions, tokens) = populated(rt, 1_000, 100_000);
            driver(rt, layered(sessions), one(bearer_request(&tokens[0])), ok)
        }
        "tcs_negative_hit" => {
            let (sessions, _) = populated(rt, 1_000, 100_000);
            let request = one(bearer_request(&unknown_token()));
            driver(rt, layered(sessions), request, StatusCode::UNAUTHORIZED)
        }
        "bare_1k_templates" => bare_rotating(rt, 1_000),
        "tcs_hit_1k" => hits(rt, 1_000),
        "floor_1k" => floor_hits(rt, 1_000),
        "bare_1m_templates" => bare_rotating(rt, 1_000_000),
        "tcs_hit_1m" => hits(rt, 1_000_000),
        "floor_1m" => floor_hits(rt, 1_000_000),
        "tcs_miss_load" => {
            let memory = MemoryStore::new();
            let store = bench_store(memory.clone());
            let sessions = builder(store.clone())
                .cache_capacity(1_000)
                .build()
                .unwrap();
            let tokens = rt.block_on(populate(
                &memory,
                &sessions,
                miss_sessions,
                Spread::CustomerPerSession,
            ));
            let requests = shuffled_bearer(&tokens);
            let mut service = layered(sessions);
            rt.block_on(call_all(&mut service, &requests, ok));
            let before = store.loads();
            rt.block_on(call_all(&mut service, &requests, ok));
            let loads = store.loads() - before;
            assert!(loads * 100 >= requests.len() * 95, "at least 95% misses");
            driver(rt, service, requests, ok)
        }
        "jwt_hs256" => {
            let (service, token) = jwt::setup();
            driver(rt, service, one(bearer_request(&token)), ok)
        }
        "ts_memory" => {
            let (service, request) = tower_sessions_memory(rt.handle().clone());
            driver(rt, service, one(request), ok)
        }
        other => panic!("unknown row {other}"),
    }
}

/// tower-sessions' `MemoryStore` with the customer id in the session, as `ts_memory` in
/// `middleware.rs`: the inner service reads the session and resolves the customer.
fn tower_sessions_memory(
    rt: tokio::runtime::Handle,
) -> (
    impl Service<Req, Response = Response<impl Sized>, Error = Infallible>,
    Req,
) {
    use tower_sessions::{MemoryStore as TsMemory, Session, SessionManagerLayer};
    let customer = Customer::new(common::demo_customer());
    let id = customer.id;
    let layer = SessionManagerLayer::new(TsMemory::default()).with_secure(false);
    let login = layer.layer(service_fn(move |request: Req| async move {
        let session = request
            .extensions()
            .get::<Session>()
            .cloned()
            .expect("layer");
        session
            .insert("customer_id", id)
            .await
            .expect("memory store");
        Ok::<_, Infallible>(fixed(StatusCode::OK))
    }));
    let response = rt
        .block_on(login.oneshot(common::plain_request()))
        .expect("login");
    let cookie = response.headers()[http::header::SET_COOKIE]
        .to_str()
        .expect("ASCII")
        .split(';')
        .next()
        .and_then(|pair| pair.strip_prefix("id="))
        .expect("tower-sessions' cookie")
        .to_owned();
    let by_id = service_fn(move |mut request: Req| {
        let customer = customer.clone();
        async move {
            let session = request
                .extensions()
                .get::<Session>()
                .cloned()
                .expect("layer");
            let found: Option<uuid::Uuid> = session.get("customer_id").await.expect("memory store");
            if found == Some(customer.id) {
                request.extensions_mut().insert(customer);
            }
            customer_handler(request).await
        }
    });
    (layer.layer(by_id), common::cookie_request("id", &cookie))
}

/// The loop callgrind counts; set-up and warm-up stay outside it.
#[inline(never)]
fn measured_loop(rt: &Runtime, drive: &mut Driver, iters: usize) {
    drive(rt, iters);
}

/// CPU time of every thread of this process so far (`/proc/self/task/*/schedstat`).
fn process_cpu() -> Duration {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").expect("procfs") {
        let path = task.expect("task").path().join("schedstat");
        if let Ok(stat) = std::fs::read_to_string(path) {
            total += stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The overhead ratios reported, as (row, its baseline, the row it is divided by, that
/// row's baseline); a row not run is skipped.
const RATIOS: &[(&str, &str, &str, &str)] = &[
    (
        "tcs_hit_1k",
        "bare_1k_templates",
        "floor_1k",
        "bare_1k_templates",
    ),
    (
        "tcs_hit_1m",
        "bare_1m_templates",
        "floor_1m",
        "bare_1m_templates",
    ),
    ("tcs_negative_hit", "bare", "tcs_hit_bearer", "bare"),
    ("ts_memory", "bare", "tcs_hit_bearer", "bare"),
    ("jwt_hs256", "bare", "tcs_hit_bearer", "bare"),
];

fn rounds(rt: &Runtime, rows: &[String], miss_sessions: usize) {
    let rounds: usize = env("ROUNDS", 21);
    let mut drivers: Vec<(String, Driver, usize)> = rows
        .iter()
        .map(|row| {
            eprintln!("building {row}");
            let mut drive = build(rt, row, miss_sessions);
            // Calibrate a block to about 20 ms.
            let started = Instant::now();
            drive(rt, 1_000);
            let per = started.elapsed().as_secs_f64() / 1_000.0;
            let block = ((0.02 / per) as usize).clamp(100, 1_000_000);
            (row.clone(), drive, block)
        })
        .collect();
    // ns per request of every row, by round.
    let mut times = vec![vec![0.0; drivers.len()]; rounds];
    let (mut miss_cpu, mut misses) = (Duration::ZERO, 0);
    for (round, times) in times.iter_mut().enumerate() {
        for k in 0..drivers.len() {
            let i = (k + round) % drivers.len();
            let (row, drive, block) = &mut drivers[i];
            let cpu = process_cpu();
            let started = Instant::now();
            drive(rt, *block);
            times[i] = started.elapsed().as_nanos() as f64 / *block as f64;
            if row == "tcs_miss_load" {
                miss_cpu += process_cpu() - cpu;
                misses += *block;
            }
        }
        eprintln!("round {}/{rounds}", round + 1);
    }
    let index = |name: &str| rows.iter().position(|r| r == name);
    println!("| row | ns per request (median of {rounds} rounds) | lowest | highest |");
    println!("|---|---:|---:|---:|");
    for (i, row) in rows.iter().enumerate() {
        let mut column: Vec<f64> = times.iter().map(|t| t[i]).collect();
        let m = median(&mut column);
        println!(
            "| {row} | {m:.0} | {:.0} | {:.0} |",
            column[0],
            column[column.len() - 1]
        );
    }
    if misses > 0 {
        println!(
            "\ntcs_miss_load: CPU per request, all threads of the process, over all its blocks: {:.0} ns",
            miss_cpu.as_nanos() as f64 / misses as f64
        );
    }
    println!(
        "\n| overhead | ÷ overhead | ratio (median of the rounds' ratios) | lowest | highest |"
    );
    println!("|---|---|---:|---:|---:|");
    for &(row, base, other, other_base) in RATIOS {
        let (Some(r), Some(b), Some(o), Some(ob)) =
            (index(row), index(base), index(other), index(other_base))
        else {
            continue;
        };
        let mut ratios: Vec<f64> = times
            .iter()
            .map(|t| (t[r] - t[b]) / (t[o] - t[ob]))
            .collect();
        let m = median(&mut ratios);
        println!(
            "| {row} − {base} | {other} − {other_base} | {m:.2} | {:.2} | {:.2} |",
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; only the other arguments count.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match args.first().map(String::as_str) {
        Some("count") => {
            let row = args.get(1).expect("count ROW");
            let mut drive = build(&rt, row, env("MISS_SESSIONS", 20_000));
            measured_loop(&rt, &mut drive, env("ITERS", 20_000));
        }
        Some("rounds") => rounds(&rt, &args[1..], env("MISS_SESSIONS", 100_000)),
        // `cargo bench --benches` runs every target with no arguments: a quick check.
        _ => rounds(&rt, &["bare".into(), "tcs_hit_bearer".into()], 1_000),
    }
}
