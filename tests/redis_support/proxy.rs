//! A TCP proxy in front of a Redis server that breaks connections the way networks do,
//! chosen by what they carry: subscription connections (those that sent `SUBSCRIBE`) or
//! command connections (all others).
//!
//! - *Freeze*: stop forwarding in both directions without closing anything, as a NAT or
//!   firewall that lost the connection's state does, or a primary gone without a reset. A
//!   frozen connection stays a black hole until thawed (by default, forever).
//! - *Hold new connections*: accept them, connect them upstream, forward nothing.
//! - *Reset*: close both sides at once with an RST.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Which connections an action applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Connections that sent `SUBSCRIBE` (the feeds).
    Subscribers,
    /// Every other connection (commands).
    Commands,
    /// All of them.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Open,
    Frozen,
    Reset,
    /// Ended by one side (a store drops short-lived connections): counted nowhere.
    Closed,
}

struct Link {
    subscriber: AtomicBool,
    flow: watch::Sender<Flow>,
}

impl Link {
    fn is(&self, kind: Kind) -> bool {
        let subscriber = self.subscriber.load(Ordering::SeqCst);
        match kind {
            Kind::Subscribers => subscriber,
            Kind::Commands => !subscriber,
            Kind::All => true,
        }
    }

    fn flow(&self) -> Flow {
        *self.flow.borrow()
    }
}

/// The proxy; its listener task ends with the test's runtime.
pub struct Proxy {
    addr: SocketAddr,
    links: Arc<Mutex<Vec<Arc<Link>>>>,
    hold_new: Arc<AtomicBool>,
}

impl Proxy {
    /// Listen on a free local port, forwarding to `upstream_port` on localhost.
    pub async fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links: Arc<Mutex<Vec<Arc<Link>>>> = Arc::default();
        let hold_new = Arc::new(AtomicBool::new(false));
        let (registry, hold) = (links.clone(), hold_new.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream_port)).await
                else {
                    continue;
                };
                let flow = if hold.load(Ordering::SeqCst) {
                    Flow::Frozen
                } else {
                    Flow::Open
                };
                let link = Arc::new(Link {
                    subscriber: AtomicBool::new(false),
                    flow: watch::Sender::new(flow),
                });
                registry.lock().unwrap().push(link.clone());
                let (client_read, client_write) = inbound.into_split();
                let (server_read, server_write) = outbound.into_split();
                tokio::spawn(pump(client_read, server_write, link.clone(), true));
                tokio::spawn(pump(server_read, client_write, link, false));
            }
        });
        Self {
            addr,
            links,
            hold_new,
        }
    }

    /// `redis://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Freeze the open connections of `kind`; returns how many.
    pub fn freeze(&self, kind: Kind) -> usize {
        self.set(kind, Flow::Open, Flow::Frozen)
    }

    /// Let the frozen connections of `kind` flow again, with what they held; returns how
    /// many.
    pub fn thaw(&self, kind: Kind) -> usize {
        self.set(kind, Flow::Frozen, Flow::Open)
    }

    /// Close the open or frozen connections of `kind` with an RST; returns how many.
    pub fn reset(&self, kind: Kind) -> usize {
        self.set(kind, Flow::Open, Flow::Reset) + self.set(kind, Flow::Frozen, Flow::Reset)
    }

    /// While `hold` is set, new connections are accepted and frozen from the start; they
    /// stay frozen when it is cleared (thaw them to let them flow).
    pub fn hold_new(&self, hold: bool) {
        self.hold_new.store(hold, Ordering::SeqCst);
    }

    /// How many connections of `kind` are open (flowing).
    pub fn open(&self, kind: Kind) -> usize {
        self.count(kind, Flow::Open)
    }

    /// How many connections of `kind` are frozen.
    pub fn frozen(&self, kind: Kind) -> usize {
        self.count(kind, Flow::Frozen)
    }

    fn count(&self, kind: Kind, flow: Flow) -> usize {
        let links = self.links.lock().unwrap();
        links
            .iter()
            .filter(|l| l.is(kind) && l.flow() == flow)
            .count()
    }

    fn set(&self, kind: Kind, from: Flow, to: Flow) -> usize {
        let links = self.links.lock().unwrap();
        let mut changed = 0;
        for link in links.iter().filter(|l| l.is(kind)) {
            if link.flow.send_if_modified(|flow| {
                let change = *flow == from;
                if change {
                    *flow = to;
                }
                change
            }) {
                changed += 1;
            }
        }
        changed
    }
}

/// `SUBSCRIBE` as a command name in RESP: `$9\r\nSUBSCRIBE\r\n`, any case.
fn subscribes(bytes: &[u8]) -> bool {
    const NAME: &[u8] = b"$9\r\nSUBSCRIBE\r\n";
    bytes
        .windows(NAME.len())
        .any(|w| w.eq_ignore_ascii_case(NAME))
}

/// Forward `from` to `to` while the link is open; hold the bytes while it is frozen; on a
/// reset, close with an RST.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, link: Arc<Link>, from_client: bool) {
    let mut flow = link.flow.subscribe();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => {
                    link.flow.send_if_modified(|flow| {
                        let open = *flow == Flow::Open;
                        if open {
                            *flow = Flow::Closed;
                        }
                        open
                    });
                    return;
                }
                Ok(n) => n,
            },
            _ = flow.wait_for(|f| *f == Flow::Reset) => return reset(to),
        };
        if from_client && subscribes(&buffer[..n]) {
            link.subscriber.store(true, Ordering::SeqCst);
        }
        // Frozen: keep both sockets open, forward nothing, until thawed or reset.
        let now = match flow.wait_for(|f| *f != Flow::Frozen).await {
            Ok(now) => *now,
            Err(_) => return,
        };
        if now == Flow::Reset {
            return reset(to);
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// Close `to`'s socket without a FIN first: with a zero linger, the close sends an RST
/// once the other pump drops the read half.
fn reset(to: OwnedWriteHalf) {
    let _ = to.as_ref().set_zero_linger();
    to.forget();
}
