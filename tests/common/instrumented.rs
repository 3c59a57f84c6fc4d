//! The one instrumented store: any store behind counters, latency, injected faults, a pause
//! gate and decoded copies. The integration tests, the benches, the fuzz target and the soak
//! harness all include this file, so it uses only what they all have: the crate, tokio,
//! chrono and uuid.

use std::collections::HashMap;
use std::fmt::{self, Debug};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tower_customer_session::store::{
    CustomerRef, FeedSink, NewSession, SessionRecord, StoreScope, Watch,
};
use tower_customer_session::token::TokenHash;
use tower_customer_session::{
    Customer, CustomerStore, MemoryStore, SessionAdmin, SessionKey, SessionStore, StoreError,
};
use uuid::Uuid;

/// Text of the backend error an injected fault returns; must never reach a response.
pub const BACKEND_DETAIL: &str = "connection to 10.9.8.7:5432 refused (pool db-primary)";

/// Lets a test stop a store load after it has read the record, and resume it later.
#[derive(Default)]
pub struct Gate {
    reached: Notify,
    release: Notify,
}

impl Gate {
    /// Wait until the paused load has read its record.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Let the paused load return what it read.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

/// What [`Instrumented::set_fault`] makes every store operation do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Pass through to the inner store.
    None,
    /// Fail with a backend error.
    Error,
    /// Hang forever (the manager's store timeout must cut it).
    Hang,
}

#[derive(Default)]
struct Probe {
    loads: AtomicUsize,
    /// Set where `loads_by_hash` would grow with every distinct token (floods, fuzzing) or
    /// be measured (the memory bench).
    no_hash_counts: AtomicBool,
    loads_by_hash: Mutex<HashMap<[u8; 32], usize>>,
    creates: AtomicUsize,
    revokes: AtomicUsize,
    latency_nanos: AtomicU64,
    fail_next: AtomicUsize,
    fail_always: AtomicBool,
    hang: AtomicBool,
    decode_copies: AtomicBool,
    /// Set with `gate`, so loads take the lock only while a pause is pending.
    gate_set: AtomicBool,
    gate: Mutex<Option<Arc<Gate>>>,
}

/// A store (by default a [`MemoryStore`]) that counts loads and writes, and can be made
/// slow, failing, hanging, paused, or to answer with private copies of its customers.
/// Clones share the inner store and the counters.
#[derive(Clone, Default)]
pub struct Instrumented<S = MemoryStore> {
    inner: S,
    probe: Arc<Probe>,
}

impl<S: Debug> Debug for Instrumented<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumented")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Instrumented<MemoryStore> {
    /// The memory store itself, for seeding past the counters.
    pub fn memory(&self) -> &MemoryStore {
        &self.inner
    }
}

