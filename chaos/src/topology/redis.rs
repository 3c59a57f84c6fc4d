//! A `redis-server` of the harness's own, with an append-only file synced on every write,
//! so that what it acknowledged survives a SIGKILL.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::{self, free_port, temp_dir, wait_until};
use super::{Protocol, Topology};

pub struct RedisServer {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Start one on a free port, with a data directory of its own.
    pub fn start() -> io::Result<Self> {
        let mut server = Self {
            dir: temp_dir("redis")?,
            port: free_port()?,
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            // The condition for "a revocation is never undone by a restart": every write
            // is on disk before it is acknowledged.
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let port = self.port;
        wait_until(Duration::from_secs(30), "redis-server answers PING", || {
            answers(port)
        })
    }

    fn pid(&self) -> io::Result<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| io::Error::other("redis-server is not running"))
    }
}

fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Topology for RedisServer {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn protocol(&self) -> Protocol {
        Protocol::Redis
    }

    fn endpoint(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.port).into()
    }

    fn url_via(&self, port: u16) -> String {
        format!("redis://127.0.0.1:{port}")
    }

    fn kill(&mut self) -> io::Result<()> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| io::Error::other("redis-server is not running"))?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    fn restart(&mut self) -> io::Result<()> {
        self.spawn()
    }

    fn pause(&mut self) -> io::Result<()> {
        process::signal("STOP", &[self.pid()?])
    }

    fn resume(&mut self) -> io::Result<()> {
        process::signal("CONT", &[self.pid()?])
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
