//! Redis Cluster: three primaries without replicas, each a `redis-server` with its own
//! data directory (its `nodes.conf` and an append-only file synced on every write) on a
//! free port whose cluster bus port (10000 above) is free too, joined by
//! `redis-cli --cluster create`.
//!
//! Instances connect with `RedisStore::cluster`, given every node. The store-wide faults
//! hit one node at a time, in turn (each owns a third of the slots, so some sessions,
//! customers and feed channels); a killed node is started again on its port and
//! directory, so it comes back with its slots and its data. There is nothing to fail
//! over to.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use tower_customer_session::redis;

use super::process::{free_cluster_port, wait_until};
use super::redis_node::{RedisNode, query};
use super::{Protocol, Topology};

/// Cluster settings of every node. A short node timeout so that the others mark a dead
/// one failed quickly; `cluster-require-full-coverage no` so that the live primaries keep
/// serving their slots meanwhile (the setting `RedisStore`'s Cluster guide asks for).
const NODE_SETTINGS: [&str; 8] = [
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "1000",
    "--cluster-require-full-coverage",
    "no",
];

/// How long the harness waits for the cluster to be whole again.
const SETTLE: Duration = Duration::from_secs(30);

pub struct ClusterTopology {
    nodes: Vec<RedisNode>,
    /// The node the next store fault hits.
    next: usize,
    /// The node the fault under way killed or stopped.
    down: Option<usize>,
}

impl ClusterTopology {
    /// Start three nodes and join them; returns once every node serves every slot and
    /// sees the others up.
    pub fn start() -> io::Result<Self> {
        let mut nodes: Vec<RedisNode> = Vec::new();
        while nodes.len() < 3 {
            let port = free_cluster_port()?;
            // No node's port may be another's bus port, nor repeat.
            let taken = nodes.iter().any(|n| {
                let p = n.port();
                p == port || p + 10_000 == port || port + 10_000 == p
            });
            if !taken {
                nodes.push(RedisNode::on_port("cluster", port, &NODE_SETTINGS)?);
            }
        }
        for node in &mut nodes {
            node.spawn(None)?;
        }
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create: {}",
                String::from_utf8_lossy(&output.stdout)
            )));
        }
        let topology = Self {
            nodes,
            next: 0,
            down: None,
        };
        topology.settle()?;
        Ok(topology)
    }

    /// Whether node `i` says the cluster is ok, sees every node up and connected, and
    /// the three own all 16384 slots between them.
    fn whole_at(&self, i: usize) -> bool {
        let port = self.nodes[i].port();
        let ok = query::<String>(port, redis::cmd("CLUSTER").arg("INFO"))
            .is_ok_and(|info| info.contains("cluster_state:ok"));
        let nodes = query::<String>(port, redis::cmd("CLUSTER").arg("NODES"));
        let up = nodes.is_ok_and(|nodes| {
            let lines: Vec<&str> = nodes.lines().filter(|l| !l.is_empty()).collect();
            let slots: u32 = lines.iter().map(|line| slot_count(line)).sum();
            lines.len() == self.nodes.len()
                && slots == 16384
                && lines.iter().all(|line| {
                    let fields: Vec<&str> = line.split(' ').collect();
                    fields.len() >= 8
                        && !fields[2].contains("fail")
                        && !fields[2].contains("handshake")
                        && fields[7] == "connected"
                })
        });
        ok && up
    }

    /// Wait until every node is [whole](Self::whole_at).
    fn settle(&self) -> io::Result<()> {
        wait_until(
            SETTLE,
            "every cluster node serves all slots and sees the others up",
            || (0..self.nodes.len()).all(|i| self.whole_at(i)),
        )
    }

    /// The node the next store fault hits; the one after it is next.
    fn pick(&mut self) -> usize {
        let i = self.next;
        self.next = (i + 1) % self.nodes.len();
        self.down = Some(i);
        i
    }

    fn take_down(&mut self) -> io::Result<usize> {
        self.down
            .take()
            .ok_or_else(|| io::Error::other("no node is down"))
    }
}

/// How a node writes `port` in its replies: see [`Topology::port_forms`] on
/// [`ClusterTopology`].
fn port_forms(port: u16) -> Vec<Vec<u8>> {
    vec![
        format!("$9\r\n127.0.0.1\r\n:{port}\r\n").into_bytes(),
        format!(" 127.0.0.1:{port}\r\n").into_bytes(),
    ]
}

