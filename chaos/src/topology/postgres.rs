//! A PostgreSQL cluster of the harness's own (`initdb` and `postgres` from the server's
//! binaries), on a free port, with `fsync` on, so that what it committed survives a
//! SIGKILL of every one of its processes.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::{self, free_port, temp_dir, wait_until};
use super::{Protocol, Topology};

/// The server's binaries: `PG_BIN`, or the newest `/usr/lib/postgresql/<version>/bin`
/// (where Debian puts them, outside `PATH`).
fn binaries() -> io::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    newest
        .map(|(_, bin)| bin)
        .ok_or_else(|| io::Error::other("no /usr/lib/postgresql/*/bin/initdb; set PG_BIN"))
}

pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    /// The postmaster.
    child: Option<Child>,
    /// The processes stopped by `pause`, to continue.
    paused: Vec<u32>,
}

/// `initdb` and `postgres` refuse to run as root: run them as the `postgres` user then,
/// through `setpriv`, which execs (so the child is the postmaster itself, which the harness
/// signals and reaps; `runuser` would fork, and stop itself whenever its child is stopped).
fn command(bin: &Path, program: &str) -> Command {
    let as_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    if as_root {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid",
                "postgres",
                "--regid",
                "postgres",
                "--init-groups",
                "--",
            ])
            .arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

impl PgCluster {
    /// Create a cluster in a fresh directory and start it.
    pub fn start() -> io::Result<Self> {
        let bin = binaries()?;
        let dir = temp_dir("postgres")?;
        // The data directory must belong to the user the server runs as.
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status();
        let status = command(&bin, "initdb")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!("initdb: {status}")));
        }
        let mut cluster = Self {
            dir,
            port: free_port()?,
            bin,
            child: None,
            paused: Vec::new(),
        };
        cluster.spawn()?;
        Ok(cluster)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))?;
        let child = command(&self.bin, "postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            // Committed means on disk: the condition for "a revocation is never undone by
            // a restart".
            .args(["-c", "fsync=on", "-c", "synchronous_commit=on"])
            // Room for every instance's pool and feed, with connections left hung by the
            // proxies until their fault is healed.
            .args(["-c", "max_connections=300", "-c", "shared_buffers=32MB"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let (bin, port) = (self.bin.clone(), self.port);
        let mut exited = None;
        let child = self.child.as_mut().expect("just spawned");
        wait_until(
            Duration::from_secs(60),
            "PostgreSQL accepts connections",
            || {
                exited = child.try_wait().ok().flatten();
                exited.is_some()
                    || Command::new(bin.join("pg_isready"))
                        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
                        .status()
                        .is_ok_and(|s| s.success())
            },
        )?;
        match exited {
            None => Ok(()),
            Some(status) => Err(io::Error::other(format!(
                "postgres exited ({status}); see {}",
                self.dir.join("server.log").display()
            ))),
        }
    }

    /// The postmaster's pid, from its lock file.
    fn postmaster(&self) -> io::Result<u32> {
        let lock = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid"))?;
        lock.lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| io::Error::other("no pid in postmaster.pid"))
    }

    /// Freeze the postmaster, then everything it started: the whole server, stopped at
    /// once and unable to fork.
    fn freeze(&self) -> io::Result<Vec<u32>> {
        let postmaster = self.postmaster()?;
        process::signal("STOP", &[postmaster])?;
        let mut all = process::children(postmaster);
        process::signal("STOP", &all)?;
        all.push(postmaster);
        Ok(all)
    }
}

impl Topology for PgCluster {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn protocol(&self) -> Protocol {
        Protocol::Postgres
    }

    fn endpoints(&self) -> Vec<SocketAddr> {
        vec![(Ipv4Addr::LOCALHOST, self.port).into()]
    }

    fn url_via(&self, ports: &[u16]) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", ports[0])
    }

    fn kill(&mut self) -> io::Result<()> {
        let all = self.freeze()?;
        process::signal("KILL", &all)?;
        if let Some(mut child) = self.child.take() {
            child.wait()?;
        }
        process::wait_gone(&all, Duration::from_secs(10))?;
        // Every process of the server is gone (its backends may linger as zombies, which
        // the postmaster's check would take for a live server): the lock file is stale.
        std::fs::remove_file(self.dir.join("data").join("postmaster.pid"))
    }

    fn restart(&mut self) -> io::Result<()> {
        self.spawn()
    }

    fn pause(&mut self) -> io::Result<()> {
        self.paused = self.freeze()?;
        Ok(())
    }

    fn resume(&mut self) -> io::Result<()> {
        process::signal("CONT", &std::mem::take(&mut self.paused))
    }

    fn stop(&mut self) {
        if let Ok(all) = self.freeze() {
            let _ = process::signal("KILL", &all);
            let _ = process::wait_gone(&all, Duration::from_secs(10));
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
