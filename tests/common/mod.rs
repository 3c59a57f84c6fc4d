//! Helpers shared by the integration tests: one instrumented store, demo customers, request
//! builders, one app builder and a recorder for what the inner service saw. The security
//! suites' fixed-token fixture and raw HTTP client are in [`fixture`].

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod example_process;
pub mod fixture;
pub mod instrumented;
pub mod log_capture;

use std::convert::Infallible;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::util::BoxCloneService;
use tower::{Service, ServiceExt};
use tower_customer_session::model::CustomerData;
use tower_customer_session::token::{SessionToken, TokenHash};
use tower_customer_session::{
    CreateSession, Customer, CustomerSessionLayer, ManualClock, MemoryStore, Rejection,
    SessionInfo, SessionManager, SessionManagerBuilder,
};
use uuid::Uuid;

/// The HMAC key every test uses, so hashes are reproducible within a test.
pub const SECRET: &[u8] = b"integration-test secret, 32 byte";

/// Polar's `401 invalid_token` response, as recorded from Polar's server.
pub const INVALID_TOKEN_FIXTURE: &str =
    include_str!("../fixtures/polar/error_401_invalid_token.json");
/// Polar's `401 Unauthorized` response for requests without credentials.
pub const UNAUTHORIZED_FIXTURE: &str =
    include_str!("../fixtures/polar/error_401_unauthorized.json");

/// The store of every harness here: a [`MemoryStore`] behind the counters and faults of
/// [`instrumented::Instrumented`].
pub type TestStore = instrumented::Instrumented<MemoryStore>;

/// The organization every demo customer belongs to.
pub fn organization_id() -> Uuid {
    Uuid::from_u128(0x1dbf_c517_0bbf_4301_9ba8_555c_a42b_9737)
}

/// A fixed start time, so expiry arithmetic in tests is exact.
pub fn start_time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

/// Insert an individual customer with a name, email and external id.
pub fn demo_customer(store: &MemoryStore, name: &str) -> Customer {
    let mut data = CustomerData::new(start_time()).organization(organization_id());
    data.name = Some(name.to_owned());
    data.email = Some(format!("{}@example.com", name.to_lowercase()));
    data.email_verified = true;
    data.external_id = Some(format!("usr_{}", name.to_lowercase()));
    store.insert_customer(data)
}

