//! Issuing and revoking: `create` is insert-if-absent for a live customer only, `revoke`
//! removes one session, `revoke_all` every session of one customer, members' included.

use chrono::TimeDelta;
use uuid::Uuid;

use crate::store::{CustomerRef, CustomerStore, SessionAdmin, StoreError};
use crate::token::TokenKind;

use super::super::expect::{
    Checked, called, equal, fail, found, nothing, same_customer, same_session,
};
use super::super::fixtures::{self, new_session};
use super::{FullBackend, as_created, load, now, shown};

/// `create` returns the session as it went in, joined with the customer as it went in,
/// for a customer session and a member session alike.
pub(super) async fn create_returns_what_went_in<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let now = now(&backend).await;
    let jane = fixtures::individual("Jane", now);
    let acme = fixtures::team("Acme", now);
    for customer in [&jane, &acme] {
        called(
            "upsert_customer",
            store.upsert_customer(customer.clone()).await,
        )?;
    }
    for (what, customer, kind) in [
        (
            "the record create returned, customer session",
            &jane,
            TokenKind::Customer,
        ),
        (
            "the record create returned, member session",
            &acme,
            TokenKind::Member,
        ),
    ] {
        let (token, new) = new_session(customer.id, kind, now);
        let record = called("create", store.create(new.clone()).await)?;
        same_session(
            what,
            &record,
            &as_created(token, &new),
            &new.token_hash,
            customer,
        )?;
    }
    Ok(())
}

/// A second create with an existing hash is a `Conflict`, through this instance or
/// another, and leaves the first session as it was.
pub(super) async fn create_is_insert_if_absent<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let now = now(&backend).await;
    let jane = fixtures::individual("Jane", now);
    let john = fixtures::individual("John", now);
    for customer in [&jane, &john] {
        called(
            "upsert_customer",
            store.upsert_customer(customer.clone()).await,
        )?;
    }
    let (token, original) = new_session(jane.id, TokenKind::Customer, now);
    called("create", store.create(original.clone()).await)?;

    // Same hash, everything else different.
    let (_, mut intruder) = new_session(john.id, TokenKind::Member, now);
    intruder.token_hash = original.token_hash;
    intruder.expires_at = original.expires_at + TimeDelta::days(30);
    intruder.return_url = None;
    let mut handles = vec![("create with a hash that exists", backend.store())];
    if let Some(peer) = backend.peer().await {
        handles.push(("create through the peer with a hash that exists", peer));
    }
    for (what, handle) in &handles {
        let result = handle.create(intruder.clone()).await;
        if !matches!(result, Err(StoreError::Conflict)) {
            return Err(fail(what, "Err(Conflict)", shown(&result)));
        }
    }
    let what = "load of the first session after the conflicting creates";
    let record = found(what, load(&store, &token).await)?;
    same_session(
        what,
        &record,
        &as_created(token, &original),
        &original.token_hash,
        &jane,
    )
}

/// A session created by external id belongs to the customer holding it, not another.
pub(super) async fn create_by_external_id<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let now = now(&backend).await;
    let decoy = fixtures::individual("Decoy", now);
    let jane = fixtures::individual("Jane", now);
    for customer in [&decoy, &jane] {
        called(
            "upsert_customer",
            store.upsert_customer(customer.clone()).await,
        )?;
    }
    let external = jane.external_id.clone().unwrap_or_default();
    let (token, new) = new_session(external.as_str(), TokenKind::Customer, now);
    let record = called("create by external id", store.create(new.clone()).await)?;
    same_customer(
        "the customer of a session created by external id",
        &jane,
        &record.customer,
    )?;
    let what = "load of a session created by external id";
    let record = found(what, load(&store, &token).await)?;
    same_session(
        what,
        &record,
        &as_created(token, &new),
        &new.token_hash,
        &jane,
    )
}

/// A create for a customer that does not exist (by id or external id) is
/// `UnknownCustomer` and leaves nothing behind: once such a customer appears, the refused
/// session still does not load, and its hash is free.
pub(super) async fn unknown_customer_gets_no_session<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let now = now(&backend).await;
    let jane = fixtures::individual("Jane", now);
    called("upsert_customer", store.upsert_customer(jane).await)?;

    let ghost = fixtures::individual("Ghost", now);
    let namesake = fixtures::individual("Namesake", now);
    let external = namesake.external_id.clone().unwrap_or_default();
    let (by_id_token, by_id) = new_session(ghost.id, TokenKind::Customer, now);
    let (by_ext_token, by_ext) = new_session(external.as_str(), TokenKind::Customer, now);
    for (what, new, token) in [
        ("create for an unknown customer id", &by_id, &by_id_token),
        ("create for an unknown external id", &by_ext, &by_ext_token),
    ] {
        let result = store.create(new.clone()).await;
        if !matches!(result, Err(StoreError::UnknownCustomer)) {
            return Err(fail(what, "Err(UnknownCustomer)", shown(&result)));
        }
        nothing(format!("load after a {what}"), load(&store, token).await)?;
    }

    // The customers appear. A row left behind by the refused creates would come to life.
    for customer in [&ghost, &namesake] {
        called(
            "upsert_customer",
            store.upsert_customer(customer.clone()).await,
        )?;
    }
    nothing(
        "load of a session refused for an unknown id, once a customer with that id exists",
        load(&store, &by_id_token).await,
    )?;
    nothing(
        "load of a session refused for an unknown external id, once a customer has it",
        load(&store, &by_ext_token).await,
    )?;
    called(
        "create again, with the hash refused before, for the customer that now exists",
        store.create(by_id).await,
    )?;
    called(
        "create again, with the hash refused before, by the external id that now exists",
        store.create(by_ext).await,
    )?;
    Ok(())
}

