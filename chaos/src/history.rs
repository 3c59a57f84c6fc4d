//! The history of a run: every operation with its start and end (milliseconds since the
//! run began, as the harness saw them), the instance asked, the tokens involved (a
//! 12-hex-digit prefix of the token's HMAC hash, never the token) and the result; and every
//! fault with when it was injected, healed, and seen healed.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// What an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `GET /me` with a bearer token.
    Auth,
    /// A customer added through an instance.
    AddCustomer,
    /// A session created through an instance.
    Create,
    /// `SessionManager::revoke` through an instance.
    Revoke,
    /// `SessionManager::revoke_all` through an instance.
    RevokeAll,
    /// `SessionManager::delete_customer` through an instance.
    DeleteCustomer,
    /// A soft delete in plain SQL by another program (PostgreSQL only).
    SqlRevoke,
}

impl Kind {
    /// Revocations: each makes its tokens refused from its end on, within a bound.
    pub fn revokes(self) -> bool {
        matches!(
            self,
            Kind::Revoke | Kind::RevokeAll | Kind::DeleteCustomer | Kind::SqlRevoke
        )
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// An HTTP status (for the SQL program: 200 committed, 503 failed or timed out).
    Status(u16),
    /// No response: refused, reset, closed or timed out at the client.
    Dropped(String),
}

impl Outcome {
    /// Succeeded: 200.
    pub fn ok(&self) -> bool {
        *self == Outcome::Status(200)
    }
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// When the harness sent it (ms since the start of the run).
    pub start: f64,
    /// When the harness had its answer.
    pub end: f64,
    /// The instance asked; `None` for the other program.
    pub instance: Option<usize>,
    /// What it did.
    pub kind: Kind,
    /// The token requested, created or revoked; for `revoke_all` and customer deletions,
    /// every session the customer had when the operation started.
    pub tokens: Vec<String>,
    /// The result.
    pub outcome: Outcome,
    /// How many sessions a revocation reported revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The recovery probe round it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<u64>,
}

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The store killed with SIGKILL, then restarted on its data.
    StoreKill,
    /// The store stopped with SIGSTOP, then continued with SIGCONT.
    StorePause,
    /// One instance's proxy stops forwarding on every connection (they stay open, silent).
    HangAll,
    /// One instance's proxy stops forwarding on its feed connection only.
    HangFeed,
    /// One instance's proxy resets every connection, and each new one, while it lasts.
    Reset,
    /// One instance killed with SIGKILL, then started again.
    InstanceKill,
    /// The store's primary killed with SIGKILL, a replica promoted in its place, and the
    /// old primary started again as the new one's replica (topologies that have one).
    Failover,
}

impl FaultKind {
    /// Every kind, in the order of the report.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::StoreKill,
        FaultKind::StorePause,
        FaultKind::HangAll,
        FaultKind::HangFeed,
        FaultKind::Reset,
        FaultKind::InstanceKill,
        FaultKind::Failover,
    ];

    /// Its name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::StoreKill => "store-kill",
            FaultKind::StorePause => "store-pause",
            FaultKind::HangAll => "hang-all",
            FaultKind::HangFeed => "hang-feed",
            FaultKind::Reset => "reset",
            FaultKind::InstanceKill => "instance-kill",
            FaultKind::Failover => "failover",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether it hits the store itself (every instance and the other program), rather
    /// than one instance.
    pub fn store_wide(self) -> bool {
        matches!(
            self,
            FaultKind::StoreKill | FaultKind::StorePause | FaultKind::Failover
        )
    }
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// What it was.
    pub kind: FaultKind,
    /// The instance it hit; `None` for a store-wide fault.
    pub instance: Option<usize>,
    /// When it took effect.
    pub start: f64,
    /// When it was healed (the restart or resume began, the proxy forwarded again; for a
    /// failover, the replica's promotion was seen and the old primary's restart began).
    pub end: f64,
    /// When the store or instance answered again after the heal.
    pub healed: f64,
}

impl Fault {
    /// Whether it can explain trouble seen by `instance` (`None`: the other program).
    pub fn affects(&self, instance: Option<usize>) -> bool {
        self.kind.store_wide() || (instance.is_some() && instance == self.instance)
    }

    /// Whether it can leave `instance`'s feed silent without closing it, so that a
    /// revocation reaches the instance only once the feed is declared lost. A failover
    /// kills the primary, which closes every connection to it.
    pub fn silences(&self, instance: usize) -> bool {
        match self.kind {
            FaultKind::StorePause => true,
            FaultKind::HangAll | FaultKind::HangFeed => self.instance == Some(instance),
            FaultKind::StoreKill | FaultKind::Reset | FaultKind::InstanceKill => false,
            FaultKind::Failover => false,
        }
    }
}

/// A whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The store's topology (`redis`, `sentinel`, `postgres`).
    pub store: String,
    /// How many instances served.
    pub instances: usize,
    /// The weakening applied to the fleet, if any (`serve-cached`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weakened: Option<String>,
    /// When the run ended (ms since its start).
    pub length: f64,
    /// Every operation, in no particular order.
    pub ops: Vec<Op>,
    /// Every fault, in order.
    pub faults: Vec<Fault>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Run {
        store: String,
        instances: usize,
        #[serde(default)]
        weakened: Option<String>,
        length: f64,
    },
    Fault(Fault),
    Op(Op),
}

impl History {
    /// Write as JSON lines: the run, then each fault, then each operation.
    pub fn write(&self, mut out: impl Write) -> std::io::Result<()> {
        let run = Line::Run {
            store: self.store.clone(),
            instances: self.instances,
            weakened: self.weakened.clone(),
            length: self.length,
        };
        let faults = self.faults.iter().cloned().map(Line::Fault);
        let ops = self.ops.iter().cloned().map(Line::Op);
        for line in std::iter::once(run).chain(faults).chain(ops) {
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// Read what [`write`](Self::write) wrote.
    pub fn read(input: impl BufRead) -> Result<Self, String> {
        let mut history = History::default();
        for (number, line) in input.lines().enumerate() {
            let line = line.map_err(|e| format!("line {}: {e}", number + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", number + 1))? {
                Line::Run {
                    store,
                    instances,
                    weakened,
                    length,
                } => {
                    history.store = store;
                    history.instances = instances;
                    history.weakened = weakened;
                    history.length = length;
                }
                Line::Fault(fault) => history.faults.push(fault),
                Line::Op(op) => history.ops.push(op),
            }
        }
        Ok(history)
    }
}
