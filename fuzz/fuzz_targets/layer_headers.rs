//! Whole-layer header and cookie handling: requests built from fuzz bytes go through
//! `CustomerSessionLayer` (bearer and cookie) over a counting in-memory store.
//!
//! Input: byte 0 picks the method; the rest is split on `\n` into header lines whose first
//! byte picks the name (Authorization, Cookie, or a filler) and whose remainder is the value.
//!
//! Oracles: no panic; the status is one the layer documents; a 200 names an issued session
//! whose token appears verbatim in the input; refusals decided from the request's shape
//! (400, bare 401, 403) never reached the store; nothing is ever written to the store.
#![no_main]

// The tests' instrumented store; only its counters are used here.
#[allow(dead_code)]
#[path = "../../tests/common/instrumented.rs"]
mod instrumented;

use std::convert::Infallible;
use std::sync::OnceLock;

use bytes::Bytes;
use chrono::{TimeDelta, Utc};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower::{Layer, ServiceExt};
use tower_customer_session::model::CustomerData;
use tower_customer_session::store::{CustomerRef, NewSession, SessionAdmin};
use tower_customer_session::token::{TokenHash, TokenHasher, TokenKind};
use tower_customer_session::{CustomerSessionLayer, MemoryStore, SessionInfo, SessionManager};
use uuid::Uuid;

use instrumented::Instrumented;

// At least 32 bytes, as the session manager requires.
const SECRET: &[u8] = b"layer fuzzing secret, 32 bytes!!";
const VALID: &str = "polar_cst_mDzyMJMtMi1pdvsJXMR2wHGk5Q6bbyD5UowKl0L1tZ2";
const MEMBER: &str = "polar_mst_ucPVuhrH7GUpexaoDv5zpTd9TNAgJdnb3huu31vTYX9";

type Inner = tower::util::ServiceFn<
    fn(Request<Full<Bytes>>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>,
>;

struct World {
    runtime: tokio::runtime::Runtime,
    service: tower_customer_session::CustomerSessionService<
        Inner,
        Instrumented,
        tower_customer_session::DefaultRejection,
    >,
    store: Instrumented,
    valid: TokenHash,
    member: TokenHash,
}

/// The handler hands the session facts back in the response extensions.
fn echo(
    request: Request<Full<Bytes>>,
) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    if let Some(info) = request.extensions().get::<SessionInfo>() {
        response.extensions_mut().insert(info.clone());
    }
    std::future::ready(Ok(response))
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let memory = MemoryStore::new();
        let customer = memory.insert_customer(CustomerData::new(Utc::now()));
        let hasher = TokenHasher::new(SECRET);
        let now = Utc::now();
        for (token, kind) in [(VALID, TokenKind::Customer), (MEMBER, TokenKind::Member)] {
            let new = NewSession {
                id: Uuid::new_v4(),
                token_hash: hasher.hash(token),
                kind,
                customer: CustomerRef::Id(customer.id),
                created_at: now,
                // Long enough that no fuzzing campaign outlives it.
                expires_at: now + TimeDelta::days(365),
                return_url: None,
                member: None,
            };
            runtime.block_on(memory.create(new)).expect("seed");
        }
        let store = Instrumented::new(memory);
        // Per-hash counts would grow with every distinct well-formed token fuzzed.
        store.count_per_hash(false);
        let sessions = SessionManager::builder(store.clone())
            .secret(SECRET)
            .build()
            .expect("a secret is configured");
        let handler: fn(_) -> _ = echo;
        let service = CustomerSessionLayer::new(sessions)
            .cookie("__Host-sid")
            .layer(tower::service_fn(handler));
        World {
            runtime,
            service,
            store,
            valid: hasher.hash(VALID),
            member: hasher.hash(MEMBER),
        }
    })
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fuzz_target!(|data: &[u8]| {
    let Some((&method, rest)) = data.split_first() else {
        return;
    };
    let method = match method % 4 {
        0 => Method::GET,
        1 => Method::POST,
        2 => Method::HEAD,
        _ => Method::DELETE,
    };
    let mut request = Request::builder().method(method).uri("/me");
    for line in rest.split(|&b| b == b'\n') {
        let Some((&selector, value)) = line.split_first() else {
            continue;
        };
        let name = match selector % 5 {
            0 | 1 => HeaderName::from_static("authorization"),
            2 | 3 => HeaderName::from_static("cookie"),
            _ => HeaderName::from_static("sec-fetch-site"),
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            request = request.header(name, value);
        }
    }
    let Ok(request) = request.body(Full::new(Bytes::new())) else {
        return;
    };

    let world = world();
    let loads_before = world.store.loads();
    let response = world
        .runtime
        .block_on(world.service.clone().oneshot(request))
        .expect("infallible");
    let loads = world.store.loads() - loads_before;
    let status = response.status();

    assert!(
        matches!(status.as_u16(), 200 | 400 | 401 | 403),
        "unexpected status {status}"
    );
    assert_eq!(world.store.writes(), 0, "a request wrote to the store");
    if status == StatusCode::OK {
        let info = response
            .extensions()
            .get::<SessionInfo>()
            .expect("session facts");
        let token = if info.token_hash == world.valid {
            VALID
        } else if info.token_hash == world.member {
            MEMBER
        } else {
            panic!("authenticated a session nobody issued");
        };
        assert!(
            contains(data, token),
            "200 without the issued token in the input"
        );
    }
    let challenge = response
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let decided_by_shape = status == StatusCode::BAD_REQUEST
        || status == StatusCode::FORBIDDEN
        || (status == StatusCode::UNAUTHORIZED && !contains(&challenge, "error="));
    if decided_by_shape {
        assert_eq!(loads, 0, "{status} after a store lookup");
    }
    // Anything over the token length bound is refused before any lookup.
    assert!(loads <= 1);
});
