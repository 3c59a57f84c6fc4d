//! TCP proxies in front of the store for one instance, whose faults the schedule sets:
//! hang every connection, hang the feed connection only, or reset them all.
//!
//! An instance has one proxy per endpoint of the store ([`Proxies`]). Where the store names
//! its own endpoints in replies (Sentinel names the primary's port; a cluster, its nodes'),
//! the proxies substitute their own, so that every connection the instance opens stays
//! behind one of its proxies.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Forward,
    /// Forward nothing on any connection, open or new; connections stay open. One that
    /// was hung stays silent for good, as a half-open connection does: only new ones work
    /// after [`Mode::Forward`] (the store's side of it is closed then, so it frees its slot).
    HangAll,
    /// As [`Mode::HangAll`], for the feed connection only: the one that sent `SUBSCRIBE`
    /// (Redis) or `LISTEN` (PostgreSQL).
    HangFeed,
    /// Reset every connection, and each new one, while it lasts.
    Reset,
}

/// Whole tokens of the store's replies to replace, each by another (an endpoint's port as
/// the store writes it, by the proxy's port written the same way).
pub type Rewrites = Arc<Vec<(Vec<u8>, Vec<u8>)>>;

/// One instance's proxies, one per endpoint of the store, all in one mode; they stop when
/// dropped.
pub struct Proxies {
    ports: Vec<u16>,
    mode: watch::Sender<Mode>,
    tasks: Vec<JoinHandle<()>>,
}

impl Proxies {
    /// A proxy on a free port of 127.0.0.1 in front of each of `upstreams`, replacing in
    /// replies what `rewrites(ports)` says, given the proxies' ports.
    pub async fn start(
        upstreams: &[SocketAddr],
        rewrites: impl FnOnce(&[u16]) -> Vec<(Vec<u8>, Vec<u8>)>,
    ) -> std::io::Result<Self> {
        let mut listeners = Vec::new();
        for _ in upstreams {
            listeners.push(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?);
        }
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<Vec<_>>>()?;
        let rewrites: Rewrites = Arc::new(rewrites(&ports));
        let (mode, watching) = watch::channel(Mode::Forward);
        let tasks = listeners
            .into_iter()
            .zip(upstreams)
            .map(|(listener, upstream)| {
                tokio::spawn(accept(
                    listener,
                    *upstream,
                    watching.clone(),
                    rewrites.clone(),
                ))
            })
            .collect();
        Ok(Self { ports, mode, tasks })
    }

    /// The proxies' ports, in the order of the upstreams.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxies {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn accept(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Receiver<Mode>,
    rewrites: Rewrites,
) {
    while let Ok((client, _)) = listener.accept().await {
        let _ = client.set_nodelay(true);
        let now = *mode.borrow();
        match now {
            Mode::Reset => reset(client),
            Mode::HangAll => {
                tokio::spawn(async move {
                    let _held = client;
                    std::future::pending::<()>().await;
                });
            }
            Mode::Forward | Mode::HangFeed => {
                tokio::spawn(link(client, upstream, mode.clone(), rewrites.clone()));
            }
        }
    }
}

/// Close with RST rather than FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Whether bytes a client sent make its connection the feed's.
fn subscribes(bytes: &[u8]) -> bool {
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    has(b"SUBSCRIBE") || has(b"LISTEN \"")
}

enum End {
    Closed,
    Reset,
    Freeze,
}

/// Replace every whole occurrence of a `from` of `rewrites` in `carry` followed by `bytes`,
/// and return what can be sent: all but a tail that may be the start of one (a complete
/// reply never ends so: the forms are whole tokens, and a reply ends with its last one).
pub(crate) fn rewrite(
    carry: &mut Vec<u8>,
    bytes: &[u8],
    rewrites: &[(Vec<u8>, Vec<u8>)],
) -> Vec<u8> {
    carry.extend_from_slice(bytes);
    if rewrites.is_empty() {
        return std::mem::take(carry);
    }
    let mut out = Vec::with_capacity(carry.len());
    let mut at = 0;
    'scan: while at < carry.len() {
        for (from, to) in rewrites {
            if carry[at..].starts_with(from) {
                out.extend_from_slice(to);
                at += from.len();
                continue 'scan;
            }
        }
        // The rest may be the start of a form: keep it for the next bytes.
        let rest = &carry[at..];
        if rewrites
            .iter()
            .any(|(from, _)| from.len() > rest.len() && from.starts_with(rest))
        {
            break;
        }
        out.push(carry[at]);
        at += 1;
    }
    carry.drain(..at);
    out
}

