//! Customers: every field kept exactly (compared with what went in, not with what the
//! store returned), edits seen by loads at once, external ids that follow edits, and soft
//! deletion at the time given.

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::model::{Customer, MetadataValue};
use crate::store::{CustomerRef, CustomerStore, SessionAdmin, StoreError};
use crate::token::TokenKind;

use super::super::expect::{Checked, Stop, called, equal, fail, found, nothing, same_customer};
use super::super::fixtures::{self, new_session, with_micros};
use super::{FullBackend, load, now, shown};

/// The customer `by` refers to, which must exist.
async fn read<S: CustomerStore>(store: &S, what: &str, by: CustomerRef) -> Result<Customer, Stop> {
    match called(what, store.customer(&by).await)? {
        Some(customer) => Ok(customer),
        None => Err(fail(what, "Ok(Some(customer))", "Ok(None)")),
    }
}

fn by_external_id(customer: &Customer) -> CustomerRef {
    CustomerRef::ExternalId(customer.external_id.clone().unwrap_or_default())
}

/// An individual, a team and an already deleted customer, every field set, come back
/// exactly as they went in: from `upsert_customer`, read by id and by external id, and
/// joined in loads.
pub(super) async fn every_field_round_trips<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let now = now(&backend).await;
    let jane = fixtures::individual("Jane", now);
    let acme = fixtures::team("Acme", now);
    let mut gone = fixtures::individual("Gone", now);
    gone.make_mut().deleted_at = Some(with_micros(now - TimeDelta::days(3), 314_159));
    for (label, customer) in [
        ("an individual customer", &jane),
        ("a team customer", &acme),
        ("a customer upserted deleted", &gone),
    ] {
        let returned = called(
            "upsert_customer",
            store.upsert_customer(customer.clone()).await,
        )?;
        same_customer(
            &format!("{label}, as upsert_customer returned it"),
            customer,
            &returned,
        )?;
        let what = format!("{label}, read by id");
        let read_back = read(&store, &what, CustomerRef::Id(customer.id)).await?;
        same_customer(&what, customer, &read_back)?;
        let what = format!("{label}, read by external id");
        let read_back = read(&store, &what, by_external_id(customer)).await?;
        same_customer(&what, customer, &read_back)?;
    }
    for (label, customer, kind) in [
        (
            "an individual customer, joined in a load",
            &jane,
            TokenKind::Customer,
        ),
        (
            "a team customer, joined in a member session's load",
            &acme,
            TokenKind::Member,
        ),
    ] {
        let (token, new) = new_session(customer.id, kind, now);
        called("create", store.create(new).await)?;
        let record = found(label, load(&store, &token).await)?;
        same_customer(label, customer, &record.customer)?;
    }
    Ok(())
}

/// An edit shows in the next load of an existing session (loads join the customer as it
/// is now) and in reads.
pub(super) async fn edits_show_in_loads<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let now = now(&backend).await;
    let jane = fixtures::individual("Jane", now);
    called("upsert_customer", store.upsert_customer(jane.clone()).await)?;
    let (token, new) = new_session(jane.id, TokenKind::Customer, now);
    called("create", store.create(new).await)?;
    found("load before the edit", load(&store, &token).await)?;

    let mut edited = jane.clone();
    {
        let data = edited.make_mut();
        data.name = Some("Jane Edited ✎".to_owned());
        data.email = Some("jane.edited@example.com".to_owned());
        data.billing_address = None;
        data.modified_at = Some(with_micros(now, 777_001));
        let mut metadata = std::mem::take(&mut data.metadata);
        metadata.reverse();
        metadata.insert("edited".to_owned(), MetadataValue::Bool(true));
        data.metadata = metadata;
    }
    called(
        "upsert_customer",
        store.upsert_customer(edited.clone()).await,
    )?;
    let what = "the customer joined in a load of a session created before an edit";
    let record = found(what, load(&store, &token).await)?;
    same_customer(what, &edited, &record.customer)?;
    let what = "the customer read by id after an edit";
    let read_back = read(&store, what, CustomerRef::Id(jane.id)).await?;
    same_customer(what, &edited, &read_back)
}

/// Fail unless a create by `external_id` resolves to `owner` (`None`: to nobody).
async fn creates_by<S: SessionAdmin>(
    store: &S,
    what: &str,
    external_id: &str,
    owner: Option<Uuid>,
    now: DateTime<Utc>,
) -> Checked {
    let (_, new) = new_session(external_id, TokenKind::Customer, now);
    let result = store.create(new).await;
    match (owner, &result) {
        (None, Err(StoreError::UnknownCustomer)) => Ok(()),
        (None, _) => Err(fail(what, "Err(UnknownCustomer)", shown(&result))),
        (Some(id), Ok(record)) => equal(format!("{what}: the customer"), &id, &record.customer.id),
        (Some(_), Err(_)) => Err(fail(what, "Ok(…)", shown(&result))),
    }
}

/// Fail unless reading by `external_id` finds `owner` (`None`: nobody).
async fn reads_by<S: CustomerStore>(
    store: &S,
    what: &str,
    external_id: &str,
    owner: Option<Uuid>,
) -> Checked {
    let found = called(
        what,
        store
            .customer(&CustomerRef::ExternalId(external_id.to_owned()))
            .await,
    )?;
    equal(what, &owner, &found.map(|customer| customer.id))
}

