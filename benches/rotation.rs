//! What a session key rotation (`accept_secrets`) costs per request, against the same rows
//! without one, in one run: through `CustomerSessionLayer` over a `MemoryStore`, driven as
//! the per-request bench drives its rows (`ready().await` then `call`, prepared requests,
//! a current-thread runtime). `keys_N` is the number of other keys accepted.
//!
//! * `negative_hit`: a well-formed unknown token, answered by the negative cache.
//! * `miss_current`: 20,000 sessions stored under the current key, requested in random order
//!   through a cache of 1,000 entries, so nearly every request loads its session.
//! * `miss_oldest`: the same, the sessions stored under the last accepted key: every miss
//!   asks the store once per key before finding it.
//! * `unknown_no_negative_cache`: an unknown token with the negative cache off, so every
//!   request asks the store under every key (the first pass of a flood).
//! * `hit_1k`: 1,000 cached sessions in random order; with one accepted key, stored under
//!   the current key or under the accepted one (cached under the hash they are presented by).
//!
//! Each row's store loads per request are checked before it is timed.
//!
//! After criterion's rows, each row is run again interleaved with the row it is compared
//! with (alternating blocks of about a millisecond, in one loop): on a host shared with
//! other work, load that comes and goes between two criterion rows moves their ratio, and
//! interleaving spreads it over both. That table is printed at the end.
//!
//! Run: `cargo bench -p tower-customer-session-benches --bench rotation`, then `python3 benches/rotation_report.py` for the
//! criterion rows' table (about four minutes in all).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

mod common;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use http::{Response, StatusCode};
use http_body_util::Full;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_customer_session::{Customer, CustomerSessionLayer, MemoryStore, SessionManager};

use common::instrumented::Instrumented;
use common::requests::{Requests, bearer_in_order, shuffled_bearer};
use common::{Req, SECRET, Spread, bearer_request, bench_store, builder, populate, unknown_token};

/// Other keys, accepted in this order after the current one ([`SECRET`]).
const OTHER_KEYS: [&[u8]; 2] = [
    b"bench rotation key 1, 32 bytes!!",
    b"bench rotation key 2, 32 bytes!!",
];
const MISS_SESSIONS: usize = 20_000;

type Res = Response<Full<Bytes>>;
type Store = Instrumented<MemoryStore>;

async fn handler(request: Req) -> Result<Res, Infallible> {
    let status = match request.extensions().get::<Customer>() {
        Some(customer) => {
            black_box(customer.id);
            StatusCode::OK
        }
        None => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    *response.status_mut() = status;
    Ok(response)
}

/// A manager on `store` accepting the first `keys` of [`OTHER_KEYS`], with the bench
/// defaults and `cache_capacity`.
fn manager(store: &Store, keys: usize, cache_capacity: u64) -> SessionManager<Store> {
    builder(store.clone())
        .accept_secrets(&OTHER_KEYS[..keys])
        .cache_capacity(cache_capacity)
        .build()
        .unwrap()
}

/// `n` sessions stored in `store` under `key` (one customer each); their tokens.
fn sessions_under(rt: &Runtime, store: &Store, key: &[u8], n: usize) -> Vec<String> {
    let maker = SessionManager::builder(store.memory().clone())
        .secret(key)
        .build()
        .unwrap();
    rt.block_on(populate(
        store.memory(),
        &maker,
        n,
        Spread::CustomerPerSession,
    ))
}

/// Send every request once; check each status, and return the store loads they made.
async fn pass<S, B>(
    service: &mut S,
    store: &Store,
    requests: &Requests,
    expect: StatusCode,
) -> usize
where
    S: Service<Req, Response = Response<B>, Error = Infallible>,
{
    let before = store.loads();
    for i in 0..requests.len() {
        let response = service.ready().await.unwrap().call(requests.get(i)).await;
        assert_eq!(response.unwrap().status(), expect);
    }
    store.loads() - before
}

/// Time one row. `setup` runs only if the row is selected; it returns the service and its
/// requests, already checked.
fn row<S, B>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    id: &str,
    setup: impl FnOnce(&Runtime) -> (S, Requests),
) where
    S: Service<Req, Response = Response<B>, Error = Infallible>,
{
    let mut setup = Some(setup);
    let mut state = None;
    let mut cursor = 0;
    group.bench_function(id, |b| {
        let (service, requests) =
            state.get_or_insert_with(|| (setup.take().expect("runs once"))(rt));
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let request = requests.get(cursor);
                    cursor = (cursor + 1) % requests.len();
                    let response = service.ready().await.unwrap().call(request).await;
                    black_box(response.unwrap());
                }
                start.elapsed()
            })
        })
    });
}

fn layered(
    sessions: SessionManager<Store>,
) -> impl Service<Req, Response = Response<impl Sized>, Error = Infallible> {
    CustomerSessionLayer::new(sessions).layer(service_fn(handler))
}

