//! Per-request cost of authenticating a request, this crate against the anchors.
//!
//! Every row drives a ready tower service (`ready().await` then `call`) with a prepared
//! request (see [`Requests`]), on a tokio current-thread runtime, and awaits the response. Each
//! system resolves the credential to a customer, puts it where the handler reads it, and
//! calls a trivial handler that checks the customer is there and returns a fixed body.
//! Before measuring, every row is called once per request template and the status is
//! asserted, so a mis-wired row fails instead of measuring a rejection.
//!
//! Run: `cargo bench -p tower-customer-session-benches --bench middleware`; then `python3 benches/report.py` writes the
//! table and the chart to `benches/results/`. With `--features metrics` the rows run with a
//! Prometheus recorder installed, which measures what the metrics cost.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

mod common;
#[path = "middleware/floor.rs"]
mod floor;
#[path = "middleware/jwt.rs"]
mod jwt;

use std::collections::HashMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use http::header::{AUTHORIZATION, SET_COOKIE};
use http::{Response, StatusCode};
use http_body_util::Full;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_customer_session::{
    Customer, CustomerSessionLayer, MemoryStore, SessionCookie, SessionManager,
    SessionManagerBuilder, SessionStore,
};
use uuid::Uuid;

use common::requests::{Requests, bearer_in_order, shuffled_bearer};
use common::{
    COOKIE_NAME, Req, Spread, bad_checksum, bearer_request, bench_store, builder, cookie_request,
    populate, unknown_token,
};

type Res = Response<Full<Bytes>>;

fn fixed(status: StatusCode) -> Res {
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    *response.status_mut() = status;
    response
}

/// The handler without authentication: the baseline.
async fn bare_handler(_request: Req) -> Result<Res, Infallible> {
    Ok(fixed(StatusCode::OK))
}

/// The handler behind a layer: 200 only if the layer handed it a `Customer`.
async fn customer_handler(request: Req) -> Result<Res, Infallible> {
    Ok(match request.extensions().get::<Customer>() {
        Some(customer) => {
            black_box(customer.id);
            fixed(StatusCode::OK)
        }
        None => fixed(StatusCode::INTERNAL_SERVER_ERROR),
    })
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A single request, cloned for every call.
fn one(request: Req) -> Requests {
    Requests::Templates(vec![request])
}

/// A service under test and the requests it is driven with.
type Setup<S> = (S, Requests);

/// Measure one row. `setup` runs only if criterion's filter selects the row; it builds
/// the service and the request templates. Every template is called once and its status
/// checked (this also warms caches), then the measured calls cycle through the templates.
/// The cursor persists across samples so that large template sets are walked through
/// rather than re-reading the same prefix.
fn measure<S, B>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    id: &str,
    expect: StatusCode,
    setup: impl FnOnce(&Runtime) -> Setup<S>,
) where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut setup = Some(setup);
    let mut state: Option<Setup<S>> = None;
    let mut cursor = 0usize;
    group.bench_function(id, |b| {
        let (service, templates) = state.get_or_insert_with(|| {
            let (mut service, templates) = (setup.take().expect("runs once"))(rt);
            rt.block_on(check(&mut service, &templates, id, expect));
            (service, templates)
        });
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let request = templates.get(cursor);
                    cursor += 1;
                    if cursor == templates.len() {
                        cursor = 0;
                    }
                    let response = service
                        .ready()
                        .await
                        .expect("ready")
                        .call(request)
                        .await
                        .expect("infallible");
                    black_box(response);
                }
                start.elapsed()
            })
        })
    });
}

async fn check<S, B>(service: &mut S, templates: &Requests, id: &str, expect: StatusCode)
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    for i in 0..templates.len() {
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(templates.get(i))
            .await
            .expect("infallible");
        assert_eq!(
            response.status(),
            expect,
            "{id}: unexpected status ({:?})",
            response
                .extensions()
                .get::<tower_customer_session::Rejection>()
        );
    }
}

/// `service` warmed with every token in creation order, then driven in random order: the
/// cache's entries are laid out in memory in an order unrelated to the one timed.
fn warmed_in_creation_order<S, B>(
    rt: &Runtime,
    id: &str,
    mut service: S,
    tokens: &[String],
) -> Setup<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(check(
        &mut service,
        &bearer_in_order(tokens),
        id,
        StatusCode::OK,
    ));
    (service, shuffled_bearer(tokens))
}

/// This crate over a `MemoryStore` holding `n` sessions, one customer each; returns the
/// handle and the tokens.
fn populated(
    rt: &Runtime,
    n: usize,
    configure: impl FnOnce(SessionManagerBuilder<MemoryStore>) -> SessionManagerBuilder<MemoryStore>,
) -> (SessionManager<MemoryStore>, Vec<String>) {
    let store = MemoryStore::new();
    let sessions = configure(builder(store.clone())).build().unwrap();
    let tokens = rt.block_on(populate(&store, &sessions, n, Spread::CustomerPerSession));
    (sessions, tokens)
}

