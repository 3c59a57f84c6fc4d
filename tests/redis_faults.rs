//! Faults, each on a `redis-server` the test starts itself on a free port (never the
//! shared one), with two instances behind real `CustomerSessionLayer`s on real sockets:
//!
//! - killed: every request gets `503` (never `401`, never a pass-through, and under the
//!   default policy no cached session is served while the feed is down); restarted empty on
//!   the same port: the instances recover by themselves, feeds live again, and a
//!   revocation propagates within 100 ms;
//! - hung (SIGSTOP): `503` within the store's command timeout, the feed reported lost
//!   within the heartbeat bound, recovery after SIGCONT;
//! - a subscription connection that silently stops (a proxy that stops forwarding it):
//!   detected by the heartbeat while commands keep working, then resubscribed.
//!
//! The tests run one at a time (they measure time) and check that nothing panicked.

mod redis_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use redis_support::server::OwnRedis;
use redis_support::{PROPAGATION, SECRET, customer, refused_within, wait_for_feed};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tower_customer_session::store::FeedState;
use tower_customer_session::token::{TokenFormat, TokenKind};
use tower_customer_session::{
    CreateSession, Customer, CustomerSessionLayer, RedisStore, SessionManager,
};

const HEARTBEAT: Duration = Duration::from_millis(200);
/// The bound the store promises: a ping every interval, answered within the interval;
/// the manager's watchdog allows three intervals. Plus scheduling slack.
const HEARTBEAT_BOUND: Duration = Duration::from_millis(3 * 200 + 250);
const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);
/// The manager's own deadline, the second guard.
const STORE_TIMEOUT: Duration = Duration::from_secs(1);

/// One test at a time: they measure delays on a machine they share.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Panics so far in this process, spawned tasks included.
fn panics() -> usize {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
    PANICS.load(Ordering::SeqCst)
}

/// One application instance: a manager on its own store connection, served over HTTP.
struct Instance {
    sessions: SessionManager<RedisStore>,
    base: String,
    http: reqwest::Client,
}

