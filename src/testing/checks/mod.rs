//! Every check, by name, and what the checks share: how sessions come to exist (through a
//! full store's own calls, or a read-only store's [`Issuer`]), the time, and managers.

mod concurrency;
mod customers;
mod failures;
mod feed;
mod load;
mod remembered;
mod rotation;
mod scope;
mod sessions;
mod time;
mod tokens;

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::backend::{Backend, IssueRequest, Issued, Issuer};
use super::expect::{Checked, Stop, called, ensure, skip};
use super::fixtures::{self, SECRET};
use crate::SessionManager;
use crate::model::Customer;
use crate::store::{
    CustomerStore, NewSession, SessionAdmin, SessionKey, SessionRecord, SessionStore, StoreError,
};
use crate::token::{SessionToken, TokenKind};

pub(super) type CheckFuture<'b> = Pin<Box<dyn Future<Output = Checked> + 'b>>;

/// One named check; it gets a fresh backend.
pub(super) struct Check<'b, B> {
    pub(super) name: &'static str,
    pub(super) run: fn(B) -> CheckFuture<'b>,
}

/// A backend whose store owns its sessions and customers.
pub(super) trait FullBackend: Backend<Store: SessionAdmin + CustomerStore> {}

impl<B: Backend<Store: SessionAdmin + CustomerStore>> FullBackend for B {}

/// The checks that apply to every store; `$wrap` says how sessions are issued.
#[rustfmt::skip]
macro_rules! load_checks {
    ($wrap:ident) => {
        vec![
            check!("load.unknown_token_loads_nothing", load::unknown_token_loads_nothing, $wrap),
            check!("load.session_loads_with_its_customer", load::session_loads_with_its_customer, $wrap),
            check!("load.member_session_carries_its_member", load::member_session_carries_its_member, $wrap),
            check!("load.revoked_session_does_not_load", load::revoked_session_does_not_load, $wrap),
            check!("load.deleted_customer_does_not_load", load::deleted_customer_does_not_load, $wrap),
            check!("time.expired_session_does_not_load", time::expired_session_does_not_load, $wrap),
            check!("time.expires_at_itself_is_expired", time::expires_at_itself_is_expired, $wrap),
            check!("failures.outage_is_an_error_never_not_found", failures::outage_is_an_error_never_not_found, $wrap),
            check!("scope.process_scope_only_for_one_process", scope::process_scope_only_for_one_process, $wrap),
            check!("feed.watch_outside_a_runtime_does_not_panic", feed::watch_outside_a_runtime_does_not_panic, $wrap),
        ]
    };
}

macro_rules! check {
    ($name:literal, $check:path, $wrap:ident) => {
        Check {
            name: $name,
            run: |backend| Box::pin($check($wrap(backend))),
        }
    };
    ($name:literal, $check:path) => {
        Check {
            name: $name,
            run: |backend| Box::pin($check(backend)),
        }
    };
}

/// The part of the kit for a read-only store.
pub(super) fn read_only<'b, B: Issuer + 'b>() -> Vec<Check<'b, B>> {
    load_checks!(ReadOnly)
}

