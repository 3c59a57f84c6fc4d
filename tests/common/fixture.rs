//! The security suites' fixture: Polar's test-vector tokens seeded for two customers, the
//! app with the layer in front of them, and a raw HTTP/1.1 client for inputs no HTTP library
//! would send.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower_customer_session::model::CustomerData;
use tower_customer_session::store::{CustomerRef, NewSession};
use tower_customer_session::token::TokenKind;
use tower_customer_session::{
    Customer, CustomerSessionLayer, ManualClock, MemoryStore, SessionAdmin, SessionInfo,
    SessionManager, SessionManagerBuilder,
};
use uuid::Uuid;

use super::TestStore;

/// The HMAC key of the fixture's sessions. Not Polar's test-vector key, which is too short
/// for the session manager (`src/token/tests.rs` checks the vectors with `TokenHasher`).
pub const FIXTURE_SECRET: &[u8] = b"fixture secret, thirty-two bytes";
/// A Polar test-vector customer token; the fixture issues a session for it.
pub const VALID: &str = "polar_cst_mDzyMJMtMi1pdvsJXMR2wHGk5Q6bbyD5UowKl0L1tZ2";
/// A Polar test-vector member token; the fixture issues a session for it too.
pub const MEMBER: &str = "polar_mst_ucPVuhrH7GUpexaoDv5zpTd9TNAgJdnb3huu31vTYX9";
/// A well-formed test-vector token (right prefix, length and checksum) that is never issued.
pub const UNKNOWN: &str = "polar_cst_ghkQjySoWtlN3tvO8kahxKkJ1SVqSLVPF7A103A6AbV";
/// The session cookie. Given with its `__Host-` prefix so the name read is exactly this one
/// whatever the cookie's secure defaults are.
pub const COOKIE: &str = "__Host-sid";
/// The layer's realm in every challenge.
pub const CHALLENGE: &str = "Bearer realm=\"polar\"";

/// A fixed start time, so nothing depends on when the tests run.
pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).expect("valid timestamp")
}

/// Store a session for a token chosen by the test (the crate only issues random ones).
pub async fn seed(
    memory: &MemoryStore,
    customer: &Customer,
    token: &str,
    kind: TokenKind,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) {
    let hasher = tower_customer_session::token::TokenHasher::new(FIXTURE_SECRET);
    memory
        .create(NewSession {
            id: Uuid::new_v4(),
            token_hash: hasher.hash(token),
            kind,
            customer: CustomerRef::Id(customer.id),
            created_at,
            expires_at,
            return_url: None,
            member: None,
        })
        .await
        .expect("seed session");
}

/// Two customers with one live session each (`VALID` for alice, `MEMBER` for bob), behind
/// a counting store and a manual clock shared by store and sessions.
pub struct Fixture {
    pub sessions: SessionManager<TestStore>,
    pub store: TestStore,
    pub clock: ManualClock,
    pub alice: Customer,
    pub bob: Customer,
}

pub type Configure = fn(SessionManagerBuilder<TestStore>) -> SessionManagerBuilder<TestStore>;

impl Fixture {
    pub async fn new() -> Self {
        Self::with(|builder| builder).await
    }

    pub async fn with(configure: Configure) -> Self {
        let clock = ManualClock::new(epoch());
        let memory = MemoryStore::with_clock(clock.clone());
        let org = Uuid::new_v4();
        let mut alice = CustomerData::new(epoch()).organization(org);
        alice.email = Some("alice@example.com".into());
        let alice = memory.insert_customer(alice);
        let mut bob = CustomerData::new(epoch()).organization(org);
        bob.email = Some("bob@example.com".into());
        let bob = memory.insert_customer(bob);
        let end = epoch() + TimeDelta::hours(1);
        seed(&memory, &alice, VALID, TokenKind::Customer, epoch(), end).await;
        seed(&memory, &bob, MEMBER, TokenKind::Member, epoch(), end).await;
        let store = TestStore::new(memory);
        let builder = SessionManager::builder(store.clone())
            .secret(FIXTURE_SECRET)
            .clock(clock.clone())
            .cache_capacity(1_000)
            .store_timeout(Duration::from_millis(100));
        let sessions = configure(builder).build().unwrap();
        // Seeding went straight to the memory store; start every count from zero.
        Self {
            sessions,
            store,
            clock,
            alice,
            bob,
        }
    }

    /// Header and the `COOKIE` cookie, required mode.
    pub fn layer(&self) -> CustomerSessionLayer<TestStore> {
        CustomerSessionLayer::new(self.sessions.clone()).cookie(COOKIE)
    }

    /// `GET /me` behind [`Self::layer`], answering `<customer id> <token hash hex> <source>`.
    pub fn app(&self) -> Router {
        Router::new().route("/me", get(me)).layer(self.layer())
    }

    /// The customer a valid test token belongs to.
    pub fn owner(&self, token: &str) -> &Customer {
        match token {
            VALID => &self.alice,
            MEMBER => &self.bob,
            other => panic!("{other} is not an issued test token"),
        }
    }

    pub fn hash_hex(&self, token: &str) -> String {
        self.sessions.hasher().hash(token).to_hex()
    }
}

/// What the protected handler answers: enough to prove who was authenticated, by which token.
pub async fn me(customer: Customer, info: SessionInfo) -> String {
    format!(
        "{} {} {:?}",
        customer.id,
        info.token_hash.to_hex(),
        info.source
    )
}

/// A response read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Serve `app` on an ephemeral loopback port.
pub async fn serve(app: Router) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (addr, server)
}

/// Write `head` (request line and header lines, without the final blank line) verbatim and
/// read the whole response; the connection is closed by the server after one exchange.
pub async fn raw_exchange(addr: SocketAddr, head: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request = head.to_vec();
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    // The server may answer (and close) before reading a huge head; what it answered is what
    // counts, so a failed write is not an error here.
    let _ = stream.write_all(&request).await;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "server did not close the connection");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> RawResponse {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = &raw[..end];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = String::from_utf8_lossy(lines.next().expect("status line")).into_owned();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = String::from_utf8_lossy(&line[..colon]).into_owned();
            let value = line[colon + 1..].trim_ascii().to_vec();
            Some((name, value))
        })
        .collect();
    RawResponse {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

/// The `error="…"` code of a `WWW-Authenticate` value, if any.
pub fn challenge_error(value: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    let start = text.find("error=\"")? + "error=\"".len();
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_owned())
}

/// Whether `value` matches RFC 6750's `b64token` (written independently of the crate's).
pub fn is_b64token(value: &[u8]) -> bool {
    let body = value.len() - value.iter().rev().take_while(|&&b| b == b'=').count();
    body > 0
        && value[..body].iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}
