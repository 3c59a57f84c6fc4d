//! A TCP proxy in front of the store for one instance, whose faults the schedule sets:
//! hang every connection, hang the feed connection only, or reset them all.

use std::net::{Ipv4Addr, SocketAddr};
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

/// The proxy; stops when dropped.
pub struct Proxy {
    port: u16,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free port of 127.0.0.1 in front of `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let port = listener.local_addr()?.port();
        let (mode, watching) = watch::channel(Mode::Forward);
        let task = tokio::spawn(accept(listener, upstream, watching));
        Ok(Self { port, mode, task })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
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
                tokio::spawn(link(client, upstream, mode.clone()));
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

async fn link(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
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
                    if client_write.write_all(&down[..n]).await.is_err() {
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
    use super::subscribes;

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