/// A deleted customer gets no new session, by id or external id, whether deleted with
/// `delete_customer` or upserted already deleted.
pub(super) async fn deleted_customer_gets_no_session<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let now = now(&backend).await;
    let jane = fixtures::individual("Jane", now);
    called("upsert_customer", store.upsert_customer(jane.clone()).await)?;
    called("delete_customer", store.delete_customer(jane.id, now).await)?;
    let mut gone = fixtures::individual("Gone", now);
    gone.make_mut().deleted_at = Some(fixtures::with_micros(now - TimeDelta::days(1), 42));
    called("upsert_customer", store.upsert_customer(gone.clone()).await)?;

    for (who, customer) in [
        ("a deleted customer", &jane),
        ("a customer upserted deleted", &gone),
    ] {
        let external = customer.external_id.clone().unwrap_or_default();
        for (by, reference) in [
            ("id", CustomerRef::Id(customer.id)),
            ("external id", CustomerRef::ExternalId(external)),
        ] {
            let what = format!("create for {who}, by {by}");
            let (token, new) = new_session(reference, TokenKind::Customer, now);
            let result = store.create(new).await;
            if !matches!(result, Err(StoreError::UnknownCustomer)) {
                return Err(fail(&what, "Err(UnknownCustomer)", shown(&result)));
            }
            nothing(format!("load after a {what}"), load(&store, &token).await)?;
        }
    }
    Ok(())
}

/// `revoke` removes exactly one session (a member session too), says whether it existed,
/// and leaves the customer's other sessions.
pub(super) async fn revoke_removes_exactly_one<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let now = now(&backend).await;
    let acme = fixtures::team("Acme", now);
    called("upsert_customer", store.upsert_customer(acme.clone()).await)?;
    let (first_token, first) = new_session(acme.id, TokenKind::Customer, now);
    let (second_token, second) = new_session(acme.id, TokenKind::Customer, now);
    let (member_token, member) = new_session(acme.id, TokenKind::Member, now);
    for new in [&first, &second, &member] {
        called("create", store.create(new.clone()).await)?;
    }

    let revoked = called("revoke", store.revoke(&first.token_hash).await)?;
    equal("revoke of a live session", &true, &revoked)?;
    nothing(
        "load of a revoked session",
        load(&store, &first_token).await,
    )?;
    let again = called("revoke", store.revoke(&first.token_hash).await)?;
    equal("revoke of it again", &false, &again)?;
    found(
        "load of the customer's other session",
        load(&store, &second_token).await,
    )?;

    let revoked = called("revoke", store.revoke(&member.token_hash).await)?;
    equal("revoke of a member session", &true, &revoked)?;
    nothing(
        "load of a revoked member session",
        load(&store, &member_token).await,
    )?;
    found(
        "load of the customer's remaining session",
        load(&store, &second_token).await,
    )?;

    let never = fixtures::hash(&fixtures::token(TokenKind::Customer));
    let revoked = called("revoke", store.revoke(&never).await)?;
    equal("revoke of a hash never created", &false, &revoked)
}

/// `revoke_all` removes every session of the customer, member sessions included, counts
/// them, and leaves other customers' sessions.
pub(super) async fn revoke_all_removes_every_session_of_the_customer<B: FullBackend>(
    backend: B,
) -> Checked {
    let store = backend.store();
    let now = now(&backend).await;
    let acme = fixtures::team("Acme", now);
    let john = fixtures::individual("John", now);
    for customer in [&acme, &john] {
        called(
            "upsert_customer",
            store.upsert_customer(customer.clone()).await,
        )?;
    }
    let mut acmes = Vec::new();
    for kind in [
        TokenKind::Customer,
        TokenKind::Member,
        TokenKind::Customer,
        TokenKind::Member,
    ] {
        let (token, new) = new_session(acme.id, kind, now);
        called("create", store.create(new).await)?;
        acmes.push((kind, token));
    }
    let (johns_token, johns) = new_session(john.id, TokenKind::Customer, now);
    called("create", store.create(johns.clone()).await)?;

    let count = called("revoke_all", store.revoke_all(acme.id).await)?;
    equal(
        "revoke_all of a customer with two customer and two member sessions",
        &4,
        &count,
    )?;
    for (kind, token) in &acmes {
        nothing(
            format!("load of a {kind} session after revoke_all"),
            load(&store, token).await,
        )?;
    }
    let what = "load of another customer's session after revoke_all";
    let record = found(what, load(&store, &johns_token).await)?;
    same_session(
        what,
        &record,
        &as_created(johns_token, &johns),
        &johns.token_hash,
        &john,
    )?;
    let again = called("revoke_all", store.revoke_all(acme.id).await)?;
    equal("revoke_all again", &0, &again)?;
    let nobody = called("revoke_all", store.revoke_all(Uuid::new_v4()).await)?;
    equal("revoke_all of an unknown customer", &0, &nobody)
}
