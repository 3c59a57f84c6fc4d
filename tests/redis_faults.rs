//! Faults, each on a `redis-server` the test starts itself on a free port (never the
//! shared one), with instances behind real `CustomerSessionLayer`s on real sockets, some
//! through a proxy that breaks connections (`redis_support::proxy`):
//!
//! - killed: every request gets `503` (never `401`, never a pass-through, and under the
//!   default policy no cached session is served while the feed is down); restarted empty on
//!   the same port: the instances recover by themselves, feeds live again, and a
//!   revocation propagates within 100 ms;
//! - hung (SIGSTOP): `503` within the store's command timeout, the feed reported lost
//!   within the silence bound, recovery after SIGCONT;
//! - a subscription connection that silently stops (a proxy that stops forwarding it):
//!   detected by the heartbeat while commands keep working, then resubscribed; and a
//!   session revoked elsewhere meanwhile is served no later than the silence bound after
//!   the revocation returned;
//! - a command connection that silently stops, and stays a black hole: `503` meanwhile,
//!   then a new connection serves again, with no restart;
//! - connections reset (RST) by the network: the feed and the commands reconnect.
//!
//! The tests run one at a time (they measure time) and check that nothing panicked.

mod redis_support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use redis_support::proxy::{Kind, Proxy};
use redis_support::server::OwnRedis;
use redis_support::{PROPAGATION, SECRET, customer, refused_within, wait_for_feed};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower_customer_session::store::{FeedSink, FeedState, SessionStore};
use tower_customer_session::token::{TokenFormat, TokenKind};
use tower_customer_session::{
    CreateSession, Customer, CustomerSessionLayer, RedisStore, SessionManager,
};

/// The silence bound the store documents for its defaults (`heartbeat_interval +
/// heartbeat_timeout`); the instances here run on the defaults.
const SILENCE_BOUND: Duration = Duration::from_millis(300);
/// The silence bound plus scheduling slack on a shared machine, for a feed to be reported
/// lost.
const HEARTBEAT_BOUND: Duration = Duration::from_millis(300 + 250);
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
        Self::start_with(url, STORE_TIMEOUT).await
    }

    /// An instance whose manager gives up on the store after `store_timeout`; the
    /// heartbeat is the store's default.
    async fn start_with(url: &str, store_timeout: Duration) -> Self {
        let store = RedisStore::builder(url)
            .key_prefix("faults:")
            .connect_timeout(Duration::from_millis(300))
            .command_timeout(COMMAND_TIMEOUT)
            .connect()
            .await
            .expect("connect");
        let sessions = SessionManager::builder(store)
            .secret(SECRET)
            .store_timeout(store_timeout)
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
    assert_eq!(
        proxy.freeze(Kind::Subscribers),
        1,
        "one subscription connection"
    );
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

/// Requests `GET /me` on `instance` with `token` back to back until stopped: when each
/// started, and its status.
struct Hammer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(Instant, StatusCode)>>,
}

