//! Redis Sentinel: two `redis-server` nodes (a primary and its replica, each with its own
//! data directory and an append-only file synced on every write) and three
//! `redis-server --sentinel` monitoring them with a quorum of two, all on free ports.
//!
//! Instances find the primary through the Sentinels and wait for one replica to hold each
//! revocation (`WAIT 1`) before it returns `Ok`; the nodes take writes only while a
//! replica follows (see [`NODE_SETTINGS`]). The store-wide faults hit whichever node
//! the Sentinels name primary at the time; the nodes swap roles with each failover.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tower_customer_session::redis;

use super::process::{free_port, temp_dir, wait_until};
use super::redis_node::{RedisNode, query};
use super::{Protocol, Topology};
use crate::history::FaultKind;

/// The name the Sentinels monitor the primary under.
pub const MASTER: &str = "chaos";

/// `down-after-milliseconds`: how long the primary may go unanswered before a Sentinel
/// holds it down (a failover needs two to).
pub const DOWN_AFTER: Duration = Duration::from_millis(500);

/// `failover-timeout`: how long a promotion may take before it is abandoned (a Sentinel
/// tries the same primary again after twice this).
pub const FAILOVER_TIMEOUT: Duration = Duration::from_millis(2000);

/// The nodes accept a write only while a replica acknowledged the replication stream
/// within the last second (`min-replicas-to-write 1`, `min-replicas-max-lag 1`), as
/// Redis's Sentinel documentation advises: a primary that was stopped past
/// `down-after-milliseconds` and replaced, once continued, is a second primary until
/// Sentinel makes it a replica (8 s later). Without this it takes sessions and customers
/// that its demotion then discards, and the instances that reconnected to it meanwhile
/// refuse sessions created on the new one (401); with it, both refuse writes (503) until
/// the topology is whole again.
const NODE_SETTINGS: [&str; 4] = [
    "--min-replicas-to-write",
    "1",
    "--min-replicas-max-lag",
    "1",
];

/// How long the harness waits for Sentinel to settle (a promotion, a demotion).
const SETTLE: Duration = Duration::from_secs(30);

struct SentinelProcess {
    port: u16,
    dir: PathBuf,
    child: Child,
}

pub struct SentinelTopology {
    nodes: [RedisNode; 2],
    sentinels: Vec<SentinelProcess>,
    /// The node the fault under way killed or stopped.
    down: Option<usize>,
}