/// What a row drives: a manager (behind the layer) and its requests, checked.
type Setup = (SessionManager<Store>, Requests);

/// An unknown token answered by the negative cache, with `keys` other keys accepted.
fn negative_hit(rt: &Runtime, keys: usize) -> Setup {
    let store = bench_store(MemoryStore::new());
    let sessions = manager(&store, keys, 100_000);
    let mut service = layered(sessions.clone());
    let requests = Requests::Templates(vec![bearer_request(&unknown_token())]);
    let unauthorized = StatusCode::UNAUTHORIZED;
    let first = rt.block_on(pass(&mut service, &store, &requests, unauthorized));
    assert_eq!(first, 1 + keys, "one lookup per key, once");
    let again = rt.block_on(pass(&mut service, &store, &requests, unauthorized));
    assert_eq!(again, 0, "then the negative cache answers");
    (sessions, requests)
}

/// [`MISS_SESSIONS`] sessions stored under `key`, requested in random order through a cache
/// of 1,000 by a manager accepting `keys` other keys, checked to cost `per_miss` loads a
/// miss.
fn miss(rt: &Runtime, keys: usize, key: &[u8], per_miss: usize) -> Setup {
    let store = bench_store(MemoryStore::new());
    let tokens = sessions_under(rt, &store, key, MISS_SESSIONS);
    let sessions = manager(&store, keys, 1_000);
    let mut service = layered(sessions.clone());
    let requests = shuffled_bearer(&tokens);
    rt.block_on(pass(&mut service, &store, &requests, StatusCode::OK));
    let loads = rt.block_on(pass(&mut service, &store, &requests, StatusCode::OK));
    assert_eq!(loads % per_miss, 0, "{per_miss} loads a miss");
    assert!(
        loads / per_miss * 100 >= MISS_SESSIONS * 95,
        "at least 95% misses"
    );
    (sessions, requests)
}

/// An unknown token with the negative cache off: every request asks under every key.
fn unknown_uncached(rt: &Runtime, keys: usize) -> Setup {
    let store = bench_store(MemoryStore::new());
    let sessions = builder(store.clone())
        .accept_secrets(&OTHER_KEYS[..keys])
        .negative_cache_capacity(0)
        .build()
        .unwrap();
    let mut service = layered(sessions.clone());
    let requests = Requests::Templates(vec![bearer_request(&unknown_token())]);
    for _ in 0..2 {
        let loads = rt.block_on(pass(
            &mut service,
            &store,
            &requests,
            StatusCode::UNAUTHORIZED,
        ));
        assert_eq!(loads, 1 + keys, "every request, every key");
    }
    (sessions, requests)
}

/// 1,000 sessions stored under `key`, all cached by a manager accepting `keys` other keys,
/// requested in random order.
fn hits(rt: &Runtime, keys: usize, key: &[u8]) -> Setup {
    let store = bench_store(MemoryStore::new());
    let tokens = sessions_under(rt, &store, key, 1_000);
    let sessions = manager(&store, keys, 100_000);
    let mut service = layered(sessions.clone());
    let warm = bearer_in_order(&tokens);
    let loads = rt.block_on(pass(&mut service, &store, &warm, StatusCode::OK));
    assert_eq!(loads, if key == SECRET { 1_000 } else { 2_000 });
    let requests = shuffled_bearer(&tokens);
    let loads = rt.block_on(pass(&mut service, &store, &requests, StatusCode::OK));
    assert_eq!(loads, 0, "every session cached: hits only");
    (sessions, requests)
}

/// A row's id and its set-up.
type Row = (String, Box<dyn Fn(&Runtime) -> Setup>);

/// Every row. The first of each kind has no other key.
fn rows() -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for keys in 0..=2 {
        rows.push((
            format!("negative_hit/keys_{keys}"),
            Box::new(move |rt| negative_hit(rt, keys)),
        ));
    }
    for keys in 0..=2 {
        rows.push((
            format!("miss_current/keys_{keys}"),
            Box::new(move |rt| miss(rt, keys, SECRET, 1)),
        ));
    }
    for keys in 1..=2 {
        rows.push((
            format!("miss_oldest/keys_{keys}"),
            Box::new(move |rt| miss(rt, keys, OTHER_KEYS[keys - 1], 1 + keys)),
        ));
    }
    for keys in 0..=2 {
        rows.push((
            format!("unknown_no_negative_cache/keys_{keys}"),
            Box::new(move |rt| unknown_uncached(rt, keys)),
        ));
    }
    rows.push(("hit_1k/keys_0".into(), Box::new(|rt| hits(rt, 0, SECRET))));
    rows.push((
        "hit_1k/keys_1_stored_under_current".into(),
        Box::new(|rt| hits(rt, 1, SECRET)),
    ));
    rows.push((
        "hit_1k/keys_1_stored_under_accepted".into(),
        Box::new(|rt| hits(rt, 1, OTHER_KEYS[0])),
    ));
    rows
}

