//! The recorded metrics for a scripted sequence: hits, misses, negative hits, a store
//! failure, feed messages and a feed loss, read back from a debugging recorder.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use chrono::Utc;
use http::Request;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::ServiceExt;
use tower_customer_session::model::CustomerData;
use tower_customer_session::store::{
    FeedSink, Invalidation, NewSession, SessionRecord, StoreScope, Watch,
};
use tower_customer_session::token::TokenHash;
use tower_customer_session::{
    CreateSession, CredentialSource, CustomerSessionLayer, MemoryStore, SessionAdmin, SessionKey,
    SessionManager, SessionStore, StoreError,
};
use uuid::Uuid;

#[derive(Clone, Default)]
struct Scripted {
    memory: MemoryStore,
    failing: Arc<AtomicBool>,
    sink: Arc<Mutex<Option<FeedSink>>>,
}

impl SessionStore for Scripted {
    async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::backend("connection refused"));
        }
        self.memory.load(key).await
    }

    fn scope(&self) -> StoreScope {
        StoreScope::Process
    }

    fn watch(&self, sink: FeedSink) -> Option<Watch> {
        *self.sink.lock().unwrap() = Some(sink);
        Some(Watch::new(Duration::from_secs(3600)))
    }
}

impl SessionAdmin for Scripted {
    async fn create(&self, session: NewSession) -> Result<SessionRecord, StoreError> {
        self.memory.create(session).await
    }
    async fn revoke(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        self.memory.revoke(hash).await
    }
    async fn revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
        self.memory.revoke_all(customer_id).await
    }
}

/// Every counter and gauge as `name{label=value,…}` → value, added to what earlier reads
/// saw (a snapshot drains counters and histograms; gauges are overwritten).
fn read(snapshotter: &Snapshotter, out: &mut HashMap<String, f64>) -> HashMap<String, f64> {
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        match value {
            DebugValue::Counter(n) => *out.entry(name).or_default() += n as f64,
            DebugValue::Gauge(g) => {
                out.insert(name, g.into_inner());
            }
            DebugValue::Histogram(h) => *out.entry(name).or_default() += h.len() as f64,
        }
    }
    out.clone()
}

