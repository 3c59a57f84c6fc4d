//! The store test kit, run against the embedded [`MemoryStore`]; and the expiry boundary,
//! which only a store on an injectable clock can show to the microsecond.

use chrono::TimeDelta;
use tower_customer_session::model::CustomerData;
use tower_customer_session::store::NewSession;
use tower_customer_session::testing::{self, Backend, Kit};
use tower_customer_session::token::{TokenFormat, TokenHasher, TokenKind};
use tower_customer_session::{
    Clock, ManualClock, MemoryStore, SessionAdmin, SessionKey, SessionStore,
};
use uuid::Uuid;

/// A memory store on a clock the kit moves, so expiry is checked to the microsecond.
struct OnManualClock {
    store: MemoryStore,
    clock: ManualClock,
}

impl OnManualClock {
    fn new() -> Self {
        let clock = ManualClock::new(chrono::Utc::now());
        Self {
            store: MemoryStore::with_clock(clock.clone()),
            clock,
        }
    }
}

impl Backend for OnManualClock {
    type Store = MemoryStore;

    fn store(&self) -> MemoryStore {
        self.store.clone()
    }

    fn clock(&self) -> Option<ManualClock> {
        Some(self.clock.clone())
    }

    async fn dump(&self) -> Option<String> {
        self.store.dump().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_runs_on_the_memory_store() {
    let report = Kit::new(|| async { OnManualClock::new() }).run().await;
    report.assert_passed();
    // One process, no feed, nothing that can fail: only those checks do not apply.
    let skipped: Vec<&str> = report.skipped().collect();
    assert!(
        skipped
            .iter()
            .all(|name| name.starts_with("feed.") || name.starts_with("failures.")),
        "{skipped:?}"
    );
    assert_eq!(skipped.len(), 12, "{skipped:?}");
}

#[tokio::test]
async fn the_kit_runs_on_the_memory_store_on_the_system_clock() {
    // The one-call form, on the store as it is (its clock the kit can only read).
    testing::run(|| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn expiry_is_judged_to_the_microsecond() {
    let clock = ManualClock::new(chrono::Utc::now());
    let store = MemoryStore::with_clock(clock.clone());
    let jane = store.insert_customer(CustomerData::new(clock.now()));
    let token = TokenFormat::polar().generate(TokenKind::Customer).unwrap();
    let hasher = TokenHasher::new(b"memory store test secret 32 byte");
    let hash = hasher.hash(token.expose_secret());
    let created_at = tower_customer_session::model::truncate_to_micros(clock.now());
    let new = NewSession {
        id: Uuid::new_v4(),
        token_hash: hash,
        kind: TokenKind::Customer,
        customer: jane.id.into(),
        created_at,
        expires_at: created_at + TimeDelta::hours(1),
        return_url: None,
        member: None,
    };
    store.create(new.clone()).await.unwrap();
    let key = SessionKey::new(&hash, token.expose_secret());

    clock.set(new.expires_at - TimeDelta::microseconds(1));
    assert!(
        store.load(key).await.unwrap().is_some(),
        "one microsecond left"
    );
    clock.set(new.expires_at);
    assert!(
        store.load(key).await.unwrap().is_none(),
        "`expires_at` itself is expired"
    );
}

/// A long-running process whose sessions keep expiring: without `purge_expired`, the
/// store stays within its documented bound (1.5 times the live sessions under steady
/// churn), where it used to keep every session ever created. Revocations in the mix move
/// sessions around and must not let any escape the sweep.
#[tokio::test]
async fn expired_sessions_are_swept_without_purge_expired() {
    let clock = ManualClock::new(chrono::Utc::now());
    let store = MemoryStore::with_clock(clock.clone());
    let jane = store.insert_customer(CustomerData::new(clock.now()));
    let hasher = TokenHasher::new(b"memory store test secret 32 byte");
    // One create a second, each session living a minute: 60 alive at any time.
    let lifetime = TimeDelta::seconds(60);
    let mut issued = Vec::new();
    let mut revoked = std::collections::HashSet::new();
    let mut most = 0;
    for i in 0..10_000 {
        let token = TokenFormat::polar().generate(TokenKind::Customer).unwrap();
        let hash = hasher.hash(token.expose_secret());
        let now = clock.now();
        store
            .create(NewSession {
                id: Uuid::new_v4(),
                token_hash: hash,
                kind: TokenKind::Customer,
                customer: jane.id.into(),
                created_at: now,
                expires_at: now + lifetime,
                return_url: None,
                member: None,
            })
            .await
            .unwrap();
        issued.push((hash, token.expose_secret().to_owned()));
        // Now and then, revoke a live session from the middle of the store.
        if i % 7 == 0 && issued.len() > 30 {
            let victim = issued[issued.len() - 30].0;
            assert!(store.revoke(&victim).await.unwrap());
            revoked.insert(victim);
        }
        clock.advance(TimeDelta::seconds(1));
        if i > 1_000 {
            most = most.max(store.session_count());
        }
    }
    assert!(most <= 90, "{most} stored for 60 alive");
    // Nothing live was swept: every unrevoked session of the last minute still loads.
    let mut alive = 0;
    for (hash, token) in &issued[issued.len() - 59..] {
        let loaded = store.load(SessionKey::new(hash, token)).await.unwrap();
        assert_eq!(loaded.is_some(), !revoked.contains(hash));
        alive += usize::from(loaded.is_some());
    }
    assert!(alive >= 50, "{alive}");
}