impl<S> Instrumented<S> {
    /// `inner`, counting everything, loads per token hash included.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            probe: Arc::default(),
        }
    }

    /// Store loads so far (every `load` call, failed or not).
    pub fn loads(&self) -> usize {
        self.probe.loads.load(Ordering::SeqCst)
    }

    /// Store loads so far for one token hash (none counted while per-hash counts are off).
    pub fn loads_for(&self, hash: &TokenHash) -> usize {
        let by_hash = self.probe.loads_by_hash.lock().unwrap();
        by_hash.get(hash.as_bytes()).copied().unwrap_or(0)
    }

    /// Whether loads are also counted per token hash (on by default). Turn it off where
    /// many distinct tokens are loaded: the counts grow with each one.
    pub fn count_per_hash(&self, on: bool) {
        self.probe.no_hash_counts.store(!on, Ordering::SeqCst);
    }

    pub fn creates(&self) -> usize {
        self.probe.creates.load(Ordering::SeqCst)
    }

    /// Calls to `revoke` and `revoke_all`.
    pub fn revokes(&self) -> usize {
        self.probe.revokes.load(Ordering::SeqCst)
    }

    /// Every write: create, revoke, revoke_all.
    pub fn writes(&self) -> usize {
        self.creates() + self.revokes()
    }

    /// Every load sleeps this long before answering.
    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.probe.latency_nanos.store(nanos, Ordering::SeqCst);
    }

    /// The next `n` loads fail with a backend error.
    pub fn fail_next_loads(&self, n: usize) {
        self.probe.fail_next.store(n, Ordering::SeqCst);
    }

    /// Every operation fails with a backend error until turned off.
    pub fn fail_always(&self, on: bool) {
        self.probe.fail_always.store(on, Ordering::SeqCst);
    }

    /// Every operation fails, hangs, or (`Fault::None`) works again.
    pub fn set_fault(&self, fault: Fault) {
        self.fail_always(fault == Fault::Error);
        self.probe
            .hang
            .store(fault == Fault::Hang, Ordering::SeqCst);
    }

    /// Loads answer with their own copy of the customer, as a backend that decodes rows or
    /// JSON does, instead of sharing the inner store's.
    pub fn decode_copies(&self, on: bool) {
        self.probe.decode_copies.store(on, Ordering::SeqCst);
    }

    /// The next load pauses after reading its record, until the gate is released.
    pub fn pause_next_load(&self) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        *self.probe.gate.lock().unwrap() = Some(gate.clone());
        self.probe.gate_set.store(true, Ordering::SeqCst);
        gate
    }

    /// Wait (up to 5 s) until at least `n` loads have started.
    pub async fn wait_for_loads(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.loads() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "store load {n} never started"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn count_load(&self, hash: &TokenHash) {
        self.probe.loads.fetch_add(1, Ordering::SeqCst);
        if !self.probe.no_hash_counts.load(Ordering::SeqCst) {
            let mut by_hash = self.probe.loads_by_hash.lock().unwrap();
            *by_hash.entry(*hash.as_bytes()).or_default() += 1;
        }
    }

    /// Never returns while [`Fault::Hang`] is set.
    async fn hang(&self) {
        if self.probe.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }

    /// A write fails only with `fail_always`: `fail_next_loads` counts loads alone.
    fn write_failure(&self) -> Result<(), StoreError> {
        match self.probe.fail_always.load(Ordering::SeqCst) {
            true => Err(StoreError::backend(BACKEND_DETAIL)),
            false => Ok(()),
        }
    }

    fn failure(&self) -> Option<StoreError> {
        let always = self.probe.fail_always.load(Ordering::SeqCst);
        let once = self
            .probe
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        (always || once).then(|| StoreError::backend(BACKEND_DETAIL))
    }

    /// `record`, with its own copy of the customer if [`Self::decode_copies`] is on.
    fn decoded(&self, mut record: SessionRecord) -> SessionRecord {
        if self.probe.decode_copies.load(Ordering::SeqCst) {
            record.customer = Customer::new((*record.customer).clone());
        }
        record
    }

    /// The gate set by [`Self::pause_next_load`], taken by the load that meets it.
    fn take_gate(&self) -> Option<Arc<Gate>> {
        if !self.probe.gate_set.swap(false, Ordering::SeqCst) {
            return None;
        }
        self.probe.gate.lock().unwrap().take()
    }
}

impl<S: SessionStore> SessionStore for Instrumented<S> {
    async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
        self.count_load(key.token_hash());
        let nanos = self.probe.latency_nanos.load(Ordering::SeqCst);
        if nanos > 0 {
            tokio::time::sleep(Duration::from_nanos(nanos)).await;
        }
        self.hang().await;
        if let Some(error) = self.failure() {
            return Err(error);
        }
        let record = self.inner.load(key).await;
        let record = record.map(|found| found.map(|record| self.decoded(record)));
        if let Some(gate) = self.take_gate() {
            gate.reached.notify_one();
            gate.release.notified().await;
        }
        record
    }

    fn scope(&self) -> StoreScope {
        self.inner.scope()
    }

    fn watch(&self, sink: FeedSink) -> Option<Watch> {
        self.inner.watch(sink)
    }
}

impl<S: SessionAdmin> SessionAdmin for Instrumented<S> {
    async fn create(&self, session: NewSession) -> Result<SessionRecord, StoreError> {
        self.probe.creates.fetch_add(1, Ordering::SeqCst);
        self.hang().await;
        self.write_failure()?;
        self.inner.create(session).await
    }

    async fn revoke(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        self.probe.revokes.fetch_add(1, Ordering::SeqCst);
        self.hang().await;
        self.write_failure()?;
        self.inner.revoke(token_hash).await
    }

    async fn revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
        self.probe.revokes.fetch_add(1, Ordering::SeqCst);
        self.hang().await;
        self.write_failure()?;
        self.inner.revoke_all(customer_id).await
    }
}

impl<S: CustomerStore> CustomerStore for Instrumented<S> {
    async fn upsert_customer(&self, customer: Customer) -> Result<Customer, StoreError> {
        self.inner.upsert_customer(customer).await
    }

    async fn customer(&self, by: &CustomerRef) -> Result<Option<Customer>, StoreError> {
        self.inner.customer(by).await
    }

    async fn delete_customer(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        if let Some(error) = self.failure() {
            return Err(error);
        }
        self.inner.delete_customer(id, at).await
    }
}
