//! Instructions per request, for `valgrind --tool=callgrind`: counts that stay the same on
//! a loaded machine, where wall-clock timings do not. They guide tuning; they are no
//! substitute for `middleware` (instructions are not time: a cache miss in the CPU costs
//! one instruction and a hundred cycles).
//!
//! Each row is built like its namesake in `middleware.rs`, warmed by one call per request
//! (status checked), then driven `ITERS` times (default 20,000) inside `measured_loop`, the
//! only function callgrind counts:
//!
//! ```text
//! cargo bench -p tower-customer-session-benches --bench instructions --no-run
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_loop*' \
//!     target/release/deps/instructions-<hash> tcs_hit_1k
//! ```
//!
//! and divide the reported `Collected` by `ITERS`. Rows: `bare`, `tcs_hit_bearer`,
//! `tcs_negative_hit`, `tcs_malformed`, `bare_1k_templates`, `tcs_hit_1k`, `floor_1k`,
//! `tcs_miss_load` (20,000 sessions through a cache of 1,000), `jwt_hs256`.

// The floor's module is shared with `middleware.rs`.
#![allow(missing_docs)]

mod common;
#[path = "middleware/floor.rs"]
mod floor;
#[path = "middleware/jwt.rs"]
mod jwt;

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_customer_session::{Customer, CustomerSessionLayer, MemoryStore, SessionManager};

use common::requests::{Requests, bearer_in_order, shuffled_bearer};
use common::{
    Req, Spread, bad_checksum, bearer_request, bench_store, builder, populate, unknown_token,
};

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

/// Call every request once and check its status.
async fn check<S, B>(service: &mut S, requests: &Requests, expect: StatusCode)
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

/// The loop callgrind counts; everything else (set-up, warm-up) is outside it.
#[inline(never)]
fn measured_loop<S, B>(rt: &Runtime, service: &mut S, requests: &Requests, iters: usize)
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async {
        for i in 0..iters {
            let request = requests.get(i % requests.len());
            let response = service
                .ready()
                .await
                .expect("ready")
                .call(request)
                .await
                .expect("infallible");
            black_box(response);
        }
    });
}

fn run<S, B>(rt: &Runtime, mut service: S, requests: Requests, expect: StatusCode, iters: usize)
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(check(&mut service, &requests, expect));
    measured_loop(rt, &mut service, &requests, iters);
}

fn populated(rt: &Runtime, n: usize) -> (SessionManager<MemoryStore>, Vec<String>) {
    let store = MemoryStore::new();
    let sessions = builder(store.clone()).build().unwrap();
    let tokens = rt.block_on(populate(&store, &sessions, n, Spread::CustomerPerSession));
    (sessions, tokens)
}

fn layered<St: tower_customer_session::SessionStore>(
    sessions: SessionManager<St>,
) -> impl Service<Req, Response = Response<impl Sized>, Error = Infallible> {
    CustomerSessionLayer::new(sessions).layer(service_fn(customer_handler))
}

fn one(request: Req) -> Requests {
    Requests::Templates(vec![request])
}

fn main() {
    let row = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "tcs_hit_1k".to_owned());
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ok = StatusCode::OK;
    match row.as_str() {
        "bare" => run(
            &rt,
            service_fn(bare_handler),
            one(bearer_request(&unknown_token())),
            ok,
            iters,
        ),
        "tcs_hit_bearer" => {
            let (sessions, tokens) = populated(&rt, 1_000);
            run(
                &rt,
                layered(sessions),
                one(bearer_request(&tokens[0])),
                ok,
                iters,
            );
        }
        "tcs_negative_hit" => {
            let (sessions, _) = populated(&rt, 1_000);
            let request = one(bearer_request(&unknown_token()));
            run(
                &rt,
                layered(sessions),
                request,
                StatusCode::UNAUTHORIZED,
                iters,
            );
        }
        "tcs_malformed" => {
            let (sessions, tokens) = populated(&rt, 1_000);
            let request = one(bearer_request(&bad_checksum(&tokens[0])));
            run(
                &rt,
                layered(sessions),
                request,
                StatusCode::UNAUTHORIZED,
                iters,
            );
        }
        "bare_1k_templates" => {
            let tokens: Vec<String> = (0..1_000).map(|_| unknown_token()).collect();
            run(
                &rt,
                service_fn(bare_handler),
                shuffled_bearer(&tokens),
                ok,
                iters,
            );
        }
        "tcs_hit_1k" => {
            let (sessions, tokens) = populated(&rt, 1_000);
            let mut service = layered(sessions);
            rt.block_on(check(&mut service, &bearer_in_order(&tokens), ok));
            run(&rt, service, shuffled_bearer(&tokens), ok, iters);
        }
        "floor_1k" => {
            let (mut service, tokens) = floor::setup(1_000);
            rt.block_on(check(&mut service, &bearer_in_order(&tokens), ok));
            run(&rt, service, shuffled_bearer(&tokens), ok, iters);
        }
        "tcs_miss_load" => {
            let memory = MemoryStore::new();
            let store = bench_store(memory.clone());
            let sessions = builder(store).cache_capacity(1_000).build().unwrap();
            let tokens = rt.block_on(populate(
                &memory,
                &sessions,
                20_000,
                Spread::CustomerPerSession,
            ));
            let requests = shuffled_bearer(&tokens);
            let mut service = layered(sessions);
            rt.block_on(check(&mut service, &requests, ok));
            run(&rt, service, requests, ok, iters);
        }
        "jwt_hs256" => {
            let (service, token) = jwt::setup();
            run(&rt, service, one(bearer_request(&token)), ok, iters);
        }
        other => panic!("unknown row {other}"),
    }
}
