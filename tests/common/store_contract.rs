//! The behaviour every [`SessionStore`] backend must show.
//!
//! A backend's test file implements [`ContractStore`] for its store and invokes
//! [`store_contract_tests!`] once with an expression that builds a fresh, empty store and the
//! [`ManualClock`] that store judges expiry by:
//!
//! ```ignore
//! mod common;
//! use common::store_contract::{ContractStore, store_contract_tests};
//!
//! store_contract_tests!({
//!     let clock = ManualClock::new(common::start_time());
//!     (MyStore::connect(url).await.unwrap().with_clock(clock.clone()), clock)
//! });
//! ```
//!
//! The expression is evaluated inside each generated `async` test, so it may `.await`.

use std::future::Future;

use chrono::TimeDelta;
use tower_customer_session::model::{CustomerData, truncate_to_micros};
use tower_customer_session::store::{CustomerRef, NewSession, SessionRecord};
use tower_customer_session::token::{SessionToken, TokenFormat, TokenHash, TokenHasher, TokenKind};
use tower_customer_session::{Clock, Customer, ManualClock, SessionStore, StoreError};
use uuid::Uuid;

/// What the contract needs beyond [`SessionStore`]: a way to set up customers and to look at
/// everything the backend holds.
pub trait ContractStore: SessionStore {
    /// Insert a live customer and return it as `load` would.
    fn add_customer(&self, data: CustomerData) -> impl Future<Output = Customer> + Send;

    /// Soft-delete a customer (`deleted_at` set).
    fn soft_delete_customer(&self, id: Uuid) -> impl Future<Output = ()> + Send;

    /// Everything the backend keeps (rows, keys, values, `Debug`) as text, so the contract
    /// can check that no raw token was ever stored.
    fn raw_contents(&self) -> impl Future<Output = String> + Send;
}

/// Generate the contract tests for one backend; see the [module docs](self).
// Only the backend test files invoke it; the other binaries share this module.
#[allow(unused_macros)]
macro_rules! store_contract_tests {
    ($make:expr) => {
        $crate::common::store_contract::store_contract_tests!(@tests $make;
            create_then_load_returns_the_record_joined_with_its_customer,
            the_raw_token_never_reaches_the_store,
            create_with_an_existing_hash_conflicts_and_keeps_the_original,
            create_for_an_unknown_customer_fails,
            create_by_external_id,
            revoke_removes_one_session,
            revoke_all_removes_only_that_customers_sessions,
            sessions_of_a_deleted_customer_do_not_load,
            expired_sessions_do_not_load,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (store, clock) = $make;
            $crate::common::store_contract::$name(store, clock).await;
        }
    )*};
}

#[allow(unused_imports)]
pub(crate) use store_contract_tests;

const SECRET: &[u8] = b"store contract secret, 32 bytes!";

fn hasher() -> TokenHasher {
    TokenHasher::new(SECRET)
}

async fn customer<S: ContractStore>(store: &S, clock: &ManualClock, name: &str) -> Customer {
    let mut data = CustomerData::new(super::organization_id(), clock.now());
    data.name = Some(name.to_owned());
    data.email = Some(format!("{}@example.com", name.to_lowercase()));
    data.external_id = Some(format!(
        "ext_{}_{}",
        name.to_lowercase(),
        Uuid::new_v4().simple()
    ));
    store.add_customer(data).await
}

/// A fresh token and the `NewSession` the crate would hand the store for it.
fn new_session(
    customer: impl Into<CustomerRef>,
    clock: &ManualClock,
    kind: TokenKind,
) -> (SessionToken, NewSession) {
    let token = TokenFormat::polar().generate(kind).unwrap();
    let created_at = truncate_to_micros(clock.now());
    let session = NewSession {
        id: Uuid::new_v4(),
        token_hash: hasher().hash(token.expose_secret()),
        kind,
        customer: customer.into(),
        created_at,
        expires_at: created_at + TimeDelta::hours(1),
        return_url: Some("https://shop.example/account".to_owned()),
    };
    (token, session)
}