fn layered<St: SessionStore>(
    sessions: SessionManager<St>,
) -> impl Service<Req, Response = Response<impl Sized>, Error = Infallible> {
    CustomerSessionLayer::new(sessions).layer(service_fn(customer_handler))
}

fn this_crate(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
    let ok = StatusCode::OK;
    let unauthorized = StatusCode::UNAUTHORIZED;
    // The single-token rows run against an instance holding 1,000 sessions.
    let thousand = |rt: &Runtime| populated(rt, 1_000, |b| b);

    measure(group, rt, "bare", ok, |_| {
        (
            service_fn(bare_handler),
            one(bearer_request(&unknown_token())),
        )
    });
    measure(group, rt, "tcs_hit_bearer", ok, |rt| {
        let (sessions, tokens) = thousand(rt);
        (layered(sessions.clone()), one(bearer_request(&tokens[0])))
    });
    measure(group, rt, "tcs_hit_cookie", ok, |rt| {
        let (sessions, tokens) = thousand(rt);
        let name = SessionCookie::new(COOKIE_NAME).name().into_owned();
        let layer = CustomerSessionLayer::new(sessions).cookie(COOKIE_NAME);
        (
            layer.layer(service_fn(customer_handler)),
            one(cookie_request(&name, &tokens[0])),
        )
    });
    // The check call loads the unknown token once; every measured call is a negative hit.
    measure(group, rt, "tcs_negative_hit", unauthorized, |rt| {
        let (sessions, _) = thousand(rt);
        (
            layered(sessions.clone()),
            one(bearer_request(&unknown_token())),
        )
    });
    measure(group, rt, "tcs_malformed", unauthorized, |rt| {
        let (sessions, tokens) = thousand(rt);
        (
            layered(sessions.clone()),
            one(bearer_request(&bad_checksum(&tokens[0]))),
        )
    });

    // 1,000 live sessions requested in random order; the bare row is driven the same way.
    measure(group, rt, "bare_1k_templates", ok, |_| {
        (
            service_fn(bare_handler),
            shuffled_bearer(&unknown_tokens(1_000)),
        )
    });
    measure(group, rt, "tcs_hit_1k", ok, |rt| {
        let (sessions, tokens) = thousand(rt);
        warmed_in_creation_order(rt, "tcs_hit_1k", layered(sessions), &tokens)
    });
    measure(group, rt, "floor_1k", ok, |rt| {
        let (service, tokens) = floor::setup(1_000);
        warmed_in_creation_order(rt, "floor_1k", service, &tokens)
    });

    // Misses that load a live session: 100,000 sessions requested in turn through a cache
    // of 1,000 entries, so in steady state a request finds its session long evicted, loads
    // it and inserts it (evicting or being refused admission). A counting store checks that.
    measure(group, rt, "tcs_miss_load", ok, |rt| {
        let memory = MemoryStore::new();
        let store = bench_store(memory.clone());
        let sessions = builder(store.clone())
            .cache_capacity(1_000)
            .build()
            .unwrap();
        let tokens = rt.block_on(populate(
            &memory,
            &sessions,
            100_000,
            Spread::CustomerPerSession,
        ));
        let templates = shuffled_bearer(&tokens);
        let mut service = layered(sessions);
        rt.block_on(check(&mut service, &templates, "tcs_miss_load", ok));
        let before = store.loads();
        rt.block_on(check(&mut service, &templates, "tcs_miss_load", ok));
        let loads = store.loads() - before;
        eprintln!(
            "tcs_miss_load: {loads} store loads for {} requests",
            templates.len()
        );
        assert!(loads * 100 >= templates.len() * 99, "at least 99% misses");
        (service, templates)
    });
    // Unknown tokens with the negative cache switched off: every request asks the store.
    measure(
        group,
        rt,
        "tcs_miss_unknown_no_negative_cache",
        unauthorized,
        |rt| {
            let (sessions, _) = populated(rt, 1_000, |b| b.negative_cache_capacity(0));
            (
                layered(sessions.clone()),
                one(bearer_request(&unknown_token())),
            )
        },
    );

    // 1,000,000 live sessions requested in random order; the bare row is driven the same way.
    measure(group, rt, "bare_1m_templates", ok, |_| {
        (
            service_fn(bare_handler),
            shuffled_bearer(&unknown_tokens(1_000_000)),
        )
    });
    measure(group, rt, "tcs_hit_1m", ok, |rt| {
        let (sessions, tokens) = populated(rt, 1_000_000, |b| b.cache_capacity(1 << 20));
        let setup = warmed_in_creation_order(rt, "tcs_hit_1m", layered(sessions.clone()), &tokens);
        assert_eq!(
            sessions.cached_sessions(),
            1_000_000,
            "every session is cached"
        );
        setup
    });
    measure(group, rt, "floor_1m", ok, |rt| {
        let (service, tokens) = floor::setup(1_000_000);
        warmed_in_creation_order(rt, "floor_1m", service, &tokens)
    });
}

