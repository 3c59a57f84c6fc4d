//! A standalone `redis-server`: one node, restarted on its own data.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use super::redis_node::RedisNode;
use super::{Protocol, Topology};

pub struct RedisServer {
    node: RedisNode,
}

impl RedisServer {
    /// Start one on a free port, with a data directory of its own.
    pub fn start() -> io::Result<Self> {
        let mut node = RedisNode::new("redis", &[])?;
        node.spawn(None)?;
        Ok(Self { node })
    }
}

impl Topology for RedisServer {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn protocol(&self) -> Protocol {
        Protocol::Redis
    }

    fn endpoints(&self) -> Vec<SocketAddr> {
        vec![(Ipv4Addr::LOCALHOST, self.node.port()).into()]
    }

    fn url_via(&self, ports: &[u16]) -> String {
        format!("redis://127.0.0.1:{}", ports[0])
    }

    fn kill(&mut self) -> io::Result<()> {
        self.node.kill()
    }

    fn restart(&mut self) -> io::Result<()> {
        self.node.spawn(None)
    }

    fn pause(&mut self) -> io::Result<()> {
        self.node.pause()
    }

    fn resume(&mut self) -> io::Result<()> {
        self.node.resume()
    }

    fn stop(&mut self) {
        for stall in self.node.stalls() {
            eprintln!("chaos: redis-server stalled: {stall}");
        }
        self.node.stop();
    }
}