impl SentinelTopology {
    /// Start both nodes and the three Sentinels; returns once every Sentinel knows the
    /// replica and the two others, and the replica has synced.
    pub fn start() -> io::Result<Self> {
        let mut nodes = [
            RedisNode::new("sentinel-a", &NODE_SETTINGS)?,
            RedisNode::new("sentinel-b", &NODE_SETTINGS)?,
        ];
        nodes[0].spawn(None)?;
        let primary = nodes[0].port();
        nodes[1].spawn(Some(primary))?;
        let mut topology = Self {
            nodes,
            sentinels: Vec::new(),
            down: None,
        };
        for _ in 0..3 {
            let port = free_port()?;
            let dir = temp_dir("sentinel")?;
            let config = dir.join("sentinel.conf");
            std::fs::write(
                &config,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\nlogfile {}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {MASTER} {}\n\
                     sentinel failover-timeout {MASTER} {}\n",
                    dir.display(),
                    dir.join("sentinel.log").display(),
                    DOWN_AFTER.as_millis(),
                    FAILOVER_TIMEOUT.as_millis(),
                ),
            )?;
            let child = Command::new("redis-server")
                .arg(&config)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            topology
                .sentinels
                .push(SentinelProcess { port, dir, child });
        }
        wait_until(
            SETTLE,
            "the Sentinels know the replica and each other",
            || {
                topology.sentinels.iter().all(|s| {
                    let count = |what: &str| {
                        query::<Vec<redis::Value>>(
                            s.port,
                            redis::cmd("SENTINEL").arg(what).arg(MASTER),
                        )
                        .map(|list| list.len())
                        .ok()
                    };
                    count("REPLICAS") == Some(1) && count("SENTINELS") == Some(2)
                })
            },
        )?;
        // The replica holds the data set (its first sync is done) before any instance starts.
        topology.settle()?;
        Ok(topology)
    }

    /// The node that at least two Sentinels name primary.
    fn named(&self) -> Option<usize> {
        let mut votes = [0; 2];
        for sentinel in &self.sentinels {
            let address = query::<Vec<String>>(
                sentinel.port,
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(MASTER),
            );
            let named = address.as_deref().ok().and_then(|address| match address {
                [_, port] => (self.nodes.iter()).position(|n| n.port().to_string() == *port),
                _ => None,
            });
            if let Some(i) = named {
                votes[i] += 1;
            }
        }
        votes.iter().position(|v| *v >= 2)
    }

    /// The node the Sentinels name primary, or an error.
    fn primary(&self) -> io::Result<usize> {
        self.named()
            .ok_or_else(|| io::Error::other("the Sentinels do not agree on a primary"))
    }

    /// Whether a Sentinel is in the middle of a failover.
    fn failing_over(&self) -> bool {
        self.sentinels.iter().any(|s| {
            query::<Vec<String>>(s.port, redis::cmd("SENTINEL").arg("MASTER").arg(MASTER))
                .is_ok_and(|fields| {
                    fields
                        .chunks(2)
                        .any(|kv| kv[0] == "flags" && kv[1].contains("failover_in_progress"))
                })
        })
    }

    /// Whether node `i` answers as a primary.
    fn is_primary(&self, i: usize) -> bool {
        query::<Vec<redis::Value>>(self.nodes[i].port(), &mut redis::cmd("ROLE")).is_ok_and(
            |role| matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master"),
        )
    }

    /// Whether the Sentinels agree on a primary, which says it is one, and the other node
    /// replicates it: whole again, able to fail over.
    fn settled(&self) -> Result<(), String> {
        match self.named() {
            None => Err("no primary named by two Sentinels".to_owned()),
            Some(p) if !self.is_primary(p) => Err(format!("node {p}, named, is no primary")),
            Some(p) if !self.nodes[1 - p].replicating() => {
                Err(format!("node {}'s link to node {p} is not up", 1 - p))
            }
            Some(_) => Ok(()),
        }
    }

    /// Wait until [`settled`](Self::settled). A wait over 3 s is reported with what was
    /// missing, and from when.
    fn settle(&self) -> io::Result<()> {
        let started = std::time::Instant::now();
        let mut missing: Vec<(String, f64)> = Vec::new();
        let settled = wait_until(
            SETTLE,
            "one primary the Sentinels name, and its replica linked",
            || match self.settled() {
                Ok(()) => true,
                Err(now) => {
                    if missing.last().is_none_or(|(last, _)| *last != now) {
                        missing.push((now, started.elapsed().as_secs_f64()));
                    }
                    false
                }
            },
        );
        if started.elapsed() > Duration::from_secs(3) {
            let steps: Vec<String> = (missing.iter())
                .map(|(what, at)| format!("{what} (from {at:.1} s)"))
                .collect();
            eprintln!(
                "chaos: Sentinel settled after {:.1} s: {}",
                started.elapsed().as_secs_f64(),
                steps.join("; ")
            );
        }
        settled
    }

    /// Start node `i` again on its data, as a replica of `primary` (or as the primary);
    /// returns once the topology is settled (a failover that raced the start included).
    fn start_node(&mut self, i: usize, primary: Option<usize>) -> io::Result<()> {
        let port = primary.map(|p| self.nodes[p].port());
        self.nodes[i].spawn(port)?;
        self.settle()
    }
}

