//! The shared store, as a topology the harness runs and injects faults into.
//!
//! A topology starts its own servers (never the machine's shared ones), says where
//! instances reach it, and performs the store-wide faults it supports. Each instance
//! reaches the store through a proxy of its own, so per-instance faults need nothing from
//! the topology. A topology with several endpoints (Sentinel: the sentinels and the
//! primary; Cluster: every node) would give each instance one proxy per endpoint and list
//! `Failover` in [`Topology::store_faults`].

mod postgres;
mod process;
mod redis;

use std::io;
use std::net::SocketAddr;

pub use postgres::PgCluster;
pub use process::free_port;
pub use redis::RedisServer;

use crate::history::FaultKind;

/// The client an instance uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Redis,
    Postgres,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Redis => "redis",
            Protocol::Postgres => "postgres",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Protocol::Redis, Protocol::Postgres]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

/// A store the harness runs. The blocking calls return once the change took effect.
pub trait Topology: Send {
    /// Its name in the report and on the command line.
    fn name(&self) -> &'static str;
    fn protocol(&self) -> Protocol;
    /// Where instances reach the store (each through its own proxy).
    fn endpoint(&self) -> SocketAddr;
    /// The URL an instance connects to through its proxy on `port`.
    fn url_via(&self, port: u16) -> String;
    /// The URL the harness itself uses (the other program, the schema), not proxied.
    fn direct_url(&self) -> String {
        self.url_via(self.endpoint().port())
    }
    /// The store-wide faults it supports.
    fn store_faults(&self) -> Vec<FaultKind> {
        vec![FaultKind::StoreKill, FaultKind::StorePause]
    }
    /// SIGKILL, as a crash.
    fn kill(&mut self) -> io::Result<()>;
    /// Start again on the same data; returns once it answers.
    fn restart(&mut self) -> io::Result<()>;
    /// SIGSTOP.
    fn pause(&mut self) -> io::Result<()>;
    /// SIGCONT.
    fn resume(&mut self) -> io::Result<()>;
    /// Replace the primary by a replica.
    fn failover(&mut self) -> io::Result<()> {
        Err(io::Error::other(format!("{} has no failover", self.name())))
    }
    /// Stop for good and remove the data.
    fn stop(&mut self);
}