fn unknown_tokens(n: usize) -> Vec<String> {
    (0..n).map(|_| unknown_token()).collect()
}

/// A stateless JWT instead of a session: decoded and validated on every request.
fn jwt_row(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
    measure(group, rt, "jwt_hs256", StatusCode::OK, |_| {
        let (service, token) = jwt::setup();
        (service, one(bearer_request(&token)))
    });
}

fn tower_http(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
    // The floor: one static token compared with `==`, no principal at all.
    measure(group, rt, "th_validate_bearer", StatusCode::OK, |_| {
        let token = unknown_token();
        #[allow(deprecated)]
        let layer = tower_http::validate_request::ValidateRequestHeaderLayer::bearer(&token);
        (
            layer.layer(service_fn(bare_handler)),
            one(bearer_request(&token)),
        )
    });

    // A hand-written authorizer: raw token → customer from a map of 1,000 (std `RwLock`),
    // inserted into the extensions. No hashing, no constant-time compare, no expiry.
    measure(group, rt, "th_async_authorize_map", StatusCode::OK, |_| {
        let tokens = unknown_tokens(1_000);
        let map: HashMap<String, Customer> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), Customer::new(common::demo_customer_n(i))))
            .collect();
        let map = Arc::new(RwLock::new(map));
        let authorize = move |mut request: Req| {
            let customer = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .and_then(|t| map.read().expect("not poisoned").get(t).cloned());
            let outcome = match customer {
                Some(customer) => {
                    request.extensions_mut().insert(customer);
                    Ok(request)
                }
                None => Err(fixed(StatusCode::UNAUTHORIZED)),
            };
            std::future::ready(outcome)
        };
        let layer = tower_http::auth::AsyncRequireAuthorizationLayer::new(authorize);
        (
            layer.layer(service_fn(customer_handler)),
            one(bearer_request(&tokens[0])),
        )
    });
}

/// The session cookie value from a tower-sessions `Set-Cookie` (`id=…; HttpOnly; …`).
fn session_cookie(response: &Response<impl Sized>) -> String {
    let header = response
        .headers()
        .get(SET_COOKIE)
        .expect("the login response sets the session cookie")
        .to_str()
        .expect("ASCII");
    let pair = header.split(';').next().expect("a cookie pair");
    pair.strip_prefix("id=")
        .expect("tower-sessions' default cookie name")
        .to_owned()
}

/// tower-sessions: the session holds the customer id; the inner service loads the
/// session (`Session::get`), resolves the customer from the application's customer map
/// and inserts it for the handler.
fn tower_sessions_rows(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
    use tower_sessions::{
        CachingSessionStore, MemoryStore as TsMemory, Session, SessionManagerLayer,
    };
    use tower_sessions_moka_store::MokaStore;

    let customer = Customer::new(common::demo_customer());
    let customers: Arc<HashMap<Uuid, Customer>> =
        Arc::new([(customer.id, customer.clone())].into_iter().collect());

    fn login_inner(
        key: &'static str,
        value: serde_json::Value,
    ) -> impl Service<Req, Response = Res, Error = Infallible, Future: Send> + Clone {
        service_fn(move |request: Req| {
            let value = value.clone();
            async move {
                let session = request
                    .extensions()
                    .get::<Session>()
                    .cloned()
                    .expect("layer");
                session.insert(key, value).await.expect("memory store");
                Ok::<_, Infallible>(fixed(StatusCode::OK))
            }
        })
    }

    let by_id = {
        let customers = customers.clone();
        service_fn(move |mut request: Req| {
            let customers = customers.clone();
            async move {
                let session = request
                    .extensions()
                    .get::<Session>()
                    .cloned()
                    .expect("layer");
                let id: Option<Uuid> = session.get("customer_id").await.expect("memory store");
                if let Some(customer) = id.and_then(|id| customers.get(&id).cloned()) {
                    request.extensions_mut().insert(customer);
                }
                customer_handler(request).await
            }
        })
    };
    let full_customer = service_fn(|mut request: Req| async move {
        let session = request
            .extensions()
            .get::<Session>()
            .cloned()
            .expect("layer");
        let data: Option<tower_customer_session::model::CustomerData> =
            session.get("customer").await.expect("memory store");
        if let Some(data) = data {
            request.extensions_mut().insert(Customer::new(data));
        }
        customer_handler(request).await
    });

    let id_value = serde_json::to_value(customer.id).expect("uuid");
    let full_value = serde_json::to_value(&customer).expect("customer");

    // MemoryStore, customer id in the session.
    measure(group, rt, "ts_memory", StatusCode::OK, |rt| {
        let layer = SessionManagerLayer::new(TsMemory::default()).with_secure(false);
        let cookie = login(
            rt,
            layer.layer(login_inner("customer_id", id_value.clone())),
        );
        (
            layer.layer(by_id.clone()),
            one(cookie_request("id", &cookie)),
        )
    });

    // MemoryStore, the whole customer serialized in the session.
    measure(group, rt, "ts_memory_full_customer", StatusCode::OK, |rt| {
        let layer = SessionManagerLayer::new(TsMemory::default()).with_secure(false);
        let cookie = login(rt, layer.layer(login_inner("customer", full_value)));
        (
            layer.layer(full_customer),
            one(cookie_request("id", &cookie)),
        )
    });

    // Moka in front of MemoryStore.
    measure(group, rt, "ts_caching_moka", StatusCode::OK, |rt| {
        let store = CachingSessionStore::new(MokaStore::new(Some(10_000)), TsMemory::default());
        let layer = SessionManagerLayer::new(store).with_secure(false);
        let cookie = login(rt, layer.layer(login_inner("customer_id", id_value)));
        (layer.layer(by_id), one(cookie_request("id", &cookie)))
    });
}