/// The rows each is compared with in [`interleaved`]: (row, the row without rotation).
const PAIRS: [(&str, &str); 10] = [
    ("negative_hit/keys_1", "negative_hit/keys_0"),
    ("negative_hit/keys_2", "negative_hit/keys_0"),
    ("miss_current/keys_1", "miss_current/keys_0"),
    ("miss_current/keys_2", "miss_current/keys_0"),
    ("miss_oldest/keys_1", "miss_current/keys_0"),
    ("miss_oldest/keys_2", "miss_current/keys_0"),
    (
        "unknown_no_negative_cache/keys_1",
        "unknown_no_negative_cache/keys_0",
    ),
    (
        "unknown_no_negative_cache/keys_2",
        "unknown_no_negative_cache/keys_0",
    ),
    ("hit_1k/keys_1_stored_under_current", "hit_1k/keys_0"),
    (
        "hit_1k/keys_1_stored_under_accepted",
        "hit_1k/keys_1_stored_under_current",
    ),
];

/// Time `n` requests of `requests` from `cursor` on.
fn block<S, B>(
    rt: &Runtime,
    service: &mut S,
    requests: &Requests,
    cursor: &mut usize,
    n: usize,
) -> Duration
where
    S: Service<Req, Response = Response<B>, Error = Infallible>,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            let request = requests.get(*cursor);
            *cursor = (*cursor + 1) % requests.len();
            let response = service.ready().await.unwrap().call(request).await;
            black_box(response.unwrap());
        }
        start.elapsed()
    })
}

/// Each pair of [`PAIRS`] driven in alternating blocks of about a millisecond each, 301
/// rounds, the order swapped every round, so load from elsewhere on the host falls on both
/// rows alike. Load only ever adds time, so each row is summed up by its lower quartile
/// of block times (the least disturbed quarter), and the pair by the ratio of those; the
/// median of the round-by-round ratios is printed beside it. Skipped with
/// `ROTATION_INTERLEAVED=0`.
fn interleaved(rt: &Runtime, filter: &str) {
    const ROUNDS: usize = 301;
    if std::env::var("ROTATION_INTERLEAVED").as_deref() == Ok("0") {
        return;
    }
    let rows = rows();
    let setup = |id: &str| (rows.iter().find(|(r, _)| r == id).expect("a row").1)(rt);
    println!("\nInterleaved, {ROUNDS} rounds (ns per request: lower quartile of the blocks):\n");
    println!(
        "| row | ns | row without rotation | ns | ratio | ratio per round: median (quartiles) |"
    );
    println!("|---|---:|---|---:|---:|---:|");
    for (row, base) in PAIRS {
        if !row.contains(filter) && !base.contains(filter) {
            continue;
        }
        let (a, a_requests) = setup(row);
        let (b, b_requests) = setup(base);
        let mut services = [layered(a), layered(b)];
        let requests = [a_requests, b_requests];
        let mut cursors = [0, 0];
        // Blocks of about 1 ms, from a first block of 200 requests of the base row.
        let probe = block(rt, &mut services[1], &requests[1], &mut cursors[1], 200);
        let n = (200.0 * 1e-3 / probe.as_secs_f64()).clamp(50.0, 5_000.0) as usize;
        let mut per_request = [Vec::new(), Vec::new()];
        let mut ratios = Vec::new();
        for round in 0..ROUNDS {
            let mut t = [0.0; 2];
            for i in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
                let elapsed = block(rt, &mut services[i], &requests[i], &mut cursors[i], n);
                t[i] = elapsed.as_secs_f64() * 1e9 / n as f64;
                per_request[i].push(t[i]);
            }
            ratios.push(t[0] / t[1]);
        }
        let [a, b] = per_request.map(|mut v| quartiles(&mut v)[0]);
        let r = quartiles(&mut ratios);
        println!(
            "| {row} | {a:.0} | {base} | {b:.0} | {:.2} | {:.2} ({:.2}–{:.2}) |",
            a / b,
            r[1],
            r[0],
            r[2]
        );
    }
}

/// Lower quartile, median and upper quartile.
fn quartiles(values: &mut [f64]) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    let at = |q: usize| values[(values.len() - 1) * q / 4];
    [at(1), at(2), at(3)]
}

fn rotation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("key_rotation");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    row(&mut group, &rt, "bare", |_| {
        (
            service_fn(|_: Req| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }),
            Requests::Templates(vec![bearer_request(&unknown_token())]),
        )
    });
    for (id, setup) in rows() {
        row(&mut group, &rt, &id, |rt| {
            let (sessions, requests) = setup(rt);
            (layered(sessions), requests)
        });
    }
    group.finish();
    // The criterion filter, if any, also picks the interleaved pairs.
    let filter = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .unwrap_or_default();
    interleaved(&rt, &filter);
}

criterion_group!(benches, rotation);
criterion_main!(benches);
