//! Helpers shared by the integration tests: one instrumented store, demo customers, request
//! builders, one app builder and a recorder for what the inner service saw. The security
//! suites' fixed-token fixture and raw HTTP client are in [`fixture`].

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod example_process;
pub mod fixture;
pub mod log_capture;

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::Notify;
use tower::util::BoxCloneService;
use tower::{Service, ServiceExt};
use tower_customer_session::model::CustomerData;
use tower_customer_session::store::{NewSession, SessionRecord};
use tower_customer_session::token::{SessionToken, TokenHash};
use tower_customer_session::{
    CreateSession, Customer, CustomerSessionLayer, ManualClock, MemoryStore, Rejection,
    SessionAdmin, SessionInfo, SessionKey, SessionManager, SessionManagerBuilder, SessionStore,
    StoreError,
};
use uuid::Uuid;

/// The HMAC key every test uses, so hashes are reproducible within a test.
pub const SECRET: &[u8] = b"integration-test secret, 32 byte";

/// Text of the backend error the failing store returns; must never reach a response.
pub const BACKEND_DETAIL: &str = "connection to 10.9.8.7:5432 refused (pool db-primary)";

/// Polar's `401 invalid_token` response, as recorded from Polar's server.
pub const INVALID_TOKEN_FIXTURE: &str =
    include_str!("../fixtures/polar/error_401_invalid_token.json");
/// Polar's `401 Unauthorized` response for requests without credentials.
pub const UNAUTHORIZED_FIXTURE: &str =
    include_str!("../fixtures/polar/error_401_unauthorized.json");

/// Lets a test stop a store load after it has read the record, and resume it later.
#[derive(Default)]
pub struct Gate {
    reached: Notify,
    release: Notify,
}

impl Gate {
    /// Wait until the paused load has read its record.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Let the paused load return what it read.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

#[derive(Default)]
struct Probe {
    loads: AtomicUsize,
    loads_by_hash: Mutex<HashMap<[u8; 32], usize>>,
    creates: AtomicUsize,
    revokes: AtomicUsize,
    latency: Mutex<Duration>,
    fail_next: AtomicUsize,
    fail_always: AtomicBool,
    hang: AtomicBool,
    gate: Mutex<Option<Arc<Gate>>>,
}

/// What [`TestStore::set_fault`] makes every store operation do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Pass through to the memory store.
    None,
    /// Fail with a backend error.
    Error,
    /// Hang forever (the layer's store timeout must cut it).
    Hang,
}

/// A [`MemoryStore`] that counts loads and writes, and can be made slow, failing, hanging
/// or paused.
#[derive(Clone, Default)]
pub struct TestStore {
    memory: MemoryStore,
    probe: Arc<Probe>,
}

impl Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore")
            .field("memory", &self.memory)
            .finish()
    }
}

impl TestStore {
    pub fn new(memory: MemoryStore) -> Self {
        Self {
            memory,
            probe: Arc::default(),
        }
    }

    pub fn memory(&self) -> &MemoryStore {
        &self.memory
    }

    /// Store loads so far (every `load` call, failed or not).
    pub fn loads(&self) -> usize {
        self.probe.loads.load(Ordering::SeqCst)
    }

    /// Store loads so far for one token hash.
    pub fn loads_for(&self, hash: &TokenHash) -> usize {
        let by_hash = self.probe.loads_by_hash.lock().unwrap();
        by_hash.get(hash.as_bytes()).copied().unwrap_or(0)
    }

    pub fn creates(&self) -> usize {
        self.probe.creates.load(Ordering::SeqCst)
    }

    /// Calls to `revoke` and `revoke_all`.
    pub fn revokes(&self) -> usize {
        self.probe.revokes.load(Ordering::SeqCst)
    }

    /// Every write: create, revoke, revoke_all.
    pub fn writes(&self) -> usize {
        self.creates() + self.revokes()
    }

    /// Every load sleeps this long before answering.
    pub fn set_latency(&self, latency: Duration) {
        *self.probe.latency.lock().unwrap() = latency;
    }

    /// The next `n` loads fail with a backend error.
    pub fn fail_next_loads(&self, n: usize) {
        self.probe.fail_next.store(n, Ordering::SeqCst);
    }

    /// Every operation fails with a backend error until turned off.
    pub fn fail_always(&self, on: bool) {
        self.probe.fail_always.store(on, Ordering::SeqCst);
    }

    /// Every operation fails, hangs, or (`Fault::None`) works again.
    pub fn set_fault(&self, fault: Fault) {
        self.fail_always(fault == Fault::Error);
        self.probe
            .hang
            .store(fault == Fault::Hang, Ordering::SeqCst);
    }

    /// The next load pauses after reading its record, until the gate is released.
    pub fn pause_next_load(&self) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        *self.probe.gate.lock().unwrap() = Some(gate.clone());
        gate
    }

    /// Wait (up to 5 s) until at least `n` loads have started.
    pub async fn wait_for_loads(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.loads() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "store load {n} never started"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Never returns while [`Fault::Hang`] is set.
    async fn hang(&self) {
        if self.probe.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }

    /// A write fails only with `fail_always`: `fail_next_loads` counts loads alone.
    fn write_failure(&self) -> Result<(), StoreError> {
        match self.probe.fail_always.load(Ordering::SeqCst) {
            true => Err(StoreError::backend(BACKEND_DETAIL)),
            false => Ok(()),
        }
    }

    fn failure(&self) -> Option<StoreError> {
        let always = self.probe.fail_always.load(Ordering::SeqCst);
        let once = self
            .probe
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        (always || once).then(|| StoreError::backend(BACKEND_DETAIL))
    }
}

impl SessionStore for TestStore {
    async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
        let token_hash = key.token_hash();
        self.probe.loads.fetch_add(1, Ordering::SeqCst);
        *self
            .probe
            .loads_by_hash
            .lock()
            .unwrap()
            .entry(*token_hash.as_bytes())
            .or_default() += 1;
        let latency = *self.probe.latency.lock().unwrap();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.hang().await;
        if let Some(error) = self.failure() {
            return Err(error);
        }
        let record = self.memory.load(key).await;
        let gate = self.probe.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            gate.reached.notify_one();
            gate.release.notified().await;
        }
        record
    }
}

impl SessionAdmin for TestStore {
    async fn create(&self, session: NewSession) -> Result<SessionRecord, StoreError> {
        self.probe.creates.fetch_add(1, Ordering::SeqCst);
        self.hang().await;
        self.write_failure()?;
        self.memory.create(session).await
    }

    async fn revoke(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        self.probe.revokes.fetch_add(1, Ordering::SeqCst);
        self.hang().await;
        self.write_failure()?;
        self.memory.revoke(token_hash).await
    }

    async fn revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
        self.probe.revokes.fetch_add(1, Ordering::SeqCst);
        self.hang().await;
        self.write_failure()?;
        self.memory.revoke_all(customer_id).await
    }
}

impl tower_customer_session::CustomerStore for TestStore {
    async fn upsert_customer(&self, customer: Customer) -> Result<Customer, StoreError> {
        self.memory.upsert_customer(customer).await
    }

    async fn customer(
        &self,
        by: &tower_customer_session::store::CustomerRef,
    ) -> Result<Option<Customer>, StoreError> {
        tower_customer_session::CustomerStore::customer(&self.memory, by).await
    }

    async fn delete_customer(
        &self,
        id: Uuid,
        at: chrono::DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if let Some(error) = self.failure() {
            return Err(error);
        }
        self.memory.delete_customer(id, at).await
    }
}

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