fn assert_same_session(loaded: &SessionRecord, expected: &NewSession, customer: &Customer) {
    assert_eq!(loaded.id, expected.id);
    assert!(loaded.token_hash == expected.token_hash);
    assert_eq!(loaded.kind, expected.kind);
    assert_eq!(loaded.created_at, expected.created_at);
    assert_eq!(loaded.expires_at, expected.expires_at);
    assert_eq!(loaded.return_url, expected.return_url);
    assert_eq!(
        &loaded.customer, customer,
        "the record is joined with its customer"
    );
}

async fn load<S: ContractStore>(store: &S, hash: &TokenHash) -> Option<SessionRecord> {
    store.load(hash).await.unwrap()
}

pub async fn create_then_load_returns_the_record_joined_with_its_customer<S: ContractStore>(
    store: S,
    clock: ManualClock,
) {
    let jane = customer(&store, &clock, "Jane").await;
    let (_, member) = new_session(jane.id, &clock, TokenKind::Member);
    let (_, new) = new_session(jane.id, &clock, TokenKind::Customer);

    let created = store.create(new.clone()).await.unwrap();
    assert_same_session(&created, &new, &jane);
    store.create(member.clone()).await.unwrap();

    assert_same_session(&load(&store, &new.token_hash).await.unwrap(), &new, &jane);
    assert_same_session(
        &load(&store, &member.token_hash).await.unwrap(),
        &member,
        &jane,
    );
    let (_, never_created) = new_session(jane.id, &clock, TokenKind::Customer);
    assert!(load(&store, &never_created.token_hash).await.is_none());
}

pub async fn the_raw_token_never_reaches_the_store<S: ContractStore>(store: S, clock: ManualClock) {
    let jane = customer(&store, &clock, "Jane").await;
    let (token, new) = new_session(jane.id, &clock, TokenKind::Customer);
    let token = token.expose_secret();
    // What the store is handed carries only the hash.
    let handed = format!("{new:?}");
    let created = store.create(new.clone()).await.unwrap();
    let loaded = load(&store, &new.token_hash).await.unwrap();

    let everything = format!(
        "{handed}\n{created:?}\n{loaded:?}\n{}",
        store.raw_contents().await
    );
    super::assert_no_token_in(&everything, &[token], "the store");
    assert!(loaded.token_hash == hasher().hash(token));
}

pub async fn create_with_an_existing_hash_conflicts_and_keeps_the_original<S: ContractStore>(
    store: S,
    clock: ManualClock,
) {
    let jane = customer(&store, &clock, "Jane").await;
    let john = customer(&store, &clock, "John").await;
    let (_, original) = new_session(jane.id, &clock, TokenKind::Customer);
    store.create(original.clone()).await.unwrap();

    // Same hash, everything else different: must not overwrite (insert-if-absent).
    let (_, mut intruder) = new_session(john.id, &clock, TokenKind::Member);
    intruder.token_hash = original.token_hash;
    intruder.expires_at = original.expires_at + TimeDelta::days(30);
    intruder.return_url = None;
    match store.create(intruder).await {
        Err(StoreError::Conflict) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }

    assert_same_session(
        &load(&store, &original.token_hash).await.unwrap(),
        &original,
        &jane,
    );
}

pub async fn create_for_an_unknown_customer_fails<S: ContractStore>(store: S, clock: ManualClock) {
    customer(&store, &clock, "Jane").await;
    let (_, by_id) = new_session(Uuid::new_v4(), &clock, TokenKind::Customer);
    let (_, by_external) = new_session(
        CustomerRef::ExternalId("no-such-customer".to_owned()),
        &clock,
        TokenKind::Customer,
    );
    for new in [by_id, by_external] {
        let hash = new.token_hash;
        match store.create(new).await {
            Err(StoreError::UnknownCustomer) => {}
            other => panic!("expected UnknownCustomer, got {other:?}"),
        }
        assert!(load(&store, &hash).await.is_none(), "nothing was stored");
    }
}

