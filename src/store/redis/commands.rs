//! The store's command connection, replaced when it stops answering.
//!
//! The driver's [`ConnectionManager`] reconnects when it sees an I/O error. A connection
//! made half-open (a NAT or firewall that dropped its state, a primary gone in a failover
//! without a reset) yields none: requests are written, answers never come, and every
//! later command would time out on it forever. The driver's own response timeout ends
//! the call but keeps the connection (it does not count as a dead one). So a command that times out, or a call
//! abandoned by its caller whose follow-up `PING` times out, retires the connection: the
//! next calls go to a fresh one, connected on first use. One replacement per connection,
//! and consecutive replacements wait the [backoff](super::MIN_BACKOFF) in between.
//!
//! Through Sentinel, the primary can move: a call that fails (refused, reset, `READONLY`
//! from a demoted primary) or goes unanswered makes the store ask the Sentinels again, at
//! most every [`MIN_BACKOFF`], and move to the primary they name if it is another.
//!
//! On a Cluster the connection is the driver's cluster connection (one multiplexed
//! connection per node, `MOVED` followed by itself). It has no lazy constructor, so a
//! replacement is connected in the background while calls keep using the old one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, Pipeline, RedisFuture, Value};
use tokio::time::Instant;

use super::target::{Target, address};
use super::{MAX_BACKOFF, MIN_BACKOFF};

