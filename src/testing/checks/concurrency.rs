//! Calls at once, through two instances when the backend has a peer: one create per hash
//! wins, and concurrent writes are all kept. Each batch is polled together on one task,
//! so a store that checks, awaits, then writes shows its race at that await.

use crate::store::{CustomerRef, CustomerStore, SessionAdmin, StoreError};
use crate::token::TokenKind;

use super::super::expect::{Checked, called, equal, fail, found, nothing};
use super::super::fixtures::{self, new_session};
use super::super::future::join_all;
use super::{FullBackend, load, now};

const AT_ONCE: usize = 8;

/// Concurrent creates of one hash, for different customers and kinds: exactly one wins,
/// the others are `Conflict`, and the winner is what loads.
pub(super) async fn one_create_wins_per_hash<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let peer = backend.peer().await;
    let handle = |i: usize| match (&peer, i % 2) {
        (Some(peer), 1) => peer,
        _ => &store,
    };
    let now = now(&backend).await;
    let jane = fixtures::individual("Jane", now);
    let acme = fixtures::team("Acme", now);
    for customer in [&jane, &acme] {
        called(
            "upsert_customer",
            store.upsert_customer(customer.clone()).await,
        )?;
    }
    for _round in 0..3 {
        let (token, first) = new_session(jane.id, TokenKind::Customer, now);
        let attempts: Vec<_> = (0..AT_ONCE)
            .map(|i| {
                let (_, mut new) = if i % 2 == 0 {
                    new_session(jane.id, TokenKind::Customer, now)
                } else {
                    new_session(acme.id, TokenKind::Member, now)
                };
                new.token_hash = first.token_hash;
                new
            })
            .collect();
        let results = join_all(
            attempts
                .iter()
                .enumerate()
                .map(|(i, new)| handle(i).create(new.clone())),
        )
        .await;
        let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let conflicts = results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::Conflict)))
            .count();
        let what = format!("{AT_ONCE} concurrent creates with one hash");
        if won.len() != 1 || conflicts != AT_ONCE - 1 {
            let errors: Vec<String> = results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .filter(|e| !matches!(e, StoreError::Conflict))
                .map(|e| format!("{e:?}"))
                .collect();
            return Err(fail(
                what,
                format!("one Ok and {} Err(Conflict)", AT_ONCE - 1),
                format!(
                    "{} Ok, {conflicts} Err(Conflict), other errors {errors:?}",
                    won.len()
                ),
            ));
        }
        let winner = won[0].id;
        let record = found(format!("load after {what}"), load(&store, &token).await)?;
        equal(
            format!("load after {what}: the winner's id"),
            &winner,
            &record.id,
        )?;
    }
    Ok(())
}

/// Concurrent upserts of different customers, then concurrent creates and revocations of
/// their sessions, are all kept: no write overwrites another's.
pub(super) async fn concurrent_writes_all_land<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let peer = backend.peer().await;
    let handle = |i: usize| match (&peer, i % 2) {
        (Some(peer), 1) => peer,
        _ => &store,
    };
    let now = now(&backend).await;
    let customers: Vec<_> = (0..2 * AT_ONCE)
        .map(|i| fixtures::individual(&format!("Customer{i}"), now))
        .collect();
    let upserts = join_all(
        customers
            .iter()
            .enumerate()
            .map(|(i, customer)| handle(i).upsert_customer(customer.clone())),
    )
    .await;
    for result in upserts {
        called("concurrent upsert_customer", result)?;
    }
    for customer in &customers {
        let read_back = called(
            "customer by id after concurrent upserts",
            store.customer(&CustomerRef::Id(customer.id)).await,
        )?;
        if read_back.is_none() {
            return Err(fail(
                "customer by id after concurrent upserts of different customers",
                "every customer",
                format!("{} missing", customer.name.clone().unwrap_or_default()),
            ));
        }
    }

    let sessions: Vec<_> = customers
        .iter()
        .map(|customer| new_session(customer.id, TokenKind::Customer, now))
        .collect();
    let creates = join_all(
        sessions
            .iter()
            .enumerate()
            .map(|(i, (_, new))| handle(i).create(new.clone())),
    )
    .await;
    for result in creates {
        called("concurrent create", result)?;
    }
    for (token, _) in &sessions {
        found(
            "load after concurrent creates of different sessions",
            load(&store, token).await,
        )?;
    }

    let (revoked, kept) = sessions.split_at(AT_ONCE);
    let revocations = join_all(
        revoked
            .iter()
            .enumerate()
            .map(|(i, (_, new))| handle(i).revoke(&new.token_hash)),
    )
    .await;
    for result in revocations {
        let existed = called("concurrent revoke", result)?;
        equal("concurrent revoke of a live session", &true, &existed)?;
    }
    for (token, _) in revoked {
        nothing(
            "load after concurrent revocations",
            load(&store, token).await,
        )?;
    }
    for (token, _) in kept {
        found(
            "load of a session no revocation named, after concurrent revocations",
            load(&store, token).await,
        )?;
    }
    Ok(())
}
