//! A revocation whose store call times out, but which the backend commits later, must not
//! be hidden by the cache; and the caller hears that it failed.

use std::time::Duration;

use chrono::Utc;
use tower_customer_session::model::CustomerData;
use tower_customer_session::store::{NewSession, SessionRecord, StoreScope};
use tower_customer_session::token::TokenHash;
use tower_customer_session::{
    CreateSession, CredentialSource, MemoryStore, SessionAdmin, SessionKey, SessionManager,
    SessionStore, StoreError,
};
use uuid::Uuid;

/// Revocations commit 200 ms late, after the caller's deadline has passed.
#[derive(Clone, Default)]
struct LateCommit(MemoryStore);

impl SessionStore for LateCommit {
    async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
        self.0.load(key).await
    }

    fn scope(&self) -> StoreScope {
        StoreScope::Process
    }
}

impl SessionAdmin for LateCommit {
    async fn create(&self, session: NewSession) -> Result<SessionRecord, StoreError> {
        self.0.create(session).await
    }

    async fn revoke(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        let (memory, hash) = (self.0.clone(), *hash);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            memory.revoke(&hash).await
        });
        std::future::pending().await
    }

    async fn revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
        let memory = self.0.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            memory.revoke_all(customer_id).await
        });
        std::future::pending().await
    }
}

async fn setup() -> (SessionManager<LateCommit>, Uuid, String) {
    let store = LateCommit::default();
    let jane = store.0.insert_customer(CustomerData::new(Utc::now()));
    let sessions = SessionManager::builder(store)
        .store_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let session = sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    (sessions, jane.id, session.token.expose_secret().to_owned())
}

async fn authenticates(sessions: &SessionManager<LateCommit>, token: &str) -> bool {
    sessions
        .authenticate(token, CredentialSource::Header)
        .await
        .is_ok()
}

#[tokio::test]
async fn a_timed_out_revoke_is_reported_and_never_re_cached() {
    let (sessions, _, token) = setup().await;
    assert!(authenticates(&sessions, &token).await);

    let result = sessions.revoke(&token).await;
    assert!(
        matches!(result, Err(StoreError::Timeout)),
        "the caller hears it failed"
    );

    // Before the backend commits, a load still finds the session: it is served, but must
    // not be cached, or the late commit would be hidden for `cache_max_ttl`.
    assert!(authenticates(&sessions, &token).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !authenticates(&sessions, &token).await,
        "the late commit holds at once"
    );
}

#[tokio::test]
async fn a_timed_out_revoke_all_is_reported_and_never_re_cached() {
    let (sessions, customer, token) = setup().await;
    assert!(authenticates(&sessions, &token).await);
    assert!(matches!(
        sessions.revoke_all(customer).await,
        Err(StoreError::Timeout)
    ));
    assert!(authenticates(&sessions, &token).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!authenticates(&sessions, &token).await);
}
