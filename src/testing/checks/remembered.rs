//! A revocation made through the store's API is never undone: the peer that heard of it on
//! the feed keeps refusing the session when the store later serves it again (a restart
//! from older data, a failover to a replica that missed it). The peer runs on a store that
//! can be told to answer with what it loaded before the revocation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::store::{
    FeedSink, SessionKey, SessionRecord, SessionStore, StoreError, StoreScope, Watch,
};
use crate::token::TokenHash;
use crate::{CreateSession, CredentialSource, SessionManager};

use super::super::PROPAGATION;
use super::super::expect::{Checked, Stop, called, fail, skip};
use super::super::fixtures::{self, SECRET};
use super::feed::{cached, live, refused, session};
use super::{FullBackend, manager, now};

/// The peer's store, which can start serving every session as it first loaded it.
struct Forgetful<S> {
    store: S,
    loaded: Arc<Mutex<HashMap<TokenHash, SessionRecord>>>,
    forgetting: Arc<AtomicBool>,
}

impl<S: SessionStore> SessionStore for Forgetful<S> {
    async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
        let loaded = || self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if self.forgetting.load(Ordering::SeqCst) {
            if let Some(record) = loaded().get(key.token_hash()) {
                return Ok(Some(record.clone()));
            }
        }
        let record = self.store.load(key).await?;
        if let Some(record) = &record {
            loaded().insert(*key.token_hash(), record.clone());
        }
        Ok(record)
    }

    fn scope(&self) -> StoreScope {
        self.store.scope()
    }

    fn watch(&self, sink: FeedSink) -> Option<Watch> {
        self.store.watch(sink)
    }
}

/// A `revoke`, a `revoke_all` and a customer deletion on one instance stay refused on the
/// other after the store serves those sessions again.
pub(super) async fn api_revocations_are_remembered_by_the_peer<B: FullBackend>(
    backend: B,
) -> Checked {
    let store = backend.store();
    if store.watch(FeedSink::detached()).is_none() {
        return Err(skip(
            "the store has no feed (`SessionStore::watch` is None): no peer hears of a revocation",
        ));
    }
    let Some(peer) = backend.peer().await else {
        return Err(skip(
            "no second instance to watch the feed from (`Backend::peer` is None)",
        ));
    };
    let forgetting = Arc::new(AtomicBool::new(false));
    let a = manager(&backend, store)?;
    let b = peer_manager(&backend, peer, forgetting.clone())?;
    live("the store's feed", &a).await?;
    live("the peer's feed", &b).await?;

    let at = now(&backend).await;
    let mut tokens = Vec::new();
    let mut customers = Vec::new();
    for name in ["Revoked", "Revoked all", "Deleted"] {
        let customer = called(
            "upsert_customer",
            a.upsert_customer(fixtures::team(name, at)).await,
        )?;
        let made = session(&a, customer.id, CreateSession::default()).await?;
        let token = made.token.expose_secret().to_owned();
        cached(&b, &token).await?;
        tokens.push(token);
        customers.push(customer.id);
    }
    // Revocations come after the sessions, also on a stopped clock: a session made in the
    // same microsecond as a `revoke_all` is not revoked by it.
    if let Some(clock) = backend.clock() {
        clock.advance(chrono::TimeDelta::milliseconds(1));
    }
    called("revoke", a.revoke(&tokens[0]).await)?;
    called("revoke_all", a.revoke_all(customers[1]).await)?;
    called("delete_customer", a.delete_customer(customers[2]).await)?;
    let changes = ["a revoke", "a revoke_all", "a customer deletion"];
    for (token, change) in tokens.iter().zip(changes) {
        refused(
            &b,
            token,
            PROPAGATION,
            &format!("{change} on one instance, on the other"),
        )
        .await?;
    }

    forgetting.store(true, Ordering::SeqCst);
    for (token, change) in tokens.iter().zip(changes) {
        if b.authenticate(token, CredentialSource::Header)
            .await
            .is_ok()
        {
            return Err(fail(
                format!("{change} on one instance, then the store serves the session again"),
                "still refused by the instance that heard of it: announce a revocation made \
                 through the store's API as `Invalidation::Revoked` or \
                 `Invalidation::CustomerRevoked`",
                "accepted: the feed announced it as a plain change, which a peer does not \
                 remember",
            ));
        }
    }
    Ok(())
}

/// The peer's manager: on the forgetful store, with no negative cache, so that a refusal
/// comes from what it remembers, not from a cached "unknown".
fn peer_manager<B: FullBackend>(
    backend: &B,
    peer: B::Store,
    forgetting: Arc<AtomicBool>,
) -> Result<SessionManager<Forgetful<B::Store>>, Stop> {
    let store = Forgetful {
        store: peer,
        loaded: Arc::default(),
        forgetting,
    };
    let mut builder = SessionManager::builder(store)
        .secret(SECRET)
        .negative_cache_ttl(Duration::ZERO);
    if let Some(clock) = backend.clock() {
        builder = builder.clock(clock);
    }
    builder.build().map_err(|error| {
        fail(
            "SessionManager::builder(store).build()",
            "a manager",
            format!("Err({error:?})"),
        )
    })
}