/// The whole kit, for a store that also issues, revokes and keeps customers.
#[rustfmt::skip]
pub(super) fn full<'b, B: FullBackend + 'b>() -> Vec<Check<'b, B>> {
    let mut checks = load_checks!(Full);
    checks.extend([
        check!("sessions.create_returns_what_went_in", sessions::create_returns_what_went_in),
        check!("sessions.create_is_insert_if_absent", sessions::create_is_insert_if_absent),
        check!("sessions.create_by_external_id", sessions::create_by_external_id),
        check!("sessions.unknown_customer_gets_no_session", sessions::unknown_customer_gets_no_session),
        check!("sessions.deleted_customer_gets_no_session", sessions::deleted_customer_gets_no_session),
        check!("sessions.revoke_removes_exactly_one", sessions::revoke_removes_exactly_one),
        check!("sessions.revoke_all_removes_every_session_of_the_customer", sessions::revoke_all_removes_every_session_of_the_customer),
        check!("tokens.hash_is_matched_exactly", tokens::hash_is_matched_exactly),
        check!("tokens.raw_token_never_stored", tokens::raw_token_never_stored),
        check!("customers.every_field_round_trips", customers::every_field_round_trips),
        check!("customers.edits_show_in_loads", customers::edits_show_in_loads),
        check!("customers.external_id_follows_edits", customers::external_id_follows_edits),
        check!("customers.deletion_is_soft_at_the_time_given", customers::deletion_is_soft_at_the_time_given),
        check!("customers.deleting_again_keeps_the_first_time", customers::deleting_again_keeps_the_first_time),
        check!("failures.every_call_fails_during_an_outage", failures::every_call_fails_during_an_outage),
        check!("concurrency.one_create_wins_per_hash", concurrency::one_create_wins_per_hash),
        check!("concurrency.concurrent_writes_all_land", concurrency::concurrent_writes_all_land),
        check!("rotation.sessions_under_either_key_resolve_and_revoke", rotation::sessions_under_either_key_resolve_and_revoke),
        check!("feed.goes_live", feed::goes_live),
        check!("feed.revocations_reach_the_peer", feed::revocations_reach_the_peer),
        check!("feed.api_revocations_are_remembered_by_the_peer", remembered::api_revocations_are_remembered_by_the_peer),
        check!("feed.customer_changes_reach_the_peer", feed::customer_changes_reach_the_peer),
        check!("feed.announced_only_after_commit", feed::announced_only_after_commit),
        check!("feed.heartbeat_keeps_it_live", feed::heartbeat_keeps_it_live),
        check!("feed.burst_loses_nothing_silently", feed::burst_loses_nothing_silently),
        check!("feed.outage_is_reported", feed::outage_is_reported),
        check!("feed.stops_with_its_manager", feed::stops_with_its_manager),
    ]);
    checks
}

/// How a check makes customers and sessions exist at the store's source of truth.
pub(super) trait Issue {
    type Backend: Backend;

    fn backend(&self) -> &Self::Backend;

    /// Keep `customer`; returns it as loads will show it.
    async fn add_customer(&self, customer: Customer) -> Result<Customer, Stop>;

    async fn issue(&self, request: IssueRequest) -> Result<Issued, Stop>;

    async fn revoke(&self, token: &SessionToken) -> Checked;

    async fn delete_customer(&self, id: Uuid) -> Checked;
}

/// A full store issues through its own calls.
pub(super) struct Full<B>(pub(super) B);

impl<B: FullBackend> Issue for Full<B> {
    type Backend = B;

    fn backend(&self) -> &B {
        &self.0
    }

    async fn add_customer(&self, customer: Customer) -> Result<Customer, Stop> {
        called(
            "upsert_customer",
            self.0.store().upsert_customer(customer.clone()).await,
        )?;
        // As it went in: the customer checks compare with that, not with what came back.
        Ok(customer)
    }

    async fn issue(&self, request: IssueRequest) -> Result<Issued, Stop> {
        let token = fixtures::token(request.kind);
        let new = NewSession {
            id: Uuid::new_v4(),
            token_hash: fixtures::hash(&token),
            kind: request.kind,
            customer: request.customer_id.into(),
            created_at: request.created_at,
            expires_at: request.expires_at,
            return_url: request.return_url.clone(),
            member: request.member.clone(),
        };
        let id = new.id;
        called("create", self.0.store().create(new).await)?;
        let mut issued = Issued::as_requested(token, &request);
        issued.id = Some(id);
        Ok(issued)
    }

    async fn revoke(&self, token: &SessionToken) -> Checked {
        let existed = called(
            "revoke of a session just created",
            self.0.store().revoke(&fixtures::hash(token)).await,
        )?;
        ensure(
            existed,
            "revoke of a session just created",
            "Ok(true)",
            "Ok(false)",
        )
    }