/// A store, a manual clock shared by store and sessions, and the sessions handle.
pub struct Harness {
    pub store: TestStore,
    pub clock: ManualClock,
    pub sessions: SessionManager<TestStore>,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(|builder| builder)
    }

    /// Like [`Harness::new`], with extra builder settings.
    pub fn with(
        configure: impl FnOnce(SessionManagerBuilder<TestStore>) -> SessionManagerBuilder<TestStore>,
    ) -> Self {
        let clock = ManualClock::new(start_time());
        let store = TestStore::new(MemoryStore::with_clock(clock.clone()));
        let builder = SessionManager::builder(store.clone())
            .secret(SECRET)
            .clock(clock.clone());
        Self {
            sessions: configure(builder).build().unwrap(),
            store,
            clock,
        }
    }

    pub fn customer(&self, name: &str) -> Customer {
        demo_customer(self.store.memory(), name)
    }

    /// A new customer session for `customer`; returns the raw token and the session.
    pub async fn issue(
        &self,
        customer: &Customer,
    ) -> (String, tower_customer_session::CustomerSession) {
        self.issue_with(customer, CreateSession::default()).await
    }

    pub async fn issue_with(
        &self,
        customer: &Customer,
        options: CreateSession,
    ) -> (String, tower_customer_session::CustomerSession) {
        let session = self.sessions.create(customer.id, options).await.unwrap();
        (session.token.expose_secret().to_owned(), session)
    }

    pub fn hash(&self, token: &str) -> TokenHash {
        self.sessions.hasher().hash(token)
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

/// A well-formed token (right prefix, length and checksum) that no store knows.
pub fn unknown_token() -> SessionToken {
    tower_customer_session::token::TokenFormat::polar()
        .generate(Default::default())
        .unwrap()
}

/// `GET /me` with the given header lines (repeated names allowed).
pub fn request(headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::get("/me");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

/// `GET /me` with `Authorization: Bearer <token>`.
pub fn bearer(token: &str) -> Request<Body> {
    request(&[("authorization", &format!("Bearer {token}"))])
}

/// `GET /me` with no credentials.
pub fn anonymous() -> Request<Body> {
    request(&[])
}

/// A response, read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub rejection: Option<Rejection>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send one request through `service` (driving `poll_ready` first) and read the response.
pub async fn send<S, B>(service: S, request: Request<Body>) -> Reply
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: Debug,
    B: http_body::Body,
    B::Error: Debug,
{
    let response = service.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        rejection: parts.extensions.get::<Rejection>().copied(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// What the inner service saw in one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub customer: Option<Customer>,
    pub info: Option<SessionInfo>,
    /// `Debug` of the request headers as the inner service received them.
    pub headers_debug: String,
    /// Whether every `Authorization` and `Cookie` line was marked sensitive.
    pub credentials_sensitive: bool,
    /// Number of extension values on the request.
    pub extension_count: usize,
    /// Whether any extension holds a token-like string type.
    pub has_string_extension: bool,
}

/// Records every request the inner service receives.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    pub fn record<B>(&self, request: &Request<B>) {
        let ext = request.extensions();
        let headers = request.headers();
        let credentials_sensitive = headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .chain(headers.get_all(http::header::COOKIE).iter())
            .all(|v| v.is_sensitive());
        self.0.lock().unwrap().push(Seen {
            customer: ext.get::<Customer>().cloned(),
            info: ext.get::<SessionInfo>().cloned(),
            headers_debug: format!("{headers:?}"),
            credentials_sensitive,
            extension_count: ext.len(),
            has_string_extension: ext.get::<String>().is_some()
                || ext.get::<&'static str>().is_some()
                || ext.get::<Box<str>>().is_some()
                || ext.get::<Arc<str>>().is_some()
                || ext.get::<SessionToken>().is_some()
                || ext.get::<http::HeaderValue>().is_some(),
        });
    }

    pub fn calls(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn last(&self) -> Seen {
        self.0
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("inner service was called")
    }
}

/// A plain `tower::service_fn` that records what it sees and answers `200 ok`.
pub fn recording_service(
    recorder: Recorder,
) -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |request: Request<Body>| {
        recorder.record(&request);
        async { Ok::<_, Infallible>(Response::new(Body::from("ok"))) }
    })
}

/// Every 8-character window of `token` that contains part of its secret (not just the
/// public prefix).
pub fn secret_windows(token: &str) -> impl Iterator<Item = &str> {
    const WINDOW: usize = 8;
    const PREFIX: usize = "polar_cst_".len();
    (0..=token.len() - WINDOW)
        .filter(|start| start + WINDOW > PREFIX)
        .map(move |start| &token[start..start + WINDOW])
}

/// Panic if any secret window of any token appears in `haystack`.
pub fn assert_no_token_in(haystack: &str, tokens: &[&str], what: &str) {
    for token in tokens {
        if let Some(window) = secret_windows(token).find(|w| haystack.contains(w)) {
            panic!("{what} contains token fragment {window:?}:\n{haystack}");
        }
    }
}

/// A layered service, boxed so tests can clone it and name its type.
pub type App = BoxCloneService<Request<Body>, Response<Body>, Infallible>;

/// The one app builder: `layer` in front of [`recording_service`] recording into `recorder`.
pub fn app<R: tower_customer_session::OnRejection>(
    layer: CustomerSessionLayer<TestStore, R>,
    recorder: &Recorder,
) -> App {
    BoxCloneService::new(
        tower::ServiceBuilder::new()
            .map_response(|r: Response<_>| r.map(Body::new))
            .layer(layer)
            .service(recording_service(recorder.clone())),
    )
}