/// A command connection: to one server, or to a Cluster.
#[derive(Clone)]
pub(super) enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(connection) => connection.req_packed_commands(cmd, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The current connection and the generation it belongs to.
pub(super) struct Commands {
    target: Target,
    /// On a Cluster: what makes a new cluster connection.
    cluster: Option<ClusterClient>,
    config: ConnectionManagerConfig,
    command_timeout: Duration,
    /// How long making a new cluster connection may take.
    connect_timeout: Duration,
    /// Where probes run: a call may be dropped outside the runtime's context.
    runtime: tokio::runtime::Handle,
    state: RwLock<State>,
    /// Set by a replacement, cleared by the first answer on a connection: until then,
    /// timeouts are consecutive and the backoff grows.
    unproven: AtomicBool,
    /// A probe is in flight; one at a time is enough.
    probing: AtomicBool,
    /// A Sentinel lookup (or a Cluster reconnection) is in flight.
    resolving: AtomicBool,
}

struct State {
    generation: u64,
    connection: Connection,
    /// The primary `connection` goes to.
    client: Client,
    /// No Sentinel lookup before this moment.
    resolve_not_before: Instant,
    /// No replacement before this moment.
    not_before: Instant,
    /// The wait after the next replacement.
    backoff: Duration,
}

impl Commands {
    pub(super) fn new(
        target: Target,
        cluster: Option<ClusterClient>,
        client: Client,
        config: ConnectionManagerConfig,
        connection: Connection,
        (command_timeout, connect_timeout): (Duration, Duration),
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            target,
            cluster,
            config,
            command_timeout,
            connect_timeout,
            runtime,
            state: RwLock::new(State {
                generation: 0,
                connection,
                client,
                resolve_not_before: Instant::now(),
                not_before: Instant::now(),
                backoff: MIN_BACKOFF,
            }),
            unproven: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            resolving: AtomicBool::new(false),
        }
    }

    /// The connection to use now, and a guard to report how its call ended.
    pub(super) fn begin(self: &Arc<Self>) -> (Connection, Call<'_>) {
        let state = self.read();
        let call = Call {
            commands: self,
            generation: state.generation,
            settled: false,
        };
        (state.connection.clone(), call)
    }

    /// The connection to use now.
    pub(super) fn current(&self) -> Connection {
        self.read().connection.clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A few plain fields, each written whole: nothing a panic could leave half-done.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The server answered on `generation`: the backoff starts over.
    fn answered(&self, generation: u64) {
        if !self.unproven.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.write();
        if state.generation == generation {
            state.backoff = MIN_BACKOFF;
            self.unproven.store(false, Ordering::Release);
        }
    }

    /// A command on `generation` got no answer in time: retire that connection, unless
    /// it is already retired or the last replacement is too recent.
    fn unanswered(self: &Arc<Self>, generation: u64) {
        if self.target.follows_failovers() {
            return self.resolve(generation, true);
        }
        if self.cluster.is_some() {
            return self.reconnect_cluster(generation);
        }
        let mut state = self.write();
        let now = Instant::now();
        if state.generation != generation || now < state.not_before {
            return;
        }
        // The driver spawns its tasks on the current runtime.
        let entered = self.runtime.enter();
        let fresh =
            ConnectionManager::new_lazy_with_config(state.client.clone(), self.config.clone());
        drop(entered);
        let fresh = match fresh {
            Ok(fresh) => fresh,
            Err(error) => {
                drop(state);
                tracing::warn!(%error, "redis: cannot make a new command connection");
                return;
            }
        };
        // The old one closes once the calls still holding it end.
        let _retired = std::mem::replace(&mut state.connection, Connection::Server(fresh));
        state.generation += 1;
        state.not_before = now + state.backoff;
        state.backoff = (state.backoff * 2).min(MAX_BACKOFF);
        let generation = state.generation;
        let again = self.unproven.swap(true, Ordering::AcqRel);
        drop(state);
        if again {
            tracing::debug!(
                generation,
                "redis command connection still unanswered, replaced again"
            );
        } else {
            tracing::warn!("redis command connection unanswered, replacing it");
        }
    }

    /// A call on `generation` failed: through Sentinel, the primary may have moved.
    fn failed(self: &Arc<Self>, generation: u64) {
        if self.target.follows_failovers() {
            self.resolve(generation, false);
        }
    }

    /// Ask the Sentinels where the primary is, and move there if it is elsewhere (or,
    /// with `replace`, in any case: the connection went unanswered).
    fn resolve(self: &Arc<Self>, generation: u64, replace: bool) {
        {
            let state = self.read();
            if state.generation != generation || Instant::now() < state.resolve_not_before {
                return;
            }
        }
        if self.resolving.swap(true, Ordering::AcqRel) {
            return;
        }
        let commands = Arc::clone(self);
        self.runtime.spawn(async move {
            let resolved = commands.target.client().await;
            let mut state = commands.write();
            state.resolve_not_before = Instant::now() + MIN_BACKOFF;
            let moved = match resolved {
                Ok(client) if state.generation == generation => {
                    let elsewhere = address(&client) != address(&state.client);
                    (elsewhere || replace).then_some(client)
                }
                Ok(_) => None,
                Err(error) => {
                    tracing::debug!(%error, "redis: no primary from the sentinels yet");
                    // An unanswered connection is replaced all the same.
                    (replace && state.generation == generation).then(|| state.client.clone())
                }
            };
            if let Some(client) = moved {
                match ConnectionManager::new_lazy_with_config(
                    client.clone(),
                    commands.config.clone(),
                ) {
                    Ok(fresh) => {
                        // Dropped after the lock: closing it may take a while.
                        let retired =
                            std::mem::replace(&mut state.connection, Connection::Server(fresh));
                        state.client = client;
                        state.generation += 1;
                        drop(state);
                        drop(retired);
                        tracing::warn!("redis: commands moved to the primary the sentinels name");
                    }
                    Err(error) => {
                        drop(state);
                        tracing::warn!(%error, "redis: cannot make a new command connection");
                    }
                }
            } else {
                drop(state);
            }
            commands.resolving.store(false, Ordering::Release);
        });
    }

    /// A cluster call on `generation` got no answer: connect a new cluster connection in
    /// the background (it reads the slot map again) and use it once it is up, unless the
    /// last replacement is too recent.
    fn reconnect_cluster(self: &Arc<Self>, generation: u64) {
        {
            let state = self.read();
            if state.generation != generation || Instant::now() < state.not_before {
                return;
            }
        }
        let Some(client) = self.cluster.clone() else {
            return;
        };
        if self.resolving.swap(true, Ordering::AcqRel) {
            return;
        }
        let commands = Arc::clone(self);
        let timeout = self.connect_timeout;
        self.runtime.spawn(async move {
            let fresh = tokio::time::timeout(timeout, client.get_async_connection()).await;
            let mut state = commands.write();
            let now = Instant::now();
            state.not_before = now + state.backoff;
            state.backoff = (state.backoff * 2).min(MAX_BACKOFF);
            match fresh {
                Ok(Ok(fresh)) if state.generation == generation => {
                    let retired =
                        std::mem::replace(&mut state.connection, Connection::Cluster(fresh));
                    state.generation += 1;
                    let again = commands.unproven.swap(true, Ordering::AcqRel);
                    drop(state);
                    drop(retired);
                    if !again {
                        tracing::warn!("redis cluster connection unanswered, replaced it");
                    }
                }
                Ok(Ok(_)) => drop(state),
                Ok(Err(error)) => {
                    drop(state);
                    tracing::debug!(%error, "redis: cannot make a new cluster connection yet");
                }
                Err(_) => {
                    drop(state);
                    tracing::debug!("redis: no new cluster connection within the timeout");
                }
            }
            commands.resolving.store(false, Ordering::Release);
        });
    }

    /// A call on `generation` was dropped before it ended (its caller gave up first, e.g.
    /// the manager's own deadline): ask the connection a `PING` within the command
    /// timeout, and retire it if that goes unanswered too.
    fn abandoned(self: &Arc<Self>, generation: u64) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut connection = {
            let state = self.read();
            if state.generation != generation {
                self.probing.store(false, Ordering::Release);
                return;
            }
            state.connection.clone()
        };
        let commands = Arc::clone(self);
        self.runtime.spawn(async move {
            let ping = redis::cmd("PING");
            let ping = ping.query_async::<redis::Value>(&mut connection);
            match tokio::time::timeout(commands.command_timeout, ping).await {
                Ok(Ok(_)) => commands.answered(generation),
                Ok(Err(error)) if error.is_timeout() => commands.unanswered(generation),
                // Any other error is the driver's to handle (it reconnects on I/O errors).
                Ok(Err(_)) => {}
                Err(_) => commands.unanswered(generation),
            }
            commands.probing.store(false, Ordering::Release);
        });
    }
}

/// One call on one connection; report how it ended, or drop it to say it was abandoned.
pub(super) struct Call<'a> {
    commands: &'a Arc<Commands>,
    generation: u64,
    settled: bool,
}

impl Call<'_> {
    /// The server answered (a reply, or an error reply).
    pub(super) fn answered(mut self) {
        self.settled = true;
        self.commands.answered(self.generation);
    }

    /// No answer within the command timeout.
    pub(super) fn unanswered(mut self) {
        self.settled = true;
        self.commands.unanswered(self.generation);
    }

    /// Failed otherwise (a refused or reset connection, which the driver handles; a
    /// `READONLY` reply from a demoted primary).
    pub(super) fn failed(mut self) {
        self.settled = true;
        self.commands.failed(self.generation);
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.commands.abandoned(self.generation);
        }
    }
}
