//! The conformance kit: the behaviour every full store must show, as one call.
//!
//! Feature `testing`. Every in-tree backend runs it, and so should yours:
//!
//! ```
//! use tower_customer_session::MemoryStore;
//! use tower_customer_session::store::testing::{self, Conformance};
//!
//! // Implement `Conformance` for your store: how to open a second instance on the same
//! // backend, and how to dump everything the backend holds.
//! # #[derive(Clone, Default)]
//! # struct MyStore(MemoryStore);
//! # impl tower_customer_session::SessionStore for MyStore {
//! #     async fn load(&self, key: tower_customer_session::SessionKey<'_>) -> Result<Option<tower_customer_session::store::SessionRecord>, tower_customer_session::StoreError> { self.0.load(key).await }
//! # }
//! # impl tower_customer_session::SessionAdmin for MyStore {
//! #     async fn create(&self, s: tower_customer_session::store::NewSession) -> Result<tower_customer_session::store::SessionRecord, tower_customer_session::StoreError> { self.0.create(s).await }
//! #     async fn revoke(&self, h: &tower_customer_session::token::TokenHash) -> Result<bool, tower_customer_session::StoreError> { self.0.revoke(h).await }
//! #     async fn revoke_all(&self, c: uuid::Uuid) -> Result<u64, tower_customer_session::StoreError> { self.0.revoke_all(c).await }
//! # }
//! # impl tower_customer_session::CustomerStore for MyStore {
//! #     async fn upsert_customer(&self, c: tower_customer_session::Customer) -> Result<tower_customer_session::Customer, tower_customer_session::StoreError> { self.0.upsert_customer(c).await }
//! #     async fn customer(&self, by: &tower_customer_session::store::CustomerRef) -> Result<Option<tower_customer_session::Customer>, tower_customer_session::StoreError> { tower_customer_session::CustomerStore::customer(&self.0, by).await }
//! #     async fn delete_customer(&self, id: uuid::Uuid, at: chrono::DateTime<chrono::Utc>) -> Result<bool, tower_customer_session::StoreError> { self.0.delete_customer(id, at).await }
//! # }
//! impl Conformance for MyStore {
//!     async fn peer(&self) -> Self {
//!         self.clone() // e.g. `MyStore::connect(same_url).await`
//!     }
//!
//!     async fn dump(&self) -> String {
//!         format!("{:?}", self.0) // e.g. every key and value, every row
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // In a test: one call per fresh, empty store.
//! testing::run(|| async { MyStore::default() }).await;
//! # }
//! ```
//!
//! The kit checks: create-then-load joined with the customer (a member session with its
//! member); the raw token never reaches the store; insert-if-absent; unknown and deleted
//! customers; `external_id` resolution;
//! `revoke` and `revoke_all`; deleted customers' sessions; a second deletion keeping the
//! first `deleted_at`; expiry (on the wall clock, so it
//! sleeps about a second); customer upsert and read. For a store with an invalidation feed
//! it also runs two [`SessionManager`]s on two instances of the backend and checks that the
//! feed goes live and that a revocation, a `revoke_all`, a customer deletion and a customer
//! edit on one are seen by the other within [`PROPAGATION`].

use std::future::Future;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use uuid::Uuid;

use super::{CustomerRef, CustomerStore, NewSession, SessionAdmin, SessionKey, SessionRecord};
use super::{FeedSink, FeedState, SessionStore, StoreError};
use crate::model::{Customer, CustomerData, Member, MemberRole, truncate_to_micros};
use crate::token::{SessionToken, TokenFormat, TokenHasher, TokenKind};
use crate::{CreateSession, CredentialSource, SessionManager};

/// How soon a change on one instance must be refused or seen on another, with a feed.
pub const PROPAGATION: Duration = Duration::from_millis(100);

const SECRET: &[u8] = b"conformance kit secret, 32 bytes";