impl Hammer {
    fn start(instance: &Instance, token: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (http, url, token) = (
            instance.http.clone(),
            format!("{}/me", instance.base),
            token.to_owned(),
        );
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                let started = Instant::now();
                let response = http.get(&url).bearer_auth(&token).send().await;
                seen.push((started, response.expect("the server answers").status()));
            }
            seen
        });
        Self { stop, task }
    }

    async fn finish(self) -> Vec<(Instant, StatusCode)> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the hammer ran")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_is_refused_within_the_silence_bound_by_an_instance_with_a_frozen_feed() {
    let _serial = SERIAL.lock().await;
    let panics_before = panics();
    let Some(server) = OwnRedis::start() else {
        return;
    };
    let proxy = Proxy::start(server.port()).await;
    let a = Instance::start(&server.url()).await;
    let b = Instance::start(&proxy.url()).await;
    for side in [&a, &b] {
        wait_for_feed(&side.sessions, FeedState::Live, Duration::from_secs(5)).await;
    }
    // The instances run on the defaults, whose bound the documentation states.
    let watch = b.sessions.store().watch(FeedSink::detached());
    assert_eq!(watch.map(|w| w.max_silence()), Some(SILENCE_BOUND));

    let jane = a.sessions.upsert_customer(customer("Jane")).await.unwrap();
    let session = a
        .sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    let token = session.token.expose_secret();
    for _ in 0..2 {
        assert_eq!(b.me(token).await.0, StatusCode::OK, "cached on B");
    }
    let hammer = Hammer::start(&b, token);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // B's subscription goes silent; its command connection and Redis are fine. The
    // revocation's message never reaches B: only the silence bound stops its cache.
    assert_eq!(proxy.freeze(Kind::Subscribers), 1, "B's subscription");
    assert!(a.sessions.revoke(token).await.unwrap());
    let revoked = Instant::now();
    tokio::time::sleep(SILENCE_BOUND + Duration::from_secs(1)).await;
    let seen = hammer.finish().await;

    let last_accept = seen
        .iter()
        .filter(|(_, status)| *status == StatusCode::OK)
        .map(|(started, _)| *started)
        .max()
        .expect("B served the session before the revocation");
    let after = last_accept.saturating_duration_since(revoked);
    let requests = seen
        .iter()
        .filter(|(started, _)| *started > revoked)
        .count();
    eprintln!("last accept {after:?} after revoke returned ({requests} requests since)");
    assert!(
        after <= SILENCE_BOUND + Duration::from_millis(100),
        "B served the revoked session {after:?} after revoke returned; the bound is {SILENCE_BOUND:?}"
    );
    for (_, status) in &seen {
        assert!(
            [StatusCode::OK, StatusCode::UNAUTHORIZED].contains(status),
            "only 200 then 401 while Redis answers, got {status}"
        );
    }
    assert_eq!(seen.last().unwrap().1, StatusCode::UNAUTHORIZED);
    // The feed is back on a new connection (the frozen one stays a black hole).
    wait_for_feed(&b.sessions, FeedState::Live, Duration::from_secs(5)).await;
    assert_eq!(b.me(token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(panics(), panics_before, "something panicked");
}

/// B's command connection stops answering and stays a black hole; new connections hang
/// for `HANG`, then flow. B answers 503 during the hang, then serves again by itself.
async fn a_black_holed_command_connection_is_replaced(store_timeout: Duration) {
    const HANG: Duration = Duration::from_secs(2);
    const CONCURRENT: usize = 8;
    let Some(server) = OwnRedis::start() else {
        return;
    };
    let proxy = Proxy::start(server.port()).await;
    let a = Instance::start(&server.url()).await;
    let b = Instance::start_with(&proxy.url(), store_timeout).await;
    for side in [&a, &b] {
        wait_for_feed(&side.sessions, FeedState::Live, Duration::from_secs(5)).await;
    }
    let jane = a.sessions.upsert_customer(customer("Jane")).await.unwrap();
    let session = a
        .sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    let token = session.token.expose_secret();
    assert_eq!(b.me(token).await.0, StatusCode::OK);
    // A session B has never loaded: serving it needs the store.
    let cold = a
        .sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    let cold = cold.token.expose_secret();

    proxy.hold_new(true);
    assert_eq!(proxy.freeze(Kind::Commands), 1, "B's command connection");
    let hung = Instant::now();
    // Sessions B has never loaded, requested side by side (distinct, so the manager does
    // not coalesce them): their timeouts come together, and must not each replace the
    // connection.
    let mut colds = Vec::new();
    for _ in 0..CONCURRENT {
        let session = a
            .sessions
            .create(jane.id, CreateSession::default())
            .await
            .unwrap();
        colds.push(session);
    }
    let unavailable: usize = futures_util::future::join_all(colds.iter().map(|session| async {
        let mut count = 0;
        while hung.elapsed() < HANG {
            let token = session.token.expose_secret();
            b.unavailable(token, "a load while B's connections hang")
                .await;
            count += 1;
        }
        count
    }))
    .await
    .into_iter()
    .sum();
    // One replacement per timeout round at most (the backoff spaces them further), each
    // with the driver's own connection attempts: far fewer than one per failed call.
    let black_holes = proxy.frozen(Kind::All);
    assert!(
        black_holes <= unavailable / CONCURRENT + 4,
        "{black_holes} connections for {unavailable} failed calls"
    );
    assert_eq!(a.me(cold).await.0, StatusCode::OK, "Redis itself is fine");
    // New connections flow again; the old ones stay black holes.
    proxy.hold_new(false);
    let released = Instant::now();
    b.recovers(cold, Duration::from_secs(3)).await;
    eprintln!(
        "{unavailable} × 503 during the hang; serving again {:?} after it, {} connection(s) left as black holes",
        released.elapsed(),
        proxy.frozen(Kind::All)
    );
    assert_eq!(
        proxy.open(Kind::Commands),
        1,
        "one command connection in use"
    );
    // The store works for every call again, and the feed never stopped.
    let fresh = a
        .sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    let fresh = fresh.token.expose_secret();
    assert_eq!(b.me(fresh).await.0, StatusCode::OK);
    assert!(b.sessions.revoke(fresh).await.unwrap());
    refused_within(&a.sessions, fresh, PROPAGATION, "a revocation on B").await;
    assert_eq!(b.sessions.feed_state(), FeedState::Live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_command_connection_is_replaced_after_a_command_timeout() {
    let _serial = SERIAL.lock().await;
    let panics_before = panics();
    // The store's command timeout fires first.
    a_black_holed_command_connection_is_replaced(STORE_TIMEOUT).await;
    assert_eq!(panics(), panics_before, "something panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_command_connection_is_replaced_when_the_manager_gives_up_first() {
    let _serial = SERIAL.lock().await;
    let panics_before = panics();
    // The manager's deadline, shorter than the command timeout, drops each call first.
    a_black_holed_command_connection_is_replaced(Duration::from_millis(100)).await;
    assert_eq!(panics(), panics_before, "something panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reset_by_the_network_are_reestablished() {
    let _serial = SERIAL.lock().await;
    let panics_before = panics();
    let Some(server) = OwnRedis::start() else {
        return;
    };
    let proxy = Proxy::start(server.port()).await;
    let a = Instance::start(&server.url()).await;
    let b = Instance::start(&proxy.url()).await;
    wait_for_feed(&b.sessions, FeedState::Live, Duration::from_secs(5)).await;
    let jane = a.sessions.upsert_customer(customer("Jane")).await.unwrap();
    let session = a
        .sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    let token = session.token.expose_secret();
    assert_eq!(b.me(token).await.0, StatusCode::OK);

    // A raw connection too, to see that the proxy resets rather than closes.
    let mut raw = tokio::net::TcpStream::connect(proxy.url().trim_start_matches("redis://"))
        .await
        .unwrap();
    raw.write_all(b"PING\r\n").await.unwrap();
    let mut reply = [0u8; 7];
    raw.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"+PONG\r\n");

    // An RST on every connection: the feed and the driver see it at once.
    assert_eq!(
        proxy.reset(Kind::All),
        3,
        "B's command and feed connections, and ours"
    );
    let read = raw.read(&mut reply).await;
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    wait_for_feed(&b.sessions, FeedState::Lost, HEARTBEAT_BOUND).await;
    wait_for_feed(&b.sessions, FeedState::Live, Duration::from_secs(5)).await;
    b.recovers(token, Duration::from_secs(5)).await;
    assert_eq!(proxy.open(Kind::All), 2, "one new connection of each kind");
    assert!(a.sessions.revoke(token).await.unwrap());
    refused_within(&b.sessions, token, PROPAGATION, "a revocation on A").await;
    assert_eq!(panics(), panics_before, "something panicked");
}
