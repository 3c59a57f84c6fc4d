//! A Sentinel topology of the test's own, on free ports: one primary, one replica and
//! three `redis-server --sentinel` processes monitoring them; every process is killed on
//! drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tower_customer_session::store::RedisDurability;
use tower_customer_session::{RedisStore, SessionManager, redis};

use super::server::{OwnRedis, free_port};

/// The name the sentinels monitor the primary under.
pub const MASTER: &str = "sessions";

pub struct Topology {
    pub primary: OwnRedis,
    pub replica: OwnRedis,
    sentinels: Vec<(u16, Child, std::path::PathBuf)>,
}

impl Topology {
    /// Start everything and wait until each sentinel knows the replica and the two other
    /// sentinels (so a failover can be agreed), and all name the same primary, which the
    /// other node follows (`primary` is that one). `None` as [`OwnRedis::start`] says.
    pub fn start() -> Option<Self> {
        let primary = OwnRedis::start()?;
        let replica = primary.replica();
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = std::env::temp_dir().join(format!(
                "tcs-sentinel-{port}-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&dir).expect("a directory for the sentinel");
            let config = dir.join("sentinel.conf");
            std::fs::write(
                &config,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds {MASTER} 400\n\
                     sentinel failover-timeout {MASTER} 2000\n",
                    dir.display(),
                    primary.port()
                ),
            )
            .expect("the sentinel's configuration");
            let child = Command::new("redis-server")
                .arg(&config)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel starts");
            sentinels.push((port, child, dir));
        }
        let mut topology = Self {
            primary,
            replica,
            sentinels,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !topology.ready() {
            assert!(
                Instant::now() < deadline,
                "the sentinels did not find each other within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        topology.settle(deadline);
        Some(topology)
    }

    /// Wait until the Sentinels agree on a primary that the other node follows, and
    /// name the roles after what they are: on a loaded machine the Sentinels may fail
    /// over by themselves (400 ms without an answer is enough). Tests call it again
    /// right before they break the primary.
    pub fn settle(&mut self, deadline: Instant) {
        loop {
            let named: Vec<_> = self
                .sentinels
                .iter()
                .map(|(port, _, _)| named_primary(*port))
                .collect();
            if let Some(port) = named[0].filter(|_| named.iter().all(|n| *n == named[0])) {
                if port == self.replica.port() {
                    std::mem::swap(&mut self.primary, &mut self.replica);
                }
                let following = self.replica.info();
                if port == self.primary.port()
                    && following.contains(&format!("master_port:{port}"))
                    && following.contains("master_link_status:up")
                {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the sentinels did not agree on a followed primary within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `host:port` of each sentinel.
    pub fn sentinels(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|(port, _, _)| format!("127.0.0.1:{port}"))
            .collect()
    }

    /// Wait until the Sentinels have promoted the replica (the primary is down or hung,
    /// by the test's doing), then kill the old primary (SIGKILL) and start it again on its
    /// port as the new one's replica; returns once its replication link is up.
    /// Afterwards `replica` is the primary and `primary` its replica.
    pub fn promote_and_rejoin(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        // Promoted once every Sentinel names it: the old primary back any earlier would
        // make them abandon the failover and demote the replica again.
        while !self
            .sentinels
            .iter()
            .all(|(port, _, _)| named_primary(*port) == Some(self.replica.port()))
        {
            assert!(Instant::now() < deadline, "no promotion within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.primary.kill();
        let port = self.replica.port().to_string();
        self.primary
            .restart_with(&["--replicaof", "127.0.0.1", &port]);
        while !self.primary.info().contains("master_link_status:up") {
            assert!(
                Instant::now() < deadline,
                "the old primary did not rejoin within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ready(&self) -> bool {
        self.sentinels.iter().all(|(port, _, _)| {
            let count = |what: &str| -> Option<usize> {
                let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
                let mut connection = client
                    .get_connection_with_timeout(Duration::from_millis(500))
                    .ok()?;
                let list: Vec<redis::Value> = redis::cmd("SENTINEL")
                    .arg(what)
                    .arg(MASTER)
                    .query(&mut connection)
                    .ok()?;
                Some(list.len())
            };
            count("REPLICAS") == Some(1) && count("SENTINELS") == Some(2)
        })
    }
}

/// A manager on a store that finds the primary through `topology`'s Sentinels, with a
/// 250 ms command timeout and every change confirmed by one replica (`WAIT 1`, 500 ms).
pub async fn instance(topology: &Topology) -> (SessionManager<RedisStore>, RedisStore) {
    let store = RedisStore::sentinel(topology.sentinels(), MASTER)
        .command_timeout(Duration::from_millis(250))
        .durability(RedisDurability::replicas(1, Duration::from_millis(500)))
        .connect()
        .await
        .expect("connect through the sentinels");
    let sessions = SessionManager::builder(store.clone())
        .secret(super::SECRET)
        .store_timeout(Duration::from_secs(1))
        .build()
        .expect("a secret is configured");
    (sessions, store)
}

/// The primary's port as the Sentinel on `port` names it, once it has no failover under
/// way.
fn named_primary(port: u16) -> Option<u16> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut connection = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    let (_, primary): (String, u16) = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(MASTER)
        .query(&mut connection)
        .ok()?;
    // And no failover under way any more.
    let fields: Vec<String> = redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg(MASTER)
        .query(&mut connection)
        .ok()?;
    let flags = fields
        .iter()
        .position(|field| field == "flags")
        .and_then(|i| fields.get(i + 1))?;
    (flags == "master").then_some(primary)
}

impl Drop for Topology {
    fn drop(&mut self) {
        for (_, child, dir) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
