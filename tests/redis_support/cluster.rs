//! A Redis Cluster of the test's own, on free ports: three primaries without replicas,
//! each in its own directory (its `nodes.conf` and an append-only file fsynced on every
//! write, so a node killed and restarted on its port comes back with its slots and its
//! data). Every process is killed on drop.

use std::process::Command;
use std::time::{Duration, Instant};

use tower_customer_session::redis;

use super::server::{OwnRedis, free_cluster_port};

/// A slot range (first, last) and its primary (`host`, `port`).
type SlotRange = (u16, u16, (String, u16));

pub struct Cluster {
    pub nodes: Vec<OwnRedis>,
}

/// What every node runs with. A short node timeout so that the others notice a dead one
/// quickly; the slots of the live ones keep being served while one is down.
const NODE_ARGS: &[&str] = &[
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "1000",
    "--cluster-require-full-coverage",
    "no",
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
];

impl Cluster {
    /// Start three nodes, join them (`redis-cli --cluster create`) and wait until every
    /// node sees every slot served. `None` (test skipped, loudly) if `redis-server` or
    /// `redis-cli` is missing, except under `CI=true`, where that fails the test.
    pub fn start() -> Option<Self> {
        if let Err(error) = Command::new("redis-cli").arg("--version").output() {
            if super::ci() {
                panic!("CI=true and redis-cli cannot run: {error}");
            }
            eprintln!("SKIPPED: cannot run redis-cli ({error}); install it to run this test.");
            return None;
        }
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(OwnRedis::start_on(free_cluster_port(), NODE_ARGS)?);
        }
        let cluster = Self { nodes };
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        cluster.wait_until_served();
        Some(cluster)
    }

    /// `redis://127.0.0.1:{port}` of each node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(OwnRedis::url).collect()
    }

    /// Wait until every running node reports `cluster_state:ok` and serves all 16384
    /// slots in three ranges owned by the three nodes.
    pub fn wait_until_served(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.served() {
            assert!(
                Instant::now() < deadline,
                "the cluster did not serve every slot within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn served(&self) -> bool {
        self.nodes.iter().all(|node| {
            let Ok(mut connection) = redis::Client::open(node.url())
                .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
            else {
                return false;
            };
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut connection)
                .unwrap_or_default();
            let slots: Vec<SlotRange> = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query::<Vec<redis::Value>>(&mut connection)
                .map(|ranges| ranges.into_iter().filter_map(range).collect())
                .unwrap_or_default();
            let covered: u32 = slots
                .iter()
                .map(|(start, end, _)| u32::from(end - start) + 1)
                .sum();
            info.contains("cluster_state:ok") && covered == 16384 && slots.len() >= 3
        })
    }

    /// The index in [`nodes`](Self::nodes) of the primary serving `key`'s slot.
    pub fn owner_of(&self, key: &str) -> usize {
        let mut connection = self.nodes[0].connection();
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut connection)
            .expect("CLUSTER KEYSLOT");
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut connection)
            .expect("CLUSTER SLOTS");
        let port = ranges
            .into_iter()
            .filter_map(range)
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, (_, port))| port)
            .expect("every slot is served");
        self.nodes
            .iter()
            .position(|node| node.port() == port)
            .expect("the owner is one of the nodes")
    }
}

/// One `CLUSTER SLOTS` entry: its range and primary.
fn range(value: redis::Value) -> Option<SlotRange> {
    let redis::Value::Array(parts) = value else {
        return None;
    };
    let mut parts = parts.into_iter();
    let start = redis::from_redis_value(parts.next()?).ok()?;
    let end = redis::from_redis_value(parts.next()?).ok()?;
    let redis::Value::Array(primary) = parts.next()? else {
        return None;
    };
    let mut primary = primary.into_iter();
    let host = redis::from_redis_value(primary.next()?).ok()?;
    let port = redis::from_redis_value(primary.next()?).ok()?;
    Some((start, end, (host, port)))
}