impl Topology for SentinelTopology {
    fn name(&self) -> &'static str {
        "sentinel"
    }

    fn protocol(&self) -> Protocol {
        Protocol::Sentinel
    }

    /// The Sentinels, then the nodes: an instance asks the former for the primary, then
    /// connects to the one they name.
    fn endpoints(&self) -> Vec<SocketAddr> {
        let sentinels = self.sentinels.iter().map(|s| s.port);
        let nodes = self.nodes.iter().map(RedisNode::port);
        sentinels
            .chain(nodes)
            .map(|port| (Ipv4Addr::LOCALHOST, port).into())
            .collect()
    }

    /// The Sentinels' addresses (the first three ports), comma-separated.
    fn url_via(&self, ports: &[u16]) -> String {
        ports[..self.sentinels.len()]
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A Sentinel names the primary's port as a bulk string (`SENTINEL MASTERS`).
    fn port_forms(&self, port: u16) -> Vec<Vec<u8>> {
        let digits = port.to_string();
        vec![format!("${}\r\n{digits}\r\n", digits.len()).into_bytes()]
    }

    fn store_faults(&self) -> Vec<FaultKind> {
        vec![
            FaultKind::StoreKill,
            FaultKind::StorePause,
            FaultKind::Failover,
        ]
    }

    /// SIGKILL of the primary.
    fn kill(&mut self) -> io::Result<()> {
        let i = self.primary()?;
        self.nodes[i].kill()?;
        self.down = Some(i);
        Ok(())
    }

    /// The killed node back on its data: as the primary again if the Sentinels still name
    /// it, else as the replica of the node they promoted meanwhile (a failover under way
    /// is waited out first).
    fn restart(&mut self) -> io::Result<()> {
        let i = self
            .down
            .take()
            .ok_or_else(|| io::Error::other("no node is down"))?;
        wait_until(SETTLE, "no failover in progress", || !self.failing_over())?;
        let primary = self.primary()?;
        self.start_node(i, (primary != i).then_some(primary))
    }

    /// SIGSTOP of the primary.
    fn pause(&mut self) -> io::Result<()> {
        let i = self.primary()?;
        self.nodes[i].pause()?;
        self.down = Some(i);
        Ok(())
    }

    /// SIGCONT; returns once one node replicates the other again (after a failover, once
    /// Sentinel has turned the old primary into a replica).
    fn resume(&mut self) -> io::Result<()> {
        let i = self
            .down
            .take()
            .ok_or_else(|| io::Error::other("no node is stopped"))?;
        self.nodes[i].resume()?;
        self.settle()
    }

    /// SIGKILL of the primary, which the Sentinels replace by the replica.
    fn failover(&mut self) -> io::Result<()> {
        self.kill()
    }

    fn promoted(&mut self) -> io::Result<()> {
        let old = self
            .down
            .ok_or_else(|| io::Error::other("no node is down"))?;
        let new = 1 - old;
        wait_until(SETTLE, "the Sentinels promote the replica", || {
            self.named() == Some(new) && self.is_primary(new)
        })
    }

    fn rejoin(&mut self) -> io::Result<()> {
        let old = self
            .down
            .take()
            .ok_or_else(|| io::Error::other("no node is down"))?;
        self.start_node(old, Some(1 - old))
    }

    fn stop(&mut self) {
        for (node, name) in self.nodes.iter().zip(["a", "b"]) {
            for stall in node.stalls() {
                eprintln!("chaos: node {name} stalled: {stall}");
            }
        }
        for sentinel in &mut self.sentinels {
            let _ = sentinel.child.kill();
            let _ = sentinel.child.wait();
            let _ = std::fs::remove_dir_all(&sentinel.dir);
        }
        self.sentinels.clear();
        for node in &mut self.nodes {
            node.stop();
        }
    }
}

impl Drop for SentinelTopology {
    fn drop(&mut self) {
        self.stop();
    }
}