/// What the kit needs beyond the store traits.
pub trait Conformance: SessionAdmin + CustomerStore + Sized {
    /// A second instance on the same backend, as another process would open it (for a
    /// store without a feed, a clone will do).
    fn peer(&self) -> impl Future<Output = Self> + Send;

    /// Everything the backend keeps (keys and values, rows, `Debug`), as text, so the kit
    /// can check that no raw token was ever stored.
    fn dump(&self) -> impl Future<Output = String> + Send;
}

/// Run every check, each on a fresh store from `fresh`. Panics on the first failure.
pub async fn run<S, F, Fut>(fresh: F)
where
    S: Conformance,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    create_then_load(&fresh().await).await;
    raw_token_never_stored(&fresh().await).await;
    create_is_insert_if_absent(&fresh().await).await;
    create_for_unknown_customer_fails(&fresh().await).await;
    create_by_external_id(&fresh().await).await;
    revoke_removes_one(&fresh().await).await;
    revoke_all_removes_only_that_customers(&fresh().await).await;
    deleted_customers_do_not_load(&fresh().await).await;
    deleting_again_keeps_the_first_deletion_time(&fresh().await).await;
    customers_round_trip(&fresh().await).await;
    expired_sessions_do_not_load(&fresh().await).await;
    if has_feed(&fresh().await) {
        feed_propagates(fresh().await).await;
    }
}

fn has_feed<S: Conformance>(store: &S) -> bool {
    // A detached sink receives nothing; this only asks whether the store has a feed.
    store.watch(FeedSink::detached()).is_some()
}

fn hasher() -> TokenHasher {
    TokenHasher::new(SECRET)
}

async fn customer<S: Conformance>(store: &S, name: &str) -> Customer {
    let mut data = CustomerData::new(Utc::now());
    data.name = Some(name.to_owned());
    data.email = Some(format!("{}@example.com", name.to_lowercase()));
    data.external_id = Some(format!(
        "ext_{}_{}",
        name.to_lowercase(),
        Uuid::new_v4().simple()
    ));
    store
        .upsert_customer(Customer::new(data))
        .await
        .expect("upsert_customer")
}

/// A fresh token and the `NewSession` the crate would hand the store for it.
fn new_session(customer: impl Into<CustomerRef>, kind: TokenKind) -> (SessionToken, NewSession) {
    let token = TokenFormat::polar()
        .generate(kind)
        .expect("OS random numbers");
    let created_at = truncate_to_micros(Utc::now());
    let session = NewSession {
        id: Uuid::new_v4(),
        token_hash: hasher().hash(token.expose_secret()),
        kind,
        customer: customer.into(),
        created_at,
        expires_at: created_at + TimeDelta::hours(1),
        return_url: Some("https://shop.example/account".to_owned()),
        // A member session carries its member, every field set, through the store.
        member: (kind == TokenKind::Member).then(|| Member {
            id: Uuid::new_v4(),
            email: Some("billing@example.com".to_owned()),
            name: Some("Billing Desk".to_owned()),
            external_id: Some(format!("emp_{}", Uuid::new_v4().simple())),
            role: MemberRole::BillingManager,
        }),
    };
    (token, session)
}

async fn load<S: Conformance>(store: &S, token: &SessionToken) -> Option<SessionRecord> {
    let hash = hasher().hash(token.expose_secret());
    store
        .load(SessionKey::new(&hash, token.expose_secret()))
        .await
        .expect("load")
}

fn assert_same(loaded: &SessionRecord, expected: &NewSession, customer: &Customer) {
    assert_eq!(loaded.id, expected.id, "session id");
    assert!(loaded.token_hash == expected.token_hash, "token hash");
    assert_eq!(loaded.kind, expected.kind, "kind");
    assert_eq!(loaded.created_at, expected.created_at, "created_at");
    assert_eq!(loaded.expires_at, expected.expires_at, "expires_at");
    assert_eq!(loaded.return_url, expected.return_url, "return_url");
    assert_eq!(loaded.member, expected.member, "member");
    assert_eq!(
        &loaded.customer, customer,
        "the record is joined with its customer"
    );
}