async fn link(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    rewrites: Rewrites,
) {
    let connected = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(upstream));
    let Ok(Ok(mut server)) = connected.await else {
        // The store is down: the client sees what it would see without the proxy.
        reset(client);
        return;
    };
    let _ = server.set_nodelay(true);
    let mut feed = false;
    let end = {
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let mut up = vec![0u8; 16 * 1024];
        let mut down = vec![0u8; 16 * 1024];
        let mut carry = Vec::new();
        loop {
            let now = *mode.borrow_and_update();
            match now {
                Mode::Reset => break End::Reset,
                Mode::HangAll => break End::Freeze,
                Mode::HangFeed if feed => break End::Freeze,
                Mode::Forward | Mode::HangFeed => {}
            }
            tokio::select! {
                read = client_read.read(&mut up) => {
                    let Ok(n @ 1..) = read else { break End::Closed };
                    feed |= subscribes(&up[..n]);
                    // Nothing passes once the connection counts as hung.
                    let now = *mode.borrow();
                    if now == Mode::HangAll || (now == Mode::HangFeed && feed) {
                        break End::Freeze;
                    }
                    if server_write.write_all(&up[..n]).await.is_err() {
                        break End::Closed;
                    }
                }
                read = server_read.read(&mut down) => {
                    let Ok(n @ 1..) = read else { break End::Closed };
                    let out = rewrite(&mut carry, &down[..n], &rewrites);
                    if client_write.write_all(&out).await.is_err() {
                        break End::Closed;
                    }
                }
                changed = mode.changed() => {
                    if changed.is_err() {
                        break End::Closed;
                    }
                }
            }
        }
    };
    match end {
        End::Closed => {}
        End::Reset => {
            reset(client);
            reset(server);
        }
        End::Freeze => {
            // Silent both ways, for good. Once the fault is healed the store's side is
            // closed, so a hung connection does not hold a server slot for the whole run.
            let _ = mode.wait_for(|m| *m == Mode::Forward).await;
            drop(server);
            let _held = client;
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{rewrite, subscribes};

    #[test]
    fn named_ports_are_replaced_whole_even_across_reads() {
        let rewrites = vec![(b"$5\r\n41234\r\n".to_vec(), b"$4\r\n9999\r\n".to_vec())];
        let reply = b"*4\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$4\r\nport\r\n$5\r\n41234\r\n";
        let want = b"*4\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$4\r\nport\r\n$4\r\n9999\r\n";
        for cut in 0..reply.len() {
            let mut carry = Vec::new();
            let mut out = rewrite(&mut carry, &reply[..cut], &rewrites);
            out.extend(rewrite(&mut carry, &reply[cut..], &rewrites));
            assert_eq!(out, want, "cut at {cut}");
            assert!(carry.is_empty());
        }
        // Not a whole token: left alone.
        let mut carry = Vec::new();
        let other = b"$6\r\n412345\r\n:41234\r\n";
        assert_eq!(rewrite(&mut carry, other, &rewrites), other);
        assert!(carry.is_empty());
    }

    #[test]
    fn feed_connections_are_recognised() {
        assert!(subscribes(b"*2\r\n$9\r\nSUBSCRIBE\r\n$8\r\ntcs:feed\r\n"));
        assert!(subscribes(
            b"Q\0\0\0\x2cLISTEN \"customer_session_feed:x\"\0"
        ));
        assert!(!subscribes(b"*3\r\n$7\r\nEVALSHA\r\n"));
        assert!(!subscribes(b"Q\0\0\0\x10SELECT 1\0"));
    }
}