impl Instance {
    async fn start(url: &str) -> Self {
        let store = RedisStore::builder(url)
            .key_prefix("faults:")
            .connect_timeout(Duration::from_millis(300))
            .command_timeout(COMMAND_TIMEOUT)
            .heartbeat_interval(HEARTBEAT)
            .connect()
            .await
            .expect("connect");
        let sessions = SessionManager::builder(store)
            .secret(SECRET)
            .store_timeout(STORE_TIMEOUT)
            .build()
            .unwrap();
        let app = Router::new()
            .route("/me", get(|c: Customer| async move { c.id.to_string() }))
            .route_layer(CustomerSessionLayer::new(sessions.clone()));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            sessions,
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        }
    }

    /// `GET /me` with `token`: the status, and whether `Retry-After` was set.
    async fn me(&self, token: &str) -> (StatusCode, bool) {
        let response = self
            .http
            .get(format!("{}/me", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("the server answers");
        let retry_after = response.headers().contains_key("retry-after");
        (response.status(), retry_after)
    }

    /// `503` with `Retry-After`, nothing else.
    async fn unavailable(&self, token: &str, what: &str) {
        let (status, retry_after) = self.me(token).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
        assert!(retry_after, "{what}: 503 carries Retry-After");
    }

    /// Poll until `GET /me` answers 200; while recovering, only 503 is acceptable.
    async fn recovers(&self, token: &str, within: Duration) {
        let started = Instant::now();
        loop {
            match self.me(token).await.0 {
                StatusCode::OK => return,
                StatusCode::SERVICE_UNAVAILABLE => {}
                other => panic!("while recovering: {other}, expected 503 or 200"),
            }
            assert!(
                started.elapsed() < within,
                "not recovered within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn two_instances(url: &str) -> (Instance, Instance) {
    let (a, b) = (Instance::start(url).await, Instance::start(url).await);
    for side in [&a, &b] {
        wait_for_feed(&side.sessions, FeedState::Live, Duration::from_secs(5)).await;
    }
    (a, b)
}

/// Retry a store call until it succeeds (the connection re-establishes itself).
macro_rules! eventually {
    ($call:expr, $within:expr) => {{
        let started = Instant::now();
        loop {
            match $call.await {
                Ok(value) => break value,
                Err(error) => assert!(
                    started.elapsed() < $within,
                    "still failing after {:?}: {error}",
                    $within
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_answers_503_and_a_restarted_one_recovers_without_restarts() {
    let _serial = SERIAL.lock().await;
    let panics_before = panics();
    let Some(mut server) = OwnRedis::start() else {
        return;
    };
    let (a, b) = two_instances(&server.url()).await;
    let jane = a.sessions.upsert_customer(customer("Jane")).await.unwrap();
    let session = a
        .sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    let token = session.token.expose_secret();
    for side in [&a, &b, &b] {
        assert_eq!(side.me(token).await.0, StatusCode::OK);
    }
    let unknown = TokenFormat::polar().generate(TokenKind::Customer).unwrap();

    server.kill();
    for side in [&a, &b] {
        wait_for_feed(&side.sessions, FeedState::Lost, HEARTBEAT_BOUND).await;
    }
    for side in [&a, &b] {
        for _ in 0..3 {
            // Cached on both, but not served while the feed is down.
            side.unavailable(token, "a cached session during the outage")
                .await;
            side.unavailable(
                unknown.expose_secret(),
                "an unknown token during the outage",
            )
            .await;
        }
    }

    server.restart();
    for side in [&a, &b] {
        wait_for_feed(&side.sessions, FeedState::Live, Duration::from_secs(5)).await;
    }
    // The new server is empty: the customer is stored again, through the same instances.
    let jane = eventually!(
        a.sessions.upsert_customer(jane.clone()),
        Duration::from_secs(5)
    );
    let fresh = eventually!(
        a.sessions.create(jane.id, CreateSession::default()),
        Duration::from_secs(5)
    );
    let fresh_token = fresh.token.expose_secret();
    for side in [&a, &b] {
        side.recovers(fresh_token, Duration::from_secs(5)).await;
        // The old session died with the old server's data; it is refused, not served.
        assert_eq!(side.me(token).await.0, StatusCode::UNAUTHORIZED);
    }

    // A revocation on A after recovery reaches B in time.
    assert_eq!(b.me(fresh_token).await.0, StatusCode::OK);
    assert!(a.sessions.revoke(fresh_token).await.unwrap());
    refused_within(
        &b.sessions,
        fresh_token,
        PROPAGATION,
        "a revocation after recovery",
    )
    .await;
    assert_eq!(b.me(fresh_token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(panics(), panics_before, "something panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_answers_503_within_the_command_timeout() {
    let _serial = SERIAL.lock().await;
    let panics_before = panics();
    let Some(server) = OwnRedis::start() else {
        return;
    };
    let (a, b) = two_instances(&server.url()).await;
    let jane = a.sessions.upsert_customer(customer("Jane")).await.unwrap();
    let cached = a
        .sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    let cached = cached.token.expose_secret();
    let uncached = a
        .sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    let uncached = uncached.token.expose_secret();
    for _ in 0..2 {
        assert_eq!(b.me(cached).await.0, StatusCode::OK);
    }

    server.pause();
    let paused = Instant::now();
    // A load hangs: the command timeout answers, well before the manager's own deadline.
    let started = Instant::now();
    b.unavailable(uncached, "a load from a hung server").await;
    let took = started.elapsed();
    assert!(
        took < COMMAND_TIMEOUT + Duration::from_millis(250),
        "503 after {took:?}, command timeout {COMMAND_TIMEOUT:?}"
    );
    // The hung subscription is noticed within the heartbeat bound...
    wait_for_feed(
        &b.sessions,
        FeedState::Lost,
        HEARTBEAT_BOUND.saturating_sub(paused.elapsed()),
    )
    .await;
    // ...and from then on the cached session is not served either.
    b.unavailable(cached, "a cached session while the feed is lost")
        .await;

    server.resume();
    wait_for_feed(&b.sessions, FeedState::Live, Duration::from_secs(5)).await;
    b.recovers(cached, Duration::from_secs(5)).await;
    b.recovers(uncached, Duration::from_secs(5)).await;
    assert_eq!(panics(), panics_before, "something panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_subscription_is_detected_by_its_heartbeat() {
    let _serial = SERIAL.lock().await;
    let panics_before = panics();
    let Some(server) = OwnRedis::start() else {
        return;
    };
    let proxy = Proxy::start(server.port()).await;
    let a = Instance::start(&proxy.url()).await;
    wait_for_feed(&a.sessions, FeedState::Live, Duration::from_secs(5)).await;
    let jane = a.sessions.upsert_customer(customer("Jane")).await.unwrap();
    let session = a
        .sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    let token = session.token.expose_secret();
    assert_eq!(a.me(token).await.0, StatusCode::OK);

    // Only the subscription connection goes quiet: the server and the command
    // connection are fine, so nothing but the feed's own heartbeat can notice.
    assert_eq!(proxy.freeze_subscribers(), 1, "one subscription connection");
    let took = wait_for_feed(&a.sessions, FeedState::Lost, HEARTBEAT_BOUND).await;
    eprintln!("silent subscription detected after {took:?}");
    // Meanwhile requests are answered from Redis itself.
    assert_eq!(a.me(token).await.0, StatusCode::OK);

    // A new subscription (a new connection, which flows) brings the feed back.
    wait_for_feed(&a.sessions, FeedState::Live, Duration::from_secs(5)).await;
    assert_eq!(a.me(token).await.0, StatusCode::OK);
    assert!(a.sessions.revoke(token).await.unwrap());
    assert_eq!(a.me(token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(panics(), panics_before, "something panicked");
}

/// A TCP proxy to Redis that can stop forwarding, in both directions and without closing
/// anything, the connections that have subscribed.
struct Proxy {
    addr: SocketAddr,
    links: Arc<Mutex<Vec<Arc<Link>>>>,
}

#[derive(Default)]
struct Link {
    subscriber: AtomicBool,
    frozen: AtomicBool,
}

impl Proxy {
    async fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links: Arc<Mutex<Vec<Arc<Link>>>> = Arc::default();
        let registry = links.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream_port)).await
                else {
                    continue;
                };
                let link = Arc::new(Link::default());
                registry.lock().unwrap().push(link.clone());
                let (client_read, client_write) = inbound.into_split();
                let (server_read, server_write) = outbound.into_split();
                tokio::spawn(pump(client_read, server_write, link.clone(), true));
                tokio::spawn(pump(server_read, client_write, link, false));
            }
        });
        Self { addr, links }
    }

    fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Freeze every connection that has sent `SUBSCRIBE` so far; returns how many.
    fn freeze_subscribers(&self) -> usize {
        let links = self.links.lock().unwrap();
        let mut frozen = 0;
        for link in links.iter().filter(|l| l.subscriber.load(Ordering::SeqCst)) {
            link.frozen.store(true, Ordering::SeqCst);
            frozen += 1;
        }
        frozen
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, link: Arc<Link>, from_client: bool) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if from_client && buffer[..n].windows(9).any(|w| w == b"SUBSCRIBE") {
            link.subscriber.store(true, Ordering::SeqCst);
        }
        if link.frozen.load(Ordering::SeqCst) {
            // Silent: hold both sockets open and forward nothing, ever.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