async fn create_then_load<S: Conformance>(store: &S) {
    let jane = customer(store, "Jane").await;
    let (token, new) = new_session(jane.id, TokenKind::Customer);
    let (member_token, member) = new_session(jane.id, TokenKind::Member);
    assert_same(
        &store.create(new.clone()).await.expect("create"),
        &new,
        &jane,
    );
    store.create(member.clone()).await.expect("create member");
    assert_same(&load(store, &token).await.expect("loads"), &new, &jane);
    assert_same(
        &load(store, &member_token).await.expect("loads"),
        &member,
        &jane,
    );
    let (never, _) = new_session(jane.id, TokenKind::Customer);
    assert!(
        load(store, &never).await.is_none(),
        "a never-created token loads nothing"
    );
}

async fn raw_token_never_stored<S: Conformance>(store: &S) {
    let jane = customer(store, "Jane").await;
    let (token, new) = new_session(jane.id, TokenKind::Customer);
    store.create(new).await.expect("create");
    let loaded = load(store, &token).await.expect("loads");
    let everything = format!("{loaded:?}\n{}", store.dump().await);
    let raw = token.expose_secret();
    // The random part alone, too: a store must not keep the token in any encoding of it.
    let random = &raw[raw.len() - 43..raw.len() - 6];
    assert!(
        !everything.contains(raw) && !everything.contains(random),
        "the store holds the raw token"
    );
}

