//! A `redis-server` of the test's own, on a free port, that the test may kill, restart,
//! pause and resume without touching the shared one.

use tower_customer_session::redis;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private Redis; killed when dropped.
pub struct OwnRedis {
    port: u16,
    child: Option<Child>,
    /// Arguments after the defaults (later ones win), e.g. `--replicaof`.
    extra: Vec<String>,
    /// Its own working directory (a replica writes the primary's snapshot there), removed
    /// on drop.
    dir: PathBuf,
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A free port whose Cluster bus port (`port + 10000`) is free too.
pub fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= u16::MAX - 10_000
            && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok()
        {
            return port;
        }
    }
}

impl OwnRedis {
    /// Start one on a free port; `None` (test skipped, loudly) if `redis-server` is not on
    /// `PATH`, except under `CI=true`, where that fails the test.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// [`start`](Self::start), with more `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> Option<Self> {
        Self::start_on(free_port(), extra)
    }

    /// [`start_with`](Self::start_with), on `port`.
    pub fn start_on(port: u16, extra: &[&str]) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!(
            "tcs-redis-{port}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let mut server = Self {
            port,
            child: None,
            extra: extra.iter().map(|arg| (*arg).to_owned()).collect(),
            dir,
        };
        match server.spawn() {
            Ok(()) => Some(server),
            Err(error) if super::ci() => panic!("CI=true and redis-server cannot start: {error}"),
            Err(error) => {
                eprintln!(
                    "SKIPPED: cannot start redis-server ({error}); install it to run this test."
                );
                None
            }
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A replica of this server, started and synchronised.
    pub fn replica(&self) -> Self {
        let port = self.port.to_string();
        let replica = Self::start_with(&["--replicaof", "127.0.0.1", &port])
            .expect("redis-server starts (it just did)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !replica.info().contains("master_link_status:up") {
            assert!(
                Instant::now() < deadline,
                "the replica did not sync within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        replica
    }

    /// `INFO` (every default section), through a fresh connection.
    pub fn info(&self) -> String {
        let mut connection = self.connection();
        redis::cmd("INFO").query(&mut connection).expect("INFO")
    }

    /// A blocking connection for checks.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
            .expect("a connection to the test's own redis-server")
    }

    /// The server's process id, while it runs (for reading its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, as a crash would; its data is gone (it never persists).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A fresh, empty server on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().expect("redis-server restarts on its port");
    }

    /// A fresh, empty server on the same port, started with `extra` arguments this time.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|arg| (*arg).to_owned()).collect();
        self.restart();
    }

    /// SIGSTOP: the process hangs, its sockets stay open and silent.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        // Listening is not enough: wait for it to answer.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.answers() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(std::io::Error::other(
                    "redis-server did not answer within 10 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        // SIGKILL ends a paused server too.
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