/// The slots a `CLUSTER NODES` line says its node serves (`first-last` ranges and single
/// slots, after the eighth field).
fn slot_count(line: &str) -> u32 {
    line.split(' ')
        .skip(8)
        .filter(|s| !s.starts_with('['))
        .map(|range| match range.split_once('-') {
            Some((a, b)) => match (a.parse::<u32>(), b.parse::<u32>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => u32::from(range.parse::<u32>().is_ok()),
        })
        .sum()
}

impl Topology for ClusterTopology {
    fn name(&self) -> &'static str {
        "cluster"
    }

    fn protocol(&self) -> Protocol {
        Protocol::Cluster
    }

    fn endpoints(&self) -> Vec<SocketAddr> {
        (self.nodes.iter())
            .map(|n| (Ipv4Addr::LOCALHOST, n.port()).into())
            .collect()
    }

    /// Every node's URL, comma-separated.
    fn url_via(&self, ports: &[u16]) -> String {
        ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A node names the others (and itself) in `CLUSTER SLOTS` as an IP bulk string
    /// followed by the port as an integer, and in `MOVED`/`ASK` errors as `ip:port` at the
    /// end of the line.
    fn port_forms(&self, port: u16) -> Vec<Vec<u8>> {
        port_forms(port)
    }

    /// SIGKILL of one node (each in turn).
    fn kill(&mut self) -> io::Result<()> {
        let i = self.pick();
        self.nodes[i].kill()
    }

    /// The killed node again on its port and directory; returns once the cluster is whole.
    fn restart(&mut self) -> io::Result<()> {
        let i = self.take_down()?;
        self.nodes[i].spawn(None)?;
        self.settle()
    }

    /// SIGSTOP of one node (each in turn).
    fn pause(&mut self) -> io::Result<()> {
        let i = self.pick();
        self.nodes[i].pause()
    }

    /// SIGCONT; returns once the cluster is whole.
    fn resume(&mut self) -> io::Result<()> {
        let i = self.take_down()?;
        self.nodes[i].resume()?;
        self.settle()
    }

    fn stop(&mut self) {
        for (i, node) in self.nodes.iter().enumerate() {
            for stall in node.stalls() {
                eprintln!("chaos: cluster node {i} stalled: {stall}");
            }
        }
        for node in &mut self.nodes {
            node.stop();
        }
    }
}

impl Drop for ClusterTopology {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::{port_forms, slot_count};
    use crate::proxy::rewrite;

    #[test]
    fn the_proxies_replace_node_ports_in_slot_maps_and_redirections() {
        let rewrites: Vec<(Vec<u8>, Vec<u8>)> = [(40001, 50001), (40002, 50002)]
            .into_iter()
            .flat_map(|(node, proxy)| port_forms(node).into_iter().zip(port_forms(proxy)))
            .collect();
        // A slot map, a redirection, and an integer reply that equals a port but is none.
        let replies = |a: u16, b: u16| {
            format!(
                "*2\r\n*3\r\n:0\r\n:8191\r\n*4\r\n$9\r\n127.0.0.1\r\n:{a}\r\n$3\r\nid1\r\n*0\r\n\
                 *3\r\n:8192\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:{b}\r\n$3\r\nid2\r\n*0\r\n\
                 -MOVED 3999 127.0.0.1:{b}\r\n:40001\r\n"
            )
        };
        let reply = replies(40001, 40002);
        let want = replies(50001, 50002);
        for cut in 0..reply.len() {
            let mut carry = Vec::new();
            let mut out = rewrite(&mut carry, &reply.as_bytes()[..cut], &rewrites);
            out.extend(rewrite(&mut carry, &reply.as_bytes()[cut..], &rewrites));
            assert_eq!(String::from_utf8(out).unwrap(), want, "cut at {cut}");
        }
    }

    #[test]
    fn slots_are_counted_from_cluster_nodes_lines() {
        let line =
            "abc 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 7000 [5461->-def]";
        assert_eq!(slot_count(line), 5462);
        assert_eq!(slot_count("abc 127.0.0.1:1@2 master - 0 0 1 connected"), 0);
    }
}