/// External ids follow edits: the old one stops resolving (reads and creates), the new
/// one resolves, one removed resolves no more, and one given up can be taken by another
/// customer, as can a deleted customer's.
pub(super) async fn external_id_follows_edits<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let now = now(&backend).await;
    let jane = fixtures::individual("Jane", now);
    let old = jane.external_id.clone().unwrap_or_default();
    let new = fixtures::external_id("Jane");
    called("upsert_customer", store.upsert_customer(jane.clone()).await)?;

    let mut renamed = jane.clone();
    renamed.make_mut().external_id = Some(new.clone());
    called(
        "upsert_customer",
        store.upsert_customer(renamed.clone()).await,
    )?;
    reads_by(
        &store,
        "customer by the external id an edit replaced",
        &old,
        None,
    )
    .await?;
    creates_by(
        &store,
        "create by the external id an edit replaced",
        &old,
        None,
        now,
    )
    .await?;
    reads_by(
        &store,
        "customer by the external id an edit gave",
        &new,
        Some(jane.id),
    )
    .await?;
    creates_by(
        &store,
        "create by the external id an edit gave",
        &new,
        Some(jane.id),
        now,
    )
    .await?;

    let mut without = renamed.clone();
    without.make_mut().external_id = None;
    called("upsert_customer", store.upsert_customer(without).await)?;
    reads_by(
        &store,
        "customer by an external id an edit removed",
        &new,
        None,
    )
    .await?;
    creates_by(
        &store,
        "create by an external id an edit removed",
        &new,
        None,
        now,
    )
    .await?;

    let mut kim = fixtures::individual("Kim", now);
    kim.make_mut().external_id = Some(old.clone());
    called("upsert_customer", store.upsert_customer(kim.clone()).await)?;
    reads_by(
        &store,
        "customer by an external id another customer gave up",
        &old,
        Some(kim.id),
    )
    .await?;
    creates_by(
        &store,
        "create by an external id another customer gave up",
        &old,
        Some(kim.id),
        now,
    )
    .await?;

    let lee = fixtures::individual("Lee", now);
    let lees = lee.external_id.clone().unwrap_or_default();
    called("upsert_customer", store.upsert_customer(lee.clone()).await)?;
    called("delete_customer", store.delete_customer(lee.id, now).await)?;
    let mut max = fixtures::individual("Max", now);
    max.make_mut().external_id = Some(lees.clone());
    called("upsert_customer", store.upsert_customer(max.clone()).await)?;
    creates_by(
        &store,
        "create by the external id of a deleted customer, now a live customer's",
        &lees,
        Some(max.id),
        now,
    )
    .await
}

/// `delete_customer(id, at)` keeps the customer, readable by id and external id, with
/// `deleted_at` exactly `at` and every other field unchanged; its sessions stop loading,
/// other customers' do not; an unknown id is `Ok(false)`.
pub(super) async fn deletion_is_soft_at_the_time_given<B: FullBackend>(backend: B) -> Checked {
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
    let (janes_token, janes) = new_session(jane.id, TokenKind::Customer, now);
    let (johns_token, johns) = new_session(john.id, TokenKind::Customer, now);
    for new in [janes, johns] {
        called("create", store.create(new).await)?;
    }
    // Not the store's own "now": the time given is the time kept.
    let at = with_micros(now - TimeDelta::minutes(5), 246_810);
    let deleted = called("delete_customer", store.delete_customer(jane.id, at).await)?;
    equal("delete_customer of a live customer", &true, &deleted)?;

    let mut expected = jane.clone();
    expected.make_mut().deleted_at = Some(at);
    for (what, by) in [
        (
            "customer by id after delete_customer (a soft delete keeps the customer)",
            CustomerRef::Id(jane.id),
        ),
        (
            "customer by external id after delete_customer",
            by_external_id(&jane),
        ),
    ] {
        let read_back = read(&store, what, by).await?;
        same_customer(what, &expected, &read_back)?;
    }
    nothing(
        "load of a deleted customer's session",
        load(&store, &janes_token).await,
    )?;
    found(
        "load of another customer's session",
        load(&store, &johns_token).await,
    )?;
    let unknown = called(
        "delete_customer",
        store.delete_customer(Uuid::new_v4(), at).await,
    )?;
    equal("delete_customer of an unknown customer", &false, &unknown)
}

/// Deleting a deleted customer again, later, keeps the first `deleted_at`.
pub(super) async fn deleting_again_keeps_the_first_time<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let now = now(&backend).await;
    let jane = fixtures::individual("Jane", now);
    called("upsert_customer", store.upsert_customer(jane.clone()).await)?;
    let first = with_micros(now - TimeDelta::hours(1), 111_111);
    let later = with_micros(now, 999_999);
    called(
        "delete_customer",
        store.delete_customer(jane.id, first).await,
    )?;
    called(
        "delete_customer",
        store.delete_customer(jane.id, later).await,
    )?;
    let what = "customer by id after a second, later delete_customer";
    let read_back = read(&store, what, CustomerRef::Id(jane.id)).await?;
    equal(
        format!("{what}: deleted_at"),
        &Some(first),
        &read_back.deleted_at,
    )
}