fn get(m: &HashMap<String, f64>, name: &str) -> f64 {
    m.get(name).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn a_scripted_sequence_records_what_happened() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this test binary");

    let store = Scripted::default();
    let jane = store.memory.insert_customer(CustomerData::new(Utc::now()));
    let sessions = SessionManager::builder(store.clone()).build().unwrap();
    let sink = store.sink.lock().unwrap().clone().unwrap();
    sink.connected();

    let token = sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap()
        .token
        .expose_secret()
        .to_owned();
    let unknown = tower_customer_session::token::TokenFormat::polar()
        .generate(Default::default())
        .unwrap();
    assert!(
        sessions
            .authenticate(&token, CredentialSource::Header)
            .await
            .is_ok()
    ); // miss, load
    assert!(
        sessions
            .authenticate(&token, CredentialSource::Header)
            .await
            .is_ok()
    ); // hit
    assert!(
        sessions
            .authenticate(&token, CredentialSource::Header)
            .await
            .is_ok()
    ); // hit
    assert!(
        sessions
            .authenticate(unknown.expose_secret(), CredentialSource::Header)
            .await
            .is_err()
    ); // miss, load → negative
    assert!(
        sessions
            .authenticate(unknown.expose_secret(), CredentialSource::Header)
            .await
            .is_err()
    ); // negative hit

    // Entry counts are approximate (moka counts lazily); asking for them settles them.
    assert_eq!(sessions.cached_sessions(), 1);
    let mut totals = HashMap::new();
    let mid = read(&snapshotter, &mut totals);
    assert_eq!(
        get(&mid, "customer_session_cache_entries{cache=sessions}"),
        1.0
    );
    assert_eq!(
        get(&mid, "customer_session_cache_entries{cache=negative}"),
        1.0
    );

    // A store failure: a fresh token misses and the load fails.
    store.failing.store(true, Ordering::SeqCst);
    let fresh = tower_customer_session::token::TokenFormat::polar()
        .generate(Default::default())
        .unwrap();
    assert!(
        sessions
            .authenticate(fresh.expose_secret(), CredentialSource::Header)
            .await
            .is_err()
    );
    store.failing.store(false, Ordering::SeqCst);

    // Through the layer: one Bearer request authenticated, one without credentials
    // refused, one anonymous through an optional layer, one cookie refused as unknown.
    let app = axum::Router::new()
        .route("/me", axum::routing::get(|| async { "ok" }))
        .route_layer(CustomerSessionLayer::new(sessions.clone()).cookie("sid"));
    let optional = axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .route_layer(CustomerSessionLayer::new(sessions.clone()).optional());
    let send = |app: axum::Router, request: Request<Body>| async move {
        app.oneshot(request).await.unwrap().status().as_u16()
    };
    let bearer = Request::get("/me").header("authorization", format!("Bearer {token}"));
    assert_eq!(
        send(app.clone(), bearer.body(Body::empty()).unwrap()).await,
        200
    );
    assert_eq!(
        send(
            app.clone(),
            Request::get("/me").body(Body::empty()).unwrap()
        )
        .await,
        401
    );
    assert_eq!(
        send(optional, Request::get("/").body(Body::empty()).unwrap()).await,
        200
    );
    let cookie =
        Request::get("/me").header("cookie", format!("__Host-sid={}", unknown.expose_secret()));
    assert_eq!(send(app, cookie.body(Body::empty()).unwrap()).await, 401);

    // Feed: one message, then a loss.
    sink.invalidate(Invalidation::Session(sessions.hasher().hash(&token)));
    sink.lost();

    let m = read(&snapshotter, &mut totals);
    assert_eq!(
        get(&m, "customer_session_cache_lookups_total{result=hit}"),
        3.0
    );
    assert_eq!(
        get(&m, "customer_session_cache_lookups_total{result=miss}"),
        3.0
    );
    assert_eq!(
        get(
            &m,
            "customer_session_cache_lookups_total{result=negative_hit}"
        ),
        2.0
    );
    assert_eq!(
        get(
            &m,
            "customer_session_store_calls_total{operation=load,result=ok}"
        ),
        2.0
    );
    assert_eq!(
        get(
            &m,
            "customer_session_store_calls_total{operation=load,result=error}"
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            "customer_session_store_calls_total{operation=create,result=ok}"
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            "customer_session_store_call_duration_seconds{operation=load}"
        ),
        3.0,
        "one latency sample per load"
    );
    assert_eq!(
        get(
            &m,
            "customer_session_feed_invalidations_total{kind=session}"
        ),
        1.0
    );
    assert_eq!(
        get(&m, "customer_session_feed_transitions_total{state=live}"),
        1.0
    );
    assert_eq!(
        get(&m, "customer_session_feed_transitions_total{state=lost}"),
        1.0
    );
    assert_eq!(
        get(&m, "customer_session_feed_up{}"),
        0.0,
        "down after the loss"
    );

    let requests = |labels: &str| get(&m, &format!("customer_session_requests_total{{{labels}}}"));
    assert_eq!(requests("outcome=authenticated,source=header"), 1.0);
    assert_eq!(requests("outcome=missing_credentials,source=none"), 1.0);
    assert_eq!(requests("outcome=anonymous,source=none"), 1.0);
    assert_eq!(requests("outcome=unknown_token,source=cookie"), 1.0);

    // No label carries a token, a hash or a customer id.
    let everything = format!("{:?}", m.keys().collect::<Vec<_>>());
    assert!(!everything.contains(&token));
    assert!(!everything.contains(&jane.id.to_string()));
    assert!(!everything.contains(&sessions.hasher().hash(&token).to_hex()[..8]));
}
