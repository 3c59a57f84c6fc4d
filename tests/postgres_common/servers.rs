//! Servers a test starts for itself: a PgBouncer in front of the test server, and a whole
//! PostgreSQL cluster of its own that the test may crash. Each lives in a scratch directory
//! and on a free port, and is killed (by its process id) and removed when dropped.
//!
//! PostgreSQL and PgBouncer refuse to run as root: when the tests do, both run as the
//! `postgres` user that Debian's packages create.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use super::database_url;

/// The user servers run as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// A program the test needs, or `None` (skipped loudly) where it is missing outside CI.
fn program(name: &str, candidates: &[PathBuf], install: &str) -> Option<PathBuf> {
    if let Some(found) = candidates.iter().find(|path| path.is_file()) {
        return Some(found.clone());
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{name} is not installed under CI=true; install it with: {install}");
    }
    eprintln!("\n!!! SKIPPED: {name} is not installed ({install}) !!!\n");
    None
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// `program` with `args`, as [`SERVER_USER`] when the tests run as root. `setpriv` execs the
/// program in its own process, so the child's id is the server's.
fn server_command(program: &Path, args: &[&str]) -> Command {
    let mut command = if running_as_root() {
        let mut command = Command::new("setpriv");
        command.args([
            &format!("--reuid={SERVER_USER}"),
            &format!("--regid={SERVER_USER}"),
            "--init-groups",
            "--",
        ]);
        command.arg(program);
        command
    } else {
        Command::new(program)
    };
    command.args(args).stdin(Stdio::null());
    command
}

/// A fresh directory under the system's temporary one, owned by the server's user, removed
/// when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        fs::create_dir_all(&path).expect("create a scratch directory");
        if running_as_root() {
            let owned = Command::new("chown")
                .arg(format!("{SERVER_USER}:"))
                .arg(&path)
                .status()
                .expect("run chown");
            assert!(owned.success(), "chown {} failed", path.display());
        }
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The last lines of `file` in this directory, for a failure message.
    fn tail(&self, file: &str) -> String {
        let text = fs::read_to_string(self.0.join(file)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Wait until something accepts TCP connections on `port`.
async fn accepting(port: u16, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// PgBouncer on a free port of 127.0.0.1, in front of the test server's database
/// (`TEST_DATABASE_URL`), with clients trusted.
pub struct PgBouncer {
    child: Child,
    port: u16,
    user: String,
    database: String,
    dir: ScratchDir,
}

impl PgBouncer {
    /// Start PgBouncer with `pool_mode = mode` (`session` or `transaction`) and at most
    /// `server_connections` to the server. `None` when it is not installed outside CI
    /// (skipped loudly).
    pub async fn start(mode: &str, server_connections: u32) -> Option<Self> {
        let program = program(
            "pgbouncer",
            &[
                PathBuf::from("/usr/sbin/pgbouncer"),
                PathBuf::from("/usr/bin/pgbouncer"),
            ],
            "apt-get install -y pgbouncer",
        )?;
        let upstream: PgConnectOptions = database_url().parse().expect("TEST_DATABASE_URL");
        let user = upstream.get_username().to_owned();
        let database = upstream
            .get_database()
            .unwrap_or(upstream.get_username())
            .to_owned();
        let dir = ScratchDir::new("tcs-pgbouncer");
        let port = free_port();
        fs::write(dir.path().join("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();
        let ini = format!(
            "[databases]\n\
             {database} = host={host} port={upstream_port} dbname={database}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/users.txt\n\
             pool_mode = {mode}\n\
             default_pool_size = {pool}\n\
             max_client_conn = 200\n\
             logfile = {dir}/pgbouncer.log\n",
            host = upstream.get_host(),
            upstream_port = upstream.get_port(),
            dir = dir.path().display(),
            pool = server_connections,
        );
        let config = dir.path().join("pgbouncer.ini");
        fs::write(&config, ini).unwrap();
        let config = config.to_str().unwrap();
        let args: &[&str] = if running_as_root() {
            // PgBouncer drops root itself: the child is PgBouncer, killed by its id.
            &["-u", SERVER_USER, config]
        } else {
            &[config]
        };
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let mut bouncer = Self {
            child,
            port,
            user,
            database,
            dir,
        };
        // Accepting, and still running: not something else that took the port meanwhile.
        let started = accepting(port, Duration::from_secs(5)).await
            && matches!(bouncer.child.try_wait(), Ok(None));
        assert!(
            started,
            "pgbouncer did not start:\n{}",
            bouncer.dir.tail("pgbouncer.log")
        );
        Some(bouncer)
    }

    /// The URL of the test database through this PgBouncer.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{}",
            self.user, self.port, self.database
        )
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
