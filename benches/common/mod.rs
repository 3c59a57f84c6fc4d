//! Set-up shared by the bench targets: the demo customer, session populations, request
//! templates, a small deterministic shuffle and the instrumented store.

// Each bench target compiles this module on its own and uses a different subset of it.
#![allow(dead_code)]

pub mod requests;

// The tests' instrumented store, so benches and tests count the same way.
#[path = "../../tests/common/instrumented.rs"]
pub mod instrumented;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http::header::{AUTHORIZATION, COOKIE};
use http_body_util::Full;
use tower_customer_session::model::CustomerData;
use tower_customer_session::store::SessionAdmin;
use tower_customer_session::token::TokenKind;
use tower_customer_session::{
    CreateSession, MemoryStore, SessionManager, SessionManagerBuilder, SessionStore,
};

use instrumented::Instrumented;

/// Request type every benchmarked service takes.
pub type Req = Request<Full<Bytes>>;

/// Secret used by every bench instance (32 bytes, as in production).
pub const SECRET: &[u8] = b"bench-secret-0123456789abcdefghij";

/// Name of the session cookie when this crate reads cookies.
pub const COOKIE_NAME: &str = "customer_session";

/// The demo customer: Polar's documented customer object with full billing data
/// (address, tax id, metadata, avatar URL).
pub fn demo_customer() -> CustomerData {
    serde_json::from_str(include_str!("../../tests/fixtures/polar/customer.json"))
        .expect("the fixture is a valid customer")
}

/// The demo customer with a fresh id and per-customer email and external id, so that
/// many customers are as large as real distinct ones.
pub fn demo_customer_n(n: usize) -> CustomerData {
    let mut data = demo_customer();
    data.id = uuid::Uuid::new_v4();
    data.email = Some(format!("customer{n}@example.com"));
    data.external_id = Some(format!("usr_{n}"));
    data
}

/// Builder with the bench defaults: fixed secret, and cache lifetimes long enough that no
/// entry expires while criterion is measuring (the defaults are 60 s / 5 s).
pub fn builder<S: SessionStore>(store: S) -> SessionManagerBuilder<S> {
    SessionManager::builder(store)
        .secret(SECRET)
        .cache_max_ttl(Duration::from_secs(3600))
        .negative_cache_ttl(Duration::from_secs(3600))
}

/// How sessions are spread over customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Every session belongs to the same customer.
    OneCustomer,
    /// Each session has its own customer.
    CustomerPerSession,
}

/// Insert customers into `store` and create `n` sessions through `sessions`; returns the
/// raw tokens in creation order.
pub async fn populate<S: SessionAdmin>(
    store: &MemoryStore,
    sessions: &SessionManager<S>,
    n: usize,
    spread: Spread,
) -> Vec<String> {
    let shared = store.insert_customer(demo_customer_n(0));
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let id = match spread {
            Spread::OneCustomer => shared.id,
            Spread::CustomerPerSession => store.insert_customer(demo_customer_n(i + 1)).id,
        };
        let session = sessions
            .create(id, CreateSession::default())
            .await
            .expect("the customer exists");
        tokens.push(session.token.expose_secret().to_owned());
    }
    tokens
}

/// A well-formed token (valid prefix, alphabet and checksum) that no store knows.
pub fn unknown_token() -> String {
    tower_customer_session::token::TokenFormat::polar()
        .generate(TokenKind::Customer)
        .expect("OS randomness")
        .expose_secret()
        .to_owned()
}

/// `token` with its last checksum character changed: right shape, wrong checksum.
pub fn bad_checksum(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let last = bytes.last_mut().expect("non-empty token");
    *last = if *last == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII")
}

/// `GET /me` with `Authorization: Bearer <token>`.
pub fn bearer_request(token: &str) -> Req {
    Request::get("/me")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .expect("valid request")
}

/// `GET /me` with a browser-like `Cookie` line holding `name=value` among two others.
pub fn cookie_request(name: &str, value: &str) -> Req {
    Request::get("/me")
        .header(COOKIE, format!("theme=dark; {name}={value}; locale=en"))
        .body(Full::default())
        .expect("valid request")
}

/// `GET /me` without credentials.
pub fn plain_request() -> Req {
    Request::get("/me")
        .body(Full::default())
        .expect("valid request")
}

/// Deterministic SplitMix64, so runs shuffle the same way without a `rand` dependency.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// `inner` behind the tests' instrumented store, without per-hash load counts: floods load
/// many distinct tokens, and the memory bench would count the map in its results.
pub fn bench_store<S>(inner: S) -> Instrumented<S> {
    let store = Instrumented::new(inner);
    store.count_per_hash(false);
    store
}

/// A minimal axum-login backend whose users are the demo customers.
pub mod auth_backend {
    use std::collections::HashMap;
    use std::convert::Infallible;
    use std::sync::Arc;

    use axum_login::{AuthUser, AuthnBackend};
    use tower_customer_session::Customer;
    use uuid::Uuid;

    /// The logged-in user: the customer plus the hash axum-login checks on every request.
    #[derive(Debug, Clone)]
    pub struct User {
        pub customer: Customer,
        pub auth_hash: [u8; 32],
    }

    impl AuthUser for User {
        type Id = Uuid;

        fn id(&self) -> Uuid {
            self.customer.id
        }

        fn session_auth_hash(&self) -> &[u8] {
            &self.auth_hash
        }
    }

    /// Users in a map: the cheapest `get_user` possible.
    #[derive(Debug, Clone)]
    pub struct Backend {
        pub users: Arc<HashMap<Uuid, User>>,
    }

    impl AuthnBackend for Backend {
        type User = User;
        type Credentials = Uuid;
        type Error = Infallible;

        async fn authenticate(&self, id: Uuid) -> Result<Option<User>, Infallible> {
            Ok(self.users.get(&id).cloned())
        }

        async fn get_user(&self, id: &Uuid) -> Result<Option<User>, Infallible> {
            Ok(self.users.get(id).cloned())
        }
    }
}
