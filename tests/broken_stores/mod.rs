//! A reference store that passes the store test kit, and the bugs it can be built with,
//! one at a time: each is a mistake a store written from the README could make.
//!
//! It stands for a store on a server shared by several instances: a [`Server`] holds the
//! data and a broadcast channel of changes; each [`Handle`] is one instance's connection,
//! with its own feed task. The server can be taken down ([`Backend::outage`]), and judges
//! expiry by a [`ManualClock`].

// Each bug is used by one test; the reference by another.
#![allow(dead_code)]

mod feed;
mod read_only;
mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;
use tower_customer_session::ManualClock;
use tower_customer_session::chrono::{DateTime, Utc};
use tower_customer_session::model::{Customer, Member};
use tower_customer_session::store::Invalidation;
use tower_customer_session::testing::{Backend, Outage};
use tower_customer_session::token::TokenKind;
use tower_customer_session::uuid::Uuid;

pub use read_only::ReadOnlyFixture;

/// One mistake, and the check that must catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    // Customers: kept with less than went in.
    DropsMetadata,
    SortsMetadataKeys,
    TruncatesCreatedAtToSeconds,
    LosesBillingAddress,
    LosesTaxId,
    LosesLocale,
    LosesOrganization,
    LosesTeamType,
    DropsOptionalTimestamps,
    JoinsCustomerAsItWasAtCreate,
    // Failures: an error becomes an answer.
    SwallowsLoadErrors,
    RevokeSwallowsErrors,
    CreateErrorIsUnknownCustomer,
    // Concurrency.
    CreateChecksThenInserts,
    UpsertRewritesEveryCustomer,
    AnnouncesRevokeBeforeCommit,
    // Members.
    RevokeAllSkipsMemberSessions,
    LoadDropsMember,
    // Hashes and tokens.
    MatchesHashPrefix,
    ComparesHashCaseInsensitively,
    KeepsRawTokenHex,
    KeepsRawTokenBase64,
    // Time and boundaries.
    ExpiresAtItselfIsLive,
    IgnoresExpiry,
    DeletedAtIsNow,
    SecondDeletionOverwrites,
    // Customers by external id, orphans, deletion.
    CreateByExternalIdIgnoresDeletion,
    LeavesOrphanForUnknownCustomer,
    StaleExternalIdIndex,
    HardDelete,
    // Feeds over time.
    NoHeartbeat,
    OverflowLosesMessagesSilently,
    FeedOutlivesManager,
    RevokeAllNotAnnounced,
    /// Revocations announced as plain changes, which no peer remembers.
    RevocationsAnnouncedAsPlainChanges,
    CustomerEditsNotAnnounced,
    BeatsDuringOutage,
    WatchNeedsTheCallersRuntime,
    // Scope.
    ClaimsProcessScope,
    // The rest of the contract.
    CreateOverwrites,
    LoadIgnoresDeletedCustomer,
    DropsReturnUrl,
}

/// The data every instance shares, and the channel that announces changes.
pub struct Server {
    state: Mutex<State>,
    changes: broadcast::Sender<Invalidation>,
    up: AtomicBool,
    clock: ManualClock,
    bug: Option<Bug>,
    heartbeat: Duration,
    runtime: tokio::runtime::Handle,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<Vec<u8>, Row>,
    customers: HashMap<Uuid, Customer>,
    by_external_id: HashMap<String, Uuid>,
    /// What some bugs keep of the tokens loads are shown.
    seen: Vec<String>,
}

#[derive(Debug, Clone)]
struct Row {
    id: Uuid,
    kind: TokenKind,
    customer_id: Uuid,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    return_url: Option<String>,
    member: Option<Member>,
    /// The customer as it was at create, for the bug that joins that.
    customer_at_create: Customer,
}

/// A fresh server, empty, with `bug` (or none); call inside a Tokio runtime.
pub fn server(bug: Option<Bug>) -> Arc<Server> {
    let capacity = if bug == Some(Bug::OverflowLosesMessagesSilently) {
        16
    } else {
        4096
    };
    Arc::new(Server {
        state: Mutex::default(),
        changes: broadcast::channel(capacity).0,
        up: AtomicBool::new(true),
        clock: ManualClock::new(Utc::now()),
        bug,
        heartbeat: Duration::from_millis(20),
        runtime: tokio::runtime::Handle::current(),
    })
}

impl Server {
    fn has(&self, bug: Bug) -> bool {
        self.bug == Some(bug)
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn announce(&self, change: Invalidation) {
        // No subscriber is not an error: no instance is watching.
        let _ = self.changes.send(change);
    }
}

/// One instance's connection to the server.
#[derive(Clone)]
pub struct Handle {
    server: Arc<Server>,
}

/// The kit's view: the server, a connection, a second one, its clock, a way to take it
/// down, what it keeps, and how many feeds listen.
pub struct Fixture(pub Arc<Server>);

impl Backend for Fixture {
    type Store = Handle;

    fn store(&self) -> Handle {
        Handle {
            server: self.0.clone(),
        }
    }

    async fn peer(&self) -> Option<Handle> {
        Some(self.store())
    }

    fn clock(&self) -> Option<ManualClock> {
        Some(self.0.clock.clone())
    }

    async fn outage(&self) -> Option<Outage> {
        self.0.up.store(false, Ordering::SeqCst);
        let server = self.0.clone();
        Some(Outage::new(move || server.up.store(true, Ordering::SeqCst)))
    }

    async fn dump(&self) -> Option<String> {
        Some(format!("{:?}", *self.0.lock()))
    }

    async fn feed_subscriptions(&self) -> Option<usize> {
        Some(self.0.changes.receiver_count())
    }
}
