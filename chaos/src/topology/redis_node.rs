//! One `redis-server` of the harness's own: a data directory, a free port, an append-only
//! file synced on every write (what it acknowledged survives a SIGKILL), started as a
//! primary or as the replica of another; and a few blocking commands to ask servers and
//! Sentinels what they are.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tower_customer_session::redis;

use super::process::{self, free_port, temp_dir, wait_until};

pub struct RedisNode {
    dir: PathBuf,
    port: u16,
    /// Settings of its topology, given at each start.
    settings: Vec<String>,
    child: Option<Child>,
}

impl RedisNode {
    /// A node on a free port with a data directory of its own, and `settings` of its
    /// topology (`--name value` pairs); not started.
    pub fn new(name: &str, settings: &[&str]) -> io::Result<Self> {
        Self::on_port(name, free_port()?, settings)
    }

    /// As [`new`](Self::new), on `port`.
    pub fn on_port(name: &str, port: u16, settings: &[&str]) -> io::Result<Self> {
        Ok(Self {
            dir: temp_dir(name)?,
            port,
            settings: settings.iter().map(|&s| s.to_owned()).collect(),
            child: None,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Start on its data, as a primary or as the replica of the node on `primary`;
    /// returns once it answers `PING`.
    pub fn spawn(&mut self, primary: Option<u16>) -> io::Result<()> {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            // The condition for "a revocation is never undone by a restart": every write
            // is on disk before it is acknowledged.
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", ""])
            // A replica's full sync starts at once, rather than 5 s later in case others
            // join (Redis's default for diskless syncs).
            .args(["--repl-diskless-sync-delay", "0"])
            // Stalls of 100 ms or more are recorded (`LATENCY LATEST`), and printed when
            // the run ends: a stall longer than the command timeout is a 503 no fault
            // explains.
            .args(["--latency-monitor-threshold", "100"])
            .args(&self.settings)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(primary) = primary {
            command.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        self.child = Some(command.spawn()?);
        let port = self.port;
        wait_until(Duration::from_secs(30), "redis-server answers PING", || {
            query::<String>(port, &mut redis::cmd("PING")).is_ok_and(|pong| pong == "PONG")
        })
    }

    pub fn pid(&self) -> io::Result<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| io::Error::other("redis-server is not running"))
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) -> io::Result<()> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| io::Error::other("redis-server is not running"))?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    pub fn pause(&self) -> io::Result<()> {
        process::signal("STOP", &[self.pid()?])
    }

    pub fn resume(&self) -> io::Result<()> {
        process::signal("CONT", &[self.pid()?])
    }

    /// Whether it is a replica whose link to its primary is up.
    pub fn replicating(&self) -> bool {
        query::<String>(self.port, redis::cmd("INFO").arg("replication"))
            .is_ok_and(|info| info.contains("master_link_status:up"))
    }

    /// Its recorded stalls of 100 ms or more, one line each (`LATENCY LATEST`: event,
    /// when last, latest and longest in ms), since its last start.
    pub fn stalls(&self) -> Vec<String> {
        let latest =
            query::<Vec<Vec<redis::Value>>>(self.port, redis::cmd("LATENCY").arg("LATEST"));
        latest
            .unwrap_or_default()
            .iter()
            .map(|event| {
                let field = |i: usize| match event.get(i) {
                    Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                    Some(redis::Value::Int(n)) => n.to_string(),
                    _ => String::new(),
                };
                format!(
                    "{} at unix time {}: latest {} ms, longest {} ms",
                    field(0),
                    field(1),
                    field(2),
                    field(3)
                )
            })
            .collect()
    }

    /// Kill it if it runs, and remove its data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A stopped process is killed all the same.
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One command to the server (or Sentinel) on `port` of 127.0.0.1, with short timeouts.
pub fn query<T: redis::FromRedisValue>(port: u16, command: &mut redis::Cmd) -> io::Result<T> {
    let client = redis::Client::open(format!("redis://{}:{port}", Ipv4Addr::LOCALHOST))
        .map_err(io::Error::other)?;
    let mut connection = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .map_err(io::Error::other)?;
    connection
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(io::Error::other)?;
    command.query(&mut connection).map_err(io::Error::other)
}