async fn create_is_insert_if_absent<S: Conformance>(store: &S) {
    let jane = customer(store, "Jane").await;
    let john = customer(store, "John").await;
    let (token, original) = new_session(jane.id, TokenKind::Customer);
    store.create(original.clone()).await.expect("create");
    // Same hash, everything else different: must not overwrite.
    let (_, mut intruder) = new_session(john.id, TokenKind::Member);
    intruder.token_hash = original.token_hash;
    intruder.expires_at = original.expires_at + TimeDelta::days(30);
    intruder.return_url = None;
    match store.create(intruder).await {
        Err(StoreError::Conflict) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_same(&load(store, &token).await.expect("loads"), &original, &jane);
}

async fn create_for_unknown_customer_fails<S: Conformance>(store: &S) {
    customer(store, "Jane").await;
    let (by_id_token, by_id) = new_session(Uuid::new_v4(), TokenKind::Customer);
    let (by_ext_token, by_ext) = new_session("no-such-customer", TokenKind::Customer);
    for (token, new) in [(by_id_token, by_id), (by_ext_token, by_ext)] {
        match store.create(new).await {
            Err(StoreError::UnknownCustomer) => {}
            other => panic!("expected UnknownCustomer, got {other:?}"),
        }
        assert!(load(store, &token).await.is_none(), "nothing was stored");
    }
}

async fn create_by_external_id<S: Conformance>(store: &S) {
    customer(store, "Decoy").await;
    let jane = customer(store, "Jane").await;
    let external = jane.external_id.clone().expect("set by the kit");
    let (token, new) = new_session(external.as_str(), TokenKind::Customer);
    assert_eq!(
        store.create(new.clone()).await.expect("create").customer.id,
        jane.id
    );
    assert_same(&load(store, &token).await.expect("loads"), &new, &jane);
}

async fn revoke_removes_one<S: Conformance>(store: &S) {
    let jane = customer(store, "Jane").await;
    let (first_token, first) = new_session(jane.id, TokenKind::Customer);
    let (second_token, second) = new_session(jane.id, TokenKind::Customer);
    store.create(first.clone()).await.expect("create");
    store.create(second).await.expect("create");
    assert!(store.revoke(&first.token_hash).await.expect("revoke"));
    assert!(load(store, &first_token).await.is_none(), "revoked");
    assert!(
        !store.revoke(&first.token_hash).await.expect("revoke"),
        "already gone"
    );
    assert!(
        load(store, &second_token).await.is_some(),
        "the other session stays"
    );
}

async fn revoke_all_removes_only_that_customers<S: Conformance>(store: &S) {
    let jane = customer(store, "Jane").await;
    let john = customer(store, "John").await;
    let mut janes = Vec::new();
    for _ in 0..3 {
        let (token, new) = new_session(jane.id, TokenKind::Customer);
        store.create(new).await.expect("create");
        janes.push(token);
    }
    let (johns_token, johns) = new_session(john.id, TokenKind::Customer);
    store.create(johns.clone()).await.expect("create");
    assert_eq!(store.revoke_all(jane.id).await.expect("revoke_all"), 3);
    for token in &janes {
        assert!(load(store, token).await.is_none(), "revoked");
    }
    assert_same(
        &load(store, &johns_token).await.expect("loads"),
        &johns,
        &john,
    );
    assert_eq!(store.revoke_all(jane.id).await.expect("revoke_all"), 0);
    assert_eq!(
        store.revoke_all(Uuid::new_v4()).await.expect("revoke_all"),
        0
    );
}

async fn deleted_customers_do_not_load<S: Conformance>(store: &S) {
    let jane = customer(store, "Jane").await;
    let john = customer(store, "John").await;
    let (janes_token, janes) = new_session(jane.id, TokenKind::Customer);
    let (johns_token, johns) = new_session(john.id, TokenKind::Customer);
    store.create(janes).await.expect("create");
    store.create(johns).await.expect("create");
    assert!(
        store
            .delete_customer(jane.id, Utc::now())
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_customer(Uuid::new_v4(), Utc::now())
            .await
            .expect("delete")
    );
    assert!(
        load(store, &janes_token).await.is_none(),
        "deleted customer"
    );
    assert!(
        load(store, &johns_token).await.is_some(),
        "other customers unaffected"
    );
    let (_, another) = new_session(jane.id, TokenKind::Customer);
    match store.create(another).await {
        Err(StoreError::UnknownCustomer) => {}
        other => panic!("a deleted customer gets no new session, got {other:?}"),
    }
}

/// `deleted_at` says when the customer was deleted: a second deletion (a retry, a replayed
/// webhook) answers `Ok(true)`, the customer exists, and leaves the first time in place.
async fn deleting_again_keeps_the_first_deletion_time<S: Conformance>(store: &S) {
    let jane = customer(store, "Jane").await;
    let first = truncate_to_micros(Utc::now() - TimeDelta::hours(1));
    assert!(store.delete_customer(jane.id, first).await.expect("delete"));
    let again = store
        .delete_customer(jane.id, first + TimeDelta::minutes(5))
        .await
        .expect("delete again");
    assert!(again, "a deleted customer still exists: Ok(true)");
    let stored = CustomerStore::customer(store, &CustomerRef::Id(jane.id))
        .await
        .expect("read")
        .expect("a deleted customer is kept");
    assert_eq!(
        stored.deleted_at,
        Some(first),
        "a second deletion moved deleted_at"
    );
}

async fn customers_round_trip<S: Conformance>(store: &S) {
    let jane = customer(store, "Jane").await;
    let by_id = store
        .customer(&CustomerRef::Id(jane.id))
        .await
        .expect("customer");
    assert_eq!(by_id.as_ref(), Some(&jane));
    let ext = jane.external_id.clone().expect("set by the kit");
    let by_ext = store
        .customer(&CustomerRef::ExternalId(ext))
        .await
        .expect("customer");
    assert_eq!(by_ext.as_ref(), Some(&jane));
    assert!(
        store
            .customer(&CustomerRef::Id(Uuid::new_v4()))
            .await
            .expect("customer")
            .is_none()
    );

    // An edit shows in loads at once: the session is joined with the current customer.
    let (token, new) = new_session(jane.id, TokenKind::Customer);
    store.create(new).await.expect("create");
    let mut edited = jane.clone();
    edited.make_mut().name = Some("Jane Edited".to_owned());
    store.upsert_customer(edited.clone()).await.expect("upsert");
    assert_eq!(load(store, &token).await.expect("loads").customer, edited);
}

async fn expired_sessions_do_not_load<S: Conformance>(store: &S) {
    let jane = customer(store, "Jane").await;
    let (token, mut new) = new_session(jane.id, TokenKind::Customer);
    new.expires_at = truncate_to_micros(Utc::now()) + TimeDelta::milliseconds(800);
    store.create(new.clone()).await.expect("create");
    assert!(load(store, &token).await.is_some(), "not expired yet");
    let left = (new.expires_at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(150)).await;
    assert!(load(store, &token).await.is_none(), "expired");
}

/// Two managers on two instances of the backend: changes on `a` must reach `b`'s cache.
async fn feed_propagates<S: Conformance>(store: S) {
    let peer = store.peer().await;
    let manager = |store| {
        SessionManager::builder(store)
            .secret(SECRET)
            .build()
            .expect("a secret is configured")
    };
    let (a, b) = (manager(store), manager(peer));
    for side in [&a, &b] {
        wait_for(
            || side.feed_state() == FeedState::Live,
            Duration::from_secs(5),
            "feed live",
        )
        .await;
    }
    let jane = a
        .upsert_customer(customer_data("Jane"))
        .await
        .expect("upsert");

    // Revoke one session.
    let session = a
        .create(jane.id, CreateSession::default())
        .await
        .expect("create");
    let token = session.token.expose_secret();
    authenticated(&b, token).await;
    a.revoke(token).await.expect("revoke");
    refused_within(&b, token, "revoke").await;

    // Revoke all of a customer's sessions.
    let session = a
        .create(jane.id, CreateSession::default())
        .await
        .expect("create");
    let token = session.token.expose_secret();
    authenticated(&b, token).await;
    a.revoke_all(jane.id).await.expect("revoke_all");
    refused_within(&b, token, "revoke_all").await;

    // Edit the customer: the peer sees the new name.
    let session = a
        .create(jane.id, CreateSession::default())
        .await
        .expect("create");
    let token = session.token.expose_secret();
    authenticated(&b, token).await;
    let mut edited = jane.clone();
    edited.make_mut().name = Some("Jane Edited".to_owned());
    a.upsert_customer(edited).await.expect("upsert");
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    loop {
        let (customer, _) = b
            .authenticate(token, CredentialSource::Header)
            .await
            .expect("valid");
        if customer.name.as_deref() == Some("Jane Edited") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "customer edit not seen by the peer"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    // Delete the customer.
    a.delete_customer(jane.id).await.expect("delete");
    refused_within(&b, token, "customer deletion").await;
}

fn customer_data(name: &str) -> Customer {
    let mut data = CustomerData::new(Utc::now());
    data.name = Some(name.to_owned());
    data.email = Some(format!("{}@example.com", name.to_lowercase()));
    Customer::new(data)
}

async fn authenticated<S: Conformance>(manager: &SessionManager<S>, token: &str) {
    manager
        .authenticate(token, CredentialSource::Header)
        .await
        .expect("a fresh session authenticates on the peer");
    // Twice, so the second answer comes from the peer's cache.
    manager
        .authenticate(token, CredentialSource::Header)
        .await
        .expect("and keeps authenticating");
}

/// Wait until `manager` refuses `token`, failing the test if it still accepts it after
/// [`PROPAGATION`]: how a fleet test checks that a change on another instance arrived.
/// `what` names the change in the failure message.
pub async fn refused_within<S: SessionStore>(manager: &SessionManager<S>, token: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    loop {
        if manager
            .authenticate(token, CredentialSource::Header)
            .await
            .is_err()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} on one instance not seen by the other within {PROPAGATION:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn wait_for(mut done: impl FnMut() -> bool, within: Duration, what: &str) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl Conformance for super::MemoryStore {
    async fn peer(&self) -> Self {
        // One process: the same store is all another "instance" could see.
        self.clone()
    }

    async fn dump(&self) -> String {
        self.dump_all()
    }
}
