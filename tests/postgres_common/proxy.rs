//! A TCP proxy in front of the test server that a test can cut, hang and restore, to make
//! the database unreachable for the stores behind it without touching the server.
//!
//! A hang can be aimed at some connections only: the feed's (the connection that sent a
//! `LISTEN`) or the pool's (every other one), and can wait for a connection being tested
//! on its return to the pool. A connection caught by a hang is a black hole for good, as
//! when a NAT or a firewall forgets a flow: only new connections work once the proxy
//! forwards again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Open,
    /// Close every connection and refuse new ones (the port is closed).
    Cut,
    /// Keep connections open (and accept new ones) but forward nothing on those the hang is
    /// aimed at, as a network that hangs. A connection that stalled never moves again, even
    /// after [`Mode::Open`] (as when the database comes back at another address): only new
    /// connections work then.
    Hung,
}

/// Which connections a hang stalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every connection.
    All,
    /// The feed's: a connection that sent `LISTEN`.
    Feed,
    /// Every other one: the pool's.
    Pool,
}

/// When a connection in scope stalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// On its next byte, either way.
    Traffic,
    /// When the client tests it with a bare `Sync` (what sqlx does to a connection being
    /// returned to its pool): the one moment no caller's deadline is running.
    Ping,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    mode: Mode,
    scope: Scope,
    at: At,
}

/// The proxy; stops when dropped.
pub struct Proxy {
    port: u16,
    rule: watch::Sender<Rule>,
    /// Cut the next connection that sends a message containing this, once the server
    /// answered it, without passing the answer on.
    cut_after: Arc<Mutex<Option<Vec<u8>>>>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free port of 127.0.0.1 in front of `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().unwrap().port();
        let (rule, watching) = watch::channel(Rule {
            mode: Mode::Open,
            scope: Scope::All,
            at: At::Traffic,
        });
        let cut_after = Arc::new(Mutex::new(None));
        let task = tokio::spawn(serve(listener, port, upstream, watching, cut_after.clone()));
        Self {
            port,
            rule,
            cut_after,
            task,
        }
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let userinfo = authority
            .rsplit_once('@')
            .map_or(String::new(), |(user, _)| format!("{user}@"));
        format!("{scheme}://{userinfo}127.0.0.1:{}/{path}", self.port)
    }

    /// Every connection, on its next byte.
    pub fn set(&self, mode: Mode) {
        self.rule.send_replace(Rule {
            mode,
            scope: Scope::All,
            at: At::Traffic,
        });
    }

    /// Hang only the connections in `scope`, when they reach `at`.
    pub fn hang(&self, scope: Scope, at: At) {
        self.rule.send_replace(Rule {
            mode: Mode::Hung,
            scope,
            at,
        });
    }

    /// The next message containing `needle` reaches the server; once the server answered,
    /// that connection is closed without passing the answer on, as when a network fails
    /// between a commit and its reply.
    pub fn cut_after(&self, needle: impl AsRef<[u8]>) {
        *self.cut_after.lock().unwrap() = Some(needle.as_ref().to_vec());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(Mode::Cut);
        self.task.abort();
    }
}

/// The upstream address of the test server named by `url` (host and port).
pub async fn upstream_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("a URL").1;
    let authority = rest.split('/').next().unwrap();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    tokio::net::lookup_host(host_port)
        .await
        .expect("resolve")
        .next()
        .expect("an address")
}

async fn serve(
    mut listener: TcpListener,
    port: u16,
    upstream: SocketAddr,
    mut rule: watch::Receiver<Rule>,
    cut_after: Arc<Mutex<Option<Vec<u8>>>>,
) {
    let mut cut = rule.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    tokio::spawn(connection(client, upstream, rule.clone(), cut_after.clone()));
                }
            }
            // Mapped to `()`: the watch guard must not live on into the handler's awaits.
            () = async { let _ = cut.wait_for(|r| r.mode == Mode::Cut).await; } => {
                // Closing the listening socket refuses new connections.
                drop(listener);
                if rule.wait_for(|r| r.mode != Mode::Cut).await.is_err() {
                    return;
                }
                listener = rebind(port).await;
            }
        }
    }
}

async fn rebind(port: u16) -> TcpListener {
    for _ in 0..100 {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the proxy could not take its port {port} back");
}

/// What both directions of one connection know about it.
#[derive(Default)]
struct Flow {
    /// It sent `LISTEN`: the feed's connection.
    listener: AtomicBool,
    /// Caught by a hang: nothing passes ever again.
    stalled: AtomicBool,
    /// Its next answer from the server is dropped, and the connection with it.
    cut_before_reply: AtomicBool,
}

impl Flow {
    /// Whether a chunk (`from_client`, with these bytes) stalls the connection under `rule`.
    fn stalls(&self, rule: Rule, from_client: bool, bytes: &[u8]) -> bool {
        if self.stalled.load(Ordering::SeqCst) {
            return true;
        }
        let in_scope = match rule.scope {
            Scope::All => true,
            Scope::Feed => self.listener.load(Ordering::SeqCst),
            Scope::Pool => !self.listener.load(Ordering::SeqCst),
        };
        let reached = match rule.at {
            At::Traffic => true,
            // sqlx's `ping`: a `Sync` message written on its own.
            At::Ping => from_client && bytes == b"S\0\0\0\x04",
        };
        let stalls = rule.mode == Mode::Hung && in_scope && reached;
        if stalls {
            self.stalled.store(true, Ordering::SeqCst);
        }
        stalls
    }
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mut rule: watch::Receiver<Rule>,
    cut_after: Arc<Mutex<Option<Vec<u8>>>>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let flow = Arc::new(Flow::default());
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = pump(client_read, server_write, rule.clone(), flow.clone(), Some(cut_after)) => {}
        _ = pump(server_read, client_write, rule.clone(), flow.clone(), None) => {}
        // Dropping both halves of both sockets closes them.
        _ = rule.wait_for(|r| r.mode == Mode::Cut) => {}
    }
}

/// Copy `from` to `to` (client to server when `cut_after` is given); once the connection
/// stalls, hold everything forever (it closes only when the proxy is cut or dropped).
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut rule: watch::Receiver<Rule>,
    flow: Arc<Flow>,
    cut_after: Option<Arc<Mutex<Option<Vec<u8>>>>>,
) {
    let from_client = cut_after.is_some();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let bytes = &buffer[..n];
        if from_client && contains(bytes, b"LISTEN ") {
            flow.listener.store(true, Ordering::SeqCst);
        }
        let current = *rule.borrow_and_update();
        if flow.stalls(current, from_client, bytes) {
            let _ = rule.wait_for(|r| r.mode == Mode::Cut).await;
            return;
        }
        if !from_client && flow.cut_before_reply.load(Ordering::SeqCst) {
            // The server answered: the statement ran to its end. Close without a word.
            return;
        }
        if let Some(cut_after) = &cut_after {
            let mut needle = cut_after.lock().unwrap();
            if needle.as_deref().is_some_and(|n| contains(bytes, n)) {
                *needle = None;
                flow.cut_before_reply.store(true, Ordering::SeqCst);
            }
        }
        if to.write_all(bytes).await.is_err() {
            return;
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
