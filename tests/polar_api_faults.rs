//! `PolarApiStore` against a misbehaving upstream: an axum server on a free port that answers
//! each request as the test says (5xx, 429 with `Retry-After`, a hang, garbage, an oversized
//! body, 401), plus a port nothing listens on. Whatever Polar does wrong, the layer answers
//! `503` (never `401`, never a pass-through), passes Polar's `Retry-After` on, never calls the
//! handler, caches no error, and logs no token.

#![cfg(feature = "polar-api")]

#[path = "common/log_capture.rs"]
mod log_capture;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;
use tower_customer_session::store::polar::PolarApiStore;
use tower_customer_session::token::{SessionToken, TokenFormat, TokenKind};
use tower_customer_session::{CustomerSessionLayer, SessionManager};
use uuid::{Uuid, uuid};

const CUSTOMER_ID: Uuid = uuid!("992fae2a-2a17-4b7a-8d9e-e287cf90131b");
const CUSTOMER: &str = include_str!("fixtures/polar/customer.json");
const ORG_TOKEN: &str = "polar_oat_faultTestOrganizationToken0123456789abcdef";
const STORE_TIMEOUT: Duration = Duration::from_millis(500);

/// How the upstream answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Polar's answers for a valid customer session.
    Healthy,
    /// This status, empty body, on every endpoint.
    Status(u16),
    /// This status on `GET /v1/customers/{id}` only (the second round), healthy otherwise.
    CustomerEndpoint(u16),
    /// `429` with this `Retry-After`.
    RateLimited(&'static str),
    /// Never answers in time.
    Hang,
    /// `200` with HTML.
    Garbage,
    /// `200` with JSON of another shape.
    WrongShape,
    /// `200` with a body far larger than any Polar answer.
    Huge,
    /// Polar's `401 invalid_token`.
    Unauthorized,
}

#[derive(Clone)]
struct Upstream {
    fault: Arc<Mutex<Fault>>,
    calls: Arc<AtomicUsize>,
}

impl Upstream {
    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn upstream_answer(State(upstream): State<Upstream>, request: Request) -> Response {
    upstream.calls.fetch_add(1, Ordering::SeqCst);
    let path = request.uri().path().to_owned();
    let fault = *upstream.fault.lock().unwrap();
    let status = |code: u16| StatusCode::from_u16(code).unwrap().into_response();
    match fault {
        Fault::Status(code) => status(code),
        Fault::CustomerEndpoint(code) if path.starts_with("/v1/customers/") => status(code),
        Fault::RateLimited(after) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", after)],
            r#"{"detail":"Too Many Requests"}"#,
        )
            .into_response(),
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            status(200)
        }
        Fault::Garbage => (
            [("content-type", "text/html")],
            "<html><body>Bad gateway, but with a 200</body></html>",
        )
            .into_response(),
        Fault::WrongShape => axum::Json(json!({"unexpected": true})).into_response(),
        Fault::Huge => "[".repeat(2 * 1024 * 1024).into_response(),
        Fault::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            r#"{"error":"invalid_token","error_description":"The access token provided is expired, revoked, malformed, or invalid for other reasons."}"#,
        )
            .into_response(),
        Fault::Healthy | Fault::CustomerEndpoint(_) => healthy(&path),
    }
}

/// What Polar answers for a valid session of the fixture customer.
fn healthy(path: &str) -> Response {
    let expires_at = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let body = match path {
        "/v1/customer-portal/customer-session/introspect" => {
            json!({"expires_at": expires_at, "return_url": null}).to_string()
        }
        "/v1/customer-portal/customer-session/user" => json!({
            "type": "customer", "name": "John Doe", "email": "customer@example.com",
            "customer_id": CUSTOMER_ID, "member_id": null, "role": null
        })
        .to_string(),
        _ if path == format!("/v1/customers/{CUSTOMER_ID}") => CUSTOMER.to_owned(),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([("content-type", "application/json")], body).into_response()
}

async fn upstream() -> (String, Upstream) {
    let upstream = Upstream {
        fault: Arc::new(Mutex::new(Fault::Healthy)),
        calls: Arc::default(),
    };
    let router = Router::new()
        .fallback(upstream_answer)
        .with_state(upstream.clone());
    (serve(router).await, upstream)
}

async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// A merchant route on `PolarApiStore` towards `api`; returns its base URL and a counter of
/// the requests that reached the handler.
async fn merchant(api: &str) -> (String, Arc<AtomicUsize>) {
    merchant_with(api, 64).await
}

async fn merchant_with(api: &str, max_concurrent_loads: usize) -> (String, Arc<AtomicUsize>) {
    let store = PolarApiStore::builder()
        .base_url(api)
        .organization_token(ORG_TOKEN)
        .max_concurrent_loads(max_concurrent_loads)
        .build()
        .unwrap();
    let sessions = SessionManager::builder(store)
        .secret(b"fault test secret, 32 bytes long")
        .store_timeout(STORE_TIMEOUT)
        .build()
        .unwrap();
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let router = Router::new()
        .route(
            "/me",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "the handler ran" }
            }),
        )
        .route_layer(CustomerSessionLayer::new(sessions));
    (serve(router).await, reached)
}

fn fresh_token() -> SessionToken {
    TokenFormat::polar().generate(TokenKind::Customer).unwrap()
}

async fn get_me(base: &str, token: &SessionToken) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}/me"))
        .bearer_auth(token.expose_secret())
        .send()
        .await
        .unwrap()
}