    async fn delete_customer(&self, id: Uuid) -> Checked {
        let at = now(&self.0).await;
        let existed = called(
            "delete_customer of a customer just added",
            self.0.store().delete_customer(id, at).await,
        )?;
        ensure(
            existed,
            "delete_customer of a customer just added",
            "Ok(true)",
            "Ok(false)",
        )
    }
}

/// A read-only store's sessions come from its authority, through the [`Issuer`].
pub(super) struct ReadOnly<B>(pub(super) B);

impl<B: Issuer> Issue for ReadOnly<B> {
    type Backend = B;

    fn backend(&self) -> &B {
        &self.0
    }

    async fn add_customer(&self, customer: Customer) -> Result<Customer, Stop> {
        Ok(self.0.add_customer(customer).await)
    }

    async fn issue(&self, request: IssueRequest) -> Result<Issued, Stop> {
        Ok(self.0.issue(request).await)
    }

    async fn revoke(&self, token: &SessionToken) -> Checked {
        self.0.revoke(token).await.map_err(|_| {
            skip("the authority cannot revoke a session (`Issuer::revoke` is unsupported)")
        })
    }

    async fn delete_customer(&self, id: Uuid) -> Checked {
        self.0.delete_customer(id).await.map_err(|_| {
            skip(
                "the authority cannot delete a customer (`Issuer::delete_customer` is unsupported)",
            )
        })
    }
}

/// The time the store judges expiry by.
pub(super) async fn now<B: Backend>(backend: &B) -> DateTime<Utc> {
    match backend.clock() {
        Some(clock) => crate::Clock::now(&clock),
        None => backend.now().await,
    }
}

/// A session request for `customer_id`, an hour long from about `now`.
pub(super) fn request(customer_id: Uuid, kind: TokenKind, now: DateTime<Utc>) -> IssueRequest {
    let created_at = fixtures::with_micros(now, 654_321);
    IssueRequest {
        customer_id,
        kind,
        member: (kind == TokenKind::Member).then(fixtures::member),
        return_url: Some("https://shop.example/account?tab=orders".to_owned()),
        created_at,
        expires_at: created_at + TimeDelta::hours(1) + TimeDelta::microseconds(17),
    }
}

/// Load the session of `token` as the layer would.
pub(super) async fn load<S: SessionStore>(
    store: &S,
    token: &SessionToken,
) -> Result<Option<SessionRecord>, StoreError> {
    let hash = fixtures::hash(token);
    store
        .load(SessionKey::new(&hash, token.expose_secret()))
        .await
}

/// A session manager on `store`, as an instance of the application builds it: the kit's
/// secret, the backend's clock if it has one, every other setting at its default.
pub(super) fn manager<B: Backend>(
    backend: &B,
    store: B::Store,
) -> Result<SessionManager<B::Store>, Stop> {
    manager_with_keys(backend, store, SECRET, &[])
}

/// As [`manager`], with another current key and other accepted keys (a key rotation).
pub(super) fn manager_with_keys<B: Backend>(
    backend: &B,
    store: B::Store,
    secret: &[u8],
    accepted: &[&[u8]],
) -> Result<SessionManager<B::Store>, Stop> {
    let mut builder = SessionManager::builder(store)
        .secret(secret)
        .accept_secrets(accepted);
    if let Some(clock) = backend.clock() {
        builder = builder.clock(clock);
    }
    builder.build().map_err(|error| {
        super::expect::fail(
            "SessionManager::builder(store).build()",
            "a manager",
            format!("Err({error:?})"),
        )
    })
}

/// What a load must return for a session `new` created with `token`.
pub(super) fn as_created(token: SessionToken, new: &NewSession) -> Issued {
    Issued {
        token,
        id: Some(new.id),
        kind: new.kind,
        created_at: Some(new.created_at),
        expires_at: new.expires_at,
        return_url: new.return_url.clone(),
        member: new.member.clone(),
    }
}

/// A store call's result, briefly: a record or customer is not worth printing whole.
pub(super) fn shown<T>(result: &Result<T, StoreError>) -> String {
    match result {
        Ok(_) => "Ok(…)".to_owned(),
        Err(error) => format!("Err({error:?})"),
    }
}
