//! Servers a test starts for itself: a PgBouncer in front of the test server here, and a
//! whole PostgreSQL cluster of its own in [`cluster`](super::cluster). Each lives in a
//! scratch directory and on a free port, and is killed (by its process id) and removed when
//! dropped.
//!
//! PostgreSQL and PgBouncer refuse to run as root: when the tests do, both run as the
//! `postgres` user that Debian's packages create.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use super::database_url;

/// The user servers run as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// A program the test needs, or `None` (skipped loudly) where it is missing outside CI.
pub(super) fn program(name: &str, candidates: &[PathBuf], install: &str) -> Option<PathBuf> {
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
pub(super) fn server_command(program: &Path, args: &[&str]) -> Command {
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
    pub(super) fn new(prefix: &str) -> Self {
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
    pub(super) fn tail(&self, file: &str) -> String {
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