/// The layer's answer to an unavailable store: `503`, `Retry-After`, no challenge.
fn assert_unavailable(response: &reqwest::Response, retry_after: &str, case: &str) {
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{case}: never 401, never a pass-through"
    );
    assert_eq!(
        response.headers()["retry-after"],
        retry_after,
        "{case}: Retry-After"
    );
    assert!(
        response.headers().get("www-authenticate").is_none(),
        "{case}: a 503 challenges nobody"
    );
}

// One thread, so the log capture sees the servers' and the client's logs too.
#[tokio::test(flavor = "current_thread")]
async fn every_upstream_failure_answers_503_and_never_reaches_the_handler() {
    let logs = log_capture::LogCapture::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let (api, upstream) = upstream().await;
    let (merchant, reached) = merchant(&api).await;
    let mut tokens = Vec::new();

    for (fault, retry_after) in [
        (Fault::Status(500), "1"),
        (Fault::Status(502), "1"),
        (Fault::Status(503), "1"),
        (Fault::Status(403), "1"),
        (Fault::CustomerEndpoint(500), "1"),
        // The organization token refused is the merchant's problem, not the customer's.
        (Fault::CustomerEndpoint(401), "1"),
        (Fault::RateLimited("7"), "7"),
        // A 429 without a usable Retry-After gets the layer's own.
        (Fault::RateLimited("soon"), "1"),
        (Fault::Garbage, "1"),
        (Fault::WrongShape, "1"),
        (Fault::Huge, "1"),
        (Fault::Hang, "1"),
    ] {
        upstream.set(fault);
        let token = fresh_token();
        let started = Instant::now();
        let response = get_me(&merchant, &token).await;
        assert_unavailable(&response, retry_after, &format!("{fault:?}"));
        assert!(
            started.elapsed() < STORE_TIMEOUT + Duration::from_secs(1),
            "{fault:?}: answered after {:?}",
            started.elapsed()
        );
        tokens.push(token);
    }
    assert_eq!(reached.load(Ordering::SeqCst), 0, "the handler never ran");

    // Errors are never cached: once Polar is back, the same tokens work.
    upstream.set(Fault::Healthy);
    for token in &tokens {
        let response = get_me(&merchant, token).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(reached.load(Ordering::SeqCst), tokens.len());

    let text = logs.text();
    assert!(
        text.contains("answered HTTP 500"),
        "failures are logged with their cause"
    );
    for token in &tokens {
        let raw = token.expose_secret();
        let random = &raw[10..47];
        assert!(
            !text.contains(raw) && !text.contains(random),
            "a token reached the logs"
        );
    }
    assert!(
        !text.contains(ORG_TOKEN),
        "the organization token reached the logs"
    );
}

#[tokio::test]
async fn polar_refusing_the_token_is_a_401_remembered_by_the_negative_cache() {
    let (api, upstream) = upstream().await;
    let (merchant, reached) = merchant(&api).await;
    upstream.set(Fault::Unauthorized);
    let token = fresh_token();
    let response = get_me(&merchant, &token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let calls = upstream.calls();
    assert!(calls >= 1);
    let again = get_me(&merchant, &token).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        upstream.calls(),
        calls,
        "the second refusal came from the cache"
    );
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_valid_session_costs_one_miss_then_hits_the_cache() {
    let (api, upstream) = upstream().await;
    let (merchant, reached) = merchant(&api).await;
    let token = fresh_token();
    for _ in 0..5 {
        assert_eq!(get_me(&merchant, &token).await.status(), StatusCode::OK);
    }
    // introspect and user in parallel, then the customer: three calls for five requests.
    assert_eq!(upstream.calls(), 3);
    assert_eq!(reached.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn misses_beyond_the_concurrency_bound_are_shed_at_once() {
    let (api, upstream) = upstream().await;
    upstream.set(Fault::Hang);
    let (merchant, reached) = merchant_with(&api, 1).await;
    // One load holds the only slot until the store timeout ends it.
    let first = tokio::spawn({
        let merchant = merchant.clone();
        async move { get_me(&merchant, &fresh_token()).await.status() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let shed = get_me(&merchant, &fresh_token()).await;
    assert_unavailable(&shed, "1", "shed");
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "shed without waiting for the slot"
    );
    assert_eq!(first.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    // The slot is free again once the first load gave up.
    upstream.set(Fault::Healthy);
    assert_eq!(
        get_me(&merchant, &fresh_token()).await.status(),
        StatusCode::OK
    );
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refused_connection_answers_503() {
    // A port that was free a moment ago and that nothing listens on now.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (merchant, reached) = merchant(&format!("http://{addr}")).await;
    let started = Instant::now();
    let response = get_me(&merchant, &fresh_token()).await;
    assert_unavailable(&response, "1", "connection refused");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_store_sends_polars_headers_and_no_token_in_the_url() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let router = Router::new().fallback(move |request: Request| {
        let record = record.clone();
        async move {
            record
                .lock()
                .unwrap()
                .push((request.uri().to_string(), request.headers().clone()));
            healthy(request.uri().path())
        }
    });
    let api = serve(router).await;
    let (merchant, _) = merchant(&api).await;
    let token = fresh_token();
    assert_eq!(get_me(&merchant, &token).await.status(), StatusCode::OK);

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for (uri, headers) in seen.iter() {
        assert!(!uri.contains(token.expose_secret()), "{uri}");
        assert_eq!(headers["polar-version"], "2026-04");
        assert_eq!(headers["accept"], "application/json");
        let agent = headers["user-agent"].to_str().unwrap();
        assert!(agent.starts_with("tower-customer-session/"), "{agent}");
        let expected = if uri.starts_with("/v1/customers/") {
            format!("Bearer {ORG_TOKEN}")
        } else {
            format!("Bearer {}", token.expose_secret())
        };
        assert_eq!(headers["authorization"], expected.as_str(), "{uri}");
    }
}
