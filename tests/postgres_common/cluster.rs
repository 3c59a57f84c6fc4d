//! A PostgreSQL cluster of a test's own, which the test may crash and start again.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use super::servers::{ScratchDir, free_port, program, server_command};

/// A PostgreSQL cluster of the test's own (`initdb` in a scratch directory), on a free
/// port, with `fsync` and `synchronous_commit` on (the defaults, stated), that the test can
/// crash and start again on the same data.
pub struct OwnPostgres {
    bin: PathBuf,
    port: u16,
    server: Option<Child>,
    dir: ScratchDir,
}

impl OwnPostgres {
    /// A new cluster, not started yet. `None` when PostgreSQL's server programs are not
    /// installed outside CI (skipped loudly).
    pub fn init() -> Option<Self> {
        let mut candidates: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
            .map(|versions| {
                versions
                    .filter_map(Result::ok)
                    .map(|version| version.path().join("bin/initdb"))
                    .collect()
            })
            .unwrap_or_default();
        // The newest version first.
        candidates.sort_by_key(|path| {
            let version = path.iter().rev().nth(2).and_then(|v| v.to_str());
            std::cmp::Reverse(version.and_then(|v| v.parse::<u32>().ok()))
        });
        let initdb = program("initdb", &candidates, "apt-get install -y postgresql")?;
        let bin = initdb.parent().unwrap().to_owned();
        let dir = ScratchDir::new("tcs-postgres");
        let data = dir.path().join("data");
        let output = server_command(
            &initdb,
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                // The initial files need no fsync: no test crashes the machine. Commits
                // later are fsynced as configured (`fsync=on`).
                "--no-sync",
            ],
        )
        .output()
        .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(Self {
            bin,
            port: free_port(),
            server: None,
            dir,
        })
    }

    /// Start the server (again) on the same data and port, and wait until it answers:
    /// after a crash this includes its recovery from the write-ahead log.
    pub async fn start(&mut self) {
        assert!(self.server.is_none(), "already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let data = self.dir.path().join("data");
        let port = self.port.to_string();
        let sockets = self.dir.path().to_str().unwrap().to_owned();
        let child = server_command(
            &self.bin.join("postgres"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-p",
                &port,
                "-k",
                &sockets,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
                "-c",
                "max_connections=40",
                // Before its recovery, a crashed server syncs its whole data directory: one
                // `syncfs` does that faster than a `fsync` per file, to the same end.
                "-c",
                "recovery_init_sync_method=syncfs",
                "-c",
                "shared_buffers=16MB",
            ],
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start postgres");
        self.server = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let running = self
                .server
                .as_mut()
                .is_some_and(|server| matches!(server.try_wait(), Ok(None)));
            assert!(running, "postgres exited:\n{}", self.dir.tail("server.log"));
            if let Ok(connection) = PgConnection::connect(&self.url()).await {
                let _ = connection.close().await;
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "postgres did not start:\n{}",
                self.dir.tail("server.log")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9` the postmaster, then every process it had started, so that nothing of the
    /// server runs on to write anything: what it had not made durable is lost.
    pub fn crash(&mut self) {
        let Some(mut postmaster) = self.server.take() else {
            return;
        };
        let pid = postmaster.id();
        let children =
            fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let _ = postmaster.kill();
        let _ = postmaster.wait();
        let children: Vec<&str> = children.split_whitespace().collect();
        for child in &children {
            let _ = Command::new("kill").args(["-KILL", child]).status();
        }
        // The next start needs the old processes gone (they hold the shared memory).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while children
            .iter()
            .any(|child| Path::new(&format!("/proc/{child}")).exists() && !is_zombie(child))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the crashed server's processes did not end"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

fn is_zombie(pid: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    })
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.crash();
    }
}
