//! The shared store, as a topology the harness runs and injects faults into.
//!
//! A topology starts its own servers (never the machine's shared ones), lists the
//! addresses an instance talks to, and performs the store-wide faults it supports. Each
//! instance reaches every one of those addresses through a proxy of its own, so
//! per-instance faults need nothing from the topology; where the store names its own
//! addresses in replies (Sentinel names the primary, a cluster its nodes), the topology
//! says how ([`Topology::port_forms`]) and the proxies put theirs in their place.
//!
//! Adding a topology: a file here with a type implementing [`Topology`], a line in
//! [`start`] and [`NAMES`], and, if its instances connect in a new way, a [`Protocol`]
//! (the instance builds its store from it in `instance.rs`).

mod cluster;
mod postgres;
mod process;
mod redis;
mod redis_node;
mod sentinel;

use std::io;
use std::net::SocketAddr;

pub use cluster::ClusterTopology;
pub use postgres::PgCluster;
pub use process::free_port;
pub use redis::RedisServer;
pub use sentinel::SentinelTopology;

use crate::history::FaultKind;

/// Every topology, by its name on the command line.
pub const NAMES: [&str; 4] = ["redis", "sentinel", "cluster", "postgres"];

/// Start the topology called `name`.
pub fn start(name: &str) -> Result<Box<dyn Topology>, String> {
    let started: io::Result<Box<dyn Topology>> = match name {
        "redis" => RedisServer::start().map(|t| Box::new(t) as _),
        "sentinel" => SentinelTopology::start().map(|t| Box::new(t) as _),
        "cluster" => ClusterTopology::start().map(|t| Box::new(t) as _),
        "postgres" => PgCluster::start().map(|t| Box::new(t) as _),
        other => {
            return Err(format!("unknown store {other} ({})", NAMES.join(", ")));
        }
    };
    started.map_err(|e| format!("{name}: {e}"))
}

/// How an instance connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `RedisStore::builder(url)`.
    Redis,
    /// `RedisStore::sentinel(addresses, MASTER)`, revocations confirmed by one replica.
    Sentinel,
    /// `RedisStore::cluster(nodes)`, given every node.
    Cluster,
    /// `PostgresStore::builder().connect(url)`.
    Postgres,
}

/// The name the Sentinels monitor the primary under.
pub use sentinel::MASTER as SENTINEL_MASTER;

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Redis => "redis",
            Protocol::Sentinel => "sentinel",
            Protocol::Cluster => "cluster",
            Protocol::Postgres => "postgres",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            Protocol::Redis,
            Protocol::Sentinel,
            Protocol::Cluster,
            Protocol::Postgres,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }
}

/// A store the harness runs. The blocking calls return once the change took effect.
pub trait Topology: Send {
    /// Its name in the report and on the command line.
    fn name(&self) -> &'static str;
    fn protocol(&self) -> Protocol;
    /// Every address an instance talks to, in a fixed order; each instance reaches each
    /// through a proxy of its own.
    fn endpoints(&self) -> Vec<SocketAddr>;
    /// What an instance connects with, its proxies listening on `ports` (in the order of
    /// [`endpoints`](Self::endpoints)).
    fn url_via(&self, ports: &[u16]) -> String;
    /// How the store writes `port`, one of its endpoints' ports, in its replies (each form
    /// a whole token), where it names its own addresses: the proxies replace each by the
    /// same form of their own port. Default: it never does.
    fn port_forms(&self, _port: u16) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// What the harness itself connects with (the other program, the schema), not proxied.
    fn direct_url(&self) -> String {
        let ports: Vec<u16> = self.endpoints().iter().map(SocketAddr::port).collect();
        self.url_via(&ports)
    }
    /// The store-wide faults it supports.
    fn store_faults(&self) -> Vec<FaultKind> {
        vec![FaultKind::StoreKill, FaultKind::StorePause]
    }
    /// Why it cannot take `kind`, if it cannot (the run prints it and skips the kind).
    fn skips(&self, kind: FaultKind) -> Option<String> {
        (kind.store_wide() && !self.store_faults().contains(&kind)).then(|| match kind {
            FaultKind::Failover => format!("{} has no replica to promote", self.name()),
            _ => format!("{} does not support it", self.name()),
        })
    }
    /// SIGKILL of the store (its primary), as a crash.
    fn kill(&mut self) -> io::Result<()>;
    /// Start it again on the same data; returns once it answers.
    fn restart(&mut self) -> io::Result<()>;
    /// SIGSTOP.
    fn pause(&mut self) -> io::Result<()>;
    /// SIGCONT.
    fn resume(&mut self) -> io::Result<()>;
    /// SIGKILL of the primary, so that a replica is promoted in its place.
    fn failover(&mut self) -> io::Result<()> {
        Err(io::Error::other(format!("{} has no failover", self.name())))
    }
    /// Wait until a replica was promoted in place of the primary [`failover`](Self::failover) killed.
    fn promoted(&mut self) -> io::Result<()> {
        Err(io::Error::other(format!("{} has no failover", self.name())))
    }
    /// Start the old primary again, as a replica of the new one; returns once it
    /// replicates (so the topology can fail over again).
    fn rejoin(&mut self) -> io::Result<()> {
        Err(io::Error::other(format!("{} has no failover", self.name())))
    }
    /// Stop for good and remove the data.
    fn stop(&mut self);
}