/// One request through a login stack; returns the session cookie it set.
fn login<S>(rt: &Runtime, service: S) -> String
where
    S: Service<Req, Response = Res>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async {
        let response = service
            .oneshot(common::plain_request())
            .await
            .expect("login");
        assert_eq!(response.status(), StatusCode::OK);
        session_cookie(&response)
    })
}

/// axum-login on tower-sessions: the layer loads the session and the user (`get_user`)
/// on every request; the inner service takes the user from `AuthSession`.
fn axum_login_rows(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
    use axum_login::{AuthManagerLayerBuilder, AuthSession};
    use common::auth_backend::{Backend, User};
    use tower_sessions::{CachingSessionStore, MemoryStore as TsMemory, SessionManagerLayer};
    use tower_sessions_moka_store::MokaStore;

    let user = User {
        customer: Customer::new(common::demo_customer()),
        auth_hash: [7; 32],
    };
    let backend = Backend {
        users: Arc::new([(user.customer.id, user.clone())].into_iter().collect()),
    };
    let login_inner = service_fn(move |request: Req| {
        let user = user.clone();
        async move {
            let mut auth = request
                .extensions()
                .get::<AuthSession<Backend>>()
                .cloned()
                .expect("layer");
            auth.login(&user).await.expect("login");
            Ok::<_, Infallible>(fixed(StatusCode::OK))
        }
    });
    let read_inner = service_fn(|mut request: Req| async move {
        let user = request
            .extensions()
            .get::<AuthSession<Backend>>()
            .and_then(|auth| auth.user.clone());
        if let Some(user) = user {
            request.extensions_mut().insert(user.customer);
        }
        customer_handler(request).await
    });

    measure(group, rt, "al_memory", StatusCode::OK, |rt| {
        let sessions = SessionManagerLayer::new(TsMemory::default()).with_secure(false);
        let layer = AuthManagerLayerBuilder::new(backend.clone(), sessions).build();
        let cookie = login(rt, layer.layer(login_inner.clone()));
        (layer.layer(read_inner), one(cookie_request("id", &cookie)))
    });

    measure(group, rt, "al_caching_moka", StatusCode::OK, |rt| {
        let store = CachingSessionStore::new(MokaStore::new(Some(10_000)), TsMemory::default());
        let sessions = SessionManagerLayer::new(store).with_secure(false);
        let layer = AuthManagerLayerBuilder::new(backend, sessions).build();
        let cookie = login(rt, layer.layer(login_inner));
        (layer.layer(read_inner), one(cookie_request("id", &cookie)))
    });
}

fn per_request(c: &mut Criterion) {
    // With feature `metrics`, measure with a real recorder (Prometheus's) rather than the
    // facade's no-op: the cost an operator pays. Installed before any manager is built.
    #[cfg(feature = "metrics")]
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder");
    let rt = runtime();
    let mut group = c.benchmark_group("per_request");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    this_crate(&mut group, &rt);
    jwt_row(&mut group, &rt);
    tower_http(&mut group, &rt);
    tower_sessions_rows(&mut group, &rt);
    axum_login_rows(&mut group, &rt);
    group.finish();
}

criterion_group!(benches, per_request);
criterion_main!(benches);