pub async fn create_by_external_id<S: ContractStore>(store: S, clock: ManualClock) {
    customer(&store, &clock, "Decoy").await;
    let jane = customer(&store, &clock, "Jane").await;
    let external = jane.external_id.clone().unwrap();
    let (_, new) = new_session(
        CustomerRef::ExternalId(external),
        &clock,
        TokenKind::Customer,
    );

    let created = store.create(new.clone()).await.unwrap();
    assert_eq!(created.customer.id, jane.id);
    assert_same_session(&load(&store, &new.token_hash).await.unwrap(), &new, &jane);
}

pub async fn revoke_removes_one_session<S: ContractStore>(store: S, clock: ManualClock) {
    let jane = customer(&store, &clock, "Jane").await;
    let (_, first) = new_session(jane.id, &clock, TokenKind::Customer);
    let (_, second) = new_session(jane.id, &clock, TokenKind::Customer);
    store.create(first.clone()).await.unwrap();
    store.create(second.clone()).await.unwrap();

    assert!(store.revoke(&first.token_hash).await.unwrap());
    assert!(load(&store, &first.token_hash).await.is_none());
    assert!(
        !store.revoke(&first.token_hash).await.unwrap(),
        "already gone"
    );
    assert!(
        load(&store, &second.token_hash).await.is_some(),
        "the other session stays"
    );
}

pub async fn revoke_all_removes_only_that_customers_sessions<S: ContractStore>(
    store: S,
    clock: ManualClock,
) {
    let jane = customer(&store, &clock, "Jane").await;
    let john = customer(&store, &clock, "John").await;
    let mut janes = Vec::new();
    for _ in 0..3 {
        let (_, new) = new_session(jane.id, &clock, TokenKind::Customer);
        store.create(new.clone()).await.unwrap();
        janes.push(new.token_hash);
    }
    let (_, johns) = new_session(john.id, &clock, TokenKind::Customer);
    store.create(johns.clone()).await.unwrap();

    assert_eq!(store.revoke_all(jane.id).await.unwrap(), 3);
    for hash in &janes {
        assert!(load(&store, hash).await.is_none());
    }
    assert_same_session(
        &load(&store, &johns.token_hash).await.unwrap(),
        &johns,
        &john,
    );
    assert_eq!(store.revoke_all(jane.id).await.unwrap(), 0);
    assert_eq!(store.revoke_all(Uuid::new_v4()).await.unwrap(), 0);
}

pub async fn sessions_of_a_deleted_customer_do_not_load<S: ContractStore>(
    store: S,
    clock: ManualClock,
) {
    let jane = customer(&store, &clock, "Jane").await;
    let john = customer(&store, &clock, "John").await;
    let (_, janes) = new_session(jane.id, &clock, TokenKind::Customer);
    let (_, johns) = new_session(john.id, &clock, TokenKind::Customer);
    store.create(janes.clone()).await.unwrap();
    store.create(johns.clone()).await.unwrap();

    store.soft_delete_customer(jane.id).await;
    assert!(load(&store, &janes.token_hash).await.is_none());
    assert!(load(&store, &johns.token_hash).await.is_some());
    let (_, another) = new_session(jane.id, &clock, TokenKind::Customer);
    match store.create(another).await {
        Err(StoreError::UnknownCustomer) => {}
        other => panic!("a deleted customer gets no new session, got {other:?}"),
    }
}

pub async fn expired_sessions_do_not_load<S: ContractStore>(store: S, clock: ManualClock) {
    let jane = customer(&store, &clock, "Jane").await;
    let (_, new) = new_session(jane.id, &clock, TokenKind::Customer);
    store.create(new.clone()).await.unwrap();

    clock.set(new.expires_at - TimeDelta::microseconds(1));
    assert!(
        load(&store, &new.token_hash).await.is_some(),
        "one microsecond left"
    );
    // `expires_at` itself is already expired.
    clock.set(new.expires_at);
    assert!(load(&store, &new.token_hash).await.is_none());
    clock.advance(TimeDelta::days(1));
    assert!(load(&store, &new.token_hash).await.is_none());
}
